"""--record on a full disk (issue 17, case 7): the live stream goes on, "recording stopped: disk full" is said
once, the session stays readable up to that point, and low free space is warned about at the start."""

import errno
import time

import numpy as np
import pytest

from capture.config import CameraConfig
from capture.node import NodeOptions, run_camera
from capture.recording import CameraRecorder, open_session, write_session_start
from rigcap.wire import free_tcp_endpoint

FRAMES, FULL_AFTER = 40, 15


def test_disk_full_stops_the_recording_not_the_camera(tmp_path, monkeypatch):
    real_write = CameraRecorder.write

    def write_until_full(self, frame, people):
        if self.frames >= FULL_AFTER:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, frame, people)

    monkeypatch.setattr(CameraRecorder, "write", write_until_full)
    write_session_start(tmp_path, [{"name": "cam_0"}], {}, None, epoch_ns=0)
    events = []
    camera = CameraConfig("cam_0", "synthetic", camera_index=0, n_cameras=2, seed=2, fps=60.0, duration_s=2.0)
    options = NodeOptions(pub_endpoint=free_tcp_endpoint(), detector="synthetic", record_dir=str(tmp_path),
                          record_video=False, max_frames=FRAMES)
    code = run_camera(camera, options, report=events.append)
    assert code == 0
    published = [e["frames"] for e in events if e.get("event") == "stats"]
    assert published[-1] == FRAMES  # every frame detected and published, past the full disk
    stopped = [e for e in events if e.get("event") == "warning" and "recording stopped: disk full" in e["message"]]
    assert len(stopped) == 1
    session = open_session(tmp_path, write_keypoints=False)
    assert session.cameras["cam_0"].n_frames == FULL_AFTER


def test_low_free_space_is_warned_about_at_the_start(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 5 * 2**20, 5 * 2**20))  # 5 MiB free
    from capture.recording import low_space_warning

    msg = low_space_warning(tmp_path, bytes_per_s=100_000)  # 10 min need 60 MB
    assert msg is not None and "5 MiB free" in msg and "minutes" in msg
    assert low_space_warning(tmp_path, bytes_per_s=1_000) is None  # 10 min need 600 kB


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_fusion_node_on_a_full_disk_keeps_publishing_and_the_recording_reads(small_disk, capsys):
    from rigcap.studio.studio import SyntheticStudio
    from triangulate.formats import Points3D
    from triangulate.fusion import FusedInstant
    from triangulate.fusion_node import FusionNode
    from triangulate.fusion_options import FusionOptions
    from triangulate.skeletons import HALPE26

    studio = SyntheticStudio(n_cameras=2, fps=30.0, duration_s=1.0, seed=1)
    node = FusionNode(studio.rig, free_tcp_endpoint(), free_tcp_endpoint(), FusionOptions(), skeleton=HALPE26,
                      record_dir=small_disk / "take")
    pts = np.zeros((26, 3), np.float32)
    n = 2000  # 484 bytes a record: ~1 MB, four times the disk
    for i in range(n):
        node._publish(FusedInstant(time_ns=i, points=pts, raw_points=pts, error_px=np.zeros(26, np.float32),
                                   n_views=np.full(26, 2, np.int16), cameras=["cam_0", "cam_1"], frames={},
                                   spread_ns=0, last_arrival_ns=i))
    summary = node.stats.summary(1.0)
    node.close()
    assert node.pub.sent == n and summary["instants_out"] == n  # the live stream never stopped
    assert summary["recording_stopped"].startswith("recording stopped: disk full")
    assert capsys.readouterr().err.count("recording stopped: disk full") == 1
    points = Points3D.load(small_disk / "take")  # readable up to where the disk filled
    assert 100 < points.points.shape[0] < n
    assert points.timestamps_ns.tolist() == list(range(points.points.shape[0]))


def test_camera_on_a_real_full_disk_keeps_publishing_and_the_session_reads(small_disk):
    events = []
    take = small_disk / "take"
    write_session_start(take, [{"name": "cam_0"}], {}, None, epoch_ns=0)
    camera = CameraConfig("cam_0", "synthetic", camera_index=0, n_cameras=2, seed=2, fps=500.0, duration_s=2.0)
    options = NodeOptions(pub_endpoint=free_tcp_endpoint(), detector="synthetic", record_dir=str(take),
                          record_video=False, max_frames=900)  # ~330 kB of records and CSV on a 256 KiB disk
    assert run_camera(camera, options, report=events.append) == 0
    assert [e["frames"] for e in events if e.get("event") == "stats"][-1] == 900
    assert sum("recording stopped: disk full" in e.get("message", "") for e in events) == 1
    session = open_session(take, write_keypoints=False)
    assert 100 < session.cameras["cam_0"].n_frames < 900  # up to the last flush that fitted
    assert not session.skipped  # no 0-byte description
