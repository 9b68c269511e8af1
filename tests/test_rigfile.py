"""The rig TOML is the interchange format: Pose2Sim files read unchanged, aniposelib reads ours."""

import numpy as np
import pytest

from calibration import Camera, Rig, load_rig, save_rig
from rigcap.errors import InputFileError

# A camera table exactly as Pose2Sim's calibration step writes Calib.toml
# (floats for size, four distortion coefficients, [metadata] with adjusted/error).
POSE2SIM_CALIB = """\
[cam_01]
name = "cam01"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.24, 0.0, 532.98], [ 0.0, 1681.07, 948.14], [ 0.0, 0.0, 1.0]]
distortions = [ -0.046183, 0.139983, 0.000608, 0.00069]
rotation = [ 1.6558, 0.9112, -0.4027]
translation = [ 0.7412, 0.5128, 3.0081]
fisheye = false

[cam_02]
name = "cam02"
size = [ 1088.0, 1920.0]
matrix = [ [ 1673.73, 0.0, 534.49], [ 0.0, 1673.79, 963.22], [ 0.0, 0.0, 1.0]]
distortions = [ -0.047847, 0.136786, 0.000972, 0.000291]
rotation = [ 1.2447, -1.2063, 1.0612]
translation = [ -0.2012, 0.6573, 2.7254]
fisheye = false

[metadata]
adjusted = false
error = 0.0
"""


def make_rig() -> Rig:
    cams = []
    for i in range(3):
        angle = 2 * np.pi * i / 3
        cams.append(
            Camera(
                f"cam_{i}", (1280, 720), [[900 + 10 * i, 0, 640], [0, 902 + 10 * i, 360], [0, 0, 1]],
                [-0.2 + 0.01 * i, 0.05, 0.001, -0.001, 0.0], [0.1 * i, angle, 0.05], [0.1, -0.2, 3.0 + i],
            )
        )
    return Rig(cams, {"note": "test rig", "rmse_px": np.float64(0.21)})


@pytest.fixture
def points():
    return np.random.default_rng(1).uniform(-0.5, 0.5, size=(50, 3))


def test_round_trip_is_exact(tmp_path, points):
    rig = make_rig()
    path = save_rig(rig, tmp_path / "rig.toml")
    back = load_rig(path)
    assert back.names == rig.names
    np.testing.assert_allclose(back.project(points), rig.project(points), atol=1e-12)
    assert back.metadata["rmse_px"] == pytest.approx(0.21)


def test_aniposelib_reads_our_rig_to_the_same_projection(tmp_path, points):
    aniposelib_cameras = pytest.importorskip("aniposelib.cameras")
    rig = make_rig()
    path = save_rig(rig, tmp_path / "rig.toml")
    group = aniposelib_cameras.CameraGroup.load(str(path))
    assert group.get_names() == rig.names
    theirs = group.project(points)
    np.testing.assert_allclose(theirs.reshape(rig.project(points).shape), rig.project(points), atol=1e-6)


def test_aniposelib_written_rig_reads_back(tmp_path, points):
    aniposelib_cameras = pytest.importorskip("aniposelib.cameras")
    rig = make_rig()
    cams = [
        aniposelib_cameras.Camera(name=c.name, size=c.size, matrix=c.matrix, dist=c.dist, rvec=c.rvec, tvec=c.tvec)
        for c in rig
    ]
    path = tmp_path / "anipose.toml"
    aniposelib_cameras.CameraGroup(cams).dump(str(path))
    back = load_rig(path)
    np.testing.assert_allclose(back.project(points), rig.project(points), atol=1e-6)


def test_pose2sim_calib_toml_reads_unchanged(tmp_path):
    path = tmp_path / "Calib.toml"
    path.write_text(POSE2SIM_CALIB)
    rig = load_rig(path)
    assert rig.names == ["cam01", "cam02"]
    cam = rig["cam01"]
    assert cam.size == (1088, 1920)
    assert cam.dist.tolist() == [-0.046183, 0.139983, 0.000608, 0.00069]
    assert rig.metadata == {"adjusted": False, "error": 0.0}
    # The camera looks at the origin region: a point near the world origin is in front of it.
    assert cam.world_to_camera(np.zeros(3))[2] > 0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('matrix = [ [ 1681.24, 0.0, 532.98], [ 0.0, 1681.07, 948.14], [ 0.0, 0.0, 1.0]]\n', ""),
         r"camera \[cam_01\]: missing key 'matrix'"),
        (lambda t: t.replace("[ 1.6558, 0.9112, -0.4027]", "[ 1.6558, 0.9112]"),
         r"camera \[cam_01\]: key 'rotation' must be a Rodrigues vector"),
        (lambda t: t.replace("[ -0.2012, 0.6573, 2.7254]", '"far away"'),
         r"camera \[cam_02\]: key 'translation' must hold numbers"),
        (lambda t: t.replace("[ -0.047847, 0.136786, 0.000972, 0.000291]", "[ 0.1, 0.2, 0.3]"),
         r"camera \[cam_02\]: key 'distortions' must be a list of 4 or 5 or 8 or 12 or 14 numbers"),
        (lambda t: t.replace("[cam_02]", "[cam_02"), r"not a valid TOML file"),
    ],
)
def test_malformed_rig_file_names_file_camera_and_key(tmp_path, edit, message):
    path = tmp_path / "broken.toml"
    path.write_text(edit(POSE2SIM_CALIB))
    with pytest.raises(InputFileError, match=message) as info:
        load_rig(path)
    assert str(info.value).startswith(str(path))


def test_missing_rig_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match="rig file not found"):
        load_rig(tmp_path / "nope.toml")


def test_file_without_cameras_is_rejected(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("[metadata]\nerror = 0.0\n")
    with pytest.raises(InputFileError, match="no camera tables"):
        load_rig(path)
