"""Run by tests/test_viewer_window.py under Xvfb (its own process: Open3D's GUI starts once per process).

Opens the real replay window on a synthetic rig and sequence, steps the
timeline (pause and +5, then +3 frames), grabs the 3D view (Open3D's
``render_to_image``) and the whole screen (ImageMagick's ``import``, when
installed), and saves what the test checks: the images, the view camera and
the frame shown.  Usage: ``python tests/viewer_window_probe.py OUT_DIR``.
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

VIEW_SIZE = (640, 400)
STEPS = (5, 3)


def main(out: Path) -> None:
    rig = ring_rig(4)
    pts = swaying_figure(60)
    n_views = np.broadcast_to(2 + np.arange(26) % 3, pts.shape[:2]).copy()
    p3d = Points3D(pts, list(HALPE26.joint_names), np.zeros(pts.shape[:2]), n_views, None, 30.0)
    state = {"tick": 0}

    def script(win) -> None:
        state["tick"] += 1
        t = state["tick"]
        if t <= len(STEPS):
            win.step(STEPS[t - 1])
        elif t == len(STEPS) + 1:
            win.request_view_image(lambda img: finish(win, img))

    def finish(win, img) -> None:
        screen = out / "window.png"
        if shutil.which("import"):
            f = win._window.os_frame  # where the window sits on the screen
            subprocess.run(["import", "-window", "root", "-crop", f"{f.width}x{f.height}+{f.x}+{f.y}", str(screen)],
                           check=False,
                           timeout=20)
        v = win.view
        np.savez(out / "probe.npz", image=img, K=v.matrix, R=v.R, t=v.tvec, size=np.array(v.size),
                 frame=win.shown_frame, points=pts[win.shown_frame], playing=win.playback.playing)
        win.close()

    replay_window(rig, p3d, size=VIEW_SIZE, source="sway.npz", max_seconds=60, on_tick=script)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
