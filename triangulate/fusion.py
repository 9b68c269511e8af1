"""The fusion node's logic, free of sockets: messages in, filtered 3D instants out.

Kept apart from the ZeroMQ process (:mod:`triangulate.fusion_node`) so the
grouping, triangulation and filtering of the live path are tested and
benchmarked directly.

Why a live triangulator of its own (:class:`LiveTriangulator`)
    The offline engine (:class:`triangulate.engine.Triangulator`) chooses views
    by scoring camera-pair hypotheses and repairs left/right swaps per camera
    frame: the best answer, but its cost grows with the pairs (measured per
    instant one at a time: 2.4 ms at 4 cameras, 7 ms at 16; batched 0.3 ms at
    4 cameras but 4 ms at 16, ``benchmarks/bench_fusion.py --engine``), beyond the live
    budget.  The live path uses the same building blocks (the closed-form DLT
    of :mod:`triangulate.dlt`, the same lens model, threshold and confidence
    weighting) with cheaper outlier rejection instead: fit all confident views
    (pixel-weighted); where a view reprojects beyond ``threshold_px``, fit
    again leaving out each of the worst views in turn (all at once), keep the
    views that agree with the best of those fits, refit; repeat while needed.
    A causal prior gate (the joint's last accepted position) drops two-view
    points that jump, as the offline engine's temporal prior does.  Left/right
    swaps are repaired per instant with the offline engine's steps
    (:meth:`LiveTriangulator.repair_swaps`; only instants where a camera
    disagrees on many left/right joints pay for it: studio, one instant at a
    time, 7-9 ms CPU for those against 3-4 ms for the others on a loaded
    2-core machine).  With ``config.auto_threshold`` (the fusion default) the
    threshold follows the detector's noise as offline, learnt from the recent
    instants (:meth:`LiveTriangulator._update_threshold`).
    Everything is vectorised over instants x joints x cameras, undistortion
    included, so a batch of instants costs little more than one.  On the
    synthetic studio the live output (filtered) is as accurate as the offline
    engine on the same instants (``benchmarks/bench_demo.py``; the raw live
    triangulation is within ~10 %), at 1.5 ms per instant one at a time and
    0.4-0.6 ms batched for 4 to 16 cameras.
    ``method="engine"`` runs the offline engine instead (for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from calibration import Rig
from triangulate.dlt import LinearTriangulator, Views, errors_sq_point, fit_point, pixel_weights_point, sum_last
from triangulate.engine import TriangulationConfig, Triangulator, soft_scale_px
from triangulate.filters import OneEuroBank, OneEuroFilter
from triangulate.fusion_options import FusionOptions
from triangulate.lens import LensBatch
from triangulate.live_grouping import Instant, InstantGrouper, Observation
from triangulate.robust import AUTO_PROBE_FACTOR, noise_threshold_px, soft_refit
from triangulate.skeletons import Skeleton
from triangulate.swap import detect_swap_states, permute_joints, swap_candidates, swap_setup

# One-Euro settings of the live path, tuned on the synthetic studio at 30 fps
# (see benchmarks/bench_demo.py): beta is per (m/s), so a joint moving at 1 m/s
# gets a ~30 Hz cutoff (no visible lag) while a still joint is smoothed at 1 Hz.
LIVE_MIN_CUTOFF_HZ = 1.0
LIVE_BETA = 30.0
# A prior (the joint's last accepted position) older than this is not used by the gate.
PRIOR_MAX_AGE_S = 0.25
PRIOR_MAX_SPEED = 3.0  # m/s
# Views tried for removal per round of outlier rejection (the ones with the largest residuals).
LOO_CANDIDATES = 4
# Live auto threshold (config.auto_threshold): the residuals of the most recent views kept (a ring; at 4
# cameras x 26 joints about 40 instants, 1.3 s at 30 fps), and the fewest before the estimate is used.
NOISE_SAMPLES = 4096
NOISE_MIN_SAMPLES = 200
# The threshold is re-read from the ring once this many residuals came in since the last reading (an eighth
# of the ring: every 2-5 instants at 4-8 cameras), not every instant: the median of 4096 residuals cost
# ~0.1-0.3 ms per instant, and the noise estimate of 1.3 s of data moves little in a few frames.
NOISE_REREAD = NOISE_SAMPLES // 8


def live_config(options: FusionOptions) -> TriangulationConfig:
    """The triangulation settings of live fusion: instants are independent (no temporal prior, no
    refinement: latency); the loss and the auto threshold as the options say."""
    return TriangulationConfig(temporal_window=0, refine=False, robust_loss=options.robust_loss,
                               auto_threshold=options.auto_threshold)


def live_filter() -> OneEuroFilter:
    return OneEuroFilter(min_cutoff=LIVE_MIN_CUTOFF_HZ, beta=LIVE_BETA)


@dataclass
class FusedInstant:
    time_ns: int  # median capture time of the cameras that took part
    points: np.ndarray  # (J, 3) metres, causally filtered; NaN where not triangulated
    raw_points: np.ndarray  # (J, 3) before filtering
    error_px: np.ndarray  # (J,) mean reprojection error of the views used
    n_views: np.ndarray  # (J,) views used per joint
    cameras: list[str]  # cameras whose message is in this instant
    frames: dict[str, int]  # camera -> its frame index
    spread_ns: int  # capture-time spread across those cameras
    last_arrival_ns: int  # when the instant's last message arrived
    person_ids: np.ndarray | None = None  # (P,) with several people: points etc. gain a leading persons axis


def first_person(keypoints: np.ndarray, n_joints: int) -> np.ndarray:
    """(persons, J, 3) or (J, 3) -> (J, 3) of the most confident person; NaN when nobody was seen.

    Multi-person association across cameras is out of scope for the live
    path: one subject per rig, as in the synthetic studio and a lab walkway.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.shape[0] == 0:
        return np.full((n_joints, 3), np.nan)
    if kp.shape[0] == 1:
        return kp[0]
    score = np.nansum(kp[..., 2], axis=1)
    return kp[int(np.argmax(score))]


@dataclass
class LiveResult:
    points: np.ndarray  # (N, 3)
    error_px: np.ndarray  # (N,) mean undistorted-pixel error of the views used; NaN where no point
    n_views: np.ndarray  # (N,)
    inliers: np.ndarray  # (N, C) bool


class LiveTriangulator:
    """Greedy-robust, confidence- and pixel-weighted DLT over any number of points at once.

    Pixels go through :meth:`normalise` (all cameras at once), then :meth:`solve`.
    See the module docstring for why this and not the offline engine.
    """

    def __init__(self, rig: Rig, config: TriangulationConfig | None = None, skeleton: Skeleton | None = None):
        self.cameras = list(rig.cameras)
        self.config = config or TriangulationConfig()
        # Left/right repair per instant (config.swap_repair, >= 3 cameras): the skeleton's pairs and hypotheses.
        self.permutation, self.swap_hypotheses = swap_setup(skeleton)
        self.lin = LinearTriangulator(np.array([np.hstack([c.R, c.tvec[:, None]]) for c in self.cameras]),
                                      np.array([c.matrix for c in self.cameras]))
        # one batch over all cameras: the cameras' lens groups, as the offline engine undistorts
        # three Newton steps: with two, the last step (~1e-8) is above the tolerance for most points and
        # a masked fourth pass costs more than a third step over all (one instant is small)
        self.lens = LensBatch(self.cameras, iterations=3, tol=1e-9)  # normalised units: ~1e-6 px
        self._lens_one: list[LensBatch | None] = [None] * len(self.cameras)  # per camera, made when first needed
        # The outlier threshold in use: config.threshold_px, or with config.auto_threshold the offline rule
        # (3 x the detector noise, at least threshold_px) on the residuals of the recent instants.
        self.threshold_px = self.config.threshold_px
        self.noise_px = float("nan")
        self._residuals = np.empty(NOISE_SAMPLES)
        self._n_residuals = 0  # written so far (the ring's write position is this modulo its size)
        self._n_read = 0  # self._n_residuals when the threshold was last read from the ring
        # Load the compiled kernel now (from numba's cache in __pycache__, compiled there on the very first
        # run), not on the first instant: that took the node ~0.3 s while the cameras' messages queued up.
        self._hard(np.zeros((1, self.n_cameras, 3)))
        self.lin.camera_planes(np.zeros((3, 1)))  # the soft refit's projection kernel likewise

    @property
    def n_cameras(self) -> int:
        return len(self.cameras)

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """(N, C, 3) pixels + confidence (NaN where missing) -> (N, C, 3) normalised x, y + weight (0 = unused).

        Undistorts all cameras at once through :class:`triangulate.lens.LensBatch`
        (:mod:`calibration.lens_model`'s Newton solve, the camera matrix's skew
        included), the same lens model the offline engine uses.
        """
        return self._normalise(pixels, self.lens)

    def normalise_camera(self, camera: int, pixels: np.ndarray) -> np.ndarray:
        """:meth:`normalise` of one camera's pixels (N, 3) -> (N, 3): what a message can have done
        on arrival, before the other cameras of its instant come in."""
        if self._lens_one[camera] is None:
            self._lens_one[camera] = LensBatch([self.cameras[camera]], iterations=3, tol=1e-9)
        return self._normalise(pixels[:, None], self._lens_one[camera])[:, 0]

    def _normalise(self, pixels: np.ndarray, lens: LensBatch) -> np.ndarray:
        kp = np.asarray(pixels, dtype=np.float64)
        conf = kp[..., 2]
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(kp).all(-1) & (conf >= self.config.min_confidence)
        und = lens(kp[..., :2].transpose(1, 0, 2)).transpose(1, 0, 2)
        out = np.empty(kp.shape)
        ok &= np.isfinite(und).all(-1)
        out[..., :2] = np.where(ok[..., None], und, 0.0)
        out[..., 2] = np.where(ok, conf if self.config.weight_by_confidence else 1.0, 0.0)
        return out

    def solve(self, obs: np.ndarray, start: np.ndarray | None = None) -> LiveResult:
        """obs (N, C, 3) from :meth:`normalise` (weight 0 where a view is missing) -> :class:`LiveResult`.

        ``start`` (N, 3): the weighted algebraic fit of these views when the caller has it already
        (the cross-view association computes exactly it for every person).  With a skeleton (and
        ``config.swap_repair``, three cameras or more) the N points are taken as sets of the
        skeleton's joints (an instant, or one person of it) and each set's left/right swaps are
        repaired as offline (:meth:`repair_swaps`), before the soft refit."""
        cfg = self.config
        points, mean_err, n_views, active, all_views, probe_e2 = self._hard(obs, start)
        if (self.permutation is not None and cfg.swap_repair and self.n_cameras >= 3
                and len(obs) % len(self.permutation) == 0 and len(obs)):
            obs, rows = self.repair_swaps(obs, active)
            if rows.size:
                part = self._hard(obs[rows])  # not the association's start: that fit the old labels
                for whole, new in zip((points, mean_err, n_views, active, all_views, probe_e2), part):
                    whole[rows] = new
        if cfg.robust_loss != "none" and np.isfinite(points).all(-1).any():
            res = self._soft(obs[..., :2], obs[..., 2], points, cfg, all_views)
        else:
            res = LiveResult(points, mean_err, n_views, active)
        if cfg.auto_threshold:
            self._update_threshold(obs[..., 2] > 0, probe_e2)
        return res

    def solve_each_instant(self, keypoints: np.ndarray) -> np.ndarray:
        """Pixels (C, F, J, 3) of F instants -> points (F, J, 3), every instant solved on its own and in
        time order, as the fusion node solves them one at a time (the auto threshold learnt from the
        instants before).  For tests and benchmarks that score the live path offline."""
        kp = np.asarray(keypoints, dtype=np.float64)
        n_c, n_f, n_j = kp.shape[:3]
        obs = self.normalise(np.moveaxis(kp, 0, 2).reshape(-1, n_c, 3))
        out = np.empty((n_f, n_j, 3))
        for f in range(n_f):
            out[f] = self.solve(obs[f * n_j:(f + 1) * n_j]).points
        return out

    def _update_threshold(self, valid: np.ndarray, err2: np.ndarray) -> None:
        """Add this call's residuals to the recent ones and re-read the threshold from them (for the next call).

        Why: a fixed 15 px threshold is too tight for a coarse detector (MediaPipe on the real Pose2Sim
        demo: ~10 px noise), and with three cameras live fusion then drops honest views and keeps
        wrong pairs.  The rule is the offline auto threshold's (:func:`triangulate.robust.auto_threshold_px`):
        the residuals of points seen by at least three views that all lie within ``AUTO_PROBE_FACTOR`` x
        the floor of their joint fit (``err2`` (N, C), squared px against the pixel fit of every view;
        ``valid`` (N, C)), their median as the noise, 3 sigmas the threshold, never below
        ``config.threshold_px``; here read from the last :data:`NOISE_SAMPLES` residuals, causally, every
        :data:`NOISE_REREAD` new residuals.
        """
        probe = AUTO_PROBE_FACTOR * self.config.threshold_px
        near = err2 < probe * probe
        use = valid & (sum_last(valid) >= 3)[:, None] & ~(valid & ~near).any(axis=1, keepdims=True)
        r = np.sqrt(err2[use])[-NOISE_SAMPLES:]
        if r.size == 0:
            return
        at = (self._n_residuals + np.arange(r.size)) % NOISE_SAMPLES
        self._residuals[at] = r
        self._n_residuals += r.size
        n = min(self._n_residuals, NOISE_SAMPLES)
        first = self._n_read < NOISE_MIN_SAMPLES  # not read yet: as soon as there are enough
        if n >= NOISE_MIN_SAMPLES and (first or self._n_residuals - self._n_read >= NOISE_REREAD):
            self.threshold_px, self.noise_px = noise_threshold_px(self._residuals[:n], self.config.threshold_px)
            self._n_read = self._n_residuals

    def repair_swaps(self, obs: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left/right repair of every joint set of ``obs`` (S * J, C, 3) on its own: ``(obs, rows)``, the
        relabelled observations and the rows (points) of the sets that changed.

        Why: live fusion had no swap repair, so on the studio's detector (2 % of camera frames
        swapped) the soft refit took swapped views within ``gross_factor`` x the threshold back
        and the instants holding a swap were 2-4 x the oracle's error.  The same steps as the
        offline engine, per instant (no neighbouring frames, so two of four cameras swapped stay
        as they are): only sets where a camera disagrees on many left/right joints (``active``,
        (N, C), the hard selection's views) are candidates, scored per camera against the others'
        consensus, and (up to :data:`triangulate.swap.PAIR_REFERENCE_CAMERAS` cameras) a change stands
        only where the MSAC cost drops (:func:`triangulate.swap.detect_swap_states`).
        """
        n_j, n_c = len(self.permutation), self.n_cameras
        n_s = len(obs) // n_j

        def camera_first(a):  # (S * J, C, ...) -> (C, S, J, ...)
            return np.moveaxis(a.reshape((n_s, n_j, n_c) + a.shape[2:]), 2, 0)

        w = camera_first(obs[..., 2])
        valid = w > 0
        cand = np.flatnonzero(swap_candidates(valid, camera_first(active), self.permutation))
        if cand.size == 0:
            return obs, np.zeros(0, np.intp)
        xn = camera_first(obs[..., :2])
        state = detect_swap_states(self.lin, xn[:, cand], valid[:, cand], self.swap_hypotheses, self.threshold_px,
                                   camera_first(active)[:, cand], w[:, cand], self.config.min_views).state
        moved = (state != np.arange(n_j)).any(axis=(0, 2))
        sets = cand[moved]
        if sets.size == 0:
            return obs, np.zeros(0, np.intp)
        obs = obs.copy()
        view = obs.reshape(n_s, n_j, n_c, 3)
        fixed = permute_joints(np.moveaxis(view[sets], 2, 0), state[:, moved])  # (C, s, J, 3)
        view[sets] = np.moveaxis(fixed, 0, 2)
        return obs, (sets[:, None] * n_j + np.arange(n_j)).ravel()

    def _hard(self, obs: np.ndarray, start: np.ndarray | None = None):
        """The greedy outlier rejection of :meth:`solve`: ``(points, mean_err, n_views, active, all_views,
        all_view_err2)``: ``all_views`` the first pixel fit of all views (the soft refit's second start, so it
        need not fit it again), ``all_view_err2`` (N, C) the squared px errors of the views against it (inf: not
        fitted; the auto threshold's probe).

        Every point on its own in one compiled loop (:func:`_hard_kernel`): the rounds of leave-one-out
        were ~50 numpy calls each on a few dozen points (1.9 ms per 8-camera instant one at a time)."""
        cfg = self.config
        lin = self.lin
        n, n_cams = obs.shape[:2]
        xn = np.ascontiguousarray(obs[..., :2])
        w = np.ascontiguousarray(obs[..., 2])
        q = lin.terms(xn)  # (N, C, 10)
        points = np.empty((n, 3))
        mean_err = np.empty(n)
        n_views = np.empty(n, np.int64)
        active = np.empty((n, n_cams), bool)
        all_views = np.empty((n, 3))
        all_view_err2 = np.empty((n, n_cams))
        has_start = start is not None
        st = np.ascontiguousarray(start, dtype=np.float64) if has_start else np.empty((0, 3))
        _hard_kernel(np.ascontiguousarray(q), xn, w, st, has_start, lin.extrinsics, lin.fx, lin.fy, lin.focal,
                     float(self.threshold_px) ** 2, int(cfg.min_views), min(n_cams, LOO_CANDIDATES),
                     points, mean_err, n_views, active, all_views, all_view_err2)
        return points, mean_err, n_views, active, all_views, all_view_err2

    def _soft(self, xn: np.ndarray, w: np.ndarray, points: np.ndarray, cfg: TriangulationConfig,
              all_views: np.ndarray | None = None) -> LiveResult:
        """The offline engine's soft robust refit of the points the outlier rejection kept (same scale rule:
        the loss's constant x a third of the threshold, gross views beyond ``gross_factor`` x the threshold)."""
        views = Views.of(xn[..., 0].T, xn[..., 1].T, (w > 0).T, w.T)
        threshold = self.threshold_px  # the soft scale from it, as offline where the auto threshold is above its floor
        sel, _ = soft_refit(self.lin, views, points, soft_scale_px(cfg, threshold),
                            cfg.gross_factor * threshold, cfg.robust_loss, all_views=all_views)
        return LiveResult(sel.points, sel.error_px, sel.n_views, sel.inliers.T)


@njit(cache=True)
def _hard_kernel(q, xn, w, start, has_start, ext, fx, fy, focal, t2, min_views, k_cand,
                 points, mean_err, n_views, active, all_views, all_view_err2) -> None:
    """:meth:`LiveTriangulator._hard` for every point: fit all confident views (pixel-weighted); while a view
    reprojects beyond the threshold (``t2`` squared px) and more than ``min_views`` are left, fit again
    leaving out each of the ``k_cand`` worst views in turn (algebraic, confidence-weighted), keep the
    removal with the lowest MSAC cost and the views that agree with it (when at least ``min_views`` do;
    else only the removed view goes), refit in pixels around it; at most C rounds.  Outputs as
    :meth:`LiveTriangulator._hard` returns them."""
    n, n_c = w.shape
    acc = np.empty(10)
    p = np.empty(3)
    wa = np.empty(n_c)
    weights = np.empty(n_c)
    e2 = np.empty(n_c)
    act = np.empty(n_c, np.bool_)
    cand_view = np.empty(k_cand, np.int64)
    cand = np.empty((k_cand, 3))
    ce2 = np.empty((k_cand, n_c))
    cost = np.empty(k_cand)
    loo = np.empty(n_c)
    taken = np.empty(n_c, np.bool_)
    for i in range(n):
        n_act = 0
        for c in range(n_c):
            act[c] = w[i, c] > 0
            n_act += act[c]
            wa[c] = w[i, c] if act[c] else 0.0
            e2[c] = np.inf
            all_view_err2[i, c] = np.inf
        points[i, :] = np.nan
        all_views[i, :] = np.nan
        if n_act >= min_views:
            if has_start:
                p[:] = start[i]
            else:
                fit_point(q[i], wa, acc, p)  # algebraic fit, then ...
            pixel_weights_point(p, wa, ext, focal, weights)  # ... least squares in pixels around it
            for round_ in range(n_c):
                fit_point(q[i], weights, acc, p)
                errors_sq_point(p, xn[i], ext, fx, fy, e2)
                points[i, :] = p
                if round_ == 0:
                    all_views[i, :] = p
                    all_view_err2[i, :] = e2
                worst = -1.0
                n_act = 0
                for c in range(n_c):
                    if act[c]:
                        n_act += 1
                        if e2[c] > worst:
                            worst = e2[c]
                if not (worst > t2 and n_act > min_views):
                    break
                # Leave one view out, each of the k worst in turn: keep the removal whose fit the
                # remaining views agree with best (MSAC cost).
                for c in range(n_c):
                    wa[c] = w[i, c] if act[c] else 0.0
                    taken[c] = False
                for j in range(k_cand):  # the k largest errors of the active views, ties by index
                    b = -1
                    for c in range(n_c):
                        key = e2[c] if act[c] else -1.0
                        if not taken[c] and (b < 0 or key > (e2[b] if act[b] else -1.0)):
                            b = c
                    taken[b] = True
                    cand_view[j] = b
                best = 0
                for j in range(k_cand):
                    loo[:] = wa
                    loo[cand_view[j]] = 0.0
                    fit_point(q[i], loo, acc, cand[j])
                    errors_sq_point(cand[j], xn[i], ext, fx, fy, ce2[j])
                    s = 0.0
                    for c in range(n_c):
                        if loo[c] > 0:
                            s += min(ce2[j, c], t2)
                    ok = act[cand_view[j]] and np.isfinite(cand[j, 0]) and np.isfinite(cand[j, 1]) \
                        and np.isfinite(cand[j, 2])
                    cost[j] = s if ok else np.inf
                    if cost[j] < cost[best]:
                        best = j
                removed = cand_view[best]
                # The views that agree with the best candidate (its consensus set); when fewer than
                # min_views agree, only the removed view goes, and the next round tries again.
                n_cons = 0
                for c in range(n_c):
                    if act[c] and c != removed and ce2[best, c] <= t2:
                        n_cons += 1
                act[removed] = False
                if n_cons >= min_views:
                    for c in range(n_c):
                        act[c] = act[c] and ce2[best, c] <= t2
                for c in range(n_c):
                    wa[c] = w[i, c] if act[c] else 0.0
                pixel_weights_point(cand[best], wa, ext, focal, weights)  # refit in pixels around it
        nv = 0
        s = 0.0
        worst = 0.0
        for c in range(n_c):
            if act[c]:
                nv += 1
                s += np.sqrt(e2[c])
                if e2[c] > worst:
                    worst = e2[c]
        bad = nv < min_views or not (np.isfinite(points[i, 0]) and np.isfinite(points[i, 1])
                                     and np.isfinite(points[i, 2])) or not worst <= t2
        if bad:
            points[i, :] = np.nan
            mean_err[i] = np.nan
            n_views[i] = 0
            active[i, :] = False
        else:
            mean_err[i] = s / max(nv, 1)
            n_views[i] = nv
            active[i, :] = act


@njit(cache=True)
def _gate_step(points, error, views, time_ns, prior, prior_t, gate_m) -> None:
    """:meth:`FusionEngine._gate` for one instant's joints, in place (a compiled loop: the numpy form was
    ~15 calls, 0.07-0.1 ms, per instant)."""
    for j in range(points.shape[0]):
        if not (np.isfinite(points[j, 0]) and np.isfinite(points[j, 1]) and np.isfinite(points[j, 2])):
            continue
        age_s = (time_ns - prior_t[j]) * 1e-9
        # The gate widens with the prior's age: a joint may move PRIOR_MAX_SPEED meanwhile.
        gate = gate_m + PRIOR_MAX_SPEED * age_s
        d0, d1, d2 = points[j, 0] - prior[j, 0], points[j, 1] - prior[j, 1], points[j, 2] - prior[j, 2]
        if views[j] <= 2 and age_s <= PRIOR_MAX_AGE_S and d0 * d0 + d1 * d1 + d2 * d2 > gate * gate:
            points[j, :] = np.nan
            error[j] = np.nan
            views[j] = 0
        else:
            prior[j, :] = points[j]
            prior_t[j] = time_ns


class FusionEngine:
    """Group per-camera keypoints into instants, triangulate, filter.

    ``options`` (:class:`triangulate.fusion_options.FusionOptions`) holds the
    grouping, clock, smoothing and gate settings and their defaults (see
    :mod:`triangulate.live_grouping` for what they do).

    :meth:`push` fuses what one message completes; :meth:`collect` +
    :meth:`fuse` let a caller that drained many messages triangulate all the
    instants they completed in one vectorised batch.
    """

    def __init__(
        self,
        rig: Rig,
        skeleton: Skeleton,
        options: FusionOptions | None = None,
        config: TriangulationConfig | None = None,
        method: str = "live",
    ):
        options = options or FusionOptions()
        self.options = options
        if method not in ("live", "engine"):
            raise ValueError(f"method must be 'live' or 'engine', got {method!r}")
        self.rig = rig
        self.skeleton = skeleton
        self.method = method
        # Live instants are independent: no temporal prior, no refinement (latency).
        self.config = config or live_config(options)
        if method == "live":
            self.live = LiveTriangulator(rig, self.config, skeleton)
        else:
            self.triangulator = Triangulator(rig, self.config, skeleton)
        self.grouper = InstantGrouper(rig.names, options.tolerance_ns, options.deadline_ns,
                                      options.alive_window_ns, options.max_clock_skew_ns,
                                      max_jump_ns=options.max_clock_jump_ns)
        self.smoothing = live_filter() if options.smoothing else None
        self._index = {name: i for i, name in enumerate(rig.names)}
        self.people = None
        if options.persons != 1:
            if method != "live":
                raise ValueError("several people are fused by the live method only")
            self.people = LivePeople(self.live, skeleton, options.persons or None,
                                     self.config.min_confidence, options.smoothing)
        self._prior = np.full((skeleton.n_joints, 3), np.nan)  # last accepted position per joint
        self._prior_t = np.full(skeleton.n_joints, np.iinfo(np.int64).min // 2, dtype=np.int64)
        if method == "live" and options.prior_gate_m is not None:  # load the compiled gate now, not on an instant
            _gate_step(np.zeros((0, 3)), np.zeros(0), np.zeros(0, np.int64), 0, self._prior[:0], self._prior_t[:0], 1.0)
        self.motion_sync = None  # per-camera offsets refined from the motion (options.motion_sync)
        if options.motion_sync:
            from triangulate.live_sync import LiveMotionSync

            self.motion_sync = LiveMotionSync(rig, skeleton.joint_names, options.fps)

    def _gate(self, points: np.ndarray, error: np.ndarray, views: np.ndarray, time_ns: int) -> None:
        """Causal prior gate, in place: drop a two-view point far from where that joint just was.

        Two views cannot expose an outlier that lies on the other view's epipolar
        line; the offline engine rejects such points against the median of the
        neighbouring frames (``prior_gate_m``), this does it against the last
        accepted position of the joint, if it is recent (``PRIOR_MAX_AGE_S``).
        Only accepted points update the prior, and a stale prior is ignored, so
        a bad prior cannot lock a joint out for long.
        """
        if self.options.prior_gate_m is None:
            return
        _gate_step(points, error, views, int(time_ns), self._prior, self._prior_t, float(self.options.prior_gate_m))

    def collect(self, camera: str, frame_index: int, capture_time_ns: int, keypoints: np.ndarray,
                arrival_ns: int) -> list[Instant]:
        """Add one message; return the instants it completes, not yet triangulated.  With motion
        sync, the camera's correction is added to ``capture_time_ns`` first (and the uncorrected
        time goes into its window)."""
        prepared = None
        if self.people is not None:
            kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, self.skeleton.n_joints, 3)
            index = self._index.get(camera)
            if index is not None:  # undistorted now, while the instant waits for its other cameras
                prepared = self.live.normalise_camera(index, kp.reshape(-1, 3)).reshape(kp.shape)
        else:
            kp = first_person(keypoints, self.skeleton.n_joints)
        if self.motion_sync is not None:
            self.motion_sync.add(camera, capture_time_ns, kp if kp.ndim == 2 else first_person(kp, self.skeleton.n_joints))
            capture_time_ns = capture_time_ns + self.motion_sync.correction_ns(camera)
        obs = Observation(camera, int(frame_index), int(capture_time_ns), kp, int(arrival_ns), prepared)
        return self.grouper.push(obs)

    def push(self, camera: str, frame_index: int, capture_time_ns: int, keypoints: np.ndarray,
             arrival_ns: int) -> list[FusedInstant]:
        return self.fuse(self.collect(camera, frame_index, capture_time_ns, keypoints, arrival_ns))

    def poll(self, now_ns: int) -> list[FusedInstant]:
        if self.motion_sync is not None:
            self.motion_sync.poll(now_ns)
        return self.fuse(self.grouper.poll(now_ns))

    def fuse(self, instants: list[Instant]) -> list[FusedInstant]:
        """Triangulate instants (oldest first) in one batch, then filter them in order."""
        if not instants:
            return []
        if self.people is not None:
            return [self.people.fuse(inst, self._index) for inst in instants]
        n_b, n_c, n_j = len(instants), len(self.rig), self.skeleton.n_joints
        if self.method == "live":
            pixels = np.full((n_b, n_j, n_c, 3), np.nan)
            for b, inst in enumerate(instants):
                for name, o in inst.observations.items():
                    pixels[b, :, self._index[name]] = o.keypoints
            res = self.live.solve(self.live.normalise(pixels.reshape(n_b * n_j, n_c, 3)))
            raw = res.points.reshape(n_b, n_j, 3)
            error = res.error_px.reshape(n_b, n_j)
            views = res.n_views.reshape(n_b, n_j)
        else:
            kp = np.full((n_c, n_b, n_j, 3), np.nan)
            for b, inst in enumerate(instants):
                for name, o in inst.observations.items():
                    kp[self._index[name], b] = o.keypoints
            res = self.triangulator.run(kp)
            raw, error, views = res.points, res.error_px, res.n_views
        out = []
        for b, inst in enumerate(instants):
            if self.method == "live":
                self._gate(raw[b], error[b], views[b], inst.time_ns)
            points = raw[b]
            if self.smoothing is not None:
                points = self.smoothing.update(points, inst.time_ns * 1e-9)
            out.append(FusedInstant(
                time_ns=inst.time_ns,
                points=points,
                raw_points=raw[b],
                error_px=error[b],
                n_views=views[b],
                cameras=inst.cameras,
                frames={name: o.frame_index for name, o in inst.observations.items()},
                spread_ns=inst.spread_ns,
                last_arrival_ns=inst.last_arrival_ns,
            ))
        return out


class LivePeople:
    """Several people live, one instant at a time: association with the tracks as prior, tracking,
    the live triangulator on every person's views at once, One-Euro per identity.

    Publishes confirmed tracks only (seen ``min_hits`` instants), at most
    ``max_persons`` (None: all), ordered by id.
    """

    def __init__(self, live: LiveTriangulator, skeleton: Skeleton, max_persons: int | None, min_confidence: float,
                 smoothing: bool):
        from triangulate.association import AssociationConfig, CrossViewAssociator
        from triangulate.tracking import PersonTracker

        self.live = live
        self.skeleton = skeleton
        self.max_persons = max_persons
        self.associator = CrossViewAssociator(live.lin, AssociationConfig(min_confidence=min_confidence))
        self.tracker = PersonTracker(skeleton)
        self.filters = OneEuroBank(skeleton.n_joints, min_cutoff=LIVE_MIN_CUTOFF_HZ, beta=LIVE_BETA) if smoothing else None
        self._t0: int | None = None

    def fuse(self, inst: Instant, index: dict[str, int]) -> FusedInstant:
        n_c, n_j = self.live.n_cameras, self.skeleton.n_joints
        n_p = max([o.keypoints.shape[0] for o in inst.observations.values()] + [0])
        obs = np.zeros((n_c, n_p, n_j, 3))  # normalised x, y, weight (0: unused) of every detection
        for name, o in inst.observations.items():
            c = index[name]
            prepared = o.prepared if o.prepared is not None else \
                self.live.normalise_camera(c, o.keypoints.reshape(-1, 3)).reshape(o.keypoints.shape)
            obs[c, : len(prepared)] = prepared
        if self._t0 is None:
            self._t0 = inst.time_ns
        t = (inst.time_ns - self._t0) * 1e-9
        a = self.associator.associate(obs[..., :2], obs[..., 2], self.tracker.predict(t))  # weight 0: unused
        keys = self.tracker.update(t, a.track, a.points)
        ids = self.tracker.ids()
        # every group's views triangulated at once, from the association's fit of exactly those views
        gs, cs = np.nonzero(a.slots >= 0)
        group_obs = np.zeros((len(a.track), n_j, n_c, 3))
        group_obs[gs, :, cs] = obs[cs, a.slots[gs, cs]]
        res = self.live.solve(group_obs.reshape(-1, n_c, 3), start=a.points.reshape(-1, 3)) if len(a.track) else None
        best: dict[int, int] = {}  # key -> group; merged duplicates: the group with more views
        for g, k in enumerate(keys.tolist()):
            if k >= 0 and ids[k] > 0 and (k not in best or a.n_views[g] > a.n_views[best[k]]):
                best[k] = g
        order = sorted(best, key=lambda k: ids[k])[: self.max_persons]  # by id; at most max_persons
        groups = np.array([best[k] for k in order], int)
        out_ids = ids[order].astype(np.int32) if order else np.zeros(0, np.int32)
        if groups.size:
            raw = res.points.reshape(-1, n_j, 3)[groups]
            err = res.error_px.reshape(-1, n_j)[groups]
            views = res.n_views.reshape(-1, n_j)[groups]
        else:
            raw, err, views = np.zeros((0, n_j, 3)), np.zeros((0, n_j)), np.zeros((0, n_j), int)
        pts = self.filters.update(out_ids, raw, inst.time_ns * 1e-9) if self.filters is not None and groups.size else raw
        return FusedInstant(
            time_ns=inst.time_ns,
            points=pts,
            raw_points=raw,
            error_px=err,
            n_views=views,
            cameras=inst.cameras,
            frames={name: o.frame_index for name, o in inst.observations.items()},
            spread_ns=inst.spread_ns,
            last_arrival_ns=inst.last_arrival_ns,
            person_ids=out_ids,
        )
