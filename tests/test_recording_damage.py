"""Damaged sessions (issue 17, cases 11 and 12): truncated or zeroed records, bogus frame indices and bad
descriptions are named in one line each, and never make the rest of the session unreadable."""

import json

import numpy as np
import pytest

from capture.recording import CameraRecorder, open_session, write_session_start
from capture.sources import Frame
from rigcap.errors import InputFileError
from triangulate.skeletons import HALPE26

N = 20


def record(folder, cams=("a", "b"), n=N):
    write_session_start(folder, [{"name": c} for c in cams], {}, None, epoch_ns=0)
    for cam in cams:
        rec = CameraRecorder(folder, cam, HALPE26, 30.0, video=False)
        for f in range(n):
            rec.write(Frame(f, 1000 + f * 33_333_333, 0, None), np.full((1, 26, 3), 0.5, np.float32))
        rec.close()
    return folder


def kp_bin(folder, cam="a"):
    return folder / cam / "segment-000.kp2d.bin"


def test_truncated_kp2d_bin_is_not_called_clean(tmp_path):
    record(tmp_path)
    path = kp_bin(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # half the records gone, end.json says 20
    session = open_session(tmp_path, write_keypoints=False)
    assert not session.cameras["a"].clean and session.cameras["b"].clean
    assert session.cameras["a"].n_frames == N // 2
    assert any("a" in line and "end.json says 20" in line for line in session.summary_lines())


def test_zeroed_kp2d_bin_is_detected_by_the_record_checksum(tmp_path):
    record(tmp_path)
    path = kp_bin(tmp_path)
    size = path.stat().st_size
    raw = bytearray(path.read_bytes())
    raw[size // 4: size // 2] = bytes(size // 2 - size // 4)  # zeroed in the middle: same size, same count
    path.write_bytes(bytes(raw))
    session = open_session(tmp_path, write_keypoints=False)
    cam = session.cameras["a"]
    assert not cam.clean and 0 < cam.n_frames < N
    assert any("checksum" in line for line in session.summary_lines())


def test_frame_2_40_in_one_record_is_named_not_allocated(tmp_path):
    record(tmp_path)
    path = kp_bin(tmp_path)
    dtype = np.dtype([("frame", "<i8"), ("rest", "V%d" % (path.stat().st_size // N - 8))])
    recs = np.fromfile(path, dtype)
    recs["frame"][5] = 2**40  # the checksum catches it; without one the frame order would
    recs.tofile(path)
    csv = tmp_path / "a" / "segment-000.timestamps.csv"
    csv.write_text(csv.read_text().replace("\n5,", f"\n{2**40},"))  # the same frame in the timestamps
    session = open_session(tmp_path, write_keypoints=True)  # built the 1.22 PiB array before
    assert session.cameras["a"].n_frames == N - 1
    assert (tmp_path / "keypoints2d.npz").is_file()


def test_segment_without_joint_names_leaves_the_rest_readable(tmp_path):
    record(tmp_path)
    meta_path = tmp_path / "a" / "segment-000.json"
    meta = json.loads(meta_path.read_text())
    del meta["joint_names"]
    meta_path.write_text(json.dumps(meta))
    session = open_session(tmp_path, write_keypoints=False)
    assert session.cameras["b"].n_frames == N and session.cameras["a"].n_frames == 0
    assert any(str(meta_path) in d and "joint_names" in d for d in session.damage)
    assert not session.clean


def test_empty_segment_description_leaves_the_rest_readable(tmp_path):
    record(tmp_path)
    (tmp_path / "a" / "segment-000.json").write_bytes(b"")
    session = open_session(tmp_path, write_keypoints=True)
    assert session.cameras["b"].n_frames == N and any("unreadable segment description" in d for d in session.damage)


@pytest.mark.parametrize("text, why", [
    ("cameras = [1, 2]\n", "cameras"),
    ('[session]\nfps = "fast"\n', "fps"),
    ("cameras = 3\n", "cameras"),
])
def test_bad_session_toml_is_one_line_naming_the_file(tmp_path, text, why):
    record(tmp_path)
    (tmp_path / "session.toml").write_text(text)
    with pytest.raises(InputFileError, match=why) as err:
        open_session(tmp_path)
    assert "session.toml" in str(err.value) and "\n" not in str(err.value)
