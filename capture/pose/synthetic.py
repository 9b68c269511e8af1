"""The ``synthetic`` detector: the synthetic studio's noisy detections, carried by each frame."""

from __future__ import annotations

import numpy as np

from capture.pose import Detector, DetectorError
from triangulate.skeletons import HALPE26


class SyntheticDetector(Detector):
    """Returns ``Frame.keypoints`` as is (the studio's skeleton, ``halpe26``): no model runs."""

    name = "synthetic"
    needs_image = False

    def __init__(self, skeleton=HALPE26):
        self.skeleton = skeleton

    def detect(self, image: np.ndarray) -> np.ndarray:
        raise DetectorError("the synthetic detector reads keypoints from synthetic frames; it cannot detect in an image")

    def detect_frame(self, frame) -> np.ndarray:
        if frame.keypoints is None:
            raise DetectorError("the synthetic detector needs a synthetic source with keypoints = true")
        kp = np.asarray(frame.keypoints, dtype=np.float32)
        return kp[None] if kp.ndim == 2 else kp


class NoDetector(Detector):
    """``none``: no model, zero persons per frame -- capture, timestamps and video only
    (e.g. recording calibration-board videos with their timestamps)."""

    name = "none"
    needs_image = False

    def __init__(self, skeleton: str = "halpe26"):
        from triangulate.skeletons import get_skeleton

        self.skeleton = get_skeleton(skeleton)

    def detect(self, image: np.ndarray) -> np.ndarray:
        return self.empty()

    def detect_frame(self, frame) -> np.ndarray:
        return self.empty()
