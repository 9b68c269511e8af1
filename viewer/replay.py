"""Replay a recorded 3D points file (:class:`triangulate.formats.Points3D`) with its rig.

In a window at the recorded frame rate (space pauses, the sequence loops), or
headless to a video / PNG frames through :func:`viewer.render.render_video`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from calibration.rig import Rig
from triangulate.formats import Points3D
from triangulate.skeletons import Skeleton, skeleton_for_joints
from viewer.render import render_video
from viewer.window import SceneWindow, Update

DEFAULT_FPS = 30.0


def skeleton_of(points3d: Points3D) -> Skeleton:
    """The built-in skeleton with exactly the file's joint names; else one without bones (warns)."""
    skel = skeleton_for_joints(points3d.joint_names)
    if not len(skel.bone_names):
        warnings.warn(f"the {len(points3d.joint_names)} joint names match no built-in skeleton; "
                      "drawing joints without bones", stacklevel=2)
    return skel


def first_populated_frame(points3d: Points3D) -> int:
    """Index of the first frame with any finite joint (0 when there is none)."""
    finite = np.isfinite(points3d.points).all(axis=-1).any(axis=-1)
    if points3d.multi_person:
        finite = finite.any(axis=0)
    return int(np.argmax(finite)) if finite.any() else 0


def frame_at(points3d: Points3D, seconds: float, fps: float, loop: bool = True) -> int:
    """Frame index shown ``seconds`` into playback at ``fps`` (looping, or holding the last frame)."""
    i = int(np.floor(seconds * fps + 1e-9))
    n = points3d.n_frames
    return i % n if loop else min(i, n - 1)


def replay_window(rig: Rig, points3d: Points3D, skeleton: Skeleton | None = None, fps: float | None = None,
                  loop: bool = True, size=(1280, 720), visible: bool = True,
                  max_seconds: float | None = None) -> SceneWindow:
    """Play ``points3d`` in a window at ``fps`` (default: the file's, else 30) until it is closed."""
    skeleton = skeleton or skeleton_of(points3d)
    fps = float(fps or points3d.fps or DEFAULT_FPS)
    state = {"playhead": 0.0, "last": None, "frame": -1}
    max_step = 0.1  # after a pause (no polls) playback resumes where it stopped

    def poll() -> Update | None:
        now = time.monotonic()
        if state["last"] is not None:
            state["playhead"] += min(now - state["last"], max_step)
        state["last"] = now
        i = frame_at(points3d, state["playhead"], fps, loop)
        if i == state["frame"]:
            return None
        state["frame"] = i
        if points3d.multi_person:  # everybody, each in their own colour
            return points3d.points[:, i], points3d.n_views[:, i], points3d.person_ids
        return points3d.points[i], points3d.n_views[i]

    step = max(1, points3d.n_frames // 200)
    fit = (points3d.points[:, ::step].reshape(-1, *points3d.points.shape[2:]) if points3d.multi_person
           else points3d.points[::step])
    window = SceneWindow(rig, skeleton, size, title="rigcap replay", visible=visible, view_points=fit)
    window.run(poll, rate_hz=max(fps, 30.0), max_seconds=max_seconds)
    return window


def replay_to_video(rig: Rig, points3d: Points3D, out, skeleton: Skeleton | None = None, size=None,
                    view=None, fps: float | None = None, frames=None, progress=None, **overview_kw) -> Path:
    """Render every frame (or ``frames``) of ``points3d`` to a video file or a folder of PNGs."""
    skeleton = skeleton or skeleton_of(points3d)
    return render_video(rig, skeleton, points3d.points, points3d.n_views, out,
                        fps=float(fps or points3d.fps or DEFAULT_FPS), size=size, view=view, frames=frames,
                        progress=progress, **overview_kw)
