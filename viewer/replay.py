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
from viewer.legend import title_line
from viewer.playback import Playback
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
                  max_seconds: float | None = None, source: str = "replay", on_tick=None, style=None):
    """Play ``points3d`` in a window at ``fps`` (default: the file's, else 30) until it is closed.

    The Open3D GUI window (:class:`viewer.gui.GuiWindow`: timeline, panel,
    labels) where it can start, else the plain window; ``visible=False``
    always uses the plain window offscreen (tests).  ``style``
    (:class:`viewer.scene.SceneStyle`, e.g. ``color_by``) is either window's.
    Returns the closed window.
    """
    skeleton = skeleton or skeleton_of(points3d)
    fps = float(fps or points3d.fps or DEFAULT_FPS)
    step = max(1, points3d.n_frames // 200)
    fit = (points3d.points[:, ::step].reshape(-1, *points3d.points.shape[2:]) if points3d.multi_person
           else points3d.points[::step])
    playback = Playback(points3d.n_frames, fps, loop=loop)

    def frame_update(i: int):
        if points3d.multi_person:  # everybody, each in their own colour
            return points3d.points[:, i], points3d.n_views[:, i], points3d.person_ids
        return points3d.points[i], points3d.n_views[i]

    if visible:
        from viewer.gui import GuiWindow, open_window

        def status() -> str:
            return frame_title(points3d, source, playback.frame, fps) + ("" if playback.playing else "  (paused)")

        def stats() -> list[str]:
            pts = frame_update(playback.frame)[0].reshape(-1, *points3d.points.shape[-2:])
            people = int(np.isfinite(pts).all(-1).any(-1).sum())
            return [f"{points3d.n_frames} frames at {fps:g} fps", f"speed {playback.speed:g}x", f"people: {people}"]

        window = open_window(rig, skeleton, size, f"rigcap replay - {source}", view_points=fit,
                             playback=playback, stats=stats, status=status, style=style)
        if isinstance(window, GuiWindow):
            window.run(frame_update, rate_hz=max(fps, 30.0), max_seconds=max_seconds, on_tick=on_tick)
            return window
    else:
        window = SceneWindow(rig, skeleton, size, title="rigcap replay", visible=False, view_points=fit, style=style)
    state = {"last": None, "frame": -1}

    def poll() -> Update | None:
        now = time.monotonic()
        playback.playing = not window.paused
        playback.advance(0.0 if state["last"] is None else now - state["last"])
        state["last"] = now
        i = playback.frame
        if i == state["frame"]:
            return None
        state["frame"] = i
        return frame_update(i)

    window.run(poll, rate_hz=max(fps, 30.0), max_seconds=max_seconds, on_tick=on_tick)
    return window


def replay_to_video(rig: Rig, points3d: Points3D, out, skeleton: Skeleton | None = None, size=None,
                    view=None, fps: float | None = None, frames=None, progress=None, source: str | None = None,
                    style=None, **overview_kw) -> Path:
    """Render every frame (or ``frames``) of ``points3d`` to a video file or a folder of PNGs.

    ``source`` (the file's name): each frame then carries a title line (source,
    frame, time) and the colour legend.  A multi-person file: everybody, each in
    their own colour with their id.
    """
    skeleton = skeleton or skeleton_of(points3d)
    fps = float(fps or points3d.fps or DEFAULT_FPS)
    title = None if source is None else (lambda i: frame_title(points3d, source, i, fps))
    return render_video(rig, skeleton, points3d.points, points3d.n_views, out, fps=fps, size=size, view=view,
                        frames=frames, progress=progress, title=title, style=style,
                        person_ids=points3d.person_ids if points3d.multi_person else None, **overview_kw)


def frame_seconds(points3d: Points3D, frame: int, fps: float | None = None) -> float:
    """Time of ``frame`` from the file's start: its timestamps when it has them, else ``frame / fps``."""
    t = points3d.timestamps_ns
    if t is not None and len(t) == points3d.n_frames and np.isfinite(t[frame]):
        return float((int(t[frame]) - int(t[0])) / 1e9)
    return frame / float(fps or points3d.fps or DEFAULT_FPS)


def frame_title(points3d: Points3D, source: str, frame: int, fps: float | None = None) -> str:
    """The title line of one frame: file, frame index of count, time."""
    frame = frame % points3d.n_frames
    return title_line(source, frame, points3d.n_frames, frame_seconds(points3d, frame, fps))
