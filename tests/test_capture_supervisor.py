"""One process per camera: SIGKILL one mid-recording, the others go on; restart; clean stop."""

import os
import signal
import time

import cv2
import numpy as np
import pytest

from capture.config import CameraConfig
from rigcap.wire import Subscriber, free_tcp_endpoint
from capture.recording import open_session
from capture.supervisor import Supervisor

FPS = 15.0


@pytest.fixture(scope="module")
def test_video(tmp_path_factory):
    """A 4 s MJPG clip: a moving disc and the frame number."""
    path = tmp_path_factory.mktemp("video") / "pattern.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (320, 240))
    for i in range(int(4 * FPS)):
        img = np.full((240, 320, 3), 30, np.uint8)
        cv2.circle(img, (20 + 4 * i, 120), 18, (0, 200, 255), -1)
        cv2.putText(img, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        w.write(img)
    w.release()
    return path


def cameras(video, n=4):
    return [CameraConfig(f"cam_{i}", "video", path=str(video), loop=True) for i in range(n)]


def collect(sub, counts, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        msg = sub.recv(50)
        if msg is not None:
            counts.setdefault(msg.camera, []).append((msg.frame_index, msg.seq, msg.capture_time_ns))


def wait_running(sup, sub, counts, frames=15, timeout=40):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        collect(sub, counts, 0.2)
        if all(len(counts.get(c.name, [])) >= frames for c in sup.cameras):
            return
    raise AssertionError(f"cameras did not start: {[(s.name, s.state, s.message) for s in sup.status()]}")


def test_sigkill_one_camera_others_keep_recording_and_session_reads(test_video, tmp_path):
    pub, subep = free_tcp_endpoint(), free_tcp_endpoint()
    record = tmp_path / "take"
    sup = Supervisor(cameras(test_video), pub, subep, record_dir=record, detector="none", max_restarts=0,
                     start_delay_s=1.0)
    sub = Subscriber(subep, topics="kp2d.")
    counts = {}
    try:
        sup.start()
        wait_running(sup, sub, counts)
        victim = sup.pid("cam_2")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time_ns()
        before = {c: len(v) for c, v in counts.items()}
        collect(sub, counts, 2.0)
        status = {s.name: s for s in sup.status()}
    finally:
        sub.close()
        final = {s.name: s for s in sup.stop()}
    # The supervisor saw it die and left it out (max_restarts=0); the others kept going.
    assert status["cam_2"].state == "failed" and status["cam_2"].exitcode == -signal.SIGKILL
    assert any(e["event"] == "died" and e["camera"] == "cam_2" for e in sup.events)
    for cam in ("cam_0", "cam_1", "cam_3"):
        assert status[cam].state == "running"
        assert len(counts[cam]) - before[cam] >= 1.5 * FPS * 0.7  # still publishing after the kill
        assert final[cam].state == "stopped" and final[cam].exitcode == 0
    assert all(t <= killed_at for _, _, t in counts["cam_2"])
    # No message lost at the subscriber while it listened.
    for cam, msgs in counts.items():
        seqs = [s for _, s, _ in msgs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), cam

    session = open_session(record)
    assert not session.clean  # cam_2 was cut
    for cam in ("cam_0", "cam_1", "cam_3"):
        rec = session.cameras[cam]
        assert rec.clean and rec.n_frames >= len(counts[cam])
        assert rec.frames.tolist() == sorted(set(rec.frames.tolist()))
        seg = rec.segments[0]
        assert seg.video is not None
        cap = cv2.VideoCapture(str(seg.video))
        n_video = 0
        while cap.read()[0]:
            n_video += 1
        assert n_video == rec.n_frames  # complete: every frame's image is in the video
    dead = session.cameras["cam_2"]
    assert not dead.clean
    published = len(counts["cam_2"])
    assert dead.n_frames >= published - FPS - 1  # at most the last second lost
    assert dead.last_time_ns <= killed_at
    cap = cv2.VideoCapture(str(dead.videos()[0]))
    n_video = 0
    while cap.read()[0]:
        n_video += 1
    assert n_video >= published - FPS - 1  # the video too: up to its last second
    lines = session.summary_lines()
    assert any(line.startswith("cam_2") and "CUT" in line for line in lines)
    assert sum(line.endswith(": clean") for line in lines) == 3
    kp = session.keypoints2d()
    assert kp.camera_names == ["cam_0", "cam_1", "cam_2", "cam_3"]


def test_dead_camera_is_restarted_with_a_new_segment(test_video, tmp_path):
    pub, subep = free_tcp_endpoint(), free_tcp_endpoint()
    record = tmp_path / "take"
    sup = Supervisor(cameras(test_video, 2), pub, subep, record_dir=record, detector="none", max_restarts=2,
                     restart_delay_s=0.2, start_delay_s=1.0)
    sub = Subscriber(subep, topics="kp2d.")
    counts = {}
    try:
        sup.start()
        wait_running(sup, sub, counts)
        first_pid = sup.pid("cam_1")
        os.kill(first_pid, signal.SIGKILL)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            collect(sub, counts, 0.2)
            st = {s.name: s for s in sup.status()}["cam_1"]
            if st.restarts == 1 and st.stats.get("frames", 0) >= 10:
                break
        assert st.restarts == 1 and st.pid not in (None, first_pid)
    finally:
        sub.close()
        sup.stop()
    assert [e["event"] for e in sup.events if e["camera"] == "cam_1"][:2] == ["died", "restart"]
    session = open_session(record)
    rec = session.cameras["cam_1"]
    assert len(rec.segments) == 2 and not rec.segments[0].clean and rec.segments[1].clean
    frames = rec.frames
    assert (np.diff(frames) > 0).all()  # the restarted process continues the rig's frame numbering
    assert session.cameras["cam_0"].clean and session.cameras["cam_0"].restarts == 0
