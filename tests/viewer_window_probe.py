"""Run by tests/test_viewer_window.py under Xvfb (its own process: Open3D's GUI starts once per process).

Opens the real replay window on a synthetic rig and sequence, steps the
timeline (pause and +5, then +3 frames), lets it redraw, grabs the 3D view
(Open3D's ``render_to_image``) and the whole window (ImageMagick's ``import``,
when installed; an 8-bit palette PNG, small enough for README), and saves what
the test checks: the images, the view camera, the frame shown, the frame the
steps started from, and the window's mesh upload count.
Usage: ``python tests/viewer_window_probe.py OUT_DIR``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from triangulate.formats import Points3D
from triangulate.skeletons import HALPE26
from viewer.replay import replay_window
from viewer.samples import ring_rig, swaying_figure

VIEW_SIZE = (700, 500)
STEPS = (5, 3)
SETTLE_TICKS = 4  # ticks between the last step and the grab: the window has redrawn the stepped frame


def main(out: Path) -> None:
    rig = ring_rig(4)
    pts = swaying_figure(60)
    n_views = np.broadcast_to(2 + np.arange(26) % 3, pts.shape[:2]).copy()
    p3d = Points3D(pts, list(HALPE26.joint_names), np.zeros(pts.shape[:2]), n_views, None, 30.0)
    state = {"tick": 0, "start": None}

    def script(win) -> None:
        state["tick"] += 1
        t = state["tick"]
        if t <= len(STEPS):
            if state["start"] is None:
                state["start"] = win.shown_frame
            win.step(STEPS[t - 1])
        elif t == len(STEPS) + SETTLE_TICKS:
            win.request_view_image(lambda img: finish(win, img))

    def finish(win, img) -> None:
        screen = out / "window.png"
        if shutil.which("import"):
            f = win._window.os_frame  # where the window sits on the screen
            subprocess.run(["import", "-window", "root", "-crop", f"{f.width}x{f.height}+{f.x}+{f.y}",
                            "-colors", "256", f"PNG8:{screen}"], check=False, timeout=20)
        v = win.view
        np.savez(out / "probe.npz", image=img, K=v.matrix, R=v.R, t=v.tvec, size=np.array(v.size),
                 frame=win.shown_frame, start=state["start"], points=pts[win.shown_frame],
                 playing=win.playback.playing, uploads=win.uploads, updates=win.updates)
        win.close()

    replay_window(rig, p3d, size=VIEW_SIZE, source="sway.npz", max_seconds=60, on_tick=script)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
