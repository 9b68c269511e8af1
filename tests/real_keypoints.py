"""MediaPipe keypoints of the real Pose2Sim demo videos, detected once and cached in the temp dir
(never in the repo): what the tests and benchmarks that need real 2D keypoints share."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "rigcap-real-keypoints"


def pose2sim_keypoints(root: Path, names: list[str], detector: str = "mediapipe"):
    """(Keypoints2D) the project's detector in video mode over ``root/videos/<name>.mp4``, the best person
    per frame; 60 fps, frame i of every video the same instant.  ~1 CPU minute the first time."""
    import cv2

    from capture.pose import best_person, create_detector
    from triangulate.formats import Keypoints2D

    path = CACHE / f"{Path(root).name}_{detector}_kp2d.npz"
    if path.exists():
        kp = Keypoints2D.load(path)
        if kp.camera_names == list(names):
            return kp
    per_cam, skeleton = [], None
    for name in names:
        with create_detector(detector) as det:
            skeleton = det.skeleton
            cap = cv2.VideoCapture(str(Path(root) / "videos" / f"{name}.mp4"))
            rows = []
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                people = det.detect(img)
                best = best_person(people)
                rows.append(people[best] if best is not None else np.full((skeleton.n_joints, 3), np.nan))
            cap.release()
        per_cam.append(np.asarray(rows, dtype=np.float32))
    n = min(len(r) for r in per_cam)
    kp = Keypoints2D(np.stack([r[:n] for r in per_cam]), list(names), list(skeleton.joint_names), fps=60.0)
    CACHE.mkdir(parents=True, exist_ok=True)
    kp.save(path)
    return kp
