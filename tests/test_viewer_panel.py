"""What the window and the snapshots say: legend, title line, timeline, live stats, rig/points mismatch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import save_rig
from rigcap.cli import main
from triangulate.formats import Points3D
from triangulate.skeletons import HALPE26
from viewer import legend, scene
from viewer.gui import stats_lines
from viewer.playback import Playback
from viewer.rig_check import rig_mismatch_warnings
from viewer.samples import ring_rig, stick_figure, swaying_figure


def test_legend_lists_every_scene_colour_once():
    entries = legend.legend_entries(4)
    cols = np.array([c for _, c in entries])
    assert len({tuple(np.round(c, 3)) for c in cols}) == len(entries)
    want = [scene.n_views_colors(np.array([2]), 4)[0], scene.n_views_colors(np.array([4]), 4)[0],
            scene.JOINT_UNKNOWN_VIEWS, scene.JOINT_NO_VIEWS, scene.BONE_LEFT, scene.BONE_RIGHT, scene.BONE_CENTER]
    for w in want:
        assert np.abs(cols - w).max(axis=1).min() < 1e-9
    assert entries[0][0] == "joint: 2 views" and "all cameras" in entries[2][0]


def test_annotate_draws_title_and_legend_swatches_in_their_colours():
    img = np.full((400, 640, 3), 30, np.uint8)
    out = legend.annotate(img, "walk.npz  frame 4/10  t 0.133 s", 4)
    assert (img == 30).all()  # the input is untouched
    top = np.abs(out[:40].astype(int) - 30).sum(-1) > 60
    assert top.sum() > 200  # the title's pixels
    entries = legend.legend_entries(4)
    for text, col in entries:  # every swatch colour appears as a solid block
        hit = (np.abs(out.astype(int) - np.round(255 * col)).max(-1) <= 1)
        assert hit[200:].sum() >= 25, text
    assert legend.title_line("a.npz", 4, 10, 0.1333) == "a.npz  frame 4/10  t 0.133 s"


def test_playback_steps_seeks_loops_and_caps_a_stalled_tick():
    pb = Playback(10, fps=10.0)
    assert pb.advance(0.25) == 1  # a stalled tick counts as 0.1 s at most
    pb.speed = 2.0
    assert pb.advance(0.1) == 3
    assert pb.step(5) == 8 and not pb.playing
    assert pb.advance(1.0) == 8  # paused
    assert pb.step(3) == 1  # wraps when looping
    assert pb.step(-2) == 9
    assert pb.seek(42) == 9 and pb.seek(-3) == 0
    pb.toggle()
    for _ in range(12):
        pb.advance(0.1)
    assert pb.frame == (0 + 24) % 10
    once = Playback(5, fps=10.0, loop=False)
    for _ in range(10):
        once.advance(0.1)
    assert once.frame == 4 and not once.playing


def test_stats_lines_per_camera_then_stream():
    lines = stats_lines({"cam_b": {"fps": 29.7, "dropped": 3, "grab_to_publish_ms_p50": 41.2},
                         "cam_a": {"fps": 30.0, "dropped": 0, "grab_to_publish_ms_p50": 38.9}}, 29.5, 120.4, 2)
    assert lines[0].startswith("cam_a:") and "30.0 fps" in lines[0] and "drop 0" in lines[0] and "39 ms" in lines[0]
    assert "drop 3" in lines[1]
    assert lines[2:] == ["instants/s: 29.5", "capture->view latency: 120 ms", "people: 2"]
    assert stats_lines({}, None, None, None)[0] == "cameras: no stats received"


def test_rig_mismatch_warns_for_points_nobody_sees_and_not_for_a_good_rig():
    rig = ring_rig(4)
    seq = swaying_figure(30)
    assert rig_mismatch_warnings(rig, seq) == []
    below = seq + [0.0, 0.0, -30.0]  # another world frame: every point outside every view
    lines = rig_mismatch_warnings(rig, below)
    assert lines and "no camera of the rig sees" in lines[0] and len(lines) == 5
    assert all("100% of the 3D points project outside" in l for l in lines[1:])
    far = seq + [40.0, 0.0, 0.0]  # far from all frusta: a camera may still see it, tiny
    lines = rig_mismatch_warnings(rig, far)
    assert len(lines) >= 3 and all("of the 3D points project outside" in l for l in lines)


@pytest.fixture
def files(tmp_path):
    rig = ring_rig(4, size=(640, 360), focal=500.0)
    save_rig(rig, tmp_path / "rig.toml")
    seq = swaying_figure(12)
    nv = np.tile(2 + np.arange(26) % 3, (12, 1))
    Points3D(seq, list(HALPE26.joint_names), n_views=nv, fps=30.0).save(tmp_path / "walk.npz")
    Points3D(seq * 1000.0, list(HALPE26.joint_names), n_views=nv, fps=30.0).save(tmp_path / "walk_mm.npz")
    return tmp_path


def test_view_warns_when_the_rig_does_not_match_the_points(files, capsys):
    assert main(["view", "--rig", str(files / "rig.toml"), "--points", str(files / "walk_mm.npz"), "--headless",
                 "--snapshot", str(files / "mm.png")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "no camera of the rig sees any of the 3D points" in err
    assert main(["view", "--rig", str(files / "rig.toml"), "--points", str(files / "walk.npz"), "--headless",
                 "--snapshot", str(files / "ok.png"), "--frame", "4"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_snapshot_has_title_and_legend(files):
    out = files / "snap.png"
    assert main(["view", "--rig", str(files / "rig.toml"), "--points", str(files / "walk.npz"), "--headless",
                 "--snapshot", str(out), "--frame", "4", "--size", "800x450"]) == 0
    img = cv2.imread(str(out))[..., ::-1]
    bg = np.round(scene.BACKGROUND * 255).astype(int)
    top_left = img[:30, :300].astype(int)
    assert (np.abs(top_left - bg).sum(-1) > 200).sum() > 100  # the title's light text on the background
    for _, col in legend.legend_entries(4):
        assert ((np.abs(img[225:, :60].astype(int) - np.round(255 * col)).max(-1) <= 1).sum() >= 20)


def test_live_stats_read_camera_stats_and_kp3d_people_over_zeromq():
    import time

    import zmq

    from rigcap import wire
    from viewer.live import Kp3dSource, LiveStats, message_to_people

    pub = wire.Publisher("tcp://127.0.0.1:*", bind=True)
    endpoint = pub.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    stats, source = LiveStats(endpoint), Kp3dSource(endpoint)
    two = np.stack([stick_figure(), stick_figure((1.0, 0.0))]).astype(np.float32)
    two[1] = np.nan  # the second person not triangulated this instant
    try:
        deadline = time.monotonic() + 5.0
        got = None
        while time.monotonic() < deadline and (got is None or not stats.cameras):
            pub.publish("stats.cam_1", {"camera": "cam_1", "fps": 29.5, "dropped": 2, "grab_to_publish_ms_p50": 33.0})
            pub.publish_kp3d(time.time_ns() - 50_000_000, two, cameras=["cam_1"], frames={"cam_1": 1},
                             skeleton_name="halpe26", joints_sha1_hex="0" * 8, person_ids=np.array([4, 11], np.int32))
            time.sleep(0.02)
            if source() is not None:
                got = message_to_people(source.last_message)
                people = got[0]
                stats.saw_instant(source.last_message.header, int(np.isfinite(people[0]).all(-1).any(-1).sum()))
            lines = stats.lines()
    finally:
        stats.close()
        source.close()
        pub.close()
    (points, n_views, ids), skel = got
    assert points.shape == (2, 26, 3) and list(ids) == [4, 11] and skel == "halpe26"
    assert lines[0].startswith("cam_1:") and "29.5 fps" in lines[0] and "drop 2" in lines[0] and "33 ms" in lines[0]
    assert lines[-1] == "people: 1"
    assert 40 <= stats.latency_ms < 2000  # published 50 ms after its capture time
