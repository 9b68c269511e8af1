"""The synthetic studio: a virtual rig with exact ground truth, so every stage is measurable
without cameras.

* :mod:`~capture.synthetic.studio_rig` -- ``make_studio_rig``: cameras around a 4 m x 4 m floor.
* :mod:`~capture.synthetic.board_motion`, :mod:`~capture.synthetic.board_video` -- ChArUco
  board recordings rendered exactly through lens distortion, and their true corners.
* :mod:`~capture.synthetic.motion` -- ``simulate_person``: Halpe-26 joints of a walking,
  squatting, arm-raising, turning person (constant bone lengths).
* :mod:`~capture.synthetic.keypoints` -- ``synthesize_keypoints``: the 2D detections a real
  detector would make (noise, occlusion, swaps, outliers, time offsets, dropped frames).
* :mod:`~capture.synthetic.person_render` -- ``render_person``: a picture of the person.
* :mod:`~capture.synthetic.studio` -- ``SyntheticStudio``: all of it behind one object.

World frame everywhere: z up, floor z = 0, metres.  Submodules are imported lazily
so ``import capture.synthetic`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "make_studio_rig": "studio_rig",
    "board_trajectory": "board_motion",
    "STUDIO_BOARD": "board_video",
    "render_board_views": "board_video",
    "write_board_recording": "board_video",
    "true_board_corners_2d": "board_video",
    "simulate_person": "motion",
    "PersonMotion": "motion",
    "DetectorNoise": "keypoints",
    "SyntheticKeypoints": "keypoints",
    "synthesize_keypoints": "keypoints",
    "render_person": "person_render",
    "SyntheticStudio": "studio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"capture.synthetic.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'capture.synthetic' has no attribute {name!r}")
