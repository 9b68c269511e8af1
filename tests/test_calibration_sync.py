"""Grouping frames into instants: rigcap's per-camera timestamp CSVs and caliscope's file."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.sync import group_detections, read_timestamps
from calibration.detect import CameraDetections
from rigcap.errors import RigcapError


def _write(folder, name, frame_ids, times_ns):
    rows = "\n".join(f"{i},{t}" for i, t in zip(frame_ids, times_ns))
    (folder / f"{name}.csv").write_text("frame_index,time_ns\n" + rows + "\n")


def test_rigcap_csvs_match_frames_by_time_with_offsets_and_drops(tmp_path):
    period = 33_333_333
    base = 10**12
    _write(tmp_path, "cam_0", range(10), [base + k * period for k in range(10)])
    # cam_1 is 4 ms late and lost its frame 3 (so its frames 3.. are instants 4..)
    ids1 = list(range(9))
    t1 = [base + 4_000_000 + k * period for k in (0, 1, 2, 4, 5, 6, 7, 8, 9)]
    _write(tmp_path, "cam_1", ids1, t1)
    frames = read_timestamps(tmp_path, ["cam_0", "cam_1"])
    # reference = the camera with fewer frames (cam_1): 9 instants
    assert frames.shape == (2, 9)
    np.testing.assert_array_equal(frames[1], np.arange(9))
    np.testing.assert_array_equal(frames[0], [0, 1, 2, 4, 5, 6, 7, 8, 9])


def test_caliscope_ids_and_rows(tmp_path):
    csv = tmp_path / "timestamps.csv"
    csv.write_text("sync_index,cam_id,frame_index,frame_time\n"
                   "0,0,26,0.0\n0,1,30,0.001\n1,0,27,0.17\n2,0,28,0.33\n2,1,31,0.34\n")
    frames = read_timestamps(csv, ["cam_0", "cam_1"])
    np.testing.assert_array_equal(frames, [[0, 1, 2], [0, -1, 1]])
    with pytest.raises(RigcapError, match="cam_5"):
        read_timestamps(csv, ["cam_0", "cam_5"])


def test_grouping_rejects_frames_beyond_a_video(tmp_path):
    det = CameraDetections("cam_0", "cam_0.mp4", (640, 480), np.full((3, 4, 2), np.nan), np.zeros(3, np.int32))
    with pytest.raises(RigcapError, match="cam_0.mp4"):
        group_detections([det], np.array([[0, 1, 5]]))


def test_recording_session_layout(tmp_path):
    """rigcap capture --record writes <session>/<camera>/segment-000.{avi,timestamps.csv}."""
    import cv2

    from calibration.video_io import open_source

    period = 33_333_333
    for c, (first, offset) in enumerate([(5, 0), (17, 2_000_000)]):
        cam = tmp_path / f"cam_{c}"
        cam.mkdir()
        rows = "".join(f"{first + k},{10**12 + offset + k * period}\n" for k in range(6))
        (cam / "segment-000.timestamps.csv").write_text("frame_index,time_ns\n" + rows)
        writer = cv2.VideoWriter(str(cam / "segment-000.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
        for k in range(6):
            writer.write(np.full((48, 64, 3), 20 * k, np.uint8))
        writer.release()
    frames = read_timestamps(tmp_path, ["cam_0", "cam_1"])
    np.testing.assert_array_equal(frames, [np.arange(6), np.arange(6)])  # video frames, not capture numbers
    source = open_source(tmp_path / "cam_1")
    assert source.name == "cam_1" and source.path.name == "segment-000.avi" and source.n_frames == 6


@pytest.mark.shared_data
def test_caliscope_old_and_new_timestamp_files_group_alike(shared_data, tmp_path):
    """caliscope's current file (with frame_index) and the older one without it, written from the same real
    recording (the older format lists a camera's frames in file order): the same instants."""
    import csv as csv_mod

    real = shared_data / "caliscope-charuco-4cam" / "extrinsic" / "timestamps.csv"
    names = ["cam_0", "cam_1", "cam_2", "cam_3"]
    new = read_timestamps(real, names)
    rows = list(csv_mod.reader(real.open()))
    header, body = rows[0], rows[1:]
    assert header == ["sync_index", "cam_id", "frame_index", "frame_time"]
    old = tmp_path / "timestamps.csv"
    old.write_text("sync_index,cam_id,frame_time\n" + "".join(f"{r[0]},{r[1]},{r[3]}\n" for r in body))
    np.testing.assert_array_equal(read_timestamps(old, names), new)
    np.testing.assert_array_equal(read_timestamps(tmp_path, names), new)  # the folder holding it, too
    assert new.shape == (4, 111) and (new >= 0).all()
    np.testing.assert_array_equal(new[:, :3], [[0, 1, 2]] * 4)
