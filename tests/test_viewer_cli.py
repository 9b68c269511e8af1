"""`rigcap view` end to end, the shared window loop (offscreen), and live view over ZeroMQ."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from calibration import save_rig
from rigcap.cli import main
from triangulate.formats import Points3D
from triangulate.skeletons import COCO17, HALPE26
from viewer import scene
from viewer.live import poll_latest
from viewer.samples import ring_rig, stick_figure, swaying_figure
from viewer.window import SceneWindow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("view")
    rig = ring_rig(4, size=(640, 360), focal=500.0)
    save_rig(rig, d / "rig.toml")
    seq = swaying_figure(12)
    seq[:3] = np.nan  # nothing triangulated yet
    nv = np.tile(2 + np.arange(26) % 3, (12, 1))
    Points3D(seq, list(HALPE26.joint_names), n_views=nv, fps=30.0).save(d / "points.npz")
    Points3D(seq[:, :20], [f"marker_{i}" for i in range(20)], fps=30.0).save(d / "custom.npz")
    return d, rig


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")


def view(*args) -> int:
    return main(["view", *map(str, args)])


def test_snapshot_headless_defaults_to_first_populated_frame(files, capsys):
    d, rig = files
    out = d / "snap.png"
    assert view("--rig", d / "rig.toml", "--points", d / "points.npz", "--headless", "--snapshot", out,
                "--size", "480x270") == 0
    assert "frame 3" in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img.shape == (270, 480, 3)
    is_bg = (img[..., ::-1].astype(int) == np.round(scene.BACKGROUND * 255)).all(-1)
    assert 0.3 < is_bg.mean() < 0.99


def test_snapshot_from_camera_uses_its_resolution(files):
    d, rig = files
    out = d / "cam1.png"
    assert view("--rig", d / "rig.toml", "--points", d / "points.npz", "--snapshot", out, "--from-camera", "cam_1",
                "--frame", "5") == 0
    assert cv2.imread(str(out)).shape == (360, 640, 3)
    assert view("--rig", d / "rig.toml", "--points", d / "points.npz", "--snapshot", out, "--from-camera", "1",
                "--size", "320x180") == 0
    assert cv2.imread(str(out)).shape == (180, 320, 3)


def test_unknown_joint_names_draw_joints_without_bones(files, capsys):
    d, _ = files
    assert view("--rig", d / "rig.toml", "--points", d / "custom.npz", "--snapshot", d / "custom.png") == 0
    assert "without bones" in capsys.readouterr().err
    assert (d / "custom.png").is_file()


def test_video_to_png_frames(files):
    d, _ = files
    assert view("--rig", d / "rig.toml", "--points", d / "points.npz", "--headless", "--video", d / "frames",
                "--size", "160x90") == 0
    assert len(list((d / "frames").glob("frame_*.png"))) == 12


@pytest.mark.parametrize("extra, message", [
    (["--points", "missing.npz", "--snapshot", "x.png"], "missing.npz: file not found"),
    (["--points", "POINTS", "--headless"], "--headless needs --snapshot"),
    (["--points", "POINTS", "--snapshot", "x.png", "--frame", "12"], "out of range"),
    (["--points", "POINTS", "--snapshot", "x.png", "--from-camera", "cam_9"], "cam_0, cam_1"),
    (["--points", "POINTS", "--snapshot", "x.gif2"], "unknown image type"),
    (["--points", "POINTS", "--video", "x.gif"], "unknown video type"),
    (["--points", "POINTS", "--snapshot", "x.png", "--skeleton", "coco17"], "17 joints"),
    (["--points", "POINTS", "--snapshot", "x.png", "--skeleton", "nope"], "unknown skeleton"),
    (["--live", "tcp://127.0.0.1:5556", "--headless"], "window only"),
])
def test_bad_input_is_one_line_and_status_2(files, capsys, extra, message):
    d, _ = files
    extra = [str(d / "points.npz") if a == "POINTS" else a for a in extra]
    assert view("--rig", d / "rig.toml", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_rig_file(files, capsys):
    d, _ = files
    assert view("--rig", d / "nope.toml", "--points", d / "points.npz", "--snapshot", d / "x.png") == 2
    assert "rig file not found" in capsys.readouterr().err


@pytest.mark.parametrize("source", [["--points", "POINTS"], ["--live", "tcp://127.0.0.1:5556"]])
def test_window_modes_refuse_without_display_and_say_what_to_do(files, capsys, no_display, source):
    d, _ = files
    source = [str(d / "points.npz") if a == "POINTS" else a for a in source]
    assert view("--rig", d / "rig.toml", *source) == 2
    assert "--headless --snapshot" in capsys.readouterr().err


# ------------------------------------------------------------------ the window loop, offscreen
def test_window_loop_draws_the_newest_update():
    rig = ring_rig(3)
    base = stick_figure()

    def updates():
        for i in range(200):
            yield base + [0.01 * i, 0.0, 0.0], np.full(26, 3)
            time.sleep(0.002)

    win = SceneWindow(rig, None, (320, 240), visible=False)
    seen = []
    win.run(poll_latest(updates()), rate_hz=100.0, max_seconds=1.5,
            on_tick=lambda w: seen.append(np.asarray(w.scene.joints.vertices)[:1].copy() if w.scene else None))
    assert win.skeleton is HALPE26  # picked from the joint count
    assert 0 < win.updates < 200  # latest only: the window skipped updates instead of queueing them
    assert win.frames_drawn >= win.updates
    last = [s for s in seen if s is not None][-1]
    # the final drawn skeleton is the source's last one (x offset 1.99 m)
    sphere = scene.unit_sphere(scene.SceneStyle().sphere_subdivisions)[0]
    np.testing.assert_allclose(last[0], base[0] + [1.99, 0, 0] + scene.SceneStyle().joint_radius * sphere[0],
                               atol=1e-9)


# ------------------------------------------------------------------ live over ZeroMQ
def test_live_view_subscribes_latest_only_and_never_slows_the_publisher():
    protocol = pytest.importorskip("rigcap.wire")
    from viewer.live import view_live

    rig = ring_rig(4)
    pub = protocol.Publisher("tcp://127.0.0.1:*", bind=True)
    endpoint = pub.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    base = stick_figure().astype(np.float32)
    stop = threading.Event()
    sent = []

    def publish():
        i = 0
        while not stop.is_set():
            pts = base + np.float32(0.001 * (i % 1000))
            pub.publish_kp3d(i, pts, cameras=["cam_0"], frames={"cam_0": i}, skeleton_name="halpe26",
                             joints_sha1_hex="0" * 8, n_views=np.full(26, 4, np.int16))
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)
        sent.append(i)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        win, source = view_live(rig, endpoint, size=(320, 240), rate_hz=60.0, visible=False, max_seconds=1.5)
    finally:
        stop.set()
        t.join(5)
        pub.close()
    assert win.skeleton is HALPE26  # from the messages' header
    assert win.updates > 5 and source.malformed == 0
    # the publisher ran far ahead of the 60 Hz window: most skeletons were skipped, none queued up
    assert sent[0] > 20 * win.updates
    assert source.skipped > 10 * win.updates


def test_window_shows_the_rig_first_and_adopts_the_skeleton_of_the_stream():
    rig = ring_rig(3)
    stream = iter([None, None, (stick_figure()[:17], None), (stick_figure(), np.full(26, 3))])
    win = SceneWindow(rig, None, (320, 240), visible=False)
    images, skeletons = [], []

    def tick(w):
        images.append(w.capture())
        skeletons.append(w.skeleton)

    win.run(lambda: next(stream, None), rate_hz=200.0, max_seconds=0.1, on_tick=tick)
    bg = np.round(scene.BACKGROUND * 255).astype(int)
    assert not (images[0].astype(int) == bg).all(axis=-1).all()  # rig drawn before any skeleton
    assert skeletons[:4] == [None, None, COCO17, HALPE26]
    assert np.abs(images[3].astype(int) - images[1]).sum() > 0


def test_replay_plays_at_the_recorded_rate(files):
    from viewer.replay import frame_at, replay_window

    d, rig = files
    p3d = Points3D.load(d / "points.npz")
    assert [frame_at(p3d, s, 10.0) for s in (0.0, 0.09, 0.1, 1.25)] == [0, 0, 1, 0]
    assert frame_at(p3d, 5.0, 10.0, loop=False) == 11
    win = replay_window(rig, p3d, fps=20.0, size=(160, 120), visible=False, max_seconds=1.0)
    assert win.skeleton is HALPE26
    assert 3 <= win.updates <= 22  # 20 frames a second for one second, never faster


def test_live_view_shows_the_chosen_angles_and_the_rep_count_beside_the_skeleton():
    protocol = pytest.importorskip("rigcap.wire")
    from rigcap.analysis.angles import ANGLE_NAMES
    from viewer.live import AnglesSource, angles_text, view_live

    values = np.full(len(ANGLE_NAMES), np.nan)
    values[ANGLE_NAMES.index("knee_flexion_left")] = 93.4
    msg = protocol.decode(protocol.encode_angles(1, 5, ANGLE_NAMES, values, exercise="squat", reps=[3]))
    assert angles_text(msg, ("knee_flexion_left", "hip_flexion_left")) == \
        "knee flexion left: 93 deg\nhip flexion left: -\nsquat reps: 3"

    rig = ring_rig(3)
    pub = protocol.Publisher("tcp://127.0.0.1:*", bind=True)
    endpoint = pub.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    base = stick_figure().astype(np.float32)
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            pub.publish_kp3d(i, base, cameras=["cam_0"], frames={"cam_0": i}, skeleton_name="halpe26",
                             joints_sha1_hex="0" * 8)
            pub.publish_angles(i, ANGLE_NAMES, values, exercise="squat", reps=[3])
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    texts = []
    orig = SceneWindow.set_text

    def spy(self, text, *a, **k):
        texts.append(text)
        return orig(self, text, *a, **k)

    try:
        SceneWindow.set_text = spy
        win, _ = view_live(rig, endpoint, size=(320, 240), rate_hz=60.0, visible=False, max_seconds=1.5,
                           angles=("knee_flexion_left",))
    finally:
        SceneWindow.set_text = orig
        stop.set()
        t.join(5)
        pub.close()
    assert "knee flexion left: 93 deg\nsquat reps: 3" in texts
    assert win._text == "knee flexion left: 93 deg\nsquat reps: 3"
    assert isinstance(AnglesSource, type)


def test_text_mesh_is_drawn_beside_the_skeleton():
    rig = ring_rig(3)
    stream = iter([(stick_figure(), None)] + [None] * 5)
    win = SceneWindow(rig, None, (640, 480), visible=False)
    images = []

    def tick(w):
        if w.updates and w._text_mesh is None and not images:
            images.append(w.capture())
            w.set_text("knee 93 deg\nsquat reps: 3")
        elif w._text_mesh is not None and len(images) == 1:
            images.append(w.capture())

    win.run(lambda: next(stream, None), rate_hz=200.0, max_seconds=0.3, on_tick=tick)
    assert len(images) == 2
    before, after = images[0].astype(int), images[1].astype(int)
    yellow = (after[..., 0] > 180) & (after[..., 1] > 150) & (after[..., 2] < 120)
    assert yellow.sum() > 100 and yellow.sum() > 10 * ((before[..., 0] > 180) & (before[..., 1] > 150) & (before[..., 2] < 120)).sum()
