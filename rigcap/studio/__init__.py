"""The synthetic studio: a virtual rig with exact ground truth, so every stage is measurable
without cameras.

* :mod:`~rigcap.studio.studio_rig` -- ``make_studio_rig``: cameras around a 4 m x 4 m floor.
* :mod:`~rigcap.studio.board_motion`, :mod:`~rigcap.studio.board_video` -- ChArUco
  board recordings rendered exactly through lens distortion, and their true corners.
* :mod:`~rigcap.studio.motion` -- ``simulate_person``: Halpe-26 joints of a walking,
  squatting, arm-raising, turning person (constant bone lengths).
* :mod:`~rigcap.studio.keypoints` -- ``synthesize_keypoints``: the 2D detections a real
  detector would make (noise, occlusion, swaps, outliers, time offsets, dropped frames).
* :mod:`~rigcap.studio.person_render` -- ``render_person``: a picture of the person.
* :mod:`~rigcap.studio.studio` -- ``SyntheticStudio``: all of it behind one object.

World frame everywhere: z up, floor z = 0, metres.  Submodules are imported lazily
so ``import rigcap.studio`` stays cheap.
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
        module = importlib.import_module(f"rigcap.studio.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'rigcap.studio' has no attribute {name!r}")
