"""The triangulation engine: 2D keypoints of C cameras -> robust 3D joints.

One pipeline serves the offline command and the live fusion node, every step
one batch over frames x joints x cameras:

1. undistort every keypoint, all cameras at once (:class:`triangulate.lens.LensBatch`);
2. drop views below ``min_confidence``; optionally set the outlier
   threshold from the detector's noise (``auto_threshold``);
3. choose the agreeing views of every joint and fit them
   (:mod:`triangulate.robust`, :mod:`triangulate.dlt`);
4. in frames where a camera then disagrees on many left/right joints, repair
   left/right swaps (whole body or one limb, :mod:`triangulate.swap`) and
   refit those frames; a frame whose 3D left and right sides trade places
   against its neighbours is relabelled (two of four cameras swapped);
5. with a temporal window, refit the points that lost a view or rest on two
   views with the neighbouring frames' median as a vote;
6. optionally refine each point by reprojection error through the full lens
   model (:mod:`triangulate.refine`);
7. optionally fill short gaps and low-pass (:mod:`triangulate.filters`).

:func:`triangulate` takes a :class:`~triangulate.formats.Keypoints2D` (cameras
matched to the rig by name) or a plain array, and returns a
:class:`TriangulationResult` with :class:`~triangulate.formats.Points3D` and
the per-view inlier mask.  :class:`Triangulator` holds the camera constants
for repeated calls (the live path calls :meth:`Triangulator.frame` once per
instant).

Reported reprojection errors are pixel distances through the full camera
model (distortion included), averaged over the views used for that joint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from calibration import Camera, Rig
from rigcap.errors import RigcapError
from triangulate.dlt import LinearTriangulator, Views, sum_last
from triangulate.filters import INTERPOLATIONS, smooth_points
from triangulate.formats import Keypoints2D, Points3D
from triangulate.heap import keep_freed_memory
from triangulate.lens import LensBatch
from triangulate.optimize import OptimizeConfig, OptimizeResult, optimize_points
from triangulate.refine import refine_points
from triangulate.robust import (LOSS_SCALE, ROBUST_LOSSES, ViewSelection, apply_prior, auto_threshold_px, select_views,
                               soft_refit)
from triangulate.skeletons import Skeleton, skeleton_for_joints
from triangulate.swap import detect_swap_states, permute_joints, swap_candidates, swap_setup


class TriangulationInputError(RigcapError, ValueError):
    """Keypoints that do not fit the rig (cameras, shapes), worded for the user."""


@dataclass
class TriangulationConfig:
    """Settings of :func:`triangulate`; units in the names (px, Hz, frames).

    ``threshold_px``: a view whose reprojection error exceeds this is an
    outlier; with ``auto_threshold`` it is the floor of a threshold of three
    times the detector noise estimated from the data
    (:func:`triangulate.robust.auto_threshold_px`; for coarse detectors on
    large images).  ``min_confidence``: detector confidence below which a keypoint
    counts as missing.  ``min_views``: fewest agreeing views for a 3D point.
    ``weight_by_confidence``: weight each view's equations by its confidence.
    ``temporal_window``: frames on each side whose (median) points act as a
    prior vote in view selection, settling ties such as two views against two
    (0: every frame on its own); ``prior_radius_m`` scales that vote; a
    point resting on only two views farther than ``prior_gate_m`` from its
    prior is dropped (two views cannot expose an outlier on the epipolar line).
    ``swap_repair``: fix left/right label swaps (needs >= 3 cameras and a
    skeleton with left/right joints).
    ``robust_loss``: after the views are chosen, every view within
    ``gross_factor`` x the threshold is fitted again with a soft weight
    (``cauchy``, ``huber``; ``none``: keep the hard choice), so a real
    detector's honest but heavy-tailed errors are down-weighted instead of
    switched off and on from frame to frame
    (:func:`triangulate.robust.soft_refit`); its scale ``robust_scale_px``
    defaults to the loss's constant (:data:`triangulate.robust.LOSS_SCALE`) times the detector noise
    (the estimated noise with ``auto_threshold``, else a third of the threshold);
    with ``soft_prior`` (and a temporal window) the neighbouring frames' median
    votes in it like one more view, at full cost beyond ``prior_gate_m``
    (the soft fit's two starts are often two views against two, or one
    against one with a third agreeing with both, and the choice otherwise
    flips from frame to frame: on the real Pose2Sim demo the mean std of
    eight limb lengths 14.2 -> 13.0 mm).
    ``optimize``: after everything above, solve all frames together
    (reprojection + smoothness + one length per bone from the data,
    :func:`triangulate.optimize.optimize_points`; needs the frame rate;
    ``optimize_config`` its weights).  Off here, since the engine is also the
    live per-instant path; ``rigcap triangulate`` turns it on when the frame
    rate is known (``--no-optimize``).
    ``refine``: Gauss-Newton polish through
    the full lens model (off by default: after the pixel-weighted linear fit
    on undistorted points it moves the synthetic benchmark by < 0.02 mm and
    costs more than everything else together).  ``filter_hz``: zero-phase Butterworth cutoff (None:
    no filter; needs the frame rate).  ``max_gap``: interpolate interior gaps
    up to this many frames (0: none).
    """

    threshold_px: float = 15.0
    min_confidence: float = 0.3
    min_views: int = 2
    weight_by_confidence: bool = True
    auto_threshold: bool = False
    temporal_window: int = 2
    prior_radius_m: float = 0.1
    prior_gate_m: float = 0.3
    swap_repair: bool = True
    robust_loss: str = "cauchy"
    robust_scale_px: float | None = None
    gross_factor: float = 3.0
    soft_prior: bool = True
    refine: bool = False
    refine_iterations: int = 3
    optimize: bool = False
    optimize_config: OptimizeConfig | None = None
    filter_hz: float | None = None
    filter_order: int = 4
    max_gap: int = 0
    interpolation: str = "cubic"

    def __post_init__(self) -> None:
        if not self.threshold_px > 0:
            raise ValueError(f"threshold_px must be > 0, got {self.threshold_px}")
        if self.min_views < 2:
            raise ValueError(f"min_views must be >= 2 (a point needs two views), got {self.min_views}")
        if self.filter_hz is not None and not self.filter_hz > 0:
            raise ValueError(f"filter_hz must be > 0 or None, got {self.filter_hz}")
        if self.temporal_window < 0:
            raise ValueError(f"temporal_window must be >= 0 frames, got {self.temporal_window}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0 frames, got {self.max_gap}")
        if self.robust_loss not in ROBUST_LOSSES:
            raise ValueError(f"robust_loss must be one of {', '.join(ROBUST_LOSSES)}, got {self.robust_loss!r}")
        if self.robust_scale_px is not None and not self.robust_scale_px > 0:
            raise ValueError(f"robust_scale_px must be > 0 or None, got {self.robust_scale_px}")
        if not self.gross_factor >= 1:
            raise ValueError(f"gross_factor must be >= 1 (a multiple of the threshold), got {self.gross_factor}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")


@dataclass
class FrameResult:
    """Arrays of :meth:`Triangulator.run` (leading shape ``S`` = frames x joints, or joints)."""

    points: np.ndarray  # (*S, 3) metres
    error_px: np.ndarray  # (*S,) mean reprojection error of the views used
    n_views: np.ndarray  # (*S,) int
    inliers: np.ndarray  # (C, *S) bool
    swapped: np.ndarray  # (C, F) bool (C, 1) for a single frame
    threshold_px: float = float("nan")  # the outlier threshold used (auto_threshold: as estimated)
    noise_px: float = float("nan")  # detector noise estimated by auto_threshold (NaN otherwise)
    swap_state: np.ndarray | None = None  # (C, F, J) int: label j of camera c, frame f was read from joint state[c, f, j]
    optimized: OptimizeResult | None = None  # the spatio-temporal solve's account (config.optimize)


@dataclass
class TriangulationResult:
    points3d: Points3D
    inliers: np.ndarray  # (C, F, J) bool: views used per joint
    swapped: np.ndarray  # (C, F) bool: camera frames whose left/right labels were swapped
    camera_names: list[str]
    raw_points: np.ndarray  # (F, J, 3) before gap filling and filtering
    warnings: list[str] = field(default_factory=list)
    threshold_px: float = float("nan")  # outlier threshold used
    noise_px: float = float("nan")  # detector noise estimate (auto threshold only)
    optimized: OptimizeResult | None = None  # the spatio-temporal solve's account (config.optimize)

    def summary(self) -> dict:
        """Numbers for the command's table (over the raw, unfiltered triangulation)."""
        ok = np.isfinite(self.raw_points).all(-1)
        p = self.points3d
        return {
            "frames": p.n_frames,
            "joints": len(p.joint_names),
            "triangulated_pct": 100.0 * ok.mean() if ok.size else 0.0,
            "mean_error_px": float(np.nanmean(p.reprojection_error)) if ok.any() else float("nan"),
            "mean_views": float(p.n_views[ok].mean()) if ok.any() else float("nan"),
            "swapped_frames": int(self.swapped.sum()),
            "threshold_px": self.threshold_px,
            "noise_px": self.noise_px,
            "per_joint_pct": 100.0 * ok.mean(axis=0) if ok.size else np.zeros(len(p.joint_names)),
            "per_joint_error_px": _nanmean0(np.where(ok, p.reprojection_error, np.nan)),
            "per_joint_views": _nanmean0(np.where(ok, p.n_views.astype(float), np.nan)),
        }


def _nanmean0(a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(a, axis=0) / np.isfinite(a).sum(axis=0)


class Triangulator:
    """Robust triangulation with one fixed set of cameras (in keypoint order).

    ``cameras``: a :class:`~calibration.Rig` or a list of cameras, in the
    order of axis 0 of the keypoints.  ``skeleton`` gives the left/right pairs
    for swap repair (None: no repair).
    """

    def __init__(self, cameras: Rig | Sequence[Camera], config: TriangulationConfig | None = None,
                 skeleton: Skeleton | None = None):
        keep_freed_memory()  # the temporaries of every call reuse freed memory instead of faulting in afresh
        self.cameras = list(cameras)
        self.config = config or TriangulationConfig()
        self.skeleton = skeleton
        self.lin = LinearTriangulator(np.array([np.hstack([c.R, c.tvec[:, None]]) for c in self.cameras]),
                                      np.array([c.matrix for c in self.cameras]))
        self.lens = LensBatch(self.cameras)
        self.permutation, self.swap_hypotheses = swap_setup(skeleton)

    @property
    def n_cameras(self) -> int:
        return len(self.cameras)

    @staticmethod
    def noise_sigma(threshold_px: float, noise_px: float) -> float:
        """Detector noise (px per axis): as estimated (``auto_threshold``), else a third of the threshold."""
        return noise_px if np.isfinite(noise_px) else threshold_px / 3.0

    def robust_scale(self, threshold_px: float, noise_px: float) -> float:
        """Scale (px) of the soft weighting (:func:`soft_scale_px`)."""
        return soft_scale_px(self.config, threshold_px, noise_px)

    def run(self, keypoints: np.ndarray, fps: float | None = None, segments=None, progress=None) -> FrameResult:
        """keypoints (C, F, J, 2|3) pixels [+ confidence], NaN where missing -> :class:`FrameResult` over (F, J).

        The steps of the module docstring, one method each.  ``fps`` is needed
        only by ``config.optimize``; ``segments`` (frame ranges that share
        nothing, e.g. people laid end to end) and ``progress(frames)`` go to
        its solve (:func:`triangulate.optimize.optimize_points`).
        """
        kp = self._checked(keypoints)
        cfg = self.config
        n_cams, n_frames, n_joints = kp.shape[:3]
        obs = self._observe(kp)
        threshold, noise = cfg.threshold_px, float("nan")
        if cfg.auto_threshold:
            threshold, noise = auto_threshold_px(self.lin, obs.views, cfg.threshold_px)
        sel = select_views(self.lin, obs.views, threshold, cfg.min_views)
        state = np.broadcast_to(np.arange(n_joints), (n_cams, n_frames, n_joints))
        if cfg.swap_repair and self.permutation is not None:
            obs.pixels = obs.pixels.copy()  # relabelled in place, with xn, valid, weights and views
            state = self._repair_swaps(obs.xn, obs.valid, obs.weights, obs.pixels, obs.views, sel, threshold)
        swapped = (state != np.arange(n_joints)).any(axis=-1)
        prior = self._temporal_prior(obs.views, sel, threshold, n_frames)
        sel, fit_weights = self._soft_refit(obs.views, sel, threshold, noise, prior)
        opt = self._optimize(obs, sel, threshold, noise, fps, segments, progress)
        points, error = self._reprojection_errors(obs.pixels, sel, fit_weights)
        return FrameResult(points.reshape(n_frames, n_joints, 3), error.reshape(n_frames, n_joints),
                           sel.n_views.reshape(n_frames, n_joints), sel.inliers.reshape(n_cams, n_frames, n_joints),
                           swapped, threshold, noise, state, opt)

    def _checked(self, keypoints) -> np.ndarray:
        """Keypoints as float64 (C, F, J, 2|3); :class:`TriangulationInputError` for a shape or camera count that does not fit."""
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
            raise TriangulationInputError(
                f"keypoints must have shape (cameras, frames, joints, 2 or 3), got {kp.shape}")
        if kp.shape[0] != self.n_cameras:
            raise TriangulationInputError(
                f"keypoints have {kp.shape[0]} cameras on axis 0 but the rig has {self.n_cameras} "
                f"({', '.join(c.name for c in self.cameras)})")
        return kp

    def _observe(self, kp: np.ndarray) -> "_Observations":
        """Step 1-2: undistort every keypoint and drop the views below ``min_confidence``."""
        cfg = self.config
        pixels = kp[..., :2]
        conf = kp[..., 2] if kp.shape[-1] == 3 else np.ones(kp.shape[:3])
        xn = self.lens.undistort(pixels)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(xn[..., 0]) & np.isfinite(xn[..., 1]) & (conf >= cfg.min_confidence)
        weights = np.where(valid, conf if cfg.weight_by_confidence else 1.0, 0.0)
        return _Observations(pixels, xn, valid, weights, _views(xn, valid, weights))

    def _temporal_prior(self, views: Views, sel: ViewSelection, threshold: float, n_frames: int) -> np.ndarray | None:
        """Step 5: the neighbouring frames' median (N, 3) as a vote for the points that lost a view or rest on two.

        ``sel`` is updated in place; returns the prior (None without a temporal window).
        """
        cfg = self.config
        if not cfg.temporal_window or n_frames < 2:
            return None
        prior = neighbour_median(sel.points.reshape(n_frames, -1, 3), cfg.temporal_window).reshape(-1, 3)
        n_valid = views.valid.sum(axis=0)
        # The prior only changes points that lost a view or rest on two.
        redo = (n_valid >= 2) & ((sel.n_views != n_valid) | (sel.n_views <= 2))
        apply_prior(self.lin, views, sel, redo, prior, threshold, cfg.min_views, cfg.prior_radius_m, cfg.prior_gate_m)
        return prior

    def _soft_refit(self, views: Views, sel: ViewSelection, threshold: float, noise: float, prior):
        """The soft robust refit of every non-gross view (``robust_loss``): ``(selection, row weights (C, N))``."""
        cfg = self.config
        if cfg.robust_loss == "none":
            return sel, views.w * sel.inliers
        return soft_refit(self.lin, views, sel.points, self.robust_scale(threshold, noise), cfg.gross_factor * threshold,
                          cfg.robust_loss, all_views=sel.all_views, prior=prior if cfg.soft_prior else None,
                          prior_radius_m=cfg.prior_gate_m)

    def _optimize(self, obs: "_Observations", sel: ViewSelection, threshold: float, noise: float, fps, segments,
                  progress) -> OptimizeResult | None:
        """The spatio-temporal solve over all frames (``config.optimize``); ``sel.points`` replaced by its answer."""
        cfg = self.config
        n_cams, n_frames, n_joints = obs.valid.shape
        if not (cfg.optimize and n_frames >= 3):
            return None
        if not fps:
            raise TriangulationInputError("the spatio-temporal solve (optimize) needs the frame rate")
        bones = self.skeleton.bones if self.skeleton is not None else np.zeros((0, 2), np.intp)
        inliers = sel.inliers.reshape(n_cams, n_frames, n_joints)
        opt = optimize_points(self.lin, obs.xn, np.where(inliers & obs.valid, obs.weights, 0.0),
                              sel.points.reshape(n_frames, n_joints, 3), bones, fps,
                              self.noise_sigma(threshold, noise), cfg.optimize_config, segments, progress)
        sel.points = opt.points.reshape(-1, 3)
        return opt

    def _reprojection_errors(self, pixels: np.ndarray, sel: ViewSelection, fit_weights: np.ndarray):
        """Final points (N, 3) (``refine``: polished through the full lens model) and their mean reprojection error (N,)
        in distorted pixels over the views used."""
        cfg = self.config
        n_cams = pixels.shape[0]
        if cfg.refine:
            px = np.moveaxis(pixels.reshape(n_cams, -1, 2), 0, 1)  # (N, C, 2)
            points, err = refine_points(self.cameras, px, weights=fit_weights.T, points=sel.points,
                                        iterations=cfg.refine_iterations, project=self.lens.project)
            err = err.T
        else:
            points = sel.points
            u, v = self.lens.project_planes(points.T)  # (C, N) each
            err = np.hypot(u - pixels[..., 0].reshape(n_cams, -1), v - pixels[..., 1].reshape(n_cams, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            error = sum_last(np.where(sel.inliers, err, 0.0).T) / sel.n_views
        error[sel.n_views == 0] = np.nan
        return points, error

    def _repair_swaps(self, xn, valid, weights, pixels, views, sel, threshold):
        """Left/right repair per camera and frame, then whole-frame relabelling against the neighbours.

        Inputs (C, F, J, ...) camera-first and ``views`` (of those) are relabelled in place, and ``sel``
        (the view selection over F*J points) updated, for the frames that changed.  Returns the label
        state (C, F, J).
        """
        cfg = self.config
        n_cams, n_frames, n_joints = valid.shape
        if len(self.permutation) != n_joints:
            raise TriangulationInputError(
                f"keypoints have {n_joints} joints but the skeleton {self.skeleton.name!r} has {len(self.permutation)}")
        arrays = (xn, valid, weights, pixels)
        # Only frames where some camera disagrees on many left/right joints can hold a swap.
        inl = sel.inliers.reshape(n_cams, n_frames, n_joints)
        cand = np.flatnonzero(swap_candidates(valid, inl, self.permutation))
        state = np.broadcast_to(np.arange(n_joints), (n_cams, n_frames, n_joints)).copy()
        found = None
        if cand.size:
            lr = np.flatnonzero(self.permutation != np.arange(n_joints))
            first = sel.subset((cand[:, None] * n_joints + lr).ravel())  # the left/right points as detected
            found = detect_swap_states(self.lin, xn[:, cand], valid[:, cand], self.swap_hypotheses, threshold,
                                       inl[:, cand], weights[:, cand], cfg.min_views, selected=first)
            state[:, cand] = found.state
        moved = (state != np.arange(n_joints)).any(axis=0)  # (F, J): some camera's label now read from another joint
        frames = np.flatnonzero(moved.any(axis=1))
        if frames.size:
            for a in arrays:
                a[:, frames] = permute_joints(a[:, frames], state[:, frames])
            # Only the points whose views changed are selected again (the others would choose as before).
            f, j = np.nonzero(moved)
            cols = f * n_joints + j
            views.assign(cols, _views(xn[:, f, j], valid[:, f, j], weights[:, f, j]))
            if found.selection is not None:
                # The MSAC check selected them already: the left/right points of the changed frames.
                at = np.searchsorted(cand, frames)[:, None] * found.lr.size + np.arange(found.lr.size)
                sel.update((frames[:, None] * n_joints + found.lr).ravel(), found.selection.subset(at.ravel()))
            else:
                sel.update(cols, select_views(self.lin, views[cols], threshold, cfg.min_views))
        if cfg.temporal_window and n_frames > 1:
            # Cameras swapped in equal numbers (2 of 4) look as consistent as the right labels, and
            # repair may then swap the wrong half: a frame whose 3D left and right sides trade places
            # against its neighbours has every camera's labels exchanged (a pure relabelling).
            flip = np.flatnonzero(mirrored_frames(sel.points.reshape(n_frames, n_joints, 3), self.permutation,
                                                  cfg.temporal_window))
            if flip.size:
                state[:, flip] = state[:, flip][..., self.permutation]
                for a in arrays:
                    a[:, flip] = a[:, flip][:, :, self.permutation]
                cols = _columns(flip, n_joints)
                views.assign(cols, _views(xn[:, flip], valid[:, flip], weights[:, flip]))
                sel.relabel(flip, n_joints, self.permutation)
        return state

    def frame(self, keypoints: np.ndarray) -> FrameResult:
        """One instant: keypoints (C, J, 2|3) -> :class:`FrameResult` over (J,)."""
        r = self.run(np.asarray(keypoints)[:, None])
        return FrameResult(r.points[0], r.error_px[0], r.n_views[0], r.inliers[:, 0], r.swapped, r.threshold_px,
                           r.noise_px)


@dataclass
class _Observations:
    """The keypoints of one :meth:`Triangulator.run`, camera-first (C, F, J, ...); swap repair relabels them in place."""

    pixels: np.ndarray  # (C, F, J, 2) distorted pixels
    xn: np.ndarray  # (C, F, J, 2) normalised undistorted coordinates
    valid: np.ndarray  # (C, F, J) bool: finite and confident enough
    weights: np.ndarray  # (C, F, J) row weights (confidence), 0 where not valid
    views: Views  # the same, one point per frame and joint (frame-major), points last


def _columns(frames: np.ndarray, n_joints: int) -> np.ndarray:
    """Point indices (frame-major, ``n_joints`` per frame) of every joint of these frames."""
    return (np.asarray(frames)[:, None] * n_joints + np.arange(n_joints)).ravel()


def _views(xn: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> Views:
    """Views of keypoints (C, F, J, ...) camera-first, one point per frame and joint (frame-major)."""
    n_cams = valid.shape[0]
    return Views.of(xn[..., 0].reshape(n_cams, -1), xn[..., 1].reshape(n_cams, -1), valid.reshape(n_cams, -1),
                    weights.reshape(n_cams, -1))


def soft_scale_px(config: TriangulationConfig, threshold_px: float, noise_px: float = float("nan")) -> float:
    """Scale (px) of the soft weighting: as configured, else the loss's constant (``LOSS_SCALE``) x the detector
    noise (as estimated with ``auto_threshold``, else a third of the threshold).  The offline engine and the
    live triangulator both use it."""
    if config.robust_scale_px is not None:
        return config.robust_scale_px
    return LOSS_SCALE.get(config.robust_loss, 1.0) * Triangulator.noise_sigma(threshold_px, noise_px)


def neighbour_median(points: np.ndarray, window: int) -> np.ndarray:
    """Per frame, the NaN-median of the ``window`` frames on each side (the frame itself left out).

    points (F, ...) -> (F, ...); NaN where no neighbour has a value.  The
    ``2 * window`` neighbours are sorted elementwise, whole frames at a time
    (odd-even transposition: ``(2 window)^2 / 2`` minimum/maximum steps, NaN
    taken as +inf so it sorts last), and the middle ones of those present
    averaged: ``np.nanmedian`` does the same through masked arrays, ten
    times slower, and ``np.sort`` of many four-value rows four times slower.
    """
    n = points.shape[0]
    flat = points.reshape(n, -1)
    pad = np.full((window, flat.shape[1]), np.inf)
    padded = np.concatenate([pad, np.where(np.isnan(flat), np.inf, flat), pad])
    s = [padded[o:o + n] for o in (*range(window), *range(window + 1, 2 * window + 1))]
    count = sum(np.isfinite(a).astype(np.int8) for a in s)
    m = len(s)
    for r in range(m):
        for i in range(r % 2, m - 1, 2):
            s[i], s[i + 1] = np.minimum(s[i], s[i + 1]), np.maximum(s[i], s[i + 1])
    med = np.full(flat.shape, np.nan)
    for k in range(1, m + 1):
        np.copyto(med, 0.5 * (s[(k - 1) // 2] + s[k // 2]), where=count == k)
    return med.reshape(points.shape)


def mirrored_frames(points: np.ndarray, permutation: np.ndarray, window: int, min_shift_m: float = 0.1) -> np.ndarray:
    """(F,) bool: frames whose left/right joints sit where their neighbours have the other side.

    ``points`` (F, J, 3).  For each frame the left/right joints are compared
    with the median of ``window`` neighbouring frames on each side, as they
    are and with left and right exchanged; a frame is mirrored when the
    exchange more than halves the mean distance and that distance exceeds
    ``min_shift_m`` (a still, symmetric pose is never flipped).
    """
    permutation = np.asarray(permutation)
    lr = np.flatnonzero(permutation != np.arange(points.shape[1]))
    if lr.size == 0 or points.shape[0] < 2:
        return np.zeros(points.shape[0], dtype=bool)
    prior = neighbour_median(points[:, lr], window)
    keep = np.sqrt(sum_last(np.square(points[:, lr] - prior)))  # np.linalg.norm over a last axis of 3: 3x slower
    flip = np.sqrt(sum_last(np.square(points[:, permutation[lr]] - prior)))
    both = np.isfinite(keep) & np.isfinite(flip)
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        keep_mean = np.where(both, keep, 0.0).sum(axis=1) / n
        flip_mean = np.where(both, flip, 0.0).sum(axis=1) / n
    return (n >= 3) & (flip_mean < 0.5 * keep_mean) & (keep_mean > min_shift_m)


def _norm_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_cameras(rig: Rig, names: Sequence[str]) -> list[Camera]:
    """The rig's cameras for these keypoint camera names, in that order.

    Exact names first; otherwise names equal up to case and punctuation
    (``cam_01`` = ``cam01``, as Pose2Sim's folders and calibration differ).
    """
    by_norm: dict[str, list[Camera]] = {}
    for cam in rig.cameras:
        by_norm.setdefault(_norm_name(cam.name), []).append(cam)
    out, missing = [], []
    for name in names:
        if name in rig.names:
            out.append(rig[name])
        elif len(by_norm.get(_norm_name(name), [])) == 1:
            out.append(by_norm[_norm_name(name)][0])
        else:
            missing.append(name)
    if missing:
        raise TriangulationInputError(
            f"keypoints name camera(s) {', '.join(map(repr, missing))} that the rig lacks "
            f"(rig cameras: {', '.join(rig.names)})")
    if len({id(c) for c in out}) != len(out):
        raise TriangulationInputError(f"keypoint camera names {list(names)} map twice onto one rig camera")
    return out


def _plausibility_warnings(cameras: Sequence[Camera], kp: np.ndarray) -> list[str]:
    """Warn when a camera's keypoints mostly lie outside its image (wrong rig, order or rotation)."""
    return outside_image_warnings(cameras, [k[..., :2] for k in kp], "of its keypoints lie")


def outside_image_warnings(cameras: Sequence[Camera], xy, what: str, present=None) -> list[str]:
    """One line per camera whose pixels ``xy[c]`` (..., 2) mostly (over 20%) fall outside its image.

    The one test of "does this rig match this data" (``triangulate`` runs it on
    the 2D keypoints, ``rigcap view`` on the 3D points projected through the
    rig).  A pixel counts as inside within a 10% margin around the image.
    ``present[c]`` (...) marks the entries that count; a non-finite pixel among
    them (a point behind the camera) counts as outside.  Default: the finite
    pixels only.  Fewer than 10 entries: no verdict.
    """
    out = []
    for c, cam in enumerate(cameras):
        p = np.asarray(xy[c], dtype=np.float64).reshape(-1, 2)
        keep = np.isfinite(p).all(-1) if present is None else np.asarray(present[c], bool).reshape(-1)
        p = p[keep]
        if len(p) < 10:
            continue
        w, h = cam.size
        with np.errstate(invalid="ignore"):
            inside = (p[:, 0] >= -0.1 * w) & (p[:, 0] <= 1.1 * w) & (p[:, 1] >= -0.1 * h) & (p[:, 1] <= 1.1 * h)
        outside = 1.0 - inside.mean()
        if outside > 0.2:
            out.append(f"camera {cam.name!r}: {100 * outside:.0f}% {what} outside its "
                       f"{w}x{h} image: does the rig match this data (camera order, size, rotation)?")
    return out


def triangulate(
    rig: Rig,
    keypoints: Keypoints2D | np.ndarray,
    config: TriangulationConfig | None = None,
    *,
    joint_names: Sequence[str] | None = None,
    skeleton: Skeleton | None = None,
    fps: float | None = None,
    timestamps_ns: np.ndarray | None = None,
    progress=None,
) -> TriangulationResult:
    """Triangulate 2D keypoints of the rig's cameras into 3D joints.

    ``keypoints``: a :class:`Keypoints2D` (its cameras are looked up in the
    rig by name; the rig may have more) or an array (C, F, J, 2|3) whose axis
    0 follows ``rig.names`` exactly.  ``skeleton`` defaults to the known
    skeleton with these joint names (left/right pairs come from the names).
    ``fps`` (needed by ``config.filter_hz`` and ``config.optimize``) defaults
    to the keypoints'.  ``progress(done, total)``: frames of the
    spatio-temporal solve (``config.optimize``) done so far.
    """
    config = config or TriangulationConfig()
    if isinstance(keypoints, Keypoints2D):
        cameras = match_cameras(rig, keypoints.camera_names)
        kp = keypoints.keypoints
        joint_names = keypoints.joint_names if joint_names is None else joint_names
        fps = keypoints.fps if fps is None else fps
        if timestamps_ns is None and keypoints.timestamps_ns is not None:
            timestamps_ns = np.median(keypoints.timestamps_ns, axis=0).astype(np.int64)
    else:
        cameras = list(rig.cameras)
        kp = np.asarray(keypoints)
    if kp.ndim != 4:
        raise TriangulationInputError(f"keypoints must have shape (cameras, frames, joints, 2 or 3), got {kp.shape}")
    n_joints = kp.shape[2]
    if joint_names is None:
        joint_names = list(skeleton.joint_names) if skeleton is not None else [f"joint_{i}" for i in range(n_joints)]
    joint_names = [str(j) for j in joint_names]
    if len(joint_names) != n_joints:
        raise TriangulationInputError(f"keypoints have {n_joints} joints but {len(joint_names)} joint names")
    if skeleton is None:
        skeleton = skeleton_for_joints(joint_names)
    if skeleton.n_joints != n_joints:
        raise TriangulationInputError(f"keypoints have {n_joints} joints but skeleton {skeleton.name!r} has {skeleton.n_joints}")
    if config.filter_hz and not fps:
        raise TriangulationInputError("filtering needs the frame rate: the keypoints carry none, pass fps")
    if config.filter_hz and not config.filter_hz < fps / 2:
        raise TriangulationInputError(f"filter cutoff {config.filter_hz:g} Hz must lie below the Nyquist frequency "
                                      f"{fps / 2:g} Hz of {fps:g} fps")

    if config.optimize and not fps:
        raise TriangulationInputError("the spatio-temporal solve (optimize) needs the frame rate: the keypoints "
                                      "carry none, pass fps")
    engine = Triangulator(cameras, config, skeleton)
    res = engine.run(kp, fps, progress=progress)
    points = res.points
    if config.filter_hz or config.max_gap:
        points = smooth_points(points, fps or 0.0, config.filter_hz, config.filter_order,
                               config.max_gap, config.interpolation)
    p3d = Points3D(points, joint_names, res.error_px, res.n_views, timestamps_ns, fps,
                   method=optimized_note(config) if res.optimized is not None else None)
    return TriangulationResult(p3d, res.inliers, res.swapped, [c.name for c in cameras], res.points,
                               _plausibility_warnings(cameras, kp), res.threshold_px, res.noise_px, res.optimized)


def optimized_note(config: TriangulationConfig) -> str:
    """The output file's ``method`` line for points that went through the spatio-temporal solve."""
    return (config.optimize_config or OptimizeConfig()).describe()
