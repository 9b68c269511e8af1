"""Plain checkerboards: detection in rigcap's corner order, lens-only calibration (vs OpenCV and the truth),
and extrinsics where the board's orientation can be told."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from calibration.board import BoardDefinition
from calibration.detect import detect_frame, make_detector
from calibration.pipeline import calibrate_from_detections
from calibration.rigfile import load_rig
from rigcap.studio.board_motion import board_rotation
from rigcap.studio.board_video import BoardRenderer, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.cli import main
from rigcap.errors import RigcapError

CB = BoardDefinition(10, 7, 0.06, pattern="checkerboard")  # 9 x 6 inner corners, 60 x 42 cm


def closeups(cam, board, n, seed):
    """Board poses held 1.2-1.8 m in front of one camera, swept over its image, tilted (a lens session)."""
    rng = np.random.default_rng(seed)
    w, h = cam.size
    grid = np.array([(u, v) for v in (0.3, 0.5, 0.7) for u in (0.25, 0.5, 0.75)])
    uv = grid[np.arange(n) % len(grid)] * [w, h] + rng.normal(0, 0.02, (n, 2)) * [w, h]
    rays = cam.undistort(uv)
    centres = cam.center + (np.concatenate([rays, np.ones((n, 1))], 1) * rng.uniform(1.2, 1.8, n)[:, None]) @ cam.R
    to_cam = cam.center - centres
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    tilt = Rotation.from_rotvec(rng.normal(0, 0.3, (n, 3)) * [1, 1, 0.3]).as_matrix()
    rot = board_rotation(np.einsum("fij,fj->fi", tilt, to_cam), rng.uniform(-0.3, 0.3, n))
    half = np.array([board.size_m[0] / 2, board.size_m[1] / 2, 0.0])
    return Rotation.from_matrix(rot).as_rotvec(), centres - rot @ half


@pytest.fixture(scope="module")
def lens_session(tmp_path_factory):
    """Two cameras (one portrait), 12 close-ups each written as PNG folders, plus one empty frame each."""
    rig = make_studio_rig(2, seed=7)
    portrait = rig[1]
    portrait.size = (720, 1280)
    portrait.matrix[0, 2], portrait.matrix[1, 2] = 359.5, 639.5
    root = tmp_path_factory.mktemp("lens")
    truth = {}
    for c, cam in enumerate(rig):
        rv, tv = closeups(cam, CB, 12, seed=c)
        renderer = BoardRenderer(rig, CB, seed=c)
        folder = root / cam.name
        folder.mkdir()
        for k in range(12):
            cv2.imwrite(str(folder / f"img_{k:02d}.png"), renderer.render(c, rv[k], tv[k], k))
        cv2.imwrite(str(folder / "img_99.png"), renderer.render(c, rv[0], tv[0] + 50.0, 99))  # board out of view
        truth[cam.name] = true_board_corners_2d(rig, CB, rv, tv)[c]
    board = CB.save(root / "cb.toml")
    return rig, root, board, truth


@pytest.mark.slow
def test_checkerboard_corners_come_in_rigcaps_order(lens_session):
    """OpenCV may start the grid at either end; rigcap's order matches the truth's ids in every view."""
    rig, root, _, truth = lens_session
    det = make_detector(CB)
    for name in rig.names:
        for k in range(12):
            gray = cv2.imread(str(root / name / f"img_{k:02d}.png"), cv2.IMREAD_GRAYSCALE)
            corners, _ = detect_frame(det, gray, CB.n_corners)
            if np.isfinite(corners[:, 0]).any():
                assert np.nanmax(np.linalg.norm(corners - truth[name][k], axis=1)) < 1.0


@pytest.mark.slow
def test_intrinsics_only_matches_opencv_and_the_truth_and_is_accepted_by_intrinsics(lens_session, capsys):
    rig, root, board, _ = lens_session
    out = root / "lens.toml"
    assert main(["calibrate", "--board", str(board), "--intrinsics-only", "--no-progress", "--out", str(out),
                 str(root / "cam_0"), str(root / "cam_1")]) == 0
    text = capsys.readouterr().out
    assert "cam_0: board not found in 1 image(s): img_99.png" in text and "cam_1: board not found" in text
    lenses = load_rig(out)
    assert lenses.metadata["intrinsics_only"] is True
    assert lenses["cam_1"].size == (720, 1280)
    for cam in lenses:
        true = rig[cam.name]
        assert np.abs(cam.focal / true.focal - 1).max() < 0.01, (cam.focal, true.focal)
        assert np.linalg.norm(cam.principal_point - true.principal_point) < 8.0
    # the same corners given to cv2.calibrateCamera with the same model give the same lens
    from calibration.lens_only import lenses_from_detections
    from calibration.detect import detect_all

    per_cam = detect_all([root / "cam_0"], CB, progress=False)
    ours = lenses_from_detections(per_cam, CB).rig["cam_0"]
    c = per_cam[0].corners
    views = [k for k in range(c.shape[0]) if np.isfinite(c[k, :, 0]).all()]
    obj = [CB.corner_points().astype(np.float32)] * len(views)
    img = [c[k].astype(np.float32) for k in views]
    model = lenses.metadata["calibration"]["cameras"]["cam_0"]["lens_model"]
    flags = {"full": 0, "radial": cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST}.get(model)
    if flags is not None:
        _, k_cv, d_cv, _, _ = cv2.calibrateCamera(obj, img, per_cam[0].size, None, None, flags=flags)
        assert np.abs(ours.focal / np.diag(k_cv)[:2] - 1).max() < 1e-3  # same corners, same model: same lens, (ours.focal, np.diag(k_cv))
    # and the lens file is what --intrinsics takes: held lenses, poses from a shared recording
    from calibration.pipeline import _match_intrinsics
    from calibration.detect import Detections

    det = Detections.from_arrays(np.full((2, 1, CB.n_corners, 2), np.nan), [c.size for c in lenses], lenses.names)
    held = _match_intrinsics(lenses, det, [])
    np.testing.assert_allclose(held[1].matrix, lenses["cam_1"].matrix)


def test_checkerboard_extrinsics_when_orientation_is_unique_and_refused_otherwise():
    rig = make_studio_rig(3, seed=2)
    from rigcap.studio.board_motion import board_trajectory

    big = BoardDefinition(10, 7, 0.09, pattern="checkerboard")
    rv, tv = board_trajectory(60, seed=3, board=big)
    corners = true_board_corners_2d(rig, big, rv, tv, margin_px=5)
    whole = np.isfinite(corners[..., 0]).all(-1)  # a checkerboard is found only whole
    corners[~whole] = np.nan
    corners += np.random.default_rng(0).normal(0, 0.15, corners.shape)
    res = calibrate_from_detections(corners, big, [c.size for c in rig], rig.names, lens_model="radial")
    from calibration.world import compare_rigs

    cmp = compare_rigs(res.rig, rig)
    assert cmp.center_mm.max() < 5.0 and cmp.rotation_deg.max() < 0.2  # measured 2.1 mm, 0.10 deg, (cmp.center_mm, cmp.rotation_deg)
    even = BoardDefinition(9, 7, 0.09, pattern="checkerboard")  # 9 + 7 even: looks the same turned 180 deg
    with pytest.raises(RigcapError, match="turned by 180 degrees"):
        calibrate_from_detections(corners[..., :even.n_corners, :], even, [c.size for c in rig], rig.names)
