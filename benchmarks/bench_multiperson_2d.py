"""2D for several people: the ``mediapipe_multi`` detector against exact truth, and on the real demo.

    .venv/bin/python benchmarks/bench_multiperson_2d.py [--frames 20] [--persons 1 2 4] [--real-frames 60]

Synthetic: :class:`rigcap.studio.crowd.CrowdStudio` renders 1, 2, 4 people
(4 cameras, consecutive frames at 30 fps, so tracking works as live); the true
2D joints are the true 3D joints at each camera's capture instant projected
through its lens.  A true person counts when >= 60 % of their joints fall in
the image and >= 60 % are not hidden behind another person (the studio's
occlusion test).  Detections are matched to true people (Hungarian, on the median
error of the compared joints / the person's pixel height, accepted below 0.25).
Recall = matched / true people; invented = unmatched detections; PCK@0.05 =
share of compared joints of matched people within 5 % of the person's height;
median px error; ms per camera frame.  Compared joints: those both skeletons
name except the hips (MediaPipe and HALPE place them differently), plus
MediaPipe's ``foot_index`` vs HALPE's ``big_toe``.

Modes: ``every-frame`` runs the person detector on every frame (no tracking,
no tiles: MediaPipe's own detector -> ROI -> landmarks per person);
``tracking`` (default options: detector every 10 frames or when a track is
lost, tiles every 30); ``tracking+tiles`` runs the tiles every 5 frames;
``tracking+3D`` also gets, every frame, ``propose(boxes)`` of the people present
(the true 3D joints projected: what the fusion side's 3D tracks would give).

Real: pose2sim-demo-single cam01 (one person, 1080x1920): frames with exactly
one person, and the median pixel distance to the single-person ``mediapipe``
detector (``static_image_mode=True``) over the 33 joints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capture.pose import create_detector  # noqa: E402
from triangulate.skeletons import HALPE26, MEDIAPIPE33  # noqa: E402

SHARED = [n for n in HALPE26.joint_names if n in MEDIAPIPE33.joint_names and not n.endswith("_hip")]
PAIRS = [(HALPE26.index(n), MEDIAPIPE33.index(n)) for n in SHARED] + [
    (HALPE26.index(f"{s}_big_toe"), MEDIAPIPE33.index(f"{s}_foot_index")) for s in ("left", "right")]
H_IDX = np.array([h for h, _ in PAIRS])
M_IDX = np.array([m for _, m in PAIRS])
MODES = {
    "every-frame": dict(detect_every=1, tile_every=0),
    "tracking": dict(),
    "tracking+tiles": dict(tile_every=5),
    "tracking+3D": dict(),
}


def match_people(truth_px: np.ndarray, people: np.ndarray, max_rel: float = 0.25):
    """Pairs (true index, detection index, per-joint errors px, person height px) of a frame."""
    heights = np.nanmax(truth_px[..., 1], axis=1) - np.nanmin(truth_px[..., 1], axis=1)
    if len(truth_px) == 0 or len(people) == 0:
        return []
    t = truth_px[:, H_IDX][:, None]  # (T, 1, K, 2)
    d = people[:, M_IDX, :2][None].astype(float)  # (1, D, K, 2)
    err = np.linalg.norm(t - d, axis=-1)  # (T, D, K)
    cost = np.nanmedian(err, axis=-1) / heights[:, None]
    rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e6))
    return [(r, c, err[r, c], heights[r]) for r, c in zip(rows, cols) if cost[r, c] < max_rel]


def visible_people(camera, truth3d: np.ndarray, min_share: float = 0.6):
    """(P, J, 2) projected truth and (P,) whether each person counts: present, >= ``min_share`` of
    the joints in the image and >= ``min_share`` not hidden behind another person."""
    from rigcap.studio.crowd import hidden_by_others

    w, h = camera.size
    px = np.full(truth3d.shape[:2] + (2,), np.nan)
    ok = np.zeros(len(truth3d), bool)
    for p, joints in enumerate(truth3d):
        if not np.isfinite(joints).all() or (camera.world_to_camera(joints)[:, 2] < 0.1).any():
            continue
        px[p] = camera.project(joints)
        inside = (px[p, :, 0] >= 0) & (px[p, :, 0] < w) & (px[p, :, 1] >= 0) & (px[p, :, 1] < h)
        others = np.delete(truth3d, p, axis=0)[:, None]
        hidden = hidden_by_others(camera.center, joints[None], others)[0]
        ok[p] = inside.mean() >= min_share and (~hidden).mean() >= min_share
    return px, ok


def synthetic(n_persons: int, mode: str, n_frames: int, n_cameras: int = 4, seed: int = 0) -> dict:
    from rigcap.studio.crowd import CrowdStudio

    studio = CrowdStudio(n_persons=n_persons, n_cameras=n_cameras, duration_s=max(1.0, n_frames / 30 + 0.1),
                         seed=seed, absence=None)
    truths = found = invented = 0
    errs, pck, ms = [], [], []
    for c, cam in enumerate(studio.rig.cameras):
        det = create_detector("mediapipe_multi", **MODES[mode])
        for f in range(n_frames):
            img = studio.image(c, f)
            px, ok = visible_people(cam, studio.truth_for(c, f))
            t0 = time.perf_counter()
            if mode == "tracking+3D":
                seen = np.isfinite(px).all((1, 2))
                det.propose(np.concatenate([px[seen].min(1), px[seen].max(1)], axis=1))
            people = det.detect(img)
            ms.append((time.perf_counter() - t0) * 1e3)
            pairs = match_people(px[ok], people)
            truths += int(ok.sum())
            found += len(pairs)
            invented += len(people) - len(pairs)
            for _, _, e, height in pairs:
                errs.append(e)
                pck.append(e < 0.05 * height)
        det.close()
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {"recall": found / max(truths, 1), "truths": truths, "invented": invented,
            "pck05": float(np.mean(np.concatenate(pck))) if pck else float("nan"),
            "median_px": float(np.nanmedian(e)), "ms_p50": float(np.median(ms)), "ms_mean": float(np.mean(ms))}


def small_people(scales=(0.5, 0.35, 0.25, 0.18), n_cameras: int = 4, seed: int = 0) -> list[tuple]:
    """Small people: one rendered person shrunk by ``scale`` into the corner of a grey 1280x720
    canvas; per scale and with/without 3x3-per-side tiles (``tiles=3``), how many of 8 images
    give the person (median error of 7 body joints < 0.25 x height)."""
    from rigcap.studio.crowd import CrowdStudio

    studio = CrowdStudio(n_persons=1, n_cameras=n_cameras, duration_s=1.0, seed=seed, absence=None)
    body_h, body_m = [0, 5, 6, 13, 14, 15, 16], [0, 11, 12, 25, 26, 27, 28]
    rows = []
    for scale in scales:
        for tile_every in (0, 1):
            det = create_detector("mediapipe_multi", detect_every=1, tile_every=tile_every, tiles=3)
            found = n = 0
            heights = []
            for c, cam in enumerate(studio.rig.cameras):
                for f in (0, 15):
                    img = studio.image(c, f)
                    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                    canvas = np.full_like(img, 128)
                    canvas[: small.shape[0], : small.shape[1]] = small
                    det.reset()
                    people = det.detect(canvas)
                    truth = cam.project(studio.truth_for(c, f)[0]) * scale
                    height = truth[:, 1].max() - truth[:, 1].min()
                    heights.append(height)
                    n += 1
                    if len(people):
                        err = np.median(np.linalg.norm(people[0, body_m, :2] - truth[body_h], axis=1))
                        found += bool(err < 0.25 * height)
            det.close()
            rows.append((scale, float(np.median(heights)), tile_every > 0, found, n))
    return rows


def real(video: Path, n_frames: int) -> dict:
    cap = cv2.VideoCapture(str(video))
    single = create_detector("mediapipe", static_image_mode=True)
    multi = create_detector("mediapipe_multi")
    counts, dist, ms = [], [], []
    for _ in range(n_frames):
        ok, img = cap.read()
        if not ok:
            break
        a = single.detect(img)
        t0 = time.perf_counter()
        b = multi.detect(img)
        ms.append((time.perf_counter() - t0) * 1e3)
        counts.append(len(b))
        if len(a) and len(b):
            dist.append(np.linalg.norm(a[0, :, :2] - b[0, :, :2], axis=-1))
    cap.release()
    single.close()
    d = np.concatenate(dist) if dist else np.array([np.nan])
    counts = np.array(counts)
    return {"frames": len(counts), "one": int((counts == 1).sum()), "none": int((counts == 0).sum()),
            "more": int((counts > 1).sum()), "median_px": float(np.median(d)), "p90_px": float(np.percentile(d, 90)),
            "ms_p50": float(np.median(ms)) if ms else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20, help="consecutive synthetic frames per camera")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--persons", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--real-frames", type=int, default=60)
    ap.add_argument("--video", default=str(REPO.parent / "shared" / "data" / "pose2sim-demo-single" / "videos" / "cam01.mp4"))
    args = ap.parse_args()
    print(f"synthetic studio, {args.cameras} cameras x {args.frames} frames, 1280x720")
    print(f"{'mode':15} {'people':>6} {'recall':>7} {'true':>5} {'invented':>8} {'PCK@.05':>8} {'median px':>9} "
          f"{'ms p50':>7} {'ms mean':>7}")
    for mode in args.modes:
        for n in args.persons:
            r = synthetic(n, mode, args.frames, args.cameras)
            print(f"{mode:15} {n:6d} {r['recall']:7.3f} {r['truths']:5d} {r['invented']:8d} {r['pck05']:8.3f} "
                  f"{r['median_px']:9.2f} {r['ms_p50']:7.1f} {r['ms_mean']:7.1f}", flush=True)
    print("\nsmall people (one person shrunk into a 1280x720 canvas), found / images:")
    for scale, height, tiled, found, n in small_people():
        print(f"  person ~{height:4.0f} px tall  {'tiles 3/side' if tiled else 'whole image only':16} {found}/{n}",
              flush=True)
    video = Path(args.video)
    if not args.real_frames:
        pass
    elif video.is_file():
        r = real(video, args.real_frames)
        print(f"\nreal {video.parent.parent.name}/{video.name}: {r['frames']} frames, one person in {r['one']}, "
              f"none in {r['none']}, more in {r['more']}; vs single-person mediapipe: median {r['median_px']:.1f} px, "
              f"p90 {r['p90_px']:.1f} px; {r['ms_p50']:.1f} ms/frame p50")
    else:
        print(f"\n(real video {video} not found: skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
