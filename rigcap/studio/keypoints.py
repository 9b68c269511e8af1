"""2D keypoints with the errors real detectors make, and the truth about each one.

:func:`synthesize_keypoints` turns 3D joints into what each camera's 2D pose
model would report, in the 2D keypoint file format (:class:`Keypoints2D`):

* **capture time**: camera ``c`` grabs frame ``f`` at
  ``f / fps + offset_c + jitter_cf`` seconds (``timestamps_ns``).  Its 2D
  joints are the person *at that instant* -- evaluated exactly from the
  motion when a :class:`~rigcap.studio.motion.PersonMotion` is given,
  else by cubic interpolation of ``points3d`` over frame times -- so a time
  offset is physically consistent (a fast wrist really is elsewhere).  With no
  offsets and no jitter the joints are ``points3d[f]`` exactly.
* **visibility**: joints behind the camera, outside the field of view or the
  image are NaN (not "missing": the detector could not have seen them);
* **occlusion**: a joint whose line of sight passes through another body part
  (capsule model of the body, :mod:`rigcap.studio.body`), or a face point
  on the far side of the head, is dropped with probability ``occluded_drop``
  (capped so the total never exceeds ``missing_rate``); when still reported
  it has lower confidence and ``occluded_sigma_scale`` x the pixel noise;
* **random misses** make up the rest of ``missing_rate`` (fraction of the
  in-image joints reported as NaN);
* **pixel noise**: ``model="gaussian"`` (the default): Gaussian, ``pixel_sigma``
  px per axis.  ``model="real"`` (:meth:`DetectorNoise.real_detector`):
  the errors measured on a real detector (:mod:`rigcap.studio.detector_error`,
  parameters ``real``): proportional to the person's size in the image, per
  joint, larger at low confidence, correlated in time, Student-t tails, a
  constant per camera-joint bias; confidences from the measured distribution
  (occluded joints from its low end); no misses beyond occlusion (``missing_rate``
  0: the real detector always guesses) and no separate outliers (the tails);
* **gross outliers**: ``outlier_rate`` of the reported joints are displaced by
  ``outlier_px`` (uniform range, random direction), with middling confidence;
* **left/right swaps**: ``swap_rate`` of the camera-frames have every left
  label exchanged with its right twin (``HALPE26.swap_permutation()``);
* **dropped frames**: ``drop_rate`` of the camera-frames are all NaN.

Confidences: ``conf_mean`` +- ``conf_sigma`` for clean joints, about 0.35
lower for occluded ones, uniform 0.15-0.75 for outliers; ``DetectorNoise.none()``
gives confidence 1 and positions exactly ``rig.project(points3d)``.

Float precision: ``Keypoints2D`` stores float32 (about 6e-5 px resolution at
x = 1280); :attr:`SyntheticKeypoints.pixels` keeps the same positions in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from calibration.rig import Rig
from rigcap.studio.body import hidden_joints
from rigcap.studio.detector_error import (MEDIAPIPE_POSE2SIM, RealDetectorError, body_size_px, real_confidences,
                                          real_pixel_errors)
from rigcap.studio.studio_rig import visible_in_image
from triangulate.formats import Keypoints2D
from triangulate.skeletons import HALPE26, Skeleton


@dataclass
class DetectorNoise:
    """How wrong the simulated 2D detector is (defaults: a decent real-time model)."""

    pixel_sigma: float = 2.0  # px, per axis, for clearly visible joints
    missing_rate: float = 0.10  # fraction of in-image joints reported as NaN
    outlier_rate: float = 0.03  # fraction of reported joints that are far off
    outlier_px: tuple[float, float] = (40.0, 200.0)  # outlier displacement range, px
    swap_rate: float = 0.02  # fraction of camera-frames with left/right labels swapped
    conf_mean: float = 0.85
    conf_sigma: float = 0.07
    occluded_drop: float = 0.5  # P(missing | occluded), capped by missing_rate
    occluded_sigma_scale: float = 2.0
    time_jitter_ms: float = 0.5  # per-frame capture-time jitter (std), ms
    occlusion: bool = True  # model self-occlusion at all
    model: str = "gaussian"  # pixel errors: "gaussian" (pixel_sigma) or "real" (the measured model, ``real``)
    real: RealDetectorError = MEDIAPIPE_POSE2SIM  # parameters of model "real"

    def __post_init__(self) -> None:
        if self.model not in NOISE_MODELS:
            raise ValueError(f"noise model must be one of {', '.join(NOISE_MODELS)}, got {self.model!r}")

    @classmethod
    def real_detector(cls, params: RealDetectorError = MEDIAPIPE_POSE2SIM, **changes) -> "DetectorNoise":
        """The real detector's errors as measured (:data:`~rigcap.studio.detector_error.MEDIAPIPE_POSE2SIM`).

        No random misses (MediaPipe reports every joint, a hidden one with a
        low confidence), no outliers beyond the t tails, its swap rate.
        """
        base = dict(model="real", real=params, pixel_sigma=0.0, missing_rate=0.0, outlier_rate=0.0,
                    swap_rate=params.swap_rate, occluded_drop=0.0, occluded_sigma_scale=1.0)
        base.update(changes)
        return cls(**base)

    @classmethod
    def named(cls, name: str, **changes) -> "DetectorNoise":
        """A model by name: ``gaussian`` (the defaults) or ``real`` (:meth:`real_detector`)."""
        if name not in NOISE_MODELS:
            raise ValueError(f"noise model must be one of {', '.join(NOISE_MODELS)}, got {name!r}")
        return cls.real_detector(**changes) if name == "real" else cls(**changes)

    @classmethod
    def none(cls) -> "DetectorNoise":
        """A perfect detector: exact projections, confidence 1, nothing missing, no jitter."""
        return cls(pixel_sigma=0.0, missing_rate=0.0, outlier_rate=0.0, outlier_px=(0.0, 0.0), swap_rate=0.0,
                   conf_mean=1.0, conf_sigma=0.0, occluded_drop=0.0, occluded_sigma_scale=1.0,
                   time_jitter_ms=0.0, occlusion=False)

    def replace(self, **changes) -> "DetectorNoise":
        return replace(self, **changes)


NOISE_MODELS = ("gaussian", "real")


@dataclass
class SyntheticKeypoints:
    """Simulated detections plus the ground truth about every one of them.

    Label-space masks (about what is reported under joint label j):
    ``inlier`` (reported, not an outlier, and the right joint -- swapped
    left/right labels are not inliers, centre joints stay inliers),
    ``outlier``, ``missing`` (true joint in the image but not reported; dropped
    frames excluded).  Truth-space masks (about the true joint j): ``in_image``,
    ``occluded``.  Per camera-frame: ``swapped``, ``dropped``.
    """

    keypoints: Keypoints2D  # (C, F, J, 3) float32, NaN where not reported
    pixels: np.ndarray  # (C, F, J, 2) float64: the reported positions, NaN where not reported
    true_pixels: np.ndarray  # (C, F, J, 2) float64: exact projection at capture time, NaN outside image
    points3d_sampled: np.ndarray  # (C, F, J, 3): the 3D truth at each camera's capture instant
    inlier: np.ndarray  # (C, F, J) bool
    outlier: np.ndarray  # (C, F, J) bool
    missing: np.ndarray  # (C, F, J) bool
    swapped: np.ndarray  # (C, F) bool
    dropped: np.ndarray  # (C, F) bool
    in_image: np.ndarray  # (C, F, J) bool
    occluded: np.ndarray  # (C, F, J) bool
    timestamps_ns: np.ndarray  # (C, F) int64, relative to the start
    time_offsets_ms: np.ndarray  # (C,) each camera's constant offset
    fps: float = 30.0
    noise: DetectorNoise = field(default_factory=DetectorNoise)

    def save_truth(self, path) -> None:
        """Write the ground-truth masks (and exact positions) to an ``.npz``."""
        np.savez_compressed(path, inlier=self.inlier, outlier=self.outlier, missing=self.missing,
                            swapped=self.swapped, dropped=self.dropped, in_image=self.in_image,
                            occluded=self.occluded, true_pixels=self.true_pixels,
                            points3d_sampled=self.points3d_sampled, timestamps_ns=self.timestamps_ns,
                            time_offsets_ms=self.time_offsets_ms,
                            camera_names=np.array(self.keypoints.camera_names))


def _streams(seed: int, n: int):
    return [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0x2D]).spawn(n)]


def _resolve_offsets(time_offsets_ms, n_cams: int, rng) -> np.ndarray:
    if time_offsets_ms is None:
        return np.zeros(n_cams)
    arr = np.asarray(time_offsets_ms, float)
    if arr.ndim == 0:  # a scalar: random offsets within +-value ms
        return rng.uniform(-float(arr), float(arr), n_cams)
    if arr.shape != (n_cams,):
        raise ValueError(f"time_offsets_ms must be a number or have one value per camera ({n_cams}), got shape {arr.shape}")
    return arr


def sample_times(n_frames: int, fps: float, offsets_ms: np.ndarray, jitter_ms: float, rng) -> np.ndarray:
    """(C, F) capture times in seconds: nominal frame time + camera offset + jitter."""
    nominal = np.arange(n_frames) / float(fps)
    jitter = np.clip(rng.normal(0, 1, (offsets_ms.size, n_frames)), -3, 3) * jitter_ms if jitter_ms > 0 else 0.0
    return nominal[None, :] + (offsets_ms[:, None] + jitter) * 1e-3


def synthesize_keypoints(rig: Rig, points3d: np.ndarray, noise: DetectorNoise | None = None, seed: int = 0,
                         time_offsets_ms=None, drop_rate: float = 0.0, fps: float = 30.0, motion=None,
                         skeleton: Skeleton = HALPE26, capture_times_s: np.ndarray | None = None,
                         hidden_by_others: np.ndarray | None = None) -> SyntheticKeypoints:
    """Simulate every camera's 2D detections of ``points3d`` (F, J, 3).

    ``time_offsets_ms``: None (all zero), a number (random offsets within
    +- that many ms, drawn from ``seed``) or one value per camera.
    ``motion``: optional callable ``t_seconds (C, F) -> (C, F, J, 3)`` (e.g.
    ``PersonMotion.joints``) for exact positions at the capture instants.
    ``capture_times_s`` (C, F): use these capture instants instead of drawing
    offsets and jitter (several people seen by one camera share its clock).
    ``hidden_by_others`` (C, F, J) bool: joints hidden behind *other* people,
    treated like self-occlusion (see :mod:`rigcap.studio.crowd`).
    """
    noise = noise or DetectorNoise()
    points3d = np.asarray(points3d, float)
    if points3d.ndim != 3 or points3d.shape[-1] != 3:
        raise ValueError(f"points3d must have shape (frames, joints, 3), got {points3d.shape}")
    n_f, n_j = points3d.shape[:2]
    if n_j != skeleton.n_joints:
        raise ValueError(f"points3d has {n_j} joints; skeleton {skeleton.name} has {skeleton.n_joints}")
    n_c = len(rig)
    (r_time, r_miss, r_noise, r_out, r_swap, r_drop, r_conf, r_real) = _streams(seed, 8)

    offsets = _resolve_offsets(time_offsets_ms, n_c, r_time)
    if capture_times_s is None:
        times = sample_times(n_f, fps, offsets, noise.time_jitter_ms, r_time)  # (C, F)
    else:
        times = np.asarray(capture_times_s, float).reshape(n_c, n_f)
    timestamps_ns = np.round(times * 1e9).astype(np.int64)
    exact = np.allclose(times, np.arange(n_f)[None] / float(fps), rtol=0, atol=1e-12)
    if exact:
        sampled = np.broadcast_to(points3d, (n_c,) + points3d.shape).copy()
    elif motion is not None:
        sampled = np.asarray(motion(times), float).reshape(n_c, n_f, n_j, 3)
    else:
        sampled = _interpolate(points3d, fps, times)

    true_px = np.full((n_c, n_f, n_j, 2), np.nan)
    in_image = np.zeros((n_c, n_f, n_j), bool)
    occluded = np.zeros((n_c, n_f, n_j), bool)
    for ci, cam in enumerate(rig.cameras):
        uv = cam.project(sampled[ci])
        vis = visible_in_image(cam, sampled[ci])
        true_px[ci][vis] = uv[vis]
        in_image[ci] = vis
        if noise.occlusion:
            occluded[ci] = hidden_joints(cam.center, sampled[ci]) & vis
    if hidden_by_others is not None:
        occluded |= np.asarray(hidden_by_others, bool) & in_image

    # ---- which in-image joints the detector misses
    occ_frac = occluded.sum() / max(in_image.sum(), 1)
    p_occ = min(noise.occluded_drop, noise.missing_rate / occ_frac) if occ_frac > 0 else 0.0
    p_rand = max(0.0, (noise.missing_rate - p_occ * occ_frac) / max(1e-9, 1.0 - occ_frac))
    u = r_miss.random((n_c, n_f, n_j))
    miss_phys = in_image & np.where(occluded, u < p_occ, u < p_rand)
    reported = in_image & ~miss_phys

    # ---- positions: noise, then gross outliers
    px = true_px.copy()
    if noise.model == "real":
        conf_real = real_confidences(noise.real, r_real, (n_c, n_f, n_j), fps, occluded)
        size = body_size_px(np.array([0.5 * (c.matrix[0, 0] + c.matrix[1, 1]) for c in rig.cameras]),
                            np.array([np.hstack([c.R, c.tvec[:, None]]) for c in rig.cameras]), sampled,
                            skeleton.joint_names)
        px += real_pixel_errors(noise.real, r_real, conf_real, size, skeleton.joint_names, fps)
    elif noise.pixel_sigma > 0:
        sigma = np.where(occluded, noise.pixel_sigma * noise.occluded_sigma_scale, noise.pixel_sigma)
        px += r_noise.normal(0, 1, px.shape) * sigma[..., None]
    outlier_phys = reported & (r_out.random((n_c, n_f, n_j)) < noise.outlier_rate)
    if outlier_phys.any():
        mag = r_out.uniform(*noise.outlier_px, outlier_phys.sum())
        ang = r_out.uniform(0, 2 * np.pi, outlier_phys.sum())
        px[outlier_phys] = true_px[outlier_phys] + np.stack([np.cos(ang), np.sin(ang)], -1) * mag[:, None]

    # ---- confidences
    if noise.model == "real":
        conf = np.where(outlier_phys, r_conf.uniform(0.15, 0.75, (n_c, n_f, n_j)), conf_real)
    elif noise.conf_sigma > 0 or noise.conf_mean < 1:
        conf = np.clip(r_conf.normal(noise.conf_mean, noise.conf_sigma, (n_c, n_f, n_j)), 0.3, 0.99)
        conf_occ = np.clip(r_conf.normal(noise.conf_mean - 0.35, 0.12, (n_c, n_f, n_j)), 0.05, 0.9)
        conf = np.where(occluded, conf_occ, conf)
        conf = np.where(outlier_phys, r_conf.uniform(0.15, 0.75, (n_c, n_f, n_j)), conf)
    else:
        conf = np.ones((n_c, n_f, n_j))
    px[~reported] = np.nan
    conf = np.where(reported, conf, np.nan)

    # ---- left/right swaps of whole camera-frames (label j shows joint perm[j])
    swapped = r_swap.random((n_c, n_f)) < noise.swap_rate
    perm = skeleton.swap_permutation()
    px = np.where(swapped[..., None, None], px[:, :, perm], px)
    conf = np.where(swapped[..., None], conf[:, :, perm], conf)
    outlier = np.where(swapped[..., None], outlier_phys[:, :, perm], outlier_phys)
    reported_lbl = np.where(swapped[..., None], reported[:, :, perm], reported)
    lr = perm != np.arange(n_j)
    wrong_joint = swapped[..., None] & lr[None, None, :]

    # ---- dropped frames: the camera delivered nothing
    dropped = r_drop.random((n_c, n_f)) < drop_rate
    px[dropped] = np.nan
    conf[dropped] = np.nan
    reported_lbl &= ~dropped[..., None]
    outlier &= ~dropped[..., None]

    inlier = reported_lbl & ~outlier & ~wrong_joint
    missing = in_image & ~reported_lbl & ~dropped[..., None]
    kp = np.concatenate([px, conf[..., None]], axis=-1)
    kp[~reported_lbl] = np.nan
    keypoints = Keypoints2D(kp.astype(np.float32), rig.names, list(skeleton.joint_names), timestamps_ns, float(fps))
    return SyntheticKeypoints(
        keypoints=keypoints, pixels=np.where(reported_lbl[..., None], px, np.nan), true_pixels=true_px,
        points3d_sampled=sampled, inlier=inlier, outlier=outlier, missing=missing, swapped=swapped,
        dropped=dropped, in_image=in_image, occluded=occluded, timestamps_ns=timestamps_ns,
        time_offsets_ms=offsets, fps=float(fps), noise=noise,
    )


def _interpolate(points3d: np.ndarray, fps: float, times: np.ndarray) -> np.ndarray:
    """points3d (F, J, 3) sampled at k / fps -> values at ``times`` (C, F), cubic, clamped."""
    n_f = points3d.shape[0]
    grid = np.arange(n_f) / float(fps)
    t = np.clip(times, grid[0], grid[-1])
    if n_f < 4:
        flat = points3d.reshape(n_f, -1)
        out = np.stack([np.interp(t.ravel(), grid, flat[:, k]) for k in range(flat.shape[1])], -1)
        return out.reshape(times.shape + points3d.shape[1:])
    from scipy.interpolate import CubicSpline

    return CubicSpline(grid, points3d, axis=0)(t)
