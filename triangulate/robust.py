"""Robust view selection: which cameras to trust for each point, vectorised over points.

A detector's view of a joint is either roughly right (a few px of noise) or
wrong (another person, a swapped label, a limb hidden and guessed).  One wrong
view pulls a least-squares point far off, so the views are chosen first,
cheapest test first (:func:`select_views`):

1. **All views agree**: fit every view (confidence and ``focal / depth``
   weights: a least-squares fit in pixels); where every view lies within
   half the threshold, that is the answer.  Most points stop here.
2. **A few views disagree**: drop the worst view, refit, and repeat while the
   views left still form a majority of at least three; once every kept view
   lies within half the threshold, the inliers are re-read from that fit
   (a dropped view that agrees comes back) and the point refitted.  A
   gross outlier drags the all-view fit but stays the worst view, so each
   drop removes one; a point with one bad view of four, or three of sixteen,
   is settled in as many cheap fits, with no search over camera subsets.
3. **No agreeing majority** (two views against two, or most views wrong):
   the pair search (:func:`pair_hypotheses`).  Every camera pair that sees
   the point gives a two-view point; each is projected into every camera,
   where a view costs ``min(error^2, threshold^2)`` and a missing view
   ``threshold^2`` (MSAC); the cheapest has the most agreeing views and,
   among equals, the smallest errors.  An optional prior (where the point was
   a moment ago) votes like one more view (:func:`apply_prior`).  The views
   within ``threshold_px`` of the winner are fitted together, the inlier set
   is re-read from that fit, and the point fitted once more.

A point seen by fewer than ``min_views`` agreeing views is NaN.  Errors are in
undistorted pixels (the camera matrix without lens distortion), which is the
same as distorted pixels to first order; :func:`triangulate.engine.triangulate`
reports final errors through the full camera model.

For ``C`` cameras the pair search has ``C (C - 1) / 2`` hypotheses scored in
``C`` cameras each (6 x 4 for 4 cameras, 120 x 16 for 16), which is why it is
the last resort.  With up to four cameras a point never drops more than one
view, so there the steps above choose exactly what the pair search alone would
settle for a point with one bad view.

Layout: points last, as :class:`triangulate.dlt.Views` (every array (C, N));
points are (3, N) inside, (N, 3) in a :class:`ViewSelection`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from triangulate.dlt import LinearTriangulator, Views, solve_normal

# Entries (points x cameras, or points x pairs x cameras) per chunk of work: 1 MB temporaries.  Measured
# on the 600-frame benchmark (one thread): 2^13 to 2^17 gain 20-30 % (fewer numpy calls); beyond,
# no gain.  The point is the (cameras x pairs x points) arrays of the pair search, which stay bounded.
CHUNK_ENTRIES = 1 << 17


def chunks(n_points: int, entries_per_point: int):
    """Slices over ``n_points`` so that each chunk holds about :data:`CHUNK_ENTRIES` entries."""
    step = max(64, CHUNK_ENTRIES // max(1, entries_per_point))
    return [slice(s, min(s + step, n_points)) for s in range(0, n_points, step)]


@dataclass
class ViewSelection:
    """Result of :func:`select_views` for N points seen by C cameras."""

    points: np.ndarray  # (N, 3) metres, NaN where not triangulated
    error_px: np.ndarray  # (N,) mean reprojection error over the views used, undistorted px
    n_views: np.ndarray  # (N,) int, views used
    inliers: np.ndarray  # (C, N) bool, the views used
    searched: np.ndarray  # (N,) bool: settled by the pair search (the only points a prior can change)
    all_views: np.ndarray  # (N, 3) the pixel fit of every valid view (the soft refit's second start)

    @classmethod
    def empty(cls, n_points: int, n_cams: int) -> "ViewSelection":
        return cls(np.full((n_points, 3), np.nan), np.full(n_points, np.nan), np.zeros(n_points, dtype=np.int64),
                   np.zeros((n_cams, n_points), bool), np.zeros(n_points, bool), np.full((n_points, 3), np.nan))

    def update(self, mask: np.ndarray, part: "ViewSelection") -> None:
        """Overwrite the points selected by ``mask`` (N,) with ``part`` (a selection of just those)."""
        self.points[mask], self.error_px[mask], self.n_views[mask], self.searched[mask], self.all_views[mask] = (
            part.points, part.error_px, part.n_views, part.searched, part.all_views)
        self.inliers[:, mask] = part.inliers

    def subset(self, idx) -> "ViewSelection":
        """The selection of the points ``idx`` (an index array or mask) only."""
        return ViewSelection(self.points[idx], self.error_px[idx], self.n_views[idx], self.inliers[:, idx],
                             self.searched[idx], self.all_views[idx])

    def relabel(self, frames: np.ndarray, n_joints: int, permutation: np.ndarray) -> None:
        """Permute the joints of the selected frames (points laid out frame-major, ``n_joints`` per frame)."""
        for name in ("points", "error_px", "n_views", "searched", "all_views"):
            arr = getattr(self, name)
            view = arr.reshape((-1, n_joints) + arr.shape[1:])
            view[frames] = view[frames][:, permutation]
        view = self.inliers.reshape(self.inliers.shape[0], -1, n_joints)
        view[:, frames] = view[:, frames][:, :, permutation]


def camera_pairs(n_cameras: int) -> np.ndarray:
    """(K, 2) index pairs ``i < j`` of all camera pairs."""
    return np.array(list(combinations(range(n_cameras), 2)), dtype=np.intp).reshape(-1, 2)


@dataclass
class Hypotheses:
    """Two-view points of every camera pair for N points, and how every camera sees them."""

    pairs: np.ndarray  # (K, 2)
    points: np.ndarray  # (3, K, N), NaN where a pair lacks a view
    err2: np.ndarray  # (C, K, N) squared px error of each hypothesis in each camera
    cost: np.ndarray  # (C, K, N) MSAC cost term per camera (threshold^2 for missing views)

    def total_cost(self) -> np.ndarray:
        """(K, N) MSAC cost; infinite where the pair lacks a view."""
        total = self.cost.sum(axis=0)
        np.copyto(total, np.inf, where=~np.isfinite(self.points[0]))
        return total


def pair_hypotheses(lin: LinearTriangulator, views: Views, threshold_px: float,
                    pairs: np.ndarray | None = None) -> Hypotheses:
    """Two-view points of all camera pairs (unweighted: each view's own normal equations), scored in every camera."""
    if pairs is None:
        pairs = camera_pairs(lin.n_cameras)
    i, j = pairs[:, 0], pairs[:, 1]
    q = lin.camera_terms(views.feats)  # (C, 10, N)
    points = solve_normal((q[i] + q[j]).transpose(1, 0, 2))  # (3, K, N)
    np.copyto(points, np.nan, where=~(views.valid[i] & views.valid[j]))
    err2, _ = lin.residuals_sq(points, views.x[:, None], views.y[:, None], scale=False)  # (C, K, N)
    t2 = threshold_px * threshold_px
    cost = np.minimum(err2, t2)
    np.copyto(cost, t2, where=~views.valid[:, None])
    return Hypotheses(pairs, points, err2, cost)


def select_views(
    lin: LinearTriangulator,
    views: Views,
    threshold_px: float = 15.0,
    min_views: int = 2,
) -> ViewSelection:
    """Robust triangulation of N points from C views (the steps of the module docstring).

    ``views`` (:class:`triangulate.dlt.Views`): normalised undistorted
    observations, which are valid, and their row weights (detector
    confidence).  A prior vote is added afterwards by :func:`apply_prior`.
    Points are processed in chunks (:data:`CHUNK_ENTRIES`).
    """
    n_cams, n_points = views.valid.shape
    out = ViewSelection.empty(n_points, n_cams)
    if n_cams < 2:
        return out
    for sl in chunks(n_points, n_cams):
        out.update(sl, _select_chunk(lin, views[sl], threshold_px, min_views))
    return out


def _select_chunk(lin: LinearTriangulator, views: Views, threshold_px: float, min_views: int) -> ViewSelection:
    """One chunk of :func:`select_views`."""
    t2 = threshold_px * threshold_px
    w = views.w
    points = lin.fit(views, w)
    scale = lin.pixel_scale(points)
    points = lin.fit(views, w * scale)
    err2, _ = lin.residuals_sq(points, views.x, views.y, scale=False)
    all_views = points.copy()
    with np.errstate(invalid="ignore"):
        easy = (np.where(views.valid, err2, 0.0) < 0.25 * t2).all(axis=0)  # NaN / inf (behind a camera): not easy
    n_valid = views.valid.sum(axis=0)
    hard = np.flatnonzero(~easy & (n_valid >= 2))
    inliers = views.valid.copy()
    searched = np.zeros(views.n_points, bool)
    if hard.size:
        acc, p, e2, inl = _drop_worst(lin, views[hard], err2[:, hard], points[:, hard], t2)
        at = hard[acc]
        points[:, at], err2[:, at], inliers[:, at] = p, e2, inl
        hard = hard[~acc]
    if hard.size:
        points[:, hard], err2[:, hard], inliers[:, hard] = _pair_search(lin, views[hard], threshold_px)
        searched[hard] = True
    return _finish(points, err2, inliers, searched, all_views, min_views)


def _finish(points, err2, inliers, searched, all_views, min_views, prior=None, prior_gate_m=None) -> ViewSelection:
    """Points (3, N) with fewer than ``min_views`` inliers (or, with a prior gate, two far from it) -> NaN."""
    n_views = inliers.sum(axis=0)
    ok = (n_views >= max(min_views, 2)) & np.isfinite(points).all(axis=0)
    if prior is not None and prior_gate_m is not None:
        with np.errstate(invalid="ignore"):
            far = ((points - prior) ** 2).sum(axis=0) > prior_gate_m * prior_gate_m  # NaN prior: False
        ok &= ~((n_views == 2) & far)
    points = np.where(ok, points, np.nan)
    inliers = inliers & ok
    n_views = np.where(ok, n_views, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.sqrt(np.where(inliers, err2, 0.0)).sum(axis=0) / n_views
    error[~ok] = np.nan
    return ViewSelection(points.T, error, n_views, inliers, searched, all_views.T)


def _drop_worst(lin: LinearTriangulator, views: Views, err2: np.ndarray, points: np.ndarray, t2: float):
    """Drop each point's worst view and refit, again while a majority of at least three views is left.

    A point is accepted once every kept view lies within half the threshold
    (as for the all-view fast path); three views are needed because two
    always fit each other, and a majority so that the views left are the
    consensus, not one side of a split (those go to the pair search).  The
    inliers are then re-read from that fit (a dropped view that agrees comes
    back) and the point refitted.  ``err2`` (C, n) and ``points`` (3, n) are
    the all-view fit's.  Returns ``(accepted (n,), points, err2, inliers)``,
    the last three for the accepted points only.
    """
    n = views.n_points
    kept = views.valid.copy()
    n_valid = kept.sum(axis=0)
    accepted = np.zeros(n, bool)
    out_p, out_e2, out_inl = np.empty((3, n)), np.empty(err2.shape), np.empty(kept.shape, bool)
    todo = np.arange(n)
    e2, scale = err2, None
    dropped = 0
    while todo.size:
        dropped += 1
        v = views[todo]
        k = kept[:, todo]
        worst = np.argmax(np.where(k, np.nan_to_num(e2, nan=np.inf, posinf=np.inf), -1.0), axis=0)
        k[worst, np.arange(todo.size)] = False
        kept[:, todo] = k
        wk = v.w * k
        if scale is None:  # first drop: a linear fit of the rest, then the pixel fit around it
            p = lin.fit(v, wk)
            start = points[:, todo]
            scale = lin.pixel_scale(np.where(np.isfinite(p), p, np.where(np.isfinite(start), start, 0.0)))
        p = lin.fit(v, wk * scale)  # later drops: around the last fit
        e2, scale = lin.residuals_sq(p, v.x, v.y)
        n_kept = k.sum(axis=0)
        with np.errstate(invalid="ignore"):
            ok = (np.where(k, e2, 0.0) < 0.25 * t2).all(axis=0) & (n_kept >= 3)
            inl = v.valid & (e2 < t2)
        if ok.any():
            a = np.flatnonzero(ok)
            va = v[a]
            inl_a = inl[:, a]
            p2 = lin.fit(va, va.w * inl_a * scale[:, a])
            e2b, sc = lin.residuals_sq(p2, va.x, va.y)
            if dropped > 1:  # as the pair search ends: re-read the inliers once more and refit
                with np.errstate(invalid="ignore"):
                    inl_a = va.valid & (e2b < t2)
                p2 = lin.fit(va, va.w * inl_a * sc)
                e2b, _ = lin.residuals_sq(p2, va.x, va.y, scale=False)
            at = todo[a]
            accepted[at] = True
            out_p[:, at], out_e2[:, at], out_inl[:, at] = p2, e2b, inl_a
        more = ~ok & (n_kept > 3) & (2 * (n_kept - 1) > n_valid[todo])
        todo, e2, scale = todo[more], e2[:, more], scale[:, more]
    return accepted, out_p[:, accepted], out_e2[:, accepted], out_inl[:, accepted]


def _pair_search(lin: LinearTriangulator, views: Views, threshold_px: float, prior: np.ndarray | None = None,
                 prior_radius_m: float = 0.1):
    """Pair hypotheses, MSAC choice (``prior`` (3, n) votes), refit on the agreeing views: ``(points, err2, inliers)``.

    Chunked: the (cameras x pairs x points) temporaries stay bounded.
    """
    n_cams, n = views.valid.shape
    pairs = camera_pairs(n_cams)
    t2 = threshold_px * threshold_px
    points, err2, inliers = np.empty((3, n)), np.empty((n_cams, n)), np.empty((n_cams, n), bool)
    for sl in chunks(n, n_cams * len(pairs)):
        v = views[sl]
        hyp = pair_hypotheses(lin, v, threshold_px, pairs)
        cost = hyp.total_cost()  # (K, n)
        if prior is not None:
            pr = prior[:, sl]
            d2 = ((hyp.points - pr[:, None, :]) ** 2).sum(axis=0) / (prior_radius_m * prior_radius_m)
            cost = cost + np.where(np.isfinite(pr[0]), t2 * np.fmin(d2, 1.0), 0.0)
        best = np.argmin(cost, axis=0)  # (n,)
        cols = np.arange(best.size)
        with np.errstate(invalid="ignore"):
            inl = v.valid & (hyp.err2[:, best, cols] < t2)
        # Refit on the agreeing views in pixel-weighted least squares, re-read the inliers, refit.
        scale = lin.pixel_scale(hyp.points[:, best, cols])
        p = lin.fit(v, v.w * inl * scale)
        e2, scale = lin.residuals_sq(p, v.x, v.y)
        with np.errstate(invalid="ignore"):
            inl = v.valid & (e2 < t2)
        p = lin.fit(v, v.w * inl * scale)
        e2, _ = lin.residuals_sq(p, v.x, v.y, scale=False)
        points[:, sl], err2[:, sl], inliers[:, sl] = p, e2, inl
    return points, err2, inliers


def apply_prior(lin: LinearTriangulator, views: Views, sel: ViewSelection, mask: np.ndarray, prior: np.ndarray,
                threshold_px: float, min_views: int = 2, prior_radius_m: float = 0.1,
                prior_gate_m: float | None = None) -> None:
    """Let a prior (N, 3) (NaN where unknown: the same joint in neighbouring frames) vote on the points in ``mask``.

    ``sel`` is :func:`select_views`'s answer for ``views``, updated in place.
    The prior votes like one more view, costing a hypothesis
    ``threshold^2 * min(1, (distance / prior_radius_m)^2)``, which settles
    ties such as two views against two.  Only the pair search weighs votes,
    so only the points it settled are searched again; the others keep their
    views.  Two views alone cannot expose an outlier that happens to lie on
    the other view's epipolar line: with ``prior_gate_m`` a point resting on
    exactly two views and farther than that from its prior is dropped.
    """
    idx = np.flatnonzero(mask)
    search = idx[sel.searched[idx]]
    if search.size:
        pr = prior[search].T
        p, e2, inl = _pair_search(lin, views[search], threshold_px, pr, prior_radius_m)
        sel.update(search, _finish(p, e2, inl, np.ones(search.size, bool), sel.all_views[search].T, min_views, pr,
                                   prior_gate_m))
    if prior_gate_m is not None:
        rest = idx[~sel.searched[idx]]
        with np.errstate(invalid="ignore"):
            far = ((sel.points[rest] - prior[rest]) ** 2).sum(axis=1) > prior_gate_m * prior_gate_m  # NaN: False
        drop = rest[(sel.n_views[rest] == 2) & far]
        sel.points[drop], sel.error_px[drop], sel.n_views[drop] = np.nan, np.nan, 0
        sel.inliers[:, drop] = False


# The auto threshold's rule (:func:`auto_threshold_px`, and live :class:`triangulate.fusion.LiveTriangulator`):
# this many sigmas of the noise, read from the views within AUTO_PROBE_FACTOR x the floor.
AUTO_SIGMAS = 3.0
AUTO_PROBE_FACTOR = 4.0


def auto_threshold_px(lin: LinearTriangulator, views: Views, floor_px: float = 15.0, sigmas: float = AUTO_SIGMAS,
                      probe_factor: float = AUTO_PROBE_FACTOR) -> tuple[float, float]:
    """``(threshold, noise)``: an outlier threshold of ``sigmas`` times the detector's noise, at least ``floor_px``.

    The views are first selected with a generous threshold (``probe_factor``
    times the floor: gross outliers go, a coarse detector's honest errors
    stay), and the noise (px, per axis) is read from the median residual of
    the views used, taken as Rayleigh-distributed (median = 1.1774 sigma).
    A coarse detector on large images (MediaPipe on 1080x1920 video: ~14 px)
    then gets a threshold that keeps its agreeing views; a precise one keeps
    the floor.
    """
    sel = select_views(lin, views, probe_factor * floor_px)
    ok = sel.n_views >= 3  # two views always fit each other: no evidence of noise
    if ok.sum() < 10:
        return float(floor_px), float("nan")
    v = views[ok]
    err2, _ = lin.residuals_sq(sel.points[ok].T, v.x, v.y, scale=False)
    return noise_threshold_px(np.sqrt(err2[sel.inliers[:, ok]]), floor_px, sigmas)


def noise_threshold_px(residuals_px: np.ndarray, floor_px: float = 15.0, sigmas: float = AUTO_SIGMAS) -> tuple[float, float]:
    """``(threshold, noise)`` from the residuals (px) of agreeing views: the noise (px per axis) from their
    median, taken as Rayleigh-distributed (median = 1.1774 sigma), the threshold ``sigmas`` times it, at
    least ``floor_px``.  The rule of :func:`auto_threshold_px`, also applied live to the recent instants
    (:class:`triangulate.fusion.LiveTriangulator`)."""
    noise = float(np.median(residuals_px)) / 1.1774
    return max(float(floor_px), sigmas * noise), noise


# --------------------------------------------------------------------------- soft robust weighting
ROBUST_LOSSES = ("cauchy", "huber", "none")
# Loss scales in units of the detector noise sigma (the per-axis noise: estimated from the data's
# residuals with auto_threshold, else a third of the threshold).  Huber: 1.345, its 95 %-efficiency point
# under Gaussian noise.  Cauchy: 4, not its Gaussian 95 %-efficiency point 2.385: a real detector's
# honest errors are heavy-tailed and correlated in time, and at 2.385 sigma its honest views are weighted
# down too hard (the fit then jitters between view weightings; gross views are cut by gross_factor and
# swaps repaired anyway).  Measured (issue 11), 2.385 -> 4 -> 6: studio with the real detector model
# 0.914 -> 0.885 -> 0.879 x oracle, gaussian model 0.920 -> 0.921 -> 0.924; real Pose2Sim demo, mean
# std of six limb lengths 10.8 -> 10.5 -> 10.7 mm (three of its cameras: 14.0 -> 12.6 -> 12.4); a broad
# optimum, not a point fitted to one recording.
LOSS_SCALE = {"cauchy": 4.0, "huber": 1.345}
# The soft refit's IRLS stops for a point once its step is below this (metres): a micrometre, a thousandth of
# the benchmark's MPJPE.  Steps shrink geometrically, so what is left is of that order.  Measured (600
# frames, issue 11): after the first step 12 % (4 cameras) / 0 % (16) of the points are settled, after the
# second 66 % / 34 %, after the third 94 %: a third to half of the fits of the fixed four iterations.
IRLS_TOL_M = 1e-6
# Shrink the batch to the unsettled points once fewer than this share are left (copying views costs about
# as much as one more step on them).
IRLS_SHRINK = 0.75
# Below this many points per chunk the soft refit runs both starts as one batch (fewer numpy calls: the live
# path's 26 joints); above, as two (no copy of every point's views).
SOFT_CONCAT_BELOW = 1024


def robust_row_weights(err_px: np.ndarray, scale_px: float, loss: str) -> np.ndarray:
    """Row weights (the square root of the IRLS weight, :func:`irls_weights`) of views with reprojection error
    ``err_px``: rows of the linear system are scaled by them since the system squares them."""
    return np.sqrt(irls_weights(err_px * err_px, scale_px, loss))


def irls_weights(err2_px: np.ndarray, scale_px: float, loss: str) -> np.ndarray:
    """The IRLS weight (the squared row weight) of views with squared reprojection error ``err2_px`` (px^2).

    ``cauchy``: ``w = 1 / (1 + (e / s)^2)``; ``huber``: ``w = min(1, s / e)``;
    ``none``: 1.  From the squared error: the soft refit has it, and needs the
    squared row weight (no square root taken and squared again).
    """
    if loss == "none":
        return np.ones_like(err2_px)
    if loss == "cauchy":
        w = err2_px * (1.0 / (scale_px * scale_px))
        w += 1.0
        return np.divide(1.0, w, out=w)
    if loss == "huber":
        with np.errstate(divide="ignore"):
            return np.minimum(1.0, scale_px / np.maximum(np.sqrt(err2_px), 1e-12 * scale_px))
    raise ValueError(f"unknown robust loss {loss!r}; known: {', '.join(ROBUST_LOSSES)}")


def robust_cost(err_px: np.ndarray, scale_px: float, gross_px: float, loss: str) -> np.ndarray:
    """Per-view robust cost ``rho(e)`` in px^2, capped at ``rho(gross_px)`` (a gross view costs a constant)."""
    e = np.minimum(err_px, gross_px)
    u = e / scale_px
    if loss == "cauchy":
        return 0.5 * scale_px * scale_px * np.log1p(u * u)
    if loss == "huber":
        return np.where(u <= 1.0, 0.5 * e * e, scale_px * (e - 0.5 * scale_px))
    return 0.5 * e * e


def _concat_views(a: Views, b: Views) -> Views:
    """The views of ``a``'s points, then ``b``'s (one batch of both)."""
    return Views(*(np.concatenate([getattr(a, f), getattr(b, f)], axis=-1) for f in ("x", "y", "valid", "w", "feats")))


def soft_refit(lin: LinearTriangulator, views: Views, points: np.ndarray, scale_px: float, gross_px: float,
               loss: str = "cauchy", iterations: int = 4, all_views: np.ndarray | None = None,
               prior: np.ndarray | None = None, prior_radius_m: float = 0.1) -> tuple[ViewSelection, np.ndarray]:
    """Refit points on *every* view that is not a gross outlier, each weighted softly by its error.

    Why: a real detector's errors are heavy-tailed and correlated in time
    (``benchmarks/fit_detector_noise.py``), so a view a few sigma off is
    usually an honest view having a bad moment, not a wrong one.  Dropping it
    at a hard threshold makes the point jump between view sets from frame to
    frame (bone lengths jitter); weighting it down smoothly does not.  Views
    farther than ``gross_px`` from the point (another person, a wrong label)
    are still dropped outright.

    Iteratively reweighted least squares (weights = confidence x
    :func:`robust_row_weights`, ``scale_px`` the loss scale, x the
    ``focal / depth`` factor of a pixel fit) from two starts: ``points``, the
    hard selection's answer, and the plain fit of all views; the one with the
    lower :func:`robust_cost` wins.  Both are needed on real data: the hard
    selection can settle on a wrong minority (two views against two where one
    detector collapsed both ankles onto one foot), and the all-view start
    is dragged by a gross outlier; where the two starts are the same (every
    view agreed with the all-view fit) one run serves both.  ``prior`` (N, 3),
    NaN where unknown (the neighbouring frames' median, as in
    :func:`apply_prior`), votes between the two like one more view: a start
    farther than ``prior_radius_m`` from it costs one gross view more (two
    views against two are otherwise a coin toss, and the toss changes from
    frame to frame).  ``views`` as :func:`select_views`; ``points`` (N, 3),
    NaN where the hard selection found none (kept NaN); ``all_views`` (N, 3),
    the plain fit if known (:attr:`ViewSelection.all_views`), saves fitting it
    again.
    Returns ``(selection, row_weights)``: a :class:`ViewSelection` whose
    ``inliers`` are the views that took part (within ``gross_px``), and the
    (C, N) row weights of the final fit (confidence x robust weight; 0 for
    views not used), for a non-linear polish of the same cost.
    """
    n_cams, n_points = views.valid.shape
    row_w = np.zeros((n_cams, n_points))
    out = ViewSelection.empty(n_points, n_cams)
    g2 = gross_px * gross_px

    def irls(v: Views, x: np.ndarray):
        """IRLS from the starts ``x`` (3, n): ``(points, err2)``."""
        # Active set: a point whose step fell below IRLS_TOL_M is done (its weights no longer change); the
        # others go on.  A point's answer depends on its own views only, never on the batch: a settled point
        # is frozen even while it is still computed with the rest (shrinking the batch copies its views,
        # worth it only once a good share has settled).
        x = x.copy()
        idx, va, xa = None, v, x
        live = np.ones(x.shape[1], bool)
        for it in range(iterations):
            err2, scale = lin.residuals_sq(xa, va.x, va.y)
            with np.errstate(invalid="ignore"):
                use = va.valid & (err2 < g2)
            w2 = np.multiply(va.w, scale, out=scale)
            w2 *= w2
            w2 *= irls_weights(np.where(use, err2, 0.0), scale_px, loss)
            np.copyto(w2, 0.0, where=~use)
            x_new = solve_normal(lin.normal(va.feats, w2))
            good = np.isfinite(x_new).all(axis=0) & (use.sum(axis=0) >= 2) & live
            x_new = np.where(good, x_new, xa)
            if it + 1 < iterations:
                with np.errstate(invalid="ignore"):
                    live &= (np.abs(x_new - xa) > IRLS_TOL_M).any(axis=0)
            if idx is None:
                x = xa = x_new
            else:
                x[:, idx] = xa = x_new
            n_live = np.count_nonzero(live)
            if n_live == 0:
                break
            if n_live < IRLS_SHRINK * live.size:
                keep = np.flatnonzero(live)
                idx = keep if idx is None else idx[keep]
                va, xa, live = va[keep], xa[:, keep], live[keep]
        err2, _ = lin.residuals_sq(x, v.x, v.y, scale=False)
        return x, err2

    def start_cost(v: Views, err2: np.ndarray) -> np.ndarray:
        """(n,) robust cost of the views ``v`` at squared errors ``err2``; infinite where not finite."""
        with np.errstate(invalid="ignore"):
            cost = np.where(v.valid, v.w * v.w * robust_cost(np.sqrt(err2), scale_px, gross_px, loss), 0.0).sum(axis=0)
        return np.where(np.isfinite(cost), cost, np.inf)

    for sl in chunks(n_points, 2 * n_cams):
        v = views[sl]
        start = points[sl].T
        live = np.isfinite(start).all(axis=0)  # NaN stays NaN (its error is infinite, it gets no views)
        flat = np.full(start.shape, np.nan) if all_views is None else all_views[sl].T
        redo = np.flatnonzero(live & ~np.isfinite(flat).all(axis=0))
        if redo.size:
            vr, sr = v[redo], start[:, redo]
            f = lin.fit(vr, vr.w)
            scale = lin.pixel_scale(np.where(np.isfinite(f), f, sr))
            flat[:, redo] = lin.fit(vr, vr.w * scale)
        flat = np.where(np.isfinite(flat), flat, start)
        other = np.flatnonzero(live & ~(flat == start).all(axis=0))  # the same start gives the same answer
        n = start.shape[1]
        vo = v[other]
        if n < SOFT_CONCAT_BELOW:
            # Both starts in one IRLS run (every point is fitted on its own): half the calls, for small batches.
            x, err2 = irls(_concat_views(v, vo), np.concatenate([start, flat[:, other]], axis=1))
            x, x_b = x[:, :n], x[:, n:]
            err2, e_b = err2[:, :n], err2[:, n:]
        else:  # large batches: two runs, the views of all points not copied
            x, err2 = irls(v, start)
            x_b, e_b = irls(vo, flat[:, other])
        if other.size:  # the cost decides between the two starts only where there are two
            c_a, c_b = start_cost(vo, err2[:, other]), start_cost(vo, e_b)
            if prior is not None:
                pr = prior[sl][other].T
                known = np.isfinite(pr).all(axis=0)
                gross = float(robust_cost(np.array(gross_px), scale_px, gross_px, loss))

                def vote(p):
                    d2 = ((p - np.where(known, pr, 0.0)) ** 2).sum(axis=0) / (prior_radius_m * prior_radius_m)
                    return np.where(known, gross * np.fmin(d2, 1.0), 0.0)

                c_a, c_b = c_a + vote(x[:, other]), c_b + vote(x_b)
            pick = c_b < c_a
            b = other[pick]
            x[:, b], err2[:, b] = x_b[:, pick], e_b[:, pick]
        with np.errstate(invalid="ignore"):
            use = v.valid & (err2 < g2)
        n_use = use.sum(axis=0)
        keep = n_use >= 2
        x[:, ~keep] = np.nan
        use &= keep
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.sqrt(np.where(use, err2, 0.0)).sum(axis=0) / n_use
        out.points[sl] = x.T
        out.error_px[sl] = np.where(keep, err, np.nan)
        out.n_views[sl] = np.where(keep, n_use, 0)
        out.inliers[:, sl] = use
        row_w[:, sl] = v.w * use * robust_row_weights(np.sqrt(np.where(use, err2, 0.0)), scale_px, loss)
    return out, row_w
