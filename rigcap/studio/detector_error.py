"""A real 2D detector's errors as a model: the measured parameters, in one place, and the generator.

Why: the studio's old detector model (``DetectorNoise(model="gaussian")``) is
independent Gaussian pixel noise plus rare gross outliers, which a robust
triangulator handles almost perfectly; a real detector (MediaPipe on real
video) errs differently, and a benchmark on the old model says nothing about
real recordings.  Measured on the Pose2Sim demo
(:func:`rigcap.studio.noise_fit.measure_detector_error`, printed by
``benchmarks/fit_detector_noise.py``), its errors are

* **proportional to the person's size in the image** (a pose model works on a
  crop of the person): ``sigma = sigma_rel x body size px``, the body size
  being ``focal x H / depth`` (:func:`body_size_px`);
* **different per joint** (:data:`JOINT_GROUPS`: face, shoulders, ... feet);
* **larger at low confidence**: ``x (1 + conf_gain (1 - c)^2)``;
* **correlated in time**: an AR(1) process with time constant ``tau_ms``;
* **heavy-tailed**: Student-t with ``tail_nu`` degrees of freedom (a Gaussian
  copula of the AR(1) process, so the marginal is exactly t and the
  correlation of its normal scores exactly the AR(1)'s), capped at
  ``tail_cap`` scale units;
* **biased per camera and joint**: a constant offset (rms ``bias_rel`` x body
  size per axis) that stays for the whole recording -- the detector's idea of
  a hip centre differs from the other cameras' and does not average out.

Confidences follow the measured distribution (:attr:`RealDetectorError.conf_quantiles`),
correlated in time; the occluded joints take its low end (the real detector
keeps reporting a hidden joint, with a low confidence): with a fraction ``p``
of the views occluded, an occluded view's probability is scaled into
``[0, p]`` and a visible one's into ``[p, 1]``, so the distribution over all
views stays the measured one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from scipy import special
from scipy.signal import lfilter

# Joint groups by name: the first group whose words a joint name contains (order matters: "foot_index"
# is a foot, not a hand; a skeleton's "head" top and "neck" take the face's and shoulders' values).
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "foot": ("heel", "toe", "foot"),
    "hand": ("pinky", "index", "thumb", "hand"),
    "face": ("nose", "eye", "ear", "mouth", "head"),
    "shoulder": ("shoulder", "neck"),
    "elbow": ("elbow",),
    "wrist": ("wrist",),
    "hip": ("hip", "pelvis"),
    "knee": ("knee",),
    "ankle": ("ankle",),
}


def joint_group(name: str) -> str:
    """The :data:`JOINT_GROUPS` key of a joint name (``"other"`` when none fits)."""
    low = name.lower()
    for group, words in JOINT_GROUPS.items():
        if any(w in low for w in words):
            return group
    return "other"


@dataclass(frozen=True)
class RealDetectorError:
    """Parameters of the real-detector error model (see the module docstring); units in the names.

    ``sigma_rel``: Student-t scale per image axis at confidence 1 for a joint of
    scale 1, as a fraction of the body size in px.  ``joint_scale``: per
    :data:`JOINT_GROUPS` group, a factor on that (missing groups: 1).
    ``conf_quantiles``: the confidence at probability levels
    ``conf_levels`` (the measured distribution, interpolated).
    ``conf_tau_ms``: the confidences' own AR(1) time constant.
    ``swap_rate``: left/right-swapped camera-frames (drawn as the studio's
    other model draws them); gross errors are the t tails (no separate
    outlier process: the fit sees every view, far ones included).
    ``tail_cap``: largest error, in scale units (a detector's point stays on
    or near the person).
    """

    sigma_rel: float
    joint_scale: Mapping[str, float]
    conf_gain: float
    tau_ms: float
    tail_nu: float
    bias_rel: float
    conf_levels: tuple[float, ...]
    conf_quantiles: tuple[float, ...]
    conf_tau_ms: float
    swap_rate: float
    tail_cap: float = 30.0
    source: str = ""

    def replace(self, **changes) -> "RealDetectorError":
        return replace(self, **changes)

    def scale_of(self, joint_names: Sequence[str]) -> np.ndarray:
        """(J,) per-joint factor from :attr:`joint_scale`."""
        return np.array([float(self.joint_scale.get(joint_group(n), 1.0)) for n in joint_names])

    def rho(self, fps: float, tau_ms: float | None = None) -> float:
        """Lag-1 correlation of the AR(1) process at this frame rate."""
        tau = self.tau_ms if tau_ms is None else tau_ms
        return float(np.exp(-1000.0 / (float(fps) * tau))) if tau > 0 else 0.0

    def conf_factor(self, conf: np.ndarray) -> np.ndarray:
        """Error scale factor of a view with this confidence: ``1 + conf_gain (1 - c)^2``."""
        d = 1.0 - np.clip(conf, 0.0, 1.0)
        return 1.0 + self.conf_gain * d * d


# The measured values.  Source: rigcap's MediaPipe detector (``mediapipe``: video mode, frames shrunk to
# 960 px) on the four 60 fps videos of ../shared/data/pose2sim-demo-single (Pose2Sim Demo_SinglePerson,
# 100 frames, a person walking, body size 615-696 px), residuals against rigcap's triangulation through
# the Qualisys calibration, leverage-corrected (x1.27): 13 053 views of 3 294 points seen by >= 3 cameras.
# Measured there: t scale 0.0086 body sizes (5.8 px for a 670 px person), nu 2.59, confidence gain 7.1,
# lag-1 correlation 0.874 at 60 fps (123 ms), per camera-joint bias rms 0.0141 (9.4 px: larger than the
# noise scale), largest error 84 scale units, 9 % of camera-frames left/right swapped; the joint scales
# and confidence quantiles below.  Measuring through a triangulation thins the tails and widens the scale
# (every residual holds a little of the other views' errors), so the scalar parameters below are those
# that, generated in the studio (4 cameras, 60 fps) and measured the same way, give the real numbers back
# (`benchmarks/fit_detector_noise.py --calibrate 2`, two steps of noise_fit.calibrated_model from the
# measured values: studio then measures 0.0088, 2.60, 6.93, 121 ms, 0.0142).
MEDIAPIPE_POSE2SIM = RealDetectorError(
    sigma_rel=0.0059,
    joint_scale={"ankle": 1.04, "elbow": 1.06, "face": 1.06, "foot": 1.18, "hand": 0.90, "hip": 0.88,
                 "knee": 0.99, "shoulder": 0.79, "wrist": 0.92},
    conf_gain=8.6,
    tau_ms=174.0,
    tail_nu=1.81,
    bias_rel=0.0158,
    conf_levels=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
    conf_quantiles=(0.161, 0.190, 0.323, 0.505, 0.733, 0.850, 0.916, 0.953, 0.975, 0.9928, 0.9987, 0.99958,
                    0.99982, 0.99991, 0.999955, 0.999998),
    conf_tau_ms=3325.0,
    swap_rate=0.09,
    tail_cap=84.0,
    source="rigcap mediapipe on pose2sim-demo-single (4 cameras, 100 frames at 60 fps), Qualisys calibration",
)


def body_size_px(focal_px: np.ndarray, extrinsics: np.ndarray, points: np.ndarray, joint_names: Sequence[str],
                 height_m: float | None = None) -> np.ndarray:
    """(C, F) the person's size in each camera's image: ``focal x H / depth`` px.

    ``H`` is the person's nose-to-mid-ankle distance in 3D (median over the
    frames: every skeleton here has those joints, unlike a head top), or
    ``height_m``; depth is that of the joints' centroid.  Unlike a 2D box
    height it does not shrink in a squat or turn with the camera.
    ``focal_px`` (C,), ``extrinsics`` (C, 3, 4), ``points`` (F, J, 3) or
    (C, F, J, 3) (each camera's own instants).
    """
    pts = np.asarray(points, float)
    names = list(joint_names)
    if height_m is None:
        nose, la, ra = names.index("nose"), names.index("left_ankle"), names.index("right_ankle")
        h = np.linalg.norm(pts[..., nose, :] - 0.5 * (pts[..., la, :] + pts[..., ra, :]), axis=-1)
        height_m = float(np.nanmedian(h))
    with np.errstate(invalid="ignore"):
        centroid = np.nanmean(pts, axis=-2)  # (F, 3) or (C, F, 3)
    ext = np.asarray(extrinsics, float)
    if centroid.ndim == 2:
        depth = np.einsum("ck,fk->cf", ext[:, 2, :3], centroid) + ext[:, 2, 3][:, None]
    else:
        depth = np.einsum("ck,cfk->cf", ext[:, 2, :3], centroid) + ext[:, 2, 3][:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(depth > 0, np.asarray(focal_px, float)[:, None] * height_m / depth, np.nan)


def ar1_normal(rng: np.random.Generator, shape: tuple, rho: float, axis: int = 1) -> np.ndarray:
    """Standard normal samples, an AR(1) process of lag-1 correlation ``rho`` along ``axis`` (stationary)."""
    eps = rng.standard_normal(shape)
    if rho <= 0:
        return eps
    eps = np.moveaxis(eps, axis, 0)
    eps[1:] *= np.sqrt(1.0 - rho * rho)
    z = lfilter([1.0], [1.0, -rho], eps, axis=0)
    return np.moveaxis(z, 0, axis)


def student_t_from_normal(z: np.ndarray, nu: float, cap: float) -> np.ndarray:
    """Gaussian copula: standard normal ``z`` -> Student-t(``nu``) quantile of the same probability, |.| <= cap."""
    if nu >= 1e6:
        return np.clip(z, -cap, cap)
    # symmetric: map -|z| (lower tail, no loss of precision near probability 1) and restore the sign
    t = special.stdtrit(nu, special.ndtr(-np.abs(z)))
    return np.sign(z) * np.minimum(-t, cap)


def real_confidences(params: RealDetectorError, rng: np.random.Generator, shape: tuple, fps: float,
                     occluded: np.ndarray | None = None) -> np.ndarray:
    """(C, F, J) confidences from the measured distribution, AR(1)-correlated over frames (axis 1).

    Occluded joints (``occluded`` (C, F, J) bool) take its low end (module docstring).
    """
    u = special.ndtr(ar1_normal(rng, shape, params.rho(fps, params.conf_tau_ms)))
    if occluded is not None and occluded.any():
        p = float(np.mean(occluded))
        u = np.where(occluded, u * p, p + u * (1.0 - p))
    return np.interp(u, params.conf_levels, params.conf_quantiles)


def real_pixel_errors(params: RealDetectorError, rng: np.random.Generator, conf: np.ndarray, size_px: np.ndarray,
                      joint_names: Sequence[str], fps: float) -> np.ndarray:
    """(C, F, J, 2) pixel errors of the model for confidences ``conf`` (C, F, J) and body sizes ``size_px`` (C, F).

    ``bias + scale x t(AR(1))`` with ``scale = sigma_rel x size x joint factor
    x conf factor``; the bias is constant per camera, joint and axis (in body
    sizes: it scales with the person's size as they walk).
    """
    n_c, n_f, n_j = conf.shape
    z = ar1_normal(rng, (n_c, n_f, n_j, 2), params.rho(fps))
    t = student_t_from_normal(z, params.tail_nu, params.tail_cap)
    bias = rng.standard_normal((n_c, 1, n_j, 2)) * params.bias_rel
    scale = params.sigma_rel * params.scale_of(joint_names)[None, None, :] * params.conf_factor(np.nan_to_num(conf, nan=1.0))
    return (bias + scale[..., None] * t) * np.asarray(size_px, float)[:, :, None, None]
