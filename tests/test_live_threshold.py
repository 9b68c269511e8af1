"""Live fusion's outlier threshold from the detector's noise (issue 11): the offline auto threshold's rule on
the residuals of the recent instants, so a coarse detector keeps its honest views."""

import numpy as np

from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from triangulate.fusion import FusionEngine, LiveTriangulator, live_config
from triangulate.fusion_options import FusionOptions


def run_live(studio, auto: bool):
    """Every instant on its own, in time order (the threshold learnt from the ones before): (triangulator, points)."""
    live = LiveTriangulator(studio.rig, live_config(FusionOptions(auto_threshold=auto)), studio.skeleton)
    return live, live.solve_each_instant(studio.keypoints2d().keypoints)


def studio_with(sigma_px: float) -> SyntheticStudio:
    noise = DetectorNoise(pixel_sigma=sigma_px, missing_rate=0.05, outlier_rate=0.0, swap_rate=0.0, time_jitter_ms=0.0)
    return SyntheticStudio(n_cameras=4, duration_s=3.0, seed=4, noise=noise, time_offsets_ms=None)


def test_coarse_detector_raises_the_live_threshold_and_keeps_views():
    studio = studio_with(8.0)
    live, auto = run_live(studio, True)
    fixed_live, fixed = run_live(studio, False)
    # the noise read from the fitted residuals (3-4 views absorb part of it), 3 sigmas the threshold
    assert 0.6 * 8.0 < live.noise_px < 1.1 * 8.0
    assert live.threshold_px == max(15.0, 3.0 * live.noise_px) > 15.0
    assert fixed_live.threshold_px == 15.0
    e_auto = np.linalg.norm(auto - studio.points3d, axis=-1)
    e_fixed = np.linalg.norm(fixed - studio.points3d, axis=-1)
    assert np.isfinite(e_auto).mean() >= np.isfinite(e_fixed).mean()
    assert np.nanmean(e_auto) <= np.nanmean(e_fixed)


def test_precise_detector_keeps_the_floor():
    studio = studio_with(2.0)
    live, auto = run_live(studio, True)
    _, fixed = run_live(studio, False)
    assert 0.5 < live.noise_px < 2.2 and live.threshold_px == 15.0
    np.testing.assert_array_equal(auto, fixed)


def test_fusion_engine_uses_the_auto_threshold_by_default():
    studio = studio_with(2.0)
    assert FusionEngine(studio.rig, studio.skeleton).config.auto_threshold
    assert not FusionEngine(studio.rig, studio.skeleton, FusionOptions(auto_threshold=False)).config.auto_threshold
    assert FusionOptions.from_table({"auto_threshold": False}, "capture.toml").auto_threshold is False
