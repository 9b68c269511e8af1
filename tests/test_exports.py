"""TRC, CSV and C3D exports read back to the same joints, units and frame rate."""

import numpy as np
import pytest

from triangulate.exports import export_all, frame_rate, read_trc, write_c3d, write_csv, write_trc, z_up_to_y_up
from triangulate.formats import Points3D

NAMES = ["left_hip", "right_hip", "left_knee"]


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.0, 2.0, (12, 3, 3))
    pts[4, 1] = np.nan  # one missing marker
    pts[7] = np.nan  # one empty frame
    err = rng.uniform(0.5, 3.0, (12, 3))
    views = np.full((12, 3), 4)
    err[np.isnan(pts[..., 0])] = np.nan
    views[np.isnan(pts[..., 0])] = 0
    return Points3D(pts, NAMES, err, views, None, 60.0)


@pytest.mark.parametrize("units, scale", [("m", 1.0), ("mm", 1000.0)])
def test_trc_header_and_data_read_back(tmp_path, points, units, scale):
    path = write_trc(points, tmp_path / "walk.trc", units=units, up="z")
    trc = read_trc(path)
    assert trc["path_line"].split("\t")[:3] == ["PathFileType", "4", "(X/Y/Z)"]
    h = trc["header"]
    assert float(h["DataRate"]) == 60.0 and float(h["CameraRate"]) == 60.0 and float(h["OrigDataRate"]) == 60.0
    assert h["Units"] == units and int(h["NumFrames"]) == 12 and int(h["NumMarkers"]) == 3
    assert h["OrigDataStartFrame"] == "1" and int(h["OrigNumFrames"]) == 12
    assert trc["names"] == NAMES
    assert trc["axes_line"].split("\t")[2:5] == ["X1", "Y1", "Z1"] and trc["axes_line"].endswith("Z3")
    assert trc["frames"].tolist() == list(range(1, 13))
    assert np.allclose(trc["times"], np.arange(12) / 60.0, atol=1e-6)
    got = trc["points"] / scale
    assert np.array_equal(np.isnan(got), np.isnan(points.points))
    assert np.nanmax(np.abs(got - points.points)) < 1e-5
    # Every data row has 2 + 3 * markers tab-separated cells, missing ones empty (OpenSim reads NaN).
    rows = path.read_text().splitlines()[6:]
    assert all(len(r.split("\t")) == 2 + 9 for r in rows)
    assert rows[7].split("\t")[2:] == [""] * 9


def test_trc_turns_z_up_into_opensim_y_up(tmp_path, points):
    trc = read_trc(write_trc(points, tmp_path / "a.trc"))  # default: metres, Y up
    assert trc["header"]["Units"] == "m"
    assert np.allclose(trc["points"], z_up_to_y_up(points.points), equal_nan=True, atol=1e-6)
    # Height (rig z) becomes OpenSim's y, and the turn is a rotation, not a mirror.
    assert np.allclose(trc["points"][0, :, 1], points.points[0, :, 2], atol=1e-6)
    m = z_up_to_y_up(np.eye(3))
    assert np.isclose(np.linalg.det(m), 1.0)


def test_csv_reads_back_with_pandas_like_parsing(tmp_path, points):
    path = write_csv(points, tmp_path / "a.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["frame", "time_s", "left_hip_x", "left_hip_y", "left_hip_z"]
    assert header[-1] == "left_knee_views" and len(lines) == 13
    table = np.array([[float(v) if v else np.nan for v in ln.split(",")] for ln in lines[1:]])
    assert np.allclose(table[:, 0], np.arange(12)) and np.allclose(table[:, 1], np.arange(12) / 60.0, atol=1e-6)
    xyz = table[:, 2:11].reshape(12, 3, 3)
    assert np.allclose(xyz, points.points, equal_nan=True, atol=1e-6)
    assert np.allclose(table[:, 11:14], points.reprojection_error, equal_nan=True, atol=1e-3)
    assert np.array_equal(table[:, 14:17], points.n_views)


def test_c3d_reads_back_through_ezc3d(tmp_path, points):
    ezc3d = pytest.importorskip("ezc3d")
    path = write_c3d(points, tmp_path / "a.c3d")
    c3d = ezc3d.c3d(str(path))
    params = c3d["parameters"]["POINT"]
    assert params["RATE"]["value"][0] == 60.0 and c3d["header"]["points"]["frame_rate"] == 60.0
    assert list(params["LABELS"]["value"]) == NAMES
    assert params["UNITS"]["value"][0] == "mm"
    data = c3d["data"]["points"]  # (4, markers, frames) mm
    assert data.shape == (4, 3, 12)
    xyz = np.transpose(data[:3], (2, 1, 0)) / 1000.0
    assert np.allclose(xyz, points.points, equal_nan=True, atol=1e-6)  # float32 in the file: micrometres
    res = c3d["data"]["meta_points"]["residuals"][0]  # (markers, frames)
    assert res[1, 4] < 0 and np.all(res[:, 7] < 0) and res[0, 0] >= 0


def test_exports_need_a_frame_rate_and_write_next_to_the_npz(tmp_path, points):
    out = export_all(points, tmp_path / "sub" / "p3d.npz")
    assert [p.name for p in out] == ["p3d.trc", "p3d.csv", "p3d.c3d"] and all(p.is_file() for p in out)
    no_rate = Points3D(points.points, NAMES)
    with pytest.raises(ValueError, match="frame rate"):
        write_trc(no_rate, tmp_path / "x.trc")
    stamped = Points3D(points.points, NAMES, timestamps_ns=np.arange(12) * 10_000_000)
    assert frame_rate(stamped) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="units"):
        write_trc(points, tmp_path / "x.trc", units="cm")
