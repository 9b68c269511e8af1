"""Run by tests/test_viewer_window.py under Xvfb (its own process: Open3D's GUI starts once per process).

Opens the real replay window on a synthetic rig and sequence, steps the
timeline (pause and +5, then +3 frames), lets it redraw, grabs the 3D view
(Open3D's ``render_to_image``) and the whole window (ImageMagick's ``import``,
when installed; an 8-bit palette PNG, small enough for README), and saves what
the test checks: the images, the view camera, the frame shown, the frame the
steps started from, and the window's mesh upload count.
``live`` instead opens the live window on a real ZeroMQ ``kp3d`` stream whose
people come and go (1, then 3, then 2 with ids 3 and 7, standing still) and
saves the last two people's points and ids.
Usage: ``python tests/viewer_window_probe.py OUT_DIR [replay|live]``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from triangulate.formats import Points3D
from triangulate.skeletons import HALPE26
from viewer.replay import replay_window
from viewer.samples import ring_rig, stick_figure, swaying_figure

VIEW_SIZE = (700, 500)
STEPS = (5, 3)
SETTLE_TICKS = 4  # ticks between the last step and the grab: the window has redrawn the stepped frame
SETTLE_S = 3.0  # live: the screen (Xvfb, software Vulkan) shows frames a second or more late under load


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
        grab_screen(win, out / "window.png")
        v = win.view
        np.savez(out / "probe.npz", image=img, K=v.matrix, R=v.R, t=v.tvec, size=np.array(v.size),
                 frame=win.shown_frame, start=state["start"], points=pts[win.shown_frame],
                 playing=win.playback.playing, uploads=win.uploads, updates=win.updates)
        win.close()

    replay_window(rig, p3d, size=VIEW_SIZE, source="sway.npz", max_seconds=60, on_tick=script)


def grab_screen(win, path: Path) -> None:
    """The whole window as the X server shows it (labels and panel included), as an 8-bit palette PNG."""
    if shutil.which("import"):
        f = win._window.os_frame  # where the window sits on the screen
        subprocess.run(["import", "-window", "root", "-crop", f"{f.width}x{f.height}+{f.x}+{f.y}",
                        "-colors", "256", f"PNG8:{path}"], check=False, timeout=20)




def live_people() -> tuple[np.ndarray, np.ndarray]:
    """Three people side by side (1.2 m apart), ids 3, 7, 9: (3, 26, 3) points and the ids."""
    base = stick_figure()
    pts = np.stack([base + [dx, 0.0, 0.0] for dx in (-1.2, 0.0, 1.2)])
    return pts, np.array([3, 7, 9])


def camera_stats(name: str, c: int, i: int) -> dict:
    """A ``stats.<camera>`` header as :meth:`capture.stats.CameraStats.snapshot` makes it; camera ``c``
    runs at ``29.5 + c`` fps, has dropped ``c`` frames and takes ``10 + c`` ms from grab to publish."""
    return {"camera": name, "frames": i, "dropped": c, "detected": i, "fps": 29.5 + c, "nominal_fps": 30.0,
            "last_frame": i, "detect_ms_p50": 5.0, "detect_ms_p99": 9.0,
            "grab_to_publish_ms_p50": 10.0 + c, "grab_to_publish_ms_p99": 20.0 + c}


def main_live(out: Path) -> None:
    from rigcap.wire import Publisher
    from viewer.live import view_live

    rig = ring_rig(4)
    pub = Publisher("tcp://127.0.0.1:*", bind=True)
    import zmq

    endpoint = pub.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    everyone, ids = live_people()
    state = {"phase": 1, "ticks": 0, "stop": False, "since": 0.0}

    def publish() -> None:
        i = 0
        while not state["stop"]:
            k = {1: [0], 2: [0, 1, 2]}.get(state["phase"], [0, 1])
            pub.publish_kp3d(time.time_ns(), everyone[k].astype(np.float32), cameras=["cam_0"], frames={"cam_0": i},
                             skeleton_name="halpe26", joints_sha1_hex="0" * 8,
                             n_views=np.full((len(k), everyone.shape[1]), 4, np.int16), person_ids=ids[k])
            if i % 25 == 0:  # what each camera process sends about twice a second
                for c, cam in enumerate(rig):
                    pub.publish(f"stats.{cam.name}", camera_stats(cam.name, c, i))
            i += 1
            time.sleep(0.01)

    def script(win) -> None:
        want = {1: 1, 2: 3}.get(state["phase"], 2)
        state["ticks"] = state["ticks"] + 1 if win.people_shown == want else 0
        if state["ticks"] == 5 and state["phase"] < 3:
            state["phase"] += 1
            state["ticks"] = 0
            state["since"] = time.monotonic()
        elif state["phase"] == 3 and state["ticks"] >= 10 and time.monotonic() - state["since"] > SETTLE_S:
            state["phase"] = 4  # done: grab once
            win.request_view_image(lambda img: finish(win, img))

    def finish(win, img) -> None:
        grab_screen(win, out / "window.png")
        v = win.view
        np.savez(out / "probe.npz", image=img, K=v.matrix, R=v.R, t=v.tvec, size=np.array(v.size),
                 points=everyone[:2], ids=ids[:2], uploads=win.uploads, people=win.people_shown,
                 stats=win._stats.text)
        win.close()

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    try:
        view_live(rig, endpoint, size=VIEW_SIZE, max_seconds=60, on_tick=script)
    finally:
        state["stop"] = True
        sender.join(5)
        pub.close()


if __name__ == "__main__":
    (main_live if sys.argv[2:] == ["live"] else main)(Path(sys.argv[1]))
