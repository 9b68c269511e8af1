"""The real-detector error model: what it generates has its parameters (scale per joint, confidence
dependence, AR(1) time constant, Student-t tails, bias), measured by the same statistics that measured
the real detector; the studio and ``rigcap synth person --noise real`` use it; the measurement through a
triangulation recovers a known studio detector."""

from __future__ import annotations

import numpy as np
import pytest

from rigcap.cli import main
from rigcap.studio.detector_error import (MEDIAPIPE_POSE2SIM, joint_group, real_confidences, real_pixel_errors)
from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.noise_fit import error_statistics, measure_detector_error
from rigcap.studio.studio import SyntheticStudio
from triangulate.formats import Keypoints2D
from triangulate.skeletons import HALPE26

NAMES = list(HALPE26.joint_names)


def _generate(params, n_frames=800, fps=30.0, seed=0, size_px=500.0):
    rng = np.random.default_rng(seed)
    shape = (4, n_frames, len(NAMES))
    conf = real_confidences(params, rng, shape, fps)
    size = np.full(shape[:2], size_px)
    return real_pixel_errors(params, rng, conf, size, NAMES, fps), conf, size


@pytest.mark.parametrize("params", [MEDIAPIPE_POSE2SIM,
                                    MEDIAPIPE_POSE2SIM.replace(tail_nu=4.0, tau_ms=60.0, conf_gain=3.0, bias_rel=0.004,
                                                               joint_scale={"wrist": 1.6, "hip": 0.6})],
                         ids=["measured", "other"])
def test_generated_errors_have_the_model_parameters(params):
    err, conf, size = _generate(params)
    st = error_statistics(err, conf, size, NAMES, 30.0)
    assert st.sigma_rel == pytest.approx(params.sigma_rel * _mean_joint_scale(params), rel=0.08)
    assert st.tail_nu == pytest.approx(params.tail_nu, rel=0.12)
    assert st.rho == pytest.approx(params.rho(30.0), abs=0.03)
    assert st.conf_gain == pytest.approx(params.conf_gain, rel=0.3)
    assert st.bias_rel == pytest.approx(params.bias_rel, rel=0.2)
    # per-joint ratios as given, relative to each other
    for a, b in (("wrist", "hip"), ("face", "shoulder"), ("foot", "knee")):
        want = params.joint_scale.get(a, 1.0) / params.joint_scale.get(b, 1.0)
        assert st.joint_scale[a] / st.joint_scale[b] == pytest.approx(want, rel=0.08), (a, b)


def _mean_joint_scale(params) -> float:
    """The statistics report sigma as the view-weighted geometric mean over the joint groups."""
    return float(np.exp(np.mean(np.log(params.scale_of(NAMES)))))


def test_gaussian_errors_are_not_mistaken_for_heavy_tails():
    params = MEDIAPIPE_POSE2SIM.replace(tail_nu=1e9, bias_rel=0.0, tau_ms=0.0)
    err, conf, size = _generate(params, n_frames=600)
    st = error_statistics(err, conf, size, NAMES, 30.0)
    assert st.tail_nu > 20
    assert abs(st.rho) < 0.03
    assert st.bias_rel < 0.1 * params.sigma_rel


def test_error_grows_at_low_confidence_as_the_model_says():
    err, conf, size = _generate(MEDIAPIPE_POSE2SIM, n_frames=1200)
    face = np.array([joint_group(n) == "face" for n in NAMES])
    e = np.abs(err[..., 0] - np.median(err[..., 0], axis=1, keepdims=True))[:, :, face] / size[:, :, None]
    c = conf[:, :, face]
    low, high = np.median(e[c < 0.6]), np.median(e[c > 0.99])
    want = np.mean(MEDIAPIPE_POSE2SIM.conf_factor(c[c < 0.6]))
    assert low / high == pytest.approx(want, rel=0.25)
    assert low / high > 2.0


def test_confidences_follow_the_measured_distribution_and_occlusion_takes_the_low_end():
    rng = np.random.default_rng(3)
    shape = (4, 900, 26)
    occluded = rng.random(shape) < 0.2
    conf = real_confidences(MEDIAPIPE_POSE2SIM, rng, shape, 30.0, occluded)
    for level in (0.05, 0.5):
        want = np.interp(level, MEDIAPIPE_POSE2SIM.conf_levels, MEDIAPIPE_POSE2SIM.conf_quantiles)
        assert np.quantile(conf, level) == pytest.approx(want, abs=0.03)
    assert np.quantile(conf[occluded], 0.9) <= np.quantile(conf[~occluded], 0.02) + 1e-9


def test_studio_real_model_and_gaussian_model_differ_as_named():
    real = SyntheticStudio(n_cameras=4, duration_s=4.0, seed=2, noise=DetectorNoise.named("real"), time_offsets_ms=None)
    gauss = SyntheticStudio(n_cameras=4, duration_s=4.0, seed=2, noise=DetectorNoise.named("gaussian"),
                            time_offsets_ms=None)
    d = real.detections
    err = (d.pixels - d.true_pixels)[..., 0]
    ok = d.inlier
    # AR(1): consecutive frames' errors correlate (the Gaussian model's do not)
    a, b = err[:, :-1], err[:, 1:]
    both = ok[:, :-1] & ok[:, 1:]
    ga = (gauss.detections.pixels - gauss.detections.true_pixels)[..., 0]
    gb = gauss.detections.inlier[:, :-1] & gauss.detections.inlier[:, 1:]
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731 (rank correlation: the tails are heavy)
    assert np.corrcoef(rank(a[both]), rank(b[both]))[0, 1] > 0.5
    assert abs(np.corrcoef(ga[:, :-1][gb], ga[:, 1:][gb])[0, 1]) < 0.1
    assert d.swapped.mean() == pytest.approx(MEDIAPIPE_POSE2SIM.swap_rate, abs=0.03)
    # the real detector always reports (a hidden joint with low confidence); a swapped frame's labels can
    # point at a joint outside the image
    assert not d.missing[~d.swapped].any()
    with pytest.raises(ValueError, match="noise model"):
        DetectorNoise(model="laplace")


@pytest.mark.slow
def test_measurement_through_triangulation_recovers_a_studio_detector():
    """measure_detector_error (what measured the real detector) on a studio with known errors."""
    params = MEDIAPIPE_POSE2SIM.replace(tail_nu=3.0, swap_rate=0.05)
    studio = SyntheticStudio(n_cameras=4, fps=60.0, duration_s=5.0, seed=4,
                             noise=DetectorNoise.real_detector(params), time_offsets_ms=None)
    fit = measure_detector_error(studio.rig, studio.keypoints2d())
    st = fit.stats
    # the instrument's own bias (tails thinned, scale widened by the other views) is what --calibrate corrects
    assert st.sigma_rel == pytest.approx(params.sigma_rel * _mean_joint_scale(params), rel=0.35)
    assert params.tail_nu * 0.9 < st.tail_nu < params.tail_nu * 1.6
    assert st.rho == pytest.approx(params.rho(60.0), abs=0.06)
    assert st.bias_rel == pytest.approx(params.bias_rel, rel=0.3)
    assert st.joint_scale["foot"] > st.joint_scale["shoulder"]
    assert fit.swap_rate == pytest.approx(studio.detections.swapped.mean(), abs=0.02)
    assert 1.2 < fit.leverage_factor < 1.4  # four views: sqrt(8 / 5) = 1.26


def test_synth_person_noise_flag(tmp_path):
    assert main(["synth", "person", "--noise", "real", "--seconds", "2", "--out", str(tmp_path / "r")]) == 0
    assert main(["synth", "person", "--seconds", "2", "--out", str(tmp_path / "g")]) == 0
    real = Keypoints2D.load(tmp_path / "r" / "keypoints2d.npz").keypoints[..., 2]
    gauss = Keypoints2D.load(tmp_path / "g" / "keypoints2d.npz").keypoints[..., 2]
    # the measured confidences (median 0.99, a long low tail) vs the gaussian model's 0.85 +- 0.07
    assert np.nanmedian(real) > 0.95 and np.nanmedian(gauss) < 0.9
    assert np.nanquantile(real, 0.02) < 0.6
    with pytest.raises(SystemExit) as bad:
        main(["synth", "person", "--noise", "laplace", "--out", str(tmp_path / "x")])
    assert bad.value.code == 2


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_real_demo_still_measures_what_the_model_was_fitted_to(shared_data):
    """The measurement the stored parameters rest on (MEDIAPIPE_POSE2SIM's comment), redone on the real demo."""
    from calibration.rigfile import load_rig
    from tests.real_keypoints import pose2sim_keypoints

    root = shared_data / "pose2sim-demo-single"
    kp = pose2sim_keypoints(root, [v.stem for v in sorted((root / "videos").glob("*.mp4"))])
    st = measure_detector_error(load_rig(root / "calibration" / "Calib.qca.txt"), kp).stats
    assert st.sigma_rel == pytest.approx(0.0086, rel=0.15)
    assert st.tail_nu == pytest.approx(2.59, rel=0.15)
    assert st.tau_ms == pytest.approx(123, rel=0.25)
    assert st.bias_rel == pytest.approx(0.0141, rel=0.2)
    assert st.bias_rel > st.sigma_rel  # the constant per camera-joint offset outweighs the noise scale
    assert st.joint_scale["shoulder"] < st.joint_scale["foot"]
