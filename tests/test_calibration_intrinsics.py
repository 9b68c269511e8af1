"""Held lens parameters (``intrinsics=`` / ``rigcap calibrate --intrinsics RIG``) and the coverage-aware lens model."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.pipeline import calibrate_from_detections
from calibration.world import compare_rigs
from capture.synthetic.board_motion import board_trajectory
from capture.synthetic.board_video import STUDIO_BOARD, true_board_corners_2d
from capture.synthetic.studio_rig import make_studio_rig
from rigcap.cli import main
from rigcap.errors import RigcapError


@pytest.fixture(scope="module")
def studio():
    rig = make_studio_rig(4, seed=3)
    rvecs, tvecs = board_trajectory(40, seed=4)
    corners = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
    corners = corners + np.random.default_rng(4).normal(0, 0.2, corners.shape)
    return rig, corners


def test_held_true_intrinsics_reach_the_oracle(studio):
    """Holding the true lenses (given as a rig in another camera order, matched by name) leaves only
    the extrinsics to find: errors drop to those of bundle adjustment started from the true rig with
    its intrinsics held, and well below a calibration that has to find the lenses too."""
    rig, corners = studio
    sizes, names = [c.size for c in rig], rig.names
    shuffled = rig.subset(names[::-1])
    held = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names, intrinsics=shuffled, refine_intrinsics=False)
    oracle = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names, initial_rig=rig, refine_intrinsics=False)
    free = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names)
    c_held, c_oracle, c_free = (compare_rigs(r.rig, rig) for r in (held, oracle, free))
    for c, cam in enumerate(held.rig):
        np.testing.assert_allclose(cam.matrix, rig[names[c]].matrix)  # held, in the right camera
        np.testing.assert_allclose(cam.dist[:5], rig[names[c]].dist[:5])
    assert c_held.center_mm.max() < 1.1 * c_oracle.center_mm.max() + 0.1, (c_held.center_mm, c_oracle.center_mm)
    assert c_held.rotation_deg.max() < 1.1 * c_oracle.rotation_deg.max() + 0.005
    assert c_held.center_mm.max() < 0.7 * c_free.center_mm.max(), (c_held.center_mm, c_free.center_mm)


def test_intrinsics_rig_missing_a_camera_is_named(studio):
    rig, corners = studio
    partial = rig.subset(["cam_0", "cam_2"])
    with pytest.raises(RigcapError, match=r"no camera named 'cam_1', 'cam_3'"):
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, intrinsics=partial,
                                  refine_intrinsics=False)
    other = rig.copy()
    other.cameras[1].size = (640, 480)
    with pytest.raises(RigcapError, match=r"another image size: 'cam_1'"):
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, intrinsics=other)


def test_calibrate_command_reports_an_unreadable_intrinsics_rig(tmp_path, capsys):
    board = STUDIO_BOARD.save(tmp_path / "board.toml")
    (tmp_path / "cam_0").mkdir()
    code = main(["calibrate", "--board", str(board), "--intrinsics", str(tmp_path / "nope.toml"), "--no-progress",
                 "--out", str(tmp_path / "rig.toml"), str(tmp_path / "cam_0")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.toml" in err and "rig file not found" in err
