"""Session recording: clean round trip, and SIGKILL leaves everything up to the last second readable."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest

from capture.recording import CameraRecorder, finalize_session, open_session, write_session_start
from capture.sources import Frame, read_timestamps_csv
from triangulate.formats import Keypoints2D
from triangulate.skeletons import HALPE26


def image(i, w=320, h=240):
    img = np.full((h, w, 3), 40, np.uint8)
    cv2.putText(img, str(i), (20, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
    return img


def count_video_frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_clean_session_round_trip(tmp_path):
    """Everybody the detector found is recorded, in its order: the session reads as the multi-person
    2D form; ``keypoints`` per camera is still the most confident person."""
    write_session_start(tmp_path, [{"name": "a"}, {"name": "b"}], {"detector": {"name": "x"}}, None, epoch_ns=0)
    rng = np.random.default_rng(0)
    written = {}
    for cam, frames in (("a", range(10)), ("b", [0, 1, 2, 4, 5, 9])):  # b dropped some frames
        rec = CameraRecorder(tmp_path, cam, HALPE26, 30.0, video=True)
        everyone = []
        for f in frames:
            people = rng.uniform(0, 300, (2 if f != 5 else 3, 26, 3)).astype(np.float32)
            people[:, :, 2] = 0.3
            people[1, :, 2] = 0.99  # the more confident person, second in detection order
            rec.write(Frame(f, 1000 + f * 33_333_333, 0, image(f)), people)
            everyone.append(people)
        rec.write(Frame(frames[-1] + 1, 1000 + (frames[-1] + 1) * 33_333_333, 0, image(0)),
                  np.zeros((0, 26, 3), np.float32))
        rec.close()
        written[cam] = (list(frames) + [frames[-1] + 1], everyone)
    session = finalize_session(tmp_path)
    assert session.clean and session.camera_names == ["a", "b"]
    for cam, (frames, everyone) in written.items():
        rec = session.cameras[cam]
        assert rec.frames.tolist() == frames and rec.clean
        assert rec.people.shape == (len(frames), 3, 26, 3) and rec.max_persons == 3
        for i, people in enumerate(everyone):
            np.testing.assert_array_equal(rec.people[i, : len(people)], people)  # detection order
            assert np.isnan(rec.people[i, len(people):]).all()
        np.testing.assert_array_equal(rec.keypoints[:-1], np.array([p[1] for p in everyone]))  # most confident
        assert rec.segments[0].n_persons.tolist() == [len(p) for p in everyone] + [0]
        assert np.isnan(rec.people[-1]).all() and np.isnan(rec.keypoints[-1]).all()  # nobody found
        assert count_video_frames(rec.videos()[0]) == len(frames)
        assert read_timestamps_csv(rec.segments[0].stem.with_suffix(".timestamps.csv")) == dict(
            zip(frames, rec.times_ns.tolist()))
    assert any(line.startswith("a: 11 frames") and "up to 3 people per frame" in line for line in session.summary_lines())
    kp2d = Keypoints2D.load(tmp_path / "keypoints2d.npz")
    assert kp2d.multi_person and kp2d.keypoints.shape == (2, 11, 3, 26, 3) and kp2d.camera_names == ["a", "b"]
    assert np.isnan(kp2d.keypoints[1, 3]).all() and kp2d.timestamps_ns[1, 3] == -1  # b's dropped frame 3
    np.testing.assert_array_equal(kp2d.keypoints[1, 4, :2], written["b"][1][3])  # b's frame 4: both people
    np.testing.assert_array_equal(kp2d.keypoints[0, 5], written["a"][1][5])  # a's frame 5: all three
    assert list(kp2d.joint_names) == list(HALPE26.joint_names)


def test_one_person_sessions_and_older_segments_read_as_the_single_person_form(tmp_path):
    import json

    write_session_start(tmp_path, [{"name": "a"}, {"name": "b"}])
    rng = np.random.default_rng(1)
    kps = {}
    for cam in ("a", "b"):
        rec = CameraRecorder(tmp_path, cam, HALPE26, 30.0, video=False)
        kps[cam] = rng.uniform(0, 300, (6, 1, 26, 3)).astype(np.float32)
        for f in range(6):
            rec.write(Frame(f, 1000 + f, 0, None), kps[cam][f] if f != 2 else np.zeros((0, 26, 3), np.float32))
        rec.close()
    # "b" as rigcap wrote segments before it kept everybody: no record_layout, one record per frame
    meta_path = tmp_path / "b" / "segment-000.json"
    meta = json.loads(meta_path.read_text())
    del meta["record_layout"]
    meta_path.write_text(json.dumps(meta))
    end_path = tmp_path / "b" / "segment-000.end.json"
    end = json.loads(end_path.read_text())
    del end["records"]
    end_path.write_text(json.dumps(end))
    session = finalize_session(tmp_path)
    assert session.clean, session.damage
    kp2d = session.keypoints2d()
    assert not kp2d.multi_person and kp2d.keypoints.shape == (2, 6, 26, 3)
    for ci, cam in enumerate(("a", "b")):
        np.testing.assert_array_equal(kp2d.keypoints[ci, [0, 1, 3, 4, 5]], kps[cam][[0, 1, 3, 4, 5], 0])
        assert np.isnan(kp2d.keypoints[ci, 2]).all()


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, cv2
    from capture.recording import CameraRecorder
    from capture.sources import Frame
    from triangulate.skeletons import HALPE26
    rec = CameraRecorder(sys.argv[1], "cam_k", HALPE26, 30.0, video=True)
    rng = np.random.default_rng(0)
    i = 0
    while True:
        img = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)  # incompressible: large JPEGs
        rec.write(Frame(i, time.time_ns(), time.monotonic_ns(), img), np.full((1, 26, 3), i, np.float32))
        print(i, flush=True)
        i += 1
        time.sleep(1 / 30)
""")


def test_sigkill_leaves_everything_up_to_the_last_second_readable(tmp_path, repo_root):
    write_session_start(tmp_path, [{"name": "cam_k"}])
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    last = -1
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        line = proc.stdout.readline()
        last = int(line)
        if last >= 75:  # 2.5 s of frames
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    session = open_session(tmp_path)
    assert not session.clean
    cam = session.cameras["cam_k"]
    assert not cam.clean
    n = cam.n_frames
    assert last + 1 - 31 <= n <= last + 1  # at most a second (30 frames) lost
    assert cam.frames.tolist() == list(range(n))
    np.testing.assert_array_equal(cam.keypoints[:, 0, 0], np.arange(n, dtype=np.float32))
    assert count_video_frames(cam.videos()[0]) >= n - 5  # FFmpeg flushes the AVI every few frames
    assert any("CUT" in line for line in session.summary_lines())
    assert (tmp_path / "keypoints2d.npz").is_file()
