"""The camera model must agree with OpenCV to machine precision, distortion included."""

import cv2
import numpy as np
import pytest

from calibration import Camera, Rig
from calibration.camera import matrix_to_rodrigues, rodrigues_to_matrix


def wide_lens_camera(**kw) -> Camera:
    args = dict(
        name="cam_a",
        size=(1280, 720),
        matrix=[[910.0, 0.0, 652.0], [0.0, 905.0, 351.0], [0.0, 0.0, 1.0]],
        dist=[-0.31, 0.12, 0.0012, -0.0021, -0.025],
        rvec=[0.12, -0.31, 0.05],
        tvec=[0.2, -0.1, 3.1],
    )
    args.update(kw)
    return Camera(**args)


@pytest.fixture
def points():
    rng = np.random.default_rng(7)
    return rng.uniform([-1.2, -0.8, -0.5], [1.2, 0.8, 1.0], size=(200, 3))


def test_project_matches_opencv_projectpoints(points):
    cam = wide_lens_camera()
    ours = cam.project(points)
    ref, _ = cv2.projectPoints(points, cam.rvec, cam.tvec, cam.matrix, cam.dist)
    np.testing.assert_allclose(ours, ref.reshape(-1, 2), atol=1e-9)


@pytest.mark.parametrize("n_coeffs", [4, 8])
def test_other_distortion_lengths_match_opencv(points, n_coeffs):
    dist = np.array([-0.2, 0.05, 0.001, 0.002, 0.01, 0.02, 0.003, 0.001])[:n_coeffs]
    cam = wide_lens_camera(dist=dist)
    ref, _ = cv2.projectPoints(points, cam.rvec, cam.tvec, cam.matrix, cam.dist)
    np.testing.assert_allclose(cam.project(points), ref.reshape(-1, 2), atol=1e-9)


def test_fisheye_matches_opencv(points):
    cam = wide_lens_camera(dist=[0.05, -0.01, 0.002, -0.0005], fisheye=True)
    ref, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), cam.rvec, cam.tvec, cam.matrix, cam.dist)
    np.testing.assert_allclose(cam.project(points), ref.reshape(-1, 2), atol=1e-6)
    in_cam = cam.world_to_camera(points)
    np.testing.assert_allclose(cam.undistort(cam.project(points)), in_cam[:, :2] / in_cam[:, 2:], atol=1e-6)


def test_project_keeps_leading_shape_and_nan(points):
    cam = wide_lens_camera()
    grid = points[:120].reshape(4, 6, 5, 3).copy()
    grid[1, 2, 3] = np.nan
    out = cam.project(grid)
    assert out.shape == (4, 6, 5, 2)
    assert np.isnan(out[1, 2, 3]).all()
    np.testing.assert_allclose(out.reshape(-1, 2)[:5], cam.project(points[:5]))


def test_points_behind_camera_are_nan():
    cam = wide_lens_camera(rvec=[0, 0, 0], tvec=[0, 0, 0])
    out = cam.project(np.array([[0.1, 0.1, -2.0], [0.1, 0.1, 2.0]]))
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_undistort_inverts_projection(points):
    cam = wide_lens_camera()
    pixels = cam.project(points)
    normalised = cam.undistort(pixels)
    in_cam = cam.world_to_camera(points)
    np.testing.assert_allclose(normalised, in_cam[:, :2] / in_cam[:, 2:], atol=1e-9)
    np.testing.assert_allclose(cam.undistort_pixels(pixels), cam.normalized_to_pixels(normalised))


def test_projection_matrix_and_center_are_consistent(points):
    cam = wide_lens_camera(dist=np.zeros(5))
    homog = np.c_[points, np.ones(len(points))] @ cam.projection_matrix.T
    np.testing.assert_allclose(homog[:, :2] / homog[:, 2:], cam.project(points), atol=1e-9)
    assert np.allclose(cam.world_to_camera(cam.center), 0.0, atol=1e-12)


def test_rodrigues_matches_opencv():
    rng = np.random.default_rng(3)
    rvecs = rng.normal(size=(20, 3))
    rvecs[0] = 0.0
    mats = rodrigues_to_matrix(rvecs)
    for r, m in zip(rvecs, mats):
        np.testing.assert_allclose(m, cv2.Rodrigues(r)[0], atol=1e-12)
    np.testing.assert_allclose(rodrigues_to_matrix(matrix_to_rodrigues(mats[3])), mats[3], atol=1e-12)


def test_rig_projects_every_camera(points):
    rig = Rig([wide_lens_camera(name="a"), wide_lens_camera(name="b", rvec=[0.0, 0.4, 0.0])])
    out = rig.project(points)
    assert out.shape == (2, len(points), 2)
    np.testing.assert_allclose(out[1], rig["b"].project(points))
    assert rig.projection_matrices.shape == (2, 3, 4)
    err = rig.reprojection_error(points, out)
    assert np.nanmax(err) < 1e-9


def test_rig_rejects_duplicate_names_and_unknown_camera():
    with pytest.raises(ValueError, match="unique"):
        Rig([wide_lens_camera(name="a"), wide_lens_camera(name="a")])
    rig = Rig([wide_lens_camera(name="a")])
    with pytest.raises(KeyError, match="no camera named 'z'"):
        rig["z"]


def test_bad_distortion_length_is_named():
    with pytest.raises(ValueError, match="cam_a.*3 distortion coefficients"):
        wide_lens_camera(dist=[0.1, 0.2, 0.3])
