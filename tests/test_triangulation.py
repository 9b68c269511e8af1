"""Triangulation engine against the synthetic studio's 3D truth: exact, robust, repaired, safe."""

import numpy as np
import pytest

from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from triangulate.dlt import dlt_svd, triangulate_dlt
from triangulate.engine import (TriangulationConfig, TriangulationInputError, Triangulator, neighbour_median,
                                triangulate)
from triangulate.formats import Keypoints2D


@pytest.fixture(scope="module")
def clean():
    """Four cameras, perfect detections (no noise, no clock offsets): triangulation must be exact."""
    return SyntheticStudio(n_cameras=4, duration_s=1.0, seed=3, noise=DetectorNoise.none(), time_offsets_ms=None)


@pytest.fixture(scope="module")
def noisy():
    """The issue's benchmark conditions (2 px, 10 % missing, 3 % outliers, 2 % swaps), 3 s."""
    noise = DetectorNoise(pixel_sigma=2.0, missing_rate=0.10, outlier_rate=0.03, swap_rate=0.02, time_jitter_ms=0.0)
    return SyntheticStudio(n_cameras=4, duration_s=3.0, seed=5, noise=noise, time_offsets_ms=None)


def plain(**kw) -> TriangulationConfig:
    """Every frame on its own and no polish, so a planted fault is judged by view selection alone."""
    return TriangulationConfig(temporal_window=0, refine=False, **kw)


def err_mm(points, truth):
    return 1000.0 * np.linalg.norm(points - truth, axis=-1)


# ---------------------------------------------------------------- exactness
def test_noiseless_views_triangulate_exactly(clean):
    res = triangulate(clean.rig, clean.keypoints2d())
    e = err_mm(res.points3d.points, clean.points3d)
    assert np.isfinite(e).all()  # every joint of every frame
    assert e.max() < 1e-3  # < 1 micrometre through lens distortion and back
    assert res.points3d.reprojection_error.max() < 1e-3  # px
    seen = np.isfinite(clean.keypoints2d().keypoints[..., 0]).sum(axis=0)  # joints outside an image are NaN
    assert seen.min() >= 2 and np.array_equal(res.points3d.n_views, seen)
    assert not res.swapped.any()


@pytest.mark.parametrize("sigma_px, tol_mm", [(0.0, 1e-6), (2.0, 0.5)])
def test_fast_dlt_matches_textbook_svd(sigma_px, tol_mm):
    """Closed-form normal equations (point at finite distance) = stacked SVD; with noise they differ only slightly."""
    rng = np.random.default_rng(0)
    noise = DetectorNoise.none().replace(pixel_sigma=sigma_px, missing_rate=0.2)
    studio = SyntheticStudio(n_cameras=5, duration_s=0.2, seed=1, noise=noise, time_offsets_ms=None)
    cams = studio.rig.cameras
    xn = np.stack([c.undistort(p) for c, p in zip(cams, studio.detections.pixels)])  # (C, F, J, 2) with NaN
    ext = np.array([np.hstack([c.R, c.tvec[:, None]]) for c in cams])
    w = rng.uniform(0.3, 1.0, xn.shape[:-1])
    fast = triangulate_dlt(xn, ext, w)
    ref = dlt_svd(xn, ext, w)
    both = np.isfinite(ref).all(-1)
    assert 0.8 < both.mean() < 1.0  # some joints seen by fewer than two cameras
    assert np.array_equal(np.isfinite(fast).all(-1), both)
    assert err_mm(fast[both], ref[both]).max() < tol_mm


# ---------------------------------------------------------------- robustness
def test_planted_outlier_view_is_dropped(clean):
    kp = clean.keypoints2d().keypoints.copy()
    frame, joint, cam = 7, clean.skeleton.index("left_knee"), 2
    kp[cam, frame, joint, :2] += (60.0, -45.0)  # 75 px off, full confidence
    res = Triangulator(clean.rig, plain(), clean.skeleton).run(kp)
    assert not res.inliers[cam, frame, joint]
    assert res.inliers[:, frame, joint].sum() == 3
    assert res.n_views[frame, joint] == 3
    assert err_mm(res.points[frame, joint], clean.points3d[frame, joint]) < 1e-3
    # Without view selection the outlier would have pulled the point off by centimetres.
    naive = Triangulator(clean.rig, plain(threshold_px=1e6), clean.skeleton).run(kp)
    assert err_mm(naive.points[frame, joint], clean.points3d[frame, joint]) > 5.0


def test_outlier_spoiling_two_of_three_views_still_recovers(clean):
    """Three cameras see a joint, one is far off: the agreeing pair wins, not the all-view fit."""
    kp = clean.keypoints2d().keypoints.copy()
    frame, joint = 4, clean.skeleton.index("right_wrist")
    kp[0, frame, joint] = np.nan
    kp[3, frame, joint, :2] += 120.0
    res = Triangulator(clean.rig, plain(), clean.skeleton).run(kp)
    assert res.inliers[:, frame, joint].tolist() == [False, True, True, False]
    assert err_mm(res.points[frame, joint], clean.points3d[frame, joint]) < 1e-3


def test_planted_swap_is_repaired(clean):
    kp = clean.keypoints2d().keypoints.copy()
    cam, frame = 1, 12
    perm = clean.skeleton.swap_permutation()
    kp[cam, frame] = kp[cam, frame][perm]
    res = Triangulator(clean.rig, plain(), clean.skeleton).run(kp)
    assert res.swapped[cam, frame] and res.swapped.sum() == 1
    seen = np.isfinite(kp[:, frame, :, 0])
    assert np.array_equal(res.inliers[:, frame], seen)  # every view of every joint agrees again
    assert err_mm(res.points[frame], clean.points3d[frame]).max() < 1e-3
    off = Triangulator(clean.rig, plain(swap_repair=False, robust_loss="none"), clean.skeleton).run(kp)
    lr = np.flatnonzero(perm != np.arange(len(perm)))
    assert not off.inliers[cam, frame, lr].any()  # without repair the swapped view is only discarded


def test_legs_only_swap_is_repaired_without_touching_the_arms(clean):
    """Detectors often swap only the legs of a walker seen from the side."""
    kp = clean.keypoints2d().keypoints.copy()
    cam, frame = 2, 20
    names = clean.skeleton.joint_names
    perm = clean.skeleton.swap_permutation()
    legs = [j for j, n in enumerate(names) if perm[j] != j and any(w in n for w in ("knee", "ankle", "heel", "toe"))]
    legs_perm = np.arange(len(names))
    legs_perm[legs] = perm[legs]
    kp[cam, frame] = kp[cam, frame][legs_perm]
    res = Triangulator(clean.rig, plain(), clean.skeleton).run(kp)
    assert res.swapped[cam, frame] and res.swapped.sum() == 1
    seen = np.isfinite(kp[:, frame, :, 0])
    assert np.array_equal(res.inliers[:, frame], seen)
    assert err_mm(res.points[frame], clean.points3d[frame]).max() < 1e-3


def test_two_of_four_cameras_swapped_is_repaired_by_temporal_context(clean):
    """Two swapped cameras agree with each other as well as the two right ones do: only the
    neighbouring frames tell which half is wrong."""
    kp = clean.keypoints2d().keypoints.copy()
    frame = 15
    perm = clean.skeleton.swap_permutation()
    kp[[0, 1], frame] = kp[[0, 1], frame][:, perm]
    res = Triangulator(clean.rig, TriangulationConfig(refine=False), clean.skeleton).run(kp)
    assert res.swapped[:, frame].tolist() == [True, True, False, False] and res.swapped.sum() == 2
    assert err_mm(res.points[frame], clean.points3d[frame]).max() < 1e-3


def test_noisy_studio_beats_oracle_and_repairs_swaps(noisy):
    """Issue conditions: within 1.15x of plain DLT given the true inlier views (the full table is the benchmark)."""
    det = noisy.detections
    res = triangulate(noisy.rig, noisy.keypoints2d())
    e = err_mm(res.points3d.points, noisy.points3d)
    cams = noisy.rig.cameras
    xn = np.stack([c.undistort(p) for c, p in zip(cams, det.pixels)])
    oracle = triangulate_dlt(np.where(det.inlier[..., None], xn, np.nan),
                             np.array([np.hstack([c.R, c.tvec[:, None]]) for c in cams]))
    eo = err_mm(oracle, noisy.points3d)
    assert np.isfinite(e).mean() >= np.isfinite(eo).mean() - 0.01
    assert np.nanmean(e) < 1.15 * np.nanmean(eo)
    assert np.nanpercentile(e, 99) < 60.0  # no gross 3D outliers left
    found = res.swapped & det.swapped
    assert found.sum() >= 0.8 * det.swapped.sum() and (res.swapped & ~det.swapped).sum() <= 2


# ---------------------------------------------------------------- missing data and bad input
def test_all_nan_frames_give_nan_not_a_crash(clean):
    kp = clean.keypoints2d().keypoints.copy()
    kp[:, 5:8] = np.nan
    kp[1:, 9, :, :2] = np.nan  # one view only: no point
    res = triangulate(clean.rig, Keypoints2D(kp, clean.rig.names, clean.skeleton.joint_names, fps=clean.fps))
    pts = res.points3d.points
    assert np.isnan(pts[5:8]).all() and np.isnan(pts[9]).all()
    assert np.all(res.points3d.n_views[5:8] == 0) and np.isnan(res.points3d.reprojection_error[5:8]).all()
    assert np.isfinite(pts[:5]).all() and err_mm(pts[:5], clean.points3d[:5]).max() < 1e-3
    # Entirely empty input, and a single frame through the live entry point.
    empty = Triangulator(clean.rig, TriangulationConfig(), clean.skeleton)
    r = empty.run(np.full((4, 3, 26, 3), np.nan))
    assert np.isnan(r.points).all() and np.all(r.n_views == 0)
    one = empty.frame(np.full((4, 26, 3), np.nan))
    assert one.points.shape == (26, 3) and np.isnan(one.points).all()


def test_shapes_not_matching_the_rig_give_a_clear_error(clean):
    kp = clean.keypoints2d().keypoints
    tri = Triangulator(clean.rig, TriangulationConfig(), clean.skeleton)
    with pytest.raises(TriangulationInputError, match=r"3 cameras.*rig has 4.*cam_0"):
        tri.run(kp[:3])
    with pytest.raises(TriangulationInputError, match=r"\(cameras, frames, joints, 2 or 3\)"):
        tri.run(kp[:, 0])
    with pytest.raises(TriangulationInputError, match=r"25 joints.*halpe26.*26"):
        tri.run(kp[:, :, :25])
    renamed = Keypoints2D(kp, ["cam_0", "cam_1", "cam_2", "side_cam"], clean.skeleton.joint_names)
    with pytest.raises(TriangulationInputError, match=r"'side_cam'.*rig lacks"):
        triangulate(clean.rig, renamed)
    with pytest.raises(TriangulationInputError, match="frame rate"):
        triangulate(clean.rig, Keypoints2D(kp, clean.rig.names, clean.skeleton.joint_names),
                    TriangulationConfig(filter_hz=6.0))


def test_cameras_are_matched_by_name_not_order(clean):
    kp = clean.keypoints2d()
    order = [2, 0, 3, 1]
    shuffled = Keypoints2D(kp.keypoints[order], ["CAM-2", "cam_0", "cam3", "cam_1"], kp.joint_names, fps=kp.fps)
    res = triangulate(clean.rig, shuffled)
    assert res.camera_names == ["cam_2", "cam_0", "cam_3", "cam_1"]
    assert err_mm(res.points3d.points, clean.points3d).max() < 1e-3


def test_neighbour_median_leaves_the_frame_out():
    pts = np.arange(7, dtype=float)[:, None, None] * np.ones((1, 1, 3))
    pts[3] = 100.0
    med = neighbour_median(pts, 1)
    assert med[3, 0, 0] == 3.0  # median of frames 2 and 4, not pulled by frame 3 itself
    assert med[0, 0, 0] == 1.0 and med[6, 0, 0] == 5.0


# ---------------------------------------------------------------- batched lens model
def test_lens_batch_equals_the_camera_model_for_every_distortion_kind():
    """The vectorised undistort/project of all cameras = Camera.undistort/project one by one, every lens kind."""
    from calibration.camera import Camera
    from rigcap.studio.studio_rig import make_studio_rig
    from triangulate.lens import LensBatch

    rig = make_studio_rig(3, seed=4)
    base = rig.cameras[0]
    k = base.matrix.copy()
    k[0, 1] = 0.5  # skew
    cams = list(rig.cameras) + [
        Camera("tangential", base.size, base.matrix, [-0.25, 0.08, 0.002, -0.001, 0.01], base.rvec, base.tvec),
        Camera("skewed", base.size, k, [-0.2, 0.05, 0.001, 0.0, 0.0], base.rvec, base.tvec),
        Camera("pinhole", base.size, base.matrix, [], base.rvec, base.tvec),
        Camera("rational", base.size, base.matrix, [-0.2, 0.05, 0, 0, 0, 0.01, 0, 0], base.rvec, base.tvec),
        Camera("fisheye", base.size, base.matrix, [0.05, -0.01, 0.002, 0.0], base.rvec, base.tvec, fisheye=True),
    ]
    lens = LensBatch(cams)
    w, h = base.size
    grid = np.stack(np.meshgrid(np.linspace(-60, w + 60, 40), np.linspace(-60, h + 60, 30)), -1).reshape(-1, 2)
    grid[::17] = np.nan
    pixels = np.broadcast_to(grid, (len(cams),) + grid.shape)
    fast = lens.undistort(pixels)
    ref = np.stack([c.undistort(grid) for c in cams])
    assert np.array_equal(np.isnan(fast), np.isnan(ref))
    for c, cam in enumerate(cams):  # the inverse maps back onto the pixel exactly, skew included
        back = cam.normalized_to_pixels(cam.distort_normalized(fast[c]))
        assert np.nanmax(np.abs(back - grid)) < 1e-9, cam.name
    # the batch is the one lens model (agreement with OpenCV: tests/test_lens_model.py)
    assert np.nanmax(np.abs(fast - ref)) < 1e-12
    pts = np.random.default_rng(1).uniform([-1.5, -1.5, 0.0], [1.5, 1.5, 2.0], (500, 3))
    proj = lens.project(pts)  # (500, C, 2)
    ref_proj = np.stack([c.project(pts) for c in cams], axis=1)
    assert np.array_equal(np.isnan(proj), np.isnan(ref_proj))
    assert np.nanmax(np.abs(proj - ref_proj)) < 1e-9
    pts[::50] = _behind(cams[0])  # behind camera 0: NaN there
    u, v = lens.project_planes(pts.T)  # (C, 500) each, the engine's points-last layout
    planes = np.stack([u.T, v.T], -1)
    assert np.isnan(planes[::50, 0]).all()
    keep = np.ones(len(pts), bool)
    keep[::50] = False
    assert np.nanmax(np.abs(planes[keep] - np.stack([c.project(pts[keep]) for c in cams], axis=1))) < 1e-9


def _behind(cam) -> np.ndarray:
    """A world point 1 m behind the camera."""
    return -cam.R.T @ cam.tvec - cam.R[2]


def test_lens_batch_in_cache_sized_blocks_gives_the_same_numbers(monkeypatch):
    """Undistortion and projection in blocks (the speed-up for many cameras x points) = one pass, bit for bit."""
    from calibration import lens_model
    from rigcap.studio.studio_rig import make_studio_rig
    from triangulate import lens as lens_mod

    cams = list(make_studio_rig(6, seed=2).cameras)
    lens = lens_mod.LensBatch(cams)
    rng = np.random.default_rng(3)
    w, h = cams[0].size
    pixels = rng.uniform([-100, -100], [w + 100, h + 100], (len(cams), 3000, 2))
    pixels[:, ::13] = np.nan
    pts = rng.uniform([-1.5, -1.5, 0.0], [1.5, 1.5, 2.0], (3000, 3))
    pts[::7] = _behind(cams[0])
    whole_xn, whole_uv = lens.undistort(pixels), lens.project_planes(pts.T)
    monkeypatch.setattr(lens_model, "UNDISTORT_BLOCK", 256)  # 6 x 3000 entries: 71 blocks of 256
    monkeypatch.setattr(lens_mod, "PROJECT_BLOCK", 600)  # 30 blocks of 100 points
    assert np.array_equal(lens.undistort(pixels), whole_xn, equal_nan=True)
    for a, b in zip(lens.project_planes(pts.T), whole_uv):
        assert np.array_equal(a, b, equal_nan=True)
    assert np.isfinite(whole_xn).mean() > 0.9 and np.isnan(whole_uv[0]).any()


def test_refinement_lowers_the_pixel_error_and_stays_exact(clean, noisy):
    exact = Triangulator(clean.rig, TriangulationConfig(refine=True, temporal_window=0),
                         clean.skeleton).run(clean.keypoints2d().keypoints)
    assert err_mm(exact.points, clean.points3d).max() < 1e-3
    kp = noisy.keypoints2d().keypoints
    lin = Triangulator(noisy.rig, TriangulationConfig(), noisy.skeleton).run(kp)
    ref = Triangulator(noisy.rig, TriangulationConfig(refine=True), noisy.skeleton).run(kp)
    assert np.array_equal(np.isfinite(lin.points), np.isfinite(ref.points))
    ok = np.isfinite(lin.error_px)
    # Gauss-Newton minimises the (weighted) distorted-pixel error, so on average it can only drop.
    assert np.mean(ref.error_px[ok]) < np.mean(lin.error_px[ok])
    assert np.nanmean(err_mm(ref.points, noisy.points3d)) < 1.02 * np.nanmean(err_mm(lin.points, noisy.points3d))


def test_auto_threshold_follows_the_detector_noise(noisy):
    """A precise detector keeps the 15 px floor; a coarse one gets a wider threshold and loses fewer good views."""
    fine = triangulate(noisy.rig, noisy.keypoints2d(), TriangulationConfig(auto_threshold=True))
    assert fine.threshold_px == 15.0 and 1.2 < fine.noise_px < 2.6  # 2 px per axis simulated
    coarse_noise = DetectorNoise(pixel_sigma=8.0, outlier_px=(60.0, 250.0), time_jitter_ms=0.0)
    coarse = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=5, noise=coarse_noise, time_offsets_ms=None)
    fixed = triangulate(coarse.rig, coarse.keypoints2d(), TriangulationConfig(robust_loss="none"))
    auto = triangulate(coarse.rig, coarse.keypoints2d(), TriangulationConfig(auto_threshold=True, robust_loss="none"))
    assert 5.0 < auto.noise_px < 10.0 and 17.0 < auto.threshold_px < 35.0
    assert auto.summary()["mean_views"] > fixed.summary()["mean_views"] + 0.1
    assert np.nanmean(err_mm(auto.points3d.points, coarse.points3d)) < np.nanmean(err_mm(fixed.points3d.points,
                                                                                        coarse.points3d))
    # The soft refit takes the honest views a hard threshold dropped back in: more accurate than either hard run.
    soft = triangulate(coarse.rig, coarse.keypoints2d(), TriangulationConfig())
    assert soft.summary()["mean_views"] > fixed.summary()["mean_views"] + 0.1
    assert np.nanmean(err_mm(soft.points3d.points, coarse.points3d)) < np.nanmean(err_mm(auto.points3d.points,
                                                                                       coarse.points3d))
