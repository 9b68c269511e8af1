"""Per-camera sigmas from the bundle adjustment's covariance: in the report, and honest against the truth."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from calibration.pipeline import calibrate_from_detections
from calibration.uncertainty import within_two_sigma
from rigcap.studio.board_motion import board_trajectory
from rigcap.studio.board_video import STUDIO_BOARD, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig


def _run(seed: int, noise_px: float, noise_seed: int | None = None):
    rig = make_studio_rig(4, seed=100 + seed)
    rvecs, tvecs = board_trajectory(30, seed=200 + seed)
    corners = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
    rng = np.random.default_rng(seed if noise_seed is None else noise_seed)
    corners = corners + rng.normal(0, noise_px, corners.shape)
    return rig, calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, max_instants=None)


def _errors(rig, res, c):
    """Camera c's centre and rotation error against the truth, in the gauge of the covariance (camera 0 held)."""
    est = res.bundle.cameras
    r0e, t0e, r0t, t0t = est[0].R, est[0].tvec, rig[0].R, rig[0].tvec
    centre = r0e.T @ (r0t @ rig[c].center + t0t - t0e)
    rot = rig[c].R @ r0t.T @ r0e
    return est[c].center - centre, Rotation.from_matrix(est[c].R @ rot.T).as_rotvec()


def test_sigmas_are_in_the_report_and_scale_with_the_corner_noise():
    rig, low = _run(1, 0.1)
    _, high = _run(1, 0.4)
    assert low.cameras[0].sigma_position_mm == 0.0 and low.cameras[0].sigma_orientation_deg == 0.0  # the gauge
    meta = low.rig.metadata["calibration"]["cameras"]["cam_2"]
    assert meta["sigma_position_mm"] > 0 and meta["sigma_orientation_deg"] > 0 and meta["sigma_focal_pct"] > 0
    for a, b in zip(low.cameras[1:], high.cameras[1:]):  # first order: sigma proportional to the noise
        assert 3.0 < b.sigma_position_mm / a.sigma_position_mm < 5.0
        assert 3.0 < b.sigma_orientation_deg / a.sigma_orientation_deg < 5.0


def test_true_error_lies_within_two_sigma_about_95_percent_of_the_time():
    """6 rigs x 3 cameras x 3 principal axes: 54 position and 54 orientation components."""
    pos, rot, z2 = [], [], []
    for seed in range(6):
        rig, res = _run(seed, 0.25)
        for c in range(1, 4):
            e_pos, e_rot = _errors(rig, res, c)
            pos += list(within_two_sigma(e_pos, res.sigmas[c].position_cov_m2))
            rot += list(within_two_sigma(e_rot, res.sigmas[c].orientation_cov_rad2))
            lam, vec = np.linalg.eigh(res.sigmas[c].position_cov_m2)
            z2 += list((e_pos @ vec) ** 2 / lam)
    # a binomial(54, 0.954) falls below 85 % with probability < 1 %; sigmas 30 % too small would give ~85 %
    assert np.mean(pos) >= 0.85 and np.mean(rot) >= 0.85, (np.mean(pos), np.mean(rot))
    assert 0.3 < np.mean(z2) < 2.0, np.mean(z2)  # errors^2 / sigma^2 near 1: sigmas not uselessly large either
