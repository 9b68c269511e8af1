"""2D for several people: the ``mediapipe_multi`` detector against exact truth, and on the real demo.

    .venv/bin/python benchmarks/bench_multiperson_2d.py [--frames 20] [--persons 1 2 4] [--real-frames 60]

Synthetic: :class:`rigcap.studio.crowd.CrowdStudio` renders 1, 2, 4 people
(4 cameras, consecutive frames at 30 fps, so tracking works as live); the true
2D joints are the true 3D joints at each camera's capture instant projected
through its lens.  A true person counts when >= 60 % of their joints fall in
the image and >= 60 % are not hidden behind another person (the studio's
occlusion test).  Detections are matched to true people (Hungarian, on the median
error of the compared joints / the person's pixel height, accepted below 0.25), each in
the left/right labelling that fits it better: a person whose left and right come back
mirrored is found (the fusion's swap repair relabels such a camera), and counted apart
(``swapped``).  Recall = matched / true people; invented = unmatched detections; PCK@0.05 =
share of compared joints of matched people within 5 % of the person's height, after the
swap (``as found``: before it);
median px error; ms per camera frame.  Compared joints: those both skeletons
name except the hips (MediaPipe and HALPE place them differently), plus
MediaPipe's ``foot_index`` vs HALPE's ``big_toe``.

Modes: ``every-frame`` runs the person detector on every frame (no tracking,
no tiles: MediaPipe's own detector -> ROI -> landmarks per person);
``tracking`` (default options: detector every 10 frames or when a track is
lost, tiles every 30); ``tracking+tiles`` runs the tiles every 5 frames;
``tracking+3D`` also gets, every frame, ``propose(joints, skeleton)`` of the people present
(the true 3D joints projected: what the fusion side's 3D tracks would give), cropped as
MediaPipe's graph does (mid-hip centre, rotated along hips -> shoulders);
``tracking+3D-boxes`` proposes only their boxes (upright crops).  Proposed people are
accepted on the landmark model's pose flag >= 0.01 with their skeleton filling the proposed
box (``person_box_iou`` >= 0.6); ``--known`` prints the measurement that chose these (flag and box agreement
on crops of true people and on crops of nobody, studio and the real video).

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
SWAP = MEDIAPIPE33.swap_permutation()
MODES = {
    "every-frame": dict(detect_every=1, tile_every=0),
    "tracking": dict(),
    "tracking+tiles": dict(tile_every=5),
    "tracking+3D": dict(),
    "tracking+3D-boxes": dict(),
}


def match_people(truth_px: np.ndarray, people: np.ndarray, max_rel: float = 0.25):
    """Pairs (true index, detection index, per-joint errors px, the same as labelled, person height px,
    swapped) of a frame.

    A detection whose left and right are swapped (the whole body mirrored, as the landmark
    model does on some back views) is the person found: the fusion's swap repair relabels
    such a camera (``triangulate.swap``).  Each pair is compared in the labelling that fits it
    better (``swapped`` True: after swapping left and right), and its errors are the ones after
    that swap; the benchmark counts the swaps apart."""
    heights = np.nanmax(truth_px[..., 1], axis=1) - np.nanmin(truth_px[..., 1], axis=1)
    if len(truth_px) == 0 or len(people) == 0:
        return []
    t = truth_px[:, H_IDX][:, None]  # (T, 1, K, 2)
    d = people[:, M_IDX, :2][None].astype(float)  # (1, D, K, 2)
    ds = people[:, SWAP[M_IDX], :2][None].astype(float)  # the same detections, left and right swapped
    err = np.linalg.norm(t - d, axis=-1)  # (T, D, K)
    err_sw = np.linalg.norm(t - ds, axis=-1)
    med, med_sw = np.nanmedian(err, axis=-1), np.nanmedian(err_sw, axis=-1)
    better = med_sw < med
    cost = np.where(better, med_sw, med) / heights[:, None]
    # a swap that changes the median error by under 2 % of the height (a side view: left and
    # right nearly on each other) is not counted as one
    swapped = better & (med - med_sw > 0.02 * heights[:, None])
    rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e6))
    return [(r, c, np.where(better[r, c], err_sw[r, c], err[r, c]), err[r, c], heights[r], bool(swapped[r, c]))
            for r, c in zip(rows, cols) if cost[r, c] < max_rel]


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
    truths = found = invented = swaps = 0
    errs, pck, pck_raw, ms = [], [], [], []
    by = {"track": 0, "proposal": 0, "detector": 0, "tile": 0}  # which crop found the people returned
    for c, cam in enumerate(studio.rig.cameras):
        det = create_detector("mediapipe_multi", **MODES[mode])
        for f in range(n_frames):
            img = studio.image(c, f)
            px, ok = visible_people(cam, studio.truth_for(c, f))
            t0 = time.perf_counter()
            seen = np.isfinite(px).all((1, 2))
            if mode == "tracking+3D":
                det.propose(px[seen], skeleton=HALPE26)
            elif mode == "tracking+3D-boxes":
                det.propose(np.concatenate([px[seen].min(1), px[seen].max(1)], axis=1))
            people = det.detect(img)
            ms.append((time.perf_counter() - t0) * 1e3)
            pairs = match_people(px[ok], people)
            truths += int(ok.sum())
            found += len(pairs)
            invented += len(people) - len(pairs)
            for _, _, e, e_raw, height, swapped in pairs:
                errs.append(e)
                pck.append(e < 0.05 * height)
                pck_raw.append(e_raw < 0.05 * height)
                swaps += swapped
        for k in by:
            by[k] += det.stats.get(f"found_by_{k}", 0)
        det.close()
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {"recall": found / max(truths, 1), "truths": truths, "invented": invented, "swapped": swaps,
            "pck05": float(np.mean(np.concatenate(pck))) if pck else float("nan"),
            "pck05_raw": float(np.mean(np.concatenate(pck_raw))) if pck_raw else float("nan"),
            "median_px": float(np.nanmedian(e)), "ms_p50": float(np.median(ms)), "ms_mean": float(np.mean(ms)),
            "found_by": "/".join(str(by[k]) for k in ("track", "proposal", "detector", "tile"))}


def _flag_and_fit(det, image, region):
    """The landmark model on ``region``: (pose flag, IoU of the skeleton's box with ``region.expect``, joints px)."""
    from capture.pose.blazepose_multi import LM_SIZE, N_LANDMARKS, _apply, crop, person_box_iou, refine_from_heatmap

    x, m = crop(image, region, LM_SIZE)
    raw, flag, _seg, heat, _world = det._lm(x)
    xy = _apply(m, refine_from_heatmap(raw.reshape(N_LANDMARKS, 5)[:, :2], heat))[:33]
    iou = person_box_iou(np.r_[xy.min(0), xy.max(0)], region.expect)
    return float(np.ravel(flag)[0]), float(iou), xy


def _nobody_boxes(rng, shape, people_boxes, n, heights):
    """Up to ``n`` person-sized boxes (0.35 x as wide as tall) overlapping none of ``people_boxes``."""
    from capture.pose.blazepose_multi import box_iou

    h, w = shape[:2]
    out = []
    for _ in range(n):
        hgt = rng.uniform(*heights)
        bw = 0.35 * hgt
        x0, y0 = rng.uniform(-0.2 * bw, w - 0.8 * bw), rng.uniform(-0.2 * hgt, h - 0.8 * hgt)
        b = np.array([x0, y0, x0 + bw, y0 + hgt])
        if not len(people_boxes) or box_iou(b[None], people_boxes).max() == 0:
            out.append(b)
    return out


def known_acceptance(video: Path | None, rules=((0.5, None), (0.05, 0.6), (0.02, 0.6), (0.01, 0.6), (0.01, 0.5),
                                                (0.005, 0.6)),
                     seed: int = 7) -> list[tuple]:
    """How to accept a *proposed* person (one the 3D tracks expect in this crop): per rule (pose
    flag >= f, ``person_box_iou`` of the skeleton's box and the proposed box >= i; None: no box
    test), the share
    accepted of (1) true people proposed from their joints, (2) the same from their boxes, and
    the share of those accepted with median error < 0.1 x height, (3) person-sized boxes on
    the studio where nobody is, (4) the same on the real video (around its one person).
    Studio: 2 and 4 people, other seeds than the recall table, frames 0 and 30 of 4 cameras."""
    from capture.pose.blazepose_multi import Region
    from rigcap.studio.crowd import CrowdStudio

    det = create_detector("mediapipe_multi")
    rng = np.random.default_rng(seed)
    hips = [HALPE26.index("left_hip"), HALPE26.index("right_hip")]
    shoulders = [HALPE26.index("left_shoulder"), HALPE26.index("right_shoulder")]
    got = {"true, joints": [], "true, box": [], "nobody, studio": [], "nobody, real": []}
    for n, s in ((2, seed - 2), (4, seed - 1)):
        studio = CrowdStudio(n_persons=n, n_cameras=4, duration_s=1.1, seed=s, absence=None)
        for c, cam in enumerate(studio.rig.cameras):
            for f in (0, 30):
                img = studio.image(c, f)
                px, ok = visible_people(cam, studio.truth_for(c, f))
                seen = np.isfinite(px).all((1, 2))
                boxes = np.concatenate([px[seen].min(1), px[seen].max(1)], axis=1)
                for p in np.flatnonzero(ok):
                    t = px[p]
                    height = t[:, 1].max() - t[:, 1].min()
                    b = np.r_[t.min(0), t.max(0)]
                    for kind, region in (("true, joints", Region.from_joints(t, hips, shoulders, det.roi_scale)),
                                         ("true, box", Region((b[0] + b[2]) / 2, (b[1] + b[3]) / 2,
                                                              1.5 * (b[3] - b[1]), 0, "proposal", b))):
                        flag, iou, xy = _flag_and_fit(det, img, region)
                        err = min(np.median(np.linalg.norm(t[H_IDX] - xy[idx], axis=1)) for idx in (M_IDX, SWAP[M_IDX]))
                        got[kind].append((flag, iou, err / height))
                for b in _nobody_boxes(rng, img.shape, boxes, 25, (250, 700)):
                    region = Region((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 1.5 * (b[3] - b[1]), 0, "proposal", b)
                    got["nobody, studio"].append(_flag_and_fit(det, img, region)[:2] + (1.0,))
    if video is not None and video.is_file():
        cap = cv2.VideoCapture(str(video))
        finder = create_detector("mediapipe_multi", detect_every=1, tile_every=0)
        for k in range(60):
            ok, img = cap.read()
            if not ok:
                break
            if k % 6:
                continue
            people = finder.detect(img)
            boxes = np.concatenate([people[..., :2].min(1), people[..., :2].max(1)], axis=1)
            for b in _nobody_boxes(rng, img.shape, boxes, 40, (300, 1200)):
                region = Region((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 1.5 * (b[3] - b[1]), 0, "proposal", b)
                got["nobody, real"].append(_flag_and_fit(det, img, region)[:2] + (1.0,))
        cap.release()
        finder.close()
    det.close()
    rows = []
    for kind, v in got.items():
        v = np.array(v).reshape(-1, 3)
        for flag, iou in rules:
            acc = (v[:, 0] >= flag) & ((v[:, 1] >= iou) if iou is not None else True)
            rows.append((kind, len(v), flag, iou, float(acc.mean()) if len(v) else float("nan"),
                         float((acc & (v[:, 2] < 0.1)).mean()) if len(v) else float("nan")))
    return rows


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
    ap.add_argument("--known", action="store_true",
                    help="the table that chose how proposed (expected) people are accepted")
    ap.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                    help="the small-people table (one person shrunk, with and without tiles)")
    ap.add_argument("--video", default=str(REPO.parent / "shared" / "data" / "pose2sim-demo-single" / "videos" / "cam01.mp4"))
    args = ap.parse_args()
    print(f"synthetic studio, {args.cameras} cameras x {args.frames} frames, 1280x720")
    print(f"{'mode':15} {'people':>6} {'recall':>7} {'true':>5} {'invented':>8} {'swapped':>7} {'PCK@.05':>8} "
          f"{'as found':>8} {'median px':>9} {'ms p50':>7} {'ms mean':>7}  found by track/proposal/detector/tile")
    for mode in args.modes:
        for n in args.persons:
            r = synthetic(n, mode, args.frames, args.cameras)
            print(f"{mode:15} {n:6d} {r['recall']:7.3f} {r['truths']:5d} {r['invented']:8d} {r['swapped']:7d} "
                  f"{r['pck05']:8.3f} {r['pck05_raw']:8.3f} "
                  f"{r['median_px']:9.2f} {r['ms_p50']:7.1f} {r['ms_mean']:7.1f}  {r['found_by']}", flush=True)
    if args.small:
        print("\nsmall people (one person shrunk into a 1280x720 canvas), found / images:")
        for scale, height, tiled, found, n in small_people():
            print(f"  person ~{height:4.0f} px tall  {'tiles 3/side' if tiled else 'whole image only':16} {found}/{n}",
                  flush=True)
    video = Path(args.video)
    if args.known:
        print("\naccepting a proposed person (flag >= f, skeleton box IoU with the proposed box >= i):")
        print(f"  {'crops':15} {'n':>4} {'flag':>6} {'IoU':>5} {'accepted':>8} {'and err < 0.1 h':>15}")
        for kind, n, flag, iou, acc, good in known_acceptance(video):
            print(f"  {kind:15} {n:4d} {flag:6.3f} {'-' if iou is None else f'{iou:.2f}':>5} {acc:8.3f} "
                  f"{'' if kind.startswith('nobody') else f'{good:.3f}':>15}", flush=True)
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
