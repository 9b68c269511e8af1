"""A small rig and a stick figure to look at: for tests, benchmarks and trying the viewer.

Independent of the synthetic studio (:mod:`rigcap.studio`) on purpose: the
cameras here are distortion-free (renders can be checked pixel for pixel
against ``Camera.project``) and deliberately awkward for a renderer (principal
points off the image centre, slightly non-square pixels).
"""

from __future__ import annotations

import numpy as np

from calibration.rig import Rig
from triangulate.skeletons import HALPE26
from viewer.views import look_at

# A standing person facing +x, Halpe-26 joints, metres, z up, feet on the floor.
_STANDING = {
    "head": (0.0, 0.0, 1.78), "nose": (0.09, 0.0, 1.66), "neck": (0.0, 0.0, 1.50),
    "left_eye": (0.07, 0.035, 1.70), "right_eye": (0.07, -0.035, 1.70),
    "left_ear": (0.0, 0.08, 1.68), "right_ear": (0.0, -0.08, 1.68),
    "left_shoulder": (0.0, 0.19, 1.45), "right_shoulder": (0.0, -0.19, 1.45),
    "left_elbow": (0.05, 0.42, 1.30), "right_elbow": (0.05, -0.42, 1.30),
    "left_wrist": (0.25, 0.55, 1.30), "right_wrist": (0.10, -0.50, 1.05),
    "hip": (0.0, 0.0, 0.95), "left_hip": (0.0, 0.11, 0.93), "right_hip": (0.0, -0.11, 0.93),
    "left_knee": (0.06, 0.13, 0.50), "right_knee": (0.02, -0.13, 0.50),
    "left_ankle": (0.0, 0.14, 0.08), "right_ankle": (0.0, -0.14, 0.08),
    "left_heel": (-0.05, 0.14, 0.03), "right_heel": (-0.05, -0.14, 0.03),
    "left_big_toe": (0.16, 0.16, 0.02), "right_big_toe": (0.16, -0.12, 0.02),
    "left_small_toe": (0.14, 0.20, 0.02), "right_small_toe": (0.14, -0.17, 0.02),
}


def stick_figure(center=(0.0, 0.0), yaw_rad: float = 0.0) -> np.ndarray:
    """(26, 3) Halpe-26 joints of a standing person at ``center`` (x, y), turned by ``yaw_rad`` about z."""
    p = np.array([_STANDING[n] for n in HALPE26.joint_names], dtype=np.float64)
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    p[:, :2] = p[:, :2] @ np.array([[c, s], [-s, c]]) + np.asarray(center, dtype=np.float64)
    return p


def swaying_figure(n_frames: int, fps: float = 30.0) -> np.ndarray:
    """(n_frames, 26, 3): the stick figure walking a slow circle of 0.5 m radius while turning."""
    t = np.arange(n_frames) / fps
    out = np.empty((n_frames, len(HALPE26.joint_names), 3))
    for i, ti in enumerate(t):
        a = 0.4 * ti
        out[i] = stick_figure((0.5 * np.cos(a), 0.5 * np.sin(a)), a + np.pi / 2)
    return out


def ring_rig(n_cameras: int = 4, radius: float = 3.5, height: float = 2.2, size=(640, 480),
             focal: float = 520.0) -> Rig:
    """``n_cameras`` distortion-free cameras on a ring around the origin, aimed at (0, 0, 1), z up."""
    cams = []
    for i in range(n_cameras):
        a = 2.0 * np.pi * i / n_cameras + 0.3
        eye = np.array([radius * np.cos(a), radius * np.sin(a), height])
        cam = look_at(eye, (0.0, 0.0, 1.0), size, name=f"cam_{i}")
        cam.matrix = np.array([[focal, 0.0, size[0] / 2 + 7.3 * (i - 1)],
                               [0.0, focal * 1.01, size[1] / 2 - 5.1 * i], [0.0, 0.0, 1.0]])
        cams.append(cam)
    return Rig(cams)
