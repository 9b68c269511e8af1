"""The one lens model (calibration.lens_model) against OpenCV and against itself."""

import cv2
import numpy as np
import pytest

from calibration import lens_model
from calibration.camera import Camera

K = np.array([[820.0, 0.0, 650.0], [0.0, 800.0, 355.0], [0.0, 0.0, 1.0]])
SIZE = (1280, 720)
PINHOLE = {
    4: [-0.28, 0.09, 1.2e-3, -8e-4],
    5: [-0.35, 0.12, 2e-3, -3e-3, -0.01],  # strong barrel: the image corner's ray is 40 % further out
    8: [-0.3, 0.1, 1e-3, -2e-3, -0.02, 0.1, 0.02, 0.01],
    12: [-0.3, 0.1, 1e-3, -2e-3, -0.02, 0.1, 0.02, 0.01, 1e-3, 2e-4, -1e-3, 3e-4],
    14: [-0.3, 0.1, 1e-3, -2e-3, -0.02, 0.1, 0.02, 0.01, 1e-3, 2e-4, -1e-3, 3e-4, 0.01, -0.02],
}
FISHEYE = [0.05, -0.01, 0.003, -0.001]
# rational + thin prism, strong barrel (the corner's ray 60 % further out) and monotonic past the image
RATIONAL_STRONG = [0.2, 0.0, 1e-3, -2e-3, 0.0, 0.6, 0.0, 0.0, 1e-3, 2e-4, -1e-3, 3e-4]


def _image_pixels(margin=0.0, n=25):
    w, h = SIZE
    u, v = np.meshgrid(np.linspace(-margin, w - 1 + margin, n), np.linspace(-margin, h - 1 + margin, n))
    return np.stack([u, v], -1).reshape(-1, 2)


def _points_in_view(seed=0, n=400):
    rng = np.random.default_rng(seed)
    xy = rng.uniform([-0.75, -0.42], [0.75, 0.42], (n, 2))
    return np.c_[xy, np.ones(n)] * rng.uniform(0.5, 5.0, (n, 1))


@pytest.mark.parametrize("n", sorted(PINHOLE))
def test_pinhole_projection_and_undistortion_equal_opencv(n):
    dist = np.array(PINHOLE[n])
    pts = _points_in_view()
    ref, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, dist)
    ref = ref.reshape(-1, 2)
    assert np.abs(lens_model.project(pts, K, dist) - ref).max() < 1e-6  # px
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
    ref_und = cv2.undistortPoints(ref.reshape(-1, 1, 2), K, dist, None, None, None, criteria).reshape(-1, 2)
    mine = lens_model.undistort(ref, K, dist)
    assert np.abs(mine - ref_und).max() * K[0, 0] < 1e-6  # as pixels
    assert np.abs(mine - pts[:, :2] / pts[:, 2:]).max() * K[0, 0] < 1e-6


def test_fisheye_projection_and_undistortion_equal_opencv():
    dist = np.array(FISHEYE)
    pts = _points_in_view(1)
    ref, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), K, dist)
    ref = ref.reshape(-1, 2)
    assert np.abs(lens_model.project(pts, K, dist, "fisheye") - ref).max() < 1e-6
    ref_und = cv2.fisheye.undistortPoints(ref.reshape(-1, 1, 2), K, dist).reshape(-1, 2)
    mine = lens_model.undistort(ref, K, dist, "fisheye")
    assert np.abs(mine - ref_und).max() * K[0, 0] < 1e-6


def test_fisheye_skew_is_opencvs_alpha():
    """cv2.fisheye takes skew as ``alpha`` (K[0,1] = alpha fx); the full matrix here gives the same pixels."""
    dist = np.array(FISHEYE)
    k = K.copy()
    k[0, 1] = 5.0
    pts = _points_in_view(2)
    ref, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), K, dist,
                                       alpha=5.0 / K[0, 0])
    assert np.abs(lens_model.project(pts, k, dist, "fisheye") - ref.reshape(-1, 2)).max() < 1e-6


@pytest.mark.parametrize("fisheye,dist", [(False, PINHOLE[5]), (False, RATIONAL_STRONG), (True, FISHEYE)])
def test_round_trip_with_5px_skew_and_strong_distortion(fisheye, dist):
    """project -> undistort -> project lands on the pixel (< 1e-6 px) over the whole image, 5 px skew.

    Before the one lens model, ``Camera.undistort`` went through ``cv2.undistortPoints``,
    which ignores ``K[0, 1]``, while ``Camera.project`` applied it: 0.5 px off at 5 px skew.
    """
    k = K.copy()
    k[0, 1] = 5.0
    cam = Camera("skewed", SIZE, k, dist, fisheye=fisheye)
    pixels = _image_pixels()
    xy = cam.undistort(pixels)
    back = cam.project(np.c_[xy, np.ones(len(xy))])
    assert np.abs(back - pixels).max() < 1e-6
    # and from the 3D side: a point's projection undistorts to its own ray
    pts = _points_in_view(3)
    ray = cam.undistort(cam.project(pts))
    assert np.abs(ray - pts[:, :2] / pts[:, 2:]).max() * k[0, 0] < 1e-6


def test_undistort_broadcasts_over_cameras_and_passes_nan():
    dists = np.array([PINHOLE[5], [-0.1, 0.01, 0.0, 0.0, 0.0]])  # (C, 5)
    pixels = np.broadcast_to(_image_pixels(n=6), (2, 36, 2)).copy()
    pixels[0, 3] = np.nan
    out = lens_model.undistort(pixels, K, dists[:, None])
    assert np.isnan(out[0, 3]).all() and np.isfinite(np.delete(out[0], 3, 0)).all()
    for c in range(2):
        one = lens_model.undistort(pixels[c], K, dists[c])
        np.testing.assert_array_equal(np.isnan(one), np.isnan(out[c]))
        assert np.nanmax(np.abs(one - out[c])) < 1e-14


def test_points_behind_the_camera_project_to_nan():
    out = lens_model.project(np.array([[0.1, 0.2, -1.0], [0.1, 0.2, 1.0]]), K, PINHOLE[5])
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


@pytest.mark.parametrize("model,dist", [("pinhole", PINHOLE[n]) for n in sorted(PINHOLE)] + [("fisheye", FISHEYE)])
def test_jacobians_equal_finite_differences(model, dist):
    dist = np.array(dist)
    xy = np.random.default_rng(4).uniform(-0.7, 0.7, (60, 2))
    xy[0] = 0.0  # the centre (fisheye divides by r there)
    _, d_xy, d_dist = lens_model.distort(xy, dist, model, jacobians=True)
    eps = 1e-6

    def central(f, n):
        return np.stack([(f(eps * np.eye(n)[i]) - f(-eps * np.eye(n)[i])) / (2 * eps) for i in range(n)], -1)

    num_xy = central(lambda e: lens_model.distort(xy + e, dist, model), 2)
    num_dist = central(lambda e: lens_model.distort(xy, dist + e, model), dist.size)
    assert d_dist.shape == (60, 2, dist.size)
    assert np.abs(d_xy - num_xy).max() < 1e-7
    assert np.abs(d_dist - num_dist).max() < 1e-7
    assert np.abs(d_xy - lens_model.distort(xy, dist, model, jacobians="xy")[1]).max() == 0


def test_bad_coefficient_count_is_refused():
    with pytest.raises(ValueError, match="6 pinhole distortion coefficients"):
        lens_model.distort(np.zeros(2), np.zeros(6))
    with pytest.raises(ValueError, match="5 fisheye"):
        lens_model.distort(np.zeros(2), np.zeros(5), "fisheye")
