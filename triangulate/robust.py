"""Robust view selection: which cameras to trust for each point, vectorised over points.

A detector's view of a joint is either roughly right (a few px of noise) or
wrong (another person, a swapped label, a limb hidden and guessed).  One wrong
view pulls a least-squares point far off, so the views are chosen first:

1. **Hypotheses**: every camera pair that sees the point gives a two-view
   point (all pairs of all points in one closed-form solve,
   :mod:`triangulate.dlt`).
2. **Scoring** (MSAC): each hypothesis is projected into every camera; a view
   costs ``min(error^2, threshold^2)`` and a missing view ``threshold^2``.  The
   cheapest hypothesis has the most agreeing views and, among equals, the
   smallest errors.
   An optional prior (where the point was a moment ago) votes like one more
   view.
3. **Refit**: the views within ``threshold_px`` of the winner are fitted
   together (confidence and ``focal / depth`` weights: a least-squares fit in
   pixels), the inlier set is re-read from that fit, and the point fitted once
   more.

A point seen by fewer than ``min_views`` agreeing views is NaN.  Errors are in
undistorted pixels (the camera matrix without lens distortion), which is the
same as distorted pixels to first order; :func:`triangulate.engine.triangulate`
reports final errors through the full camera model.

For ``C`` cameras there are ``C (C - 1) / 2`` hypotheses: 6 for 4 cameras, 28
for 8.  Shapes: points first, cameras second (``(N, C, ...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from triangulate.dlt import LinearTriangulator, all_last, solve_terms, sum_last


@dataclass
class ViewSelection:
    """Result of :func:`select_views` for N points seen by C cameras."""

    points: np.ndarray  # (N, 3) metres, NaN where not triangulated
    error_px: np.ndarray  # (N,) mean reprojection error over the views used, undistorted px
    n_views: np.ndarray  # (N,) int, views used
    inliers: np.ndarray  # (N, C) bool, the views used

    def update(self, mask: np.ndarray, part: "ViewSelection") -> None:
        """Overwrite the points selected by ``mask`` (N,) with ``part`` (a selection of just those)."""
        self.points[mask], self.error_px[mask], self.n_views[mask], self.inliers[mask] = (
            part.points, part.error_px, part.n_views, part.inliers)

    def relabel(self, frames: np.ndarray, n_joints: int, permutation: np.ndarray) -> None:
        """Permute the joints of the selected frames (points laid out frame-major, ``n_joints`` per frame)."""
        for name in ("points", "error_px", "n_views", "inliers"):
            arr = getattr(self, name)
            view = arr.reshape((-1, n_joints) + arr.shape[1:])
            view[frames] = view[frames][:, permutation]


def camera_pairs(n_cameras: int) -> np.ndarray:
    """(K, 2) index pairs ``i < j`` of all camera pairs."""
    return np.array(list(combinations(range(n_cameras), 2)), dtype=np.intp).reshape(-1, 2)


@dataclass
class Hypotheses:
    """Two-view points of every camera pair for N points, and how every camera sees them."""

    pairs: np.ndarray  # (K, 2)
    points: np.ndarray  # (N, K, 3), NaN where a pair lacks a view
    err2: np.ndarray  # (N, K, C) squared px error of each hypothesis in each camera
    cost: np.ndarray  # (N, K, C) MSAC cost term per camera (threshold^2 for missing views)

    def total_cost(self) -> np.ndarray:
        """(N, K) MSAC cost; infinite where the pair lacks a view."""
        total = sum_last(self.cost)
        return np.where(np.isfinite(self.points[..., 0]), total, np.inf)


def pair_hypotheses(lin: LinearTriangulator, q: np.ndarray, xn: np.ndarray, valid: np.ndarray,
                    threshold_px: float, pairs: np.ndarray | None = None) -> Hypotheses:
    """Two-view points of all camera pairs, scored in every camera.

    ``q`` (N, C, 10) view terms, ``xn`` (N, C, 2) observations (zeros where
    missing), ``valid`` (N, C).
    """
    if pairs is None:
        pairs = camera_pairs(lin.n_cameras)
    i, j = pairs[:, 0], pairs[:, 1]
    points = solve_terms(q[:, i] + q[:, j])  # (N, K, 3)
    points[~(valid[:, i] & valid[:, j])] = np.nan
    err2, _ = lin.errors_sq(points, xn)  # (N, K, C)
    t2 = threshold_px * threshold_px
    with np.errstate(invalid="ignore"):
        cost = np.where(valid[:, None, :], np.minimum(err2, t2), t2)
    return Hypotheses(pairs, points, err2, cost)


def select_views(
    lin: LinearTriangulator,
    xn: np.ndarray,
    valid: np.ndarray,
    weights: np.ndarray,
    threshold_px: float = 15.0,
    min_views: int = 2,
    prior: np.ndarray | None = None,
    prior_radius_m: float = 0.1,
    prior_gate_m: float | None = None,
    chunk: int = 16384,
) -> ViewSelection:
    """Robust triangulation of N points from C views.

    ``xn`` (N, C, 2) normalised undistorted observations (any value where not
    ``valid``), ``valid`` (N, C) bool, ``weights`` (N, C) row weights (detector
    confidence).

    ``prior`` (N, 3), NaN where unknown, is where each point is expected (the
    same joint in neighbouring frames): it votes like one more view, costing a
    hypothesis ``threshold^2 * min(1, (distance / prior_radius_m)^2)``, which
    settles ties such as two views against two.  Two views alone cannot
    expose an outlier that happens to lie on the other view's epipolar line;
    with ``prior_gate_m`` a point resting on exactly two views and farther
    than that from its prior is rejected.

    Points are processed ``chunk`` at a time so the (points x pairs x cameras)
    temporaries stay in cache.
    """
    n_points, n_cams = valid.shape
    out = ViewSelection(np.full((n_points, 3), np.nan), np.full(n_points, np.nan),
                        np.zeros(n_points, dtype=np.int64), np.zeros((n_points, n_cams), bool))
    if n_cams < 2:
        return out
    for start in range(0, n_points, chunk):
        sl = slice(start, start + chunk)
        part = _select_chunk(lin, xn[sl], valid[sl], weights[sl], threshold_px, min_views,
                             None if prior is None else prior[sl], prior_radius_m, prior_gate_m)
        out.points[sl], out.error_px[sl], out.n_views[sl], out.inliers[sl] = (
            part.points, part.error_px, part.n_views, part.inliers)
    return out


def _select_chunk(lin: LinearTriangulator, xn: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                  threshold_px: float, min_views: int, prior: np.ndarray | None, prior_radius_m: float,
                  prior_gate_m: float | None) -> ViewSelection:
    """One chunk of :func:`select_views`.

    Fast paths first: most points have no bad view, so every point is fitted
    on all its views at once; where some view then misses by more than
    ``threshold_px / 2``, the worst view is dropped and the rest refitted
    (:func:`_drop_worst`); only the points that this does not settle go
    through the pair hypotheses.  For a point whose views all agree the
    hypotheses would pick that same view set, so the result is the same, at a
    fraction of the cost (most of all with many cameras: 28 pairs for 8).
    """
    xn = np.where(valid[..., None], xn, 0.0)
    weights = np.where(valid, weights, 0.0)
    q = lin.terms(xn)
    t2 = threshold_px * threshold_px

    points = lin.solve(q, weights)
    points = lin.solve(q, lin.pixel_weights(points, weights))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    with np.errstate(invalid="ignore"):
        easy = np.where(valid, err2, 0.0) < 0.25 * t2  # NaN / inf (behind a camera): not easy
    n_valid = sum_last(valid)
    hard = np.flatnonzero(~all_last(easy) & (n_valid >= 2))
    inliers = valid.copy()
    if hard.size:
        done = _drop_worst(lin, q[hard], xn[hard], valid[hard], weights[hard], err2[hard], points[hard], t2)
        for arr, part in zip((points, err2, inliers), done[1:]):
            arr[hard[done[0]]] = part
        hard = hard[~done[0]]
    if hard.size:
        points[hard], err2[hard], inliers[hard] = _robust_fit(
            lin, q[hard], xn[hard], valid[hard], weights[hard], threshold_px,
            None if prior is None else prior[hard], prior_radius_m)

    n_views = sum_last(inliers)
    ok = (n_views >= max(min_views, 2)) & all_last(np.isfinite(points))
    if prior is not None and prior_gate_m is not None:
        with np.errstate(invalid="ignore"):
            far = sum_last((points - prior) ** 2) > prior_gate_m * prior_gate_m  # NaN prior: False
        ok &= ~((n_views == 2) & far)
    points[~ok] = np.nan
    inliers &= ok[:, None]
    n_views = np.where(ok, n_views, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = sum_last(np.sqrt(np.where(inliers, err2, 0.0))) / n_views
    error[~ok] = np.nan
    return ViewSelection(points, error, n_views, inliers)


def _drop_worst(lin: LinearTriangulator, q: np.ndarray, xn: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                err2: np.ndarray, points: np.ndarray, t2: float):
    """Drop each point's worst view, refit, and accept where at least three remaining views agree.

    Agreement is every kept view within half the threshold, as for the
    all-view fast path; three views are needed because two always fit each
    other.  The inliers are then re-read from that fit (a dropped view that
    agrees comes back) and the point refitted.  Returns ``(accepted, points,
    err2, inliers)``, the last three for the accepted points only.
    """
    rows = np.arange(valid.shape[0])
    worst = np.argmax(np.where(valid, np.nan_to_num(err2, nan=np.inf, posinf=np.inf), -1.0), axis=1)
    kept = valid.copy()
    kept[rows, worst] = False
    start = np.where(np.isfinite(points), points, 0.0)
    p = lin.solve(q, weights * kept)
    p = lin.solve(q, lin.pixel_weights(np.where(np.isfinite(p), p, start), weights * kept))
    e2 = lin.errors_sq(p[:, None, :], xn)[0][:, 0]
    with np.errstate(invalid="ignore"):
        ok = all_last(np.where(kept, e2, 0.0) < 0.25 * t2) & (sum_last(kept) >= 3)
        inl = valid & (e2 < t2)
    acc = np.flatnonzero(ok)
    p2 = lin.solve(q[acc], lin.pixel_weights(p[acc], weights[acc] * inl[acc]))
    e2b = lin.errors_sq(p2[:, None, :], xn[acc])[0][:, 0]
    return ok, p2, e2b, inl[acc]


def _robust_fit(lin: LinearTriangulator, q: np.ndarray, xn: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                threshold_px: float, prior: np.ndarray | None, prior_radius_m: float):
    """Pair hypotheses, MSAC choice, refit on the agreeing views: ``(points, err2, inliers)``."""
    n_points = valid.shape[0]
    t2 = threshold_px * threshold_px
    hyp = pair_hypotheses(lin, q, xn, valid, threshold_px)
    cost = hyp.total_cost()
    if prior is not None:
        d2 = sum_last((hyp.points - prior[:, None, :]) ** 2) / (prior_radius_m * prior_radius_m)
        cost = cost + np.where(np.isfinite(prior[:, :1]), t2 * np.fmin(d2, 1.0), 0.0)
    best = np.argmin(cost, axis=1)  # (N,)
    rows = np.arange(n_points)
    best_points = hyp.points[rows, best]  # (N, 3)
    with np.errstate(invalid="ignore"):
        inliers = valid & (hyp.err2[rows, best] < t2)

    # Refit on the agreeing views in pixel-weighted least squares, re-read the inliers, refit.
    points = lin.solve(q, lin.pixel_weights(best_points, weights * inliers))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    with np.errstate(invalid="ignore"):
        inliers = valid & (err2 < t2)
    points = lin.solve(q, lin.pixel_weights(points, weights * inliers))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    return points, err2, inliers



def auto_threshold_px(lin: LinearTriangulator, xn: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                      floor_px: float = 15.0, sigmas: float = 3.0, probe_factor: float = 4.0) -> tuple[float, float]:
    """``(threshold, noise)``: an outlier threshold of ``sigmas`` times the detector's noise, at least ``floor_px``.

    The views are first selected with a generous threshold (``probe_factor``
    times the floor: gross outliers go, a coarse detector's honest errors
    stay), and the noise (px, per axis) is read from the median residual of
    the views used, taken as Rayleigh-distributed (median = 1.1774 sigma).
    A coarse detector on large images (MediaPipe on 1080x1920 video: ~14 px)
    then gets a threshold that keeps its agreeing views; a precise one keeps
    the floor.  Arrays as :func:`select_views`.
    """
    sel = select_views(lin, xn, valid, weights, probe_factor * floor_px)
    ok = sel.n_views >= 3  # two views always fit each other: no evidence of noise
    if ok.sum() < 10:
        return float(floor_px), float("nan")
    err2 = lin.errors_sq(sel.points[ok][:, None, :], np.where(valid[ok][..., None], xn[ok], 0.0))[0][:, 0]
    res = np.sqrt(err2[sel.inliers[ok]])
    noise = float(np.median(res)) / 1.1774
    return max(float(floor_px), sigmas * noise), noise


# --------------------------------------------------------------------------- soft robust weighting
ROBUST_LOSSES = ("cauchy", "huber", "none")
# Tuning constants (in units of the detector noise sigma) with 95 % efficiency under Gaussian noise.
LOSS_SCALE = {"cauchy": 2.385, "huber": 1.345}


def robust_row_weights(err_px: np.ndarray, scale_px: float, loss: str) -> np.ndarray:
    """Row weights (the square root of the IRLS weight) of views with reprojection error ``err_px``.

    ``cauchy``: ``w = 1 / (1 + (e / s)^2)``; ``huber``: ``w = min(1, s / e)``;
    ``none``: 1.  Rows of the linear system are scaled by ``sqrt(w)`` since
    the system squares them.
    """
    if loss == "none":
        return np.ones_like(err_px)
    u = err_px / scale_px
    if loss == "cauchy":
        return 1.0 / np.sqrt(1.0 + u * u)
    if loss == "huber":
        with np.errstate(divide="ignore"):
            return np.sqrt(np.minimum(1.0, 1.0 / np.maximum(u, 1e-12)))
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


def soft_refit(lin: LinearTriangulator, xn: np.ndarray, valid: np.ndarray, weights: np.ndarray,
               points: np.ndarray, scale_px: float, gross_px: float, loss: str = "cauchy",
               iterations: int = 4, chunk: int = 16384, prior: np.ndarray | None = None,
               prior_radius_m: float = 0.1) -> tuple[ViewSelection, np.ndarray]:
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
    is dragged by a gross outlier.  ``prior`` (N, 3), NaN where unknown
    (the neighbouring frames' median, as in :func:`select_views`), votes
    between the two like one more view: a start farther than
    ``prior_radius_m`` from it costs one gross view more (two views against
    two are otherwise a coin toss, and the toss changes from frame to frame).
    Arrays as :func:`select_views`;
    ``points`` (N, 3), NaN where the hard selection found none (kept NaN).
    Returns ``(selection, row_weights)``: a :class:`ViewSelection` whose
    ``inliers`` are the views that took part (within ``gross_px``), and the
    (N, C) row weights of the final fit (confidence x robust weight; 0 for
    views not used), for a non-linear polish of the same cost.
    """
    n_points, n_cams = valid.shape
    row_w = np.zeros((n_points, n_cams))
    out = ViewSelection(np.array(points, dtype=np.float64, copy=True), np.full(n_points, np.nan),
                        np.zeros(n_points, dtype=np.int64), np.zeros((n_points, n_cams), bool))
    g2 = gross_px * gross_px
    for start in range(0, n_points, chunk):
        sl = slice(start, start + chunk)
        idx = np.flatnonzero(all_last(np.isfinite(out.points[sl])))
        if idx.size == 0:
            continue
        v = valid[sl][idx]
        o = np.where(v[..., None], xn[sl][idx], 0.0)
        w = np.where(v, weights[sl][idx], 0.0)
        q = lin.terms(o)

        def irls(x):
            for _ in range(iterations):
                err2 = lin.errors_sq(x[:, None, :], o)[0][:, 0]
                with np.errstate(invalid="ignore"):
                    use = v & (err2 < g2)
                rw = robust_row_weights(np.sqrt(np.where(use, err2, 0.0)), scale_px, loss)
                x_new = lin.solve(q, lin.pixel_weights(x, w * rw * use))
                good = all_last(np.isfinite(x_new)) & (sum_last(use) >= 2)
                x = np.where(good[:, None], x_new, x)
            err2 = lin.errors_sq(x[:, None, :], o)[0][:, 0]
            with np.errstate(invalid="ignore"):
                cost = sum_last(np.where(v, w * w * robust_cost(np.sqrt(err2), scale_px, gross_px, loss), 0.0))
            return x, err2, np.where(np.isfinite(cost), cost, np.inf)

        x_a, e_a, c_a = irls(out.points[sl][idx])
        flat = lin.solve(q, w)
        flat = lin.solve(q, lin.pixel_weights(np.where(np.isfinite(flat), flat, out.points[sl][idx]), w))
        x_b, e_b, c_b = irls(np.where(np.isfinite(flat), flat, out.points[sl][idx]))
        if prior is not None:
            pr = prior[sl][idx]
            known = all_last(np.isfinite(pr))
            view = float(robust_cost(np.array(gross_px), scale_px, gross_px, loss))
            for x, c in ((x_a, c_a), (x_b, c_b)):
                d2 = sum_last((x - np.where(known[:, None], pr, 0.0)) ** 2) / (prior_radius_m * prior_radius_m)
                c += np.where(known, view * np.fmin(d2, 1.0), 0.0)
        pick_b = c_b < c_a
        x = np.where(pick_b[:, None], x_b, x_a)
        err2 = np.where(pick_b[:, None], e_b, e_a)
        with np.errstate(invalid="ignore"):
            use = v & (err2 < g2)
        n_use = sum_last(use)
        keep = n_use >= 2
        x[~keep] = np.nan
        use &= keep[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            err = sum_last(np.sqrt(np.where(use, err2, 0.0))) / n_use
        rows = start + idx
        out.points[rows] = x
        out.error_px[rows] = np.where(keep, err, np.nan)
        out.n_views[rows] = np.where(keep, n_use, 0)
        out.inliers[rows] = use
        row_w[rows] = w * use * robust_row_weights(np.sqrt(np.where(use, err2, 0.0)), scale_px, loss)
    return out, row_w
