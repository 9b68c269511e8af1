"""Calibration pipeline on synthetic detections with exact truth (fast: geometry, no rendering).

Corners are the true projections of the studio board plus 0.2 px Gaussian
noise, so every number the pipeline returns can be checked against the rig
that made them.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration.pipeline import CalibrationResult, calibrate_from_detections
from calibration.report import board_rigidity_mm
from calibration.rigfile import load_rig, save_rig
from calibration.world import compare_rigs
from rigcap.studio.board_motion import board_trajectory, floor_frame_mask
from rigcap.studio.board_video import STUDIO_BOARD, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.errors import RigcapError


def _corners(rig, n_frames, seed, mode="normal", noise=0.2):
    rvecs, tvecs = board_trajectory(n_frames, seed=seed, mode=mode)
    corners = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
    rng = np.random.default_rng(seed)
    return corners + rng.normal(0, noise, corners.shape), rvecs, tvecs


@pytest.fixture(scope="module")
def four_cam():
    rig = make_studio_rig(4, seed=3)
    corners, rvecs, tvecs = _corners(rig, 64, seed=3)
    floor = np.flatnonzero(floor_frame_mask(rvecs, tvecs))
    result = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, origin=int(floor[0]))
    return rig, corners, result


def test_four_cameras_recover_the_true_rig(four_cam):
    rig, _, result = four_cam
    assert isinstance(result, CalibrationResult)
    cmp = compare_rigs(result.rig, rig)
    assert cmp.center_mm.max() < 4.0, cmp.center_mm
    # orientation follows the principal point (0.1 deg = 2 px at f = 1100 px), the least
    # determined intrinsic with a board 3 m away
    assert cmp.rotation_deg.max() < 0.2, cmp.rotation_deg
    assert cmp.focal_pct.max() < 0.3, cmp.focal_pct
    # 0.2 px noise in, ~0.28 px (norm of two axes) out, on every camera
    assert all(0.15 < v < 0.4 for v in result.rmse_px.values()), result.rmse_px


def test_floor_sighting_sets_the_world_frame(four_cam):
    """Board on the floor at the world origin in the truth -> no alignment needed."""
    rig, _, result = four_cam
    cmp = compare_rigs(result.rig, rig, align=False)
    assert cmp.center_mm.max() < 6.0, cmp.center_mm
    assert cmp.rotation_deg.max() < 0.15, cmp.rotation_deg


def test_rigidity_and_metadata_report_what_the_rig_measures(four_cam, tmp_path):
    rig, corners, result = four_cam
    # the calibrated rig measures the board as well as the true rig does, on the same corners
    truth_mm, _ = board_rigidity_mm(rig, corners[:, result.instants], STUDIO_BOARD)
    assert result.rigidity_rmse_mm < 1.1 * truth_mm + 0.05, (result.rigidity_rmse_mm, truth_mm)
    # a rig 1 % too large (wrong square length) is caught by rigidity although pixels stay perfect
    scaled = result.rig.copy()
    for cam in scaled.cameras:
        cam.tvec = cam.tvec * 1.01
    wrong_mm, _ = board_rigidity_mm(scaled, corners[:, result.instants], STUDIO_BOARD)
    assert wrong_mm > 2.0 * result.rigidity_rmse_mm
    meta = result.rig.metadata["calibration"]
    assert set(meta["cameras"]) == set(rig.names)
    assert meta["board_rigidity_rmse_mm"] == pytest.approx(result.rigidity_rmse_mm, abs=1e-3)
    back = load_rig(save_rig(result.rig, tmp_path / "rig.toml"))
    assert back.metadata["calibration"]["cameras"]["cam_0"]["views"] == result.cameras[0].views
    np.testing.assert_allclose(back.centers, result.rig.centers, atol=1e-9)


def test_eight_cameras_never_all_together_are_chained():
    rig = make_studio_rig(8, seed=5)
    corners, _, _ = _corners(rig, 64, seed=5, mode="hard")
    views = np.isfinite(corners[..., 0]).sum(-1) >= 6
    assert views.sum(axis=0).max() < 8  # no frame shows the board to every camera
    result = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names)
    cmp = compare_rigs(result.rig, rig)
    assert cmp.center_mm.max() < 5.0, cmp.center_mm
    assert cmp.rotation_deg.max() < 0.3, cmp.rotation_deg
    assert cmp.focal_pct.max() < 0.3, cmp.focal_pct


def test_result_is_the_optimum_bundle_adjustment_reaches_from_the_true_rig(four_cam):
    """Graph initialisation loses nothing: starting from the truth lands on the same rig."""
    rig, corners, result = four_cam
    best = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, initial_rig=rig,
                                     origin=0)
    ours, theirs = compare_rigs(result.rig, rig), compare_rigs(best.rig, rig)
    assert ours.center_mm.max() <= 1.1 * theirs.center_mm.max() + 0.1
    assert ours.rotation_deg.max() <= 1.1 * theirs.rotation_deg.max() + 0.005
    assert result.rigidity_rmse_mm <= 1.1 * best.rigidity_rmse_mm


def test_unlinked_camera_is_named_with_what_to_record():
    rig = make_studio_rig(3, seed=7)
    corners, _, _ = _corners(rig, 40, seed=7)
    views = np.isfinite(corners[..., 0]).sum(-1) >= 6
    # cam_2 keeps only the frames no other camera sees well enough
    shared = views[0] | views[1]
    corners[2, shared] = np.nan
    assert (np.isfinite(corners[2, :, :, 0]).sum(-1) >= 6).sum() >= 3
    with pytest.raises(RigcapError) as err:
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names)
    msg = str(err.value)
    assert "'cam_2'" in msg and "same instant" in msg and "'cam_0'" in msg


def test_camera_without_views_is_named():
    rig = make_studio_rig(2, seed=1)
    corners, _, _ = _corners(rig, 20, seed=1)
    corners[1] = np.nan
    with pytest.raises(RigcapError, match="'cam_1'"):
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names)


def test_thinning_keeps_the_floor_sighting(four_cam):
    rig, corners, _ = four_cam
    result = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, origin=1,
                                       max_instants=16)
    assert 1 in result.instants and result.instants.size <= 17
    assert compare_rigs(result.rig, rig, align=False).center_mm.max() < 15.0


def test_compare_rigs_aligns_on_whole_poses_not_one_gauge():
    """A rig moved rigidly compares as identical; a rig whose centres alone are off by a few mm
    (orientations exact) must not be charged a rotation error by the alignment."""
    from scipy.spatial.transform import Rotation

    from calibration.world import transform_rig

    truth = make_studio_rig(4, seed=1)
    a, b = Rotation.from_rotvec([0.3, -0.2, 1.0]).as_matrix(), np.array([0.5, -2.0, 3.0])
    moved = compare_rigs(transform_rig(truth, a, b), truth)
    assert moved.center_mm.max() < 1e-6 and moved.rotation_deg.max() < 1e-4
    shifted = truth.copy()
    rng = np.random.default_rng(0)
    for cam in shifted.cameras:  # centre moved by ~5 mm, orientation untouched
        cam.tvec = cam.tvec - cam.R @ rng.normal(0, 0.005, 3)
    cmp = compare_rigs(shifted, truth)
    assert cmp.rotation_deg.max() < 0.06, cmp.rotation_deg  # centres-only Kabsch: 0.084 deg on every camera here, poses 0.047
    assert 2.0 < cmp.center_mm.max() < 15.0
