"""The triangulation engine's default path as it was before its speed-up (main at fe04823), kept as a test oracle.

``tests/test_engine_speedup.py`` checks that the faster engine
(:class:`triangulate.engine.Triangulator`) gives the same points, views and
swap repairs as this code.  Frozen on purpose: never import it from the
package, never "fix" it; it is the reference, not a second implementation.

Covers the default configuration only (view selection, swap repair, temporal
prior, soft Cauchy/Huber refit; no ``auto_threshold``, ``refine`` or
``optimize``), with the old layout: points first, cameras second
(``(N, C, ...)``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np


# --------------------------------------------------------------------------- dlt.py
def sum_last(a, dtype=None):
    a = np.asarray(a)
    out = a[..., 0].astype(dtype if dtype is not None else (np.int64 if a.dtype == bool else a.dtype))
    for i in range(1, a.shape[-1]):
        out += a[..., i]
    return out


def all_last(a):
    out = np.array(a[..., 0], dtype=bool)
    for i in range(1, a.shape[-1]):
        out &= a[..., i]
    return out


TERM_INDEX = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


def normal_basis(extrinsics):
    p = np.asarray(extrinsics, dtype=np.float64)
    p0, p1, p2 = p[:, 0], p[:, 1], p[:, 2]
    basis = np.empty((p.shape[0], 4, len(TERM_INDEX)))
    for m, (i, j) in enumerate(TERM_INDEX):
        basis[:, 0, m] = p2[:, i] * p2[:, j]
        basis[:, 1, m] = -(p2[:, i] * p0[:, j] + p0[:, i] * p2[:, j])
        basis[:, 2, m] = -(p2[:, i] * p1[:, j] + p1[:, i] * p2[:, j])
        basis[:, 3, m] = p0[:, i] * p0[:, j] + p1[:, i] * p1[:, j]
    return basis


def solve_terms(q, eps=1e-12):
    q00, q01, q02, q03, q11, q12, q13, q22, q23 = (q[..., m] for m in range(9))
    c00 = q11 * q22 - q12 * q12
    c01 = q02 * q12 - q01 * q22
    c02 = q01 * q12 - q02 * q11
    c11 = q00 * q22 - q02 * q02
    c12 = q01 * q02 - q00 * q12
    c22 = q00 * q11 - q01 * q01
    det = q00 * c00 + q01 * c01 + q02 * c02
    trace = q00 + q11 + q22
    ok = np.abs(det) > eps * trace * trace * trace
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, -1.0 / det, np.nan)
    out = np.empty(q.shape[:-1] + (3,))
    out[..., 0] = (c00 * q03 + c01 * q13 + c02 * q23) * inv
    out[..., 1] = (c01 * q03 + c11 * q13 + c12 * q23) * inv
    out[..., 2] = (c02 * q03 + c12 * q13 + c22 * q23) * inv
    return out


class LinearTriangulator:
    def __init__(self, extrinsics, intrinsics):
        self.extrinsics = np.asarray(extrinsics, dtype=np.float64)
        self.intrinsics = np.asarray(intrinsics, dtype=np.float64)
        self.n_cameras = self.extrinsics.shape[0]
        self.basis = normal_basis(self.extrinsics)
        self.proj_stack = self.extrinsics.transpose(2, 0, 1).reshape(4, -1)
        self.fx = self.intrinsics[:, 0, 0]
        self.fy = self.intrinsics[:, 1, 1]
        self.focal = 0.5 * (self.fx + self.fy)

    def terms(self, xn):
        x = xn[..., 0]
        y = xn[..., 1]
        feats = np.stack([x * x + y * y, x, y, np.ones_like(x)], axis=-1)
        return np.matmul(feats.transpose(1, 0, 2), self.basis).transpose(1, 0, 2)

    def camera_coords(self, points):
        lead = points.shape[:-1]
        flat = points.reshape(-1, 3)
        out = flat @ self.proj_stack[:3] + self.proj_stack[3]
        return out.reshape(lead + (self.n_cameras, 3))

    def errors_sq(self, points, xn):
        cam = self.camera_coords(points)
        z = cam[..., 2]
        obs = xn.reshape(xn.shape[:1] + (1,) * (points.ndim - 2) + xn.shape[1:])
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1.0 / z
            dx = (cam[..., 0] * inv_z - obs[..., 0]) * self.fx
            dy = (cam[..., 1] * inv_z - obs[..., 1]) * self.fy
        err2 = dx * dx + dy * dy
        err2 = np.where(z > 0, err2, np.inf)
        return err2, z

    def solve(self, q, weights):
        w2 = weights * weights
        acc = q[:, 0] * w2[:, :1]
        for c in range(1, q.shape[1]):
            acc += q[:, c] * w2[:, c:c + 1]
        return solve_terms(acc)

    def pixel_weights(self, points, weights):
        z = self.camera_coords(points)[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(z > 0, self.focal / z, 0.0)
        return np.where(np.isfinite(scale), weights * scale, 0.0)


# --------------------------------------------------------------------------- robust.py
class ViewSelection:
    def __init__(self, points, error_px, n_views, inliers):
        self.points, self.error_px, self.n_views, self.inliers = points, error_px, n_views, inliers

    def update(self, mask, part):
        self.points[mask], self.error_px[mask], self.n_views[mask], self.inliers[mask] = (
            part.points, part.error_px, part.n_views, part.inliers)

    def relabel(self, frames, n_joints, permutation):
        for name in ("points", "error_px", "n_views", "inliers"):
            arr = getattr(self, name)
            view = arr.reshape((-1, n_joints) + arr.shape[1:])
            view[frames] = view[frames][:, permutation]


def camera_pairs(n_cameras):
    return np.array(list(combinations(range(n_cameras), 2)), dtype=np.intp).reshape(-1, 2)


class Hypotheses:
    def __init__(self, pairs, points, err2, cost):
        self.pairs, self.points, self.err2, self.cost = pairs, points, err2, cost

    def total_cost(self):
        total = sum_last(self.cost)
        return np.where(np.isfinite(self.points[..., 0]), total, np.inf)


def pair_hypotheses(lin, q, xn, valid, threshold_px, pairs=None):
    if pairs is None:
        pairs = camera_pairs(lin.n_cameras)
    i, j = pairs[:, 0], pairs[:, 1]
    points = solve_terms(q[:, i] + q[:, j])
    points[~(valid[:, i] & valid[:, j])] = np.nan
    err2, _ = lin.errors_sq(points, xn)
    t2 = threshold_px * threshold_px
    with np.errstate(invalid="ignore"):
        cost = np.where(valid[:, None, :], np.minimum(err2, t2), t2)
    return Hypotheses(pairs, points, err2, cost)


def select_views(lin, xn, valid, weights, threshold_px=15.0, min_views=2, prior=None, prior_radius_m=0.1,
                 prior_gate_m=None, chunk=16384):
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


def _select_chunk(lin, xn, valid, weights, threshold_px, min_views, prior, prior_radius_m, prior_gate_m):
    xn = np.where(valid[..., None], xn, 0.0)
    weights = np.where(valid, weights, 0.0)
    q = lin.terms(xn)
    t2 = threshold_px * threshold_px
    points = lin.solve(q, weights)
    points = lin.solve(q, lin.pixel_weights(points, weights))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    with np.errstate(invalid="ignore"):
        easy = np.where(valid, err2, 0.0) < 0.25 * t2
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
            far = sum_last((points - prior) ** 2) > prior_gate_m * prior_gate_m
        ok &= ~((n_views == 2) & far)
    points[~ok] = np.nan
    inliers &= ok[:, None]
    n_views = np.where(ok, n_views, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = sum_last(np.sqrt(np.where(inliers, err2, 0.0))) / n_views
    error[~ok] = np.nan
    return ViewSelection(points, error, n_views, inliers)


def _drop_worst(lin, q, xn, valid, weights, err2, points, t2):
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


def _robust_fit(lin, q, xn, valid, weights, threshold_px, prior, prior_radius_m):
    n_points = valid.shape[0]
    t2 = threshold_px * threshold_px
    hyp = pair_hypotheses(lin, q, xn, valid, threshold_px)
    cost = hyp.total_cost()
    if prior is not None:
        d2 = sum_last((hyp.points - prior[:, None, :]) ** 2) / (prior_radius_m * prior_radius_m)
        cost = cost + np.where(np.isfinite(prior[:, :1]), t2 * np.fmin(d2, 1.0), 0.0)
    best = np.argmin(cost, axis=1)
    rows = np.arange(n_points)
    best_points = hyp.points[rows, best]
    with np.errstate(invalid="ignore"):
        inliers = valid & (hyp.err2[rows, best] < t2)
    points = lin.solve(q, lin.pixel_weights(best_points, weights * inliers))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    with np.errstate(invalid="ignore"):
        inliers = valid & (err2 < t2)
    points = lin.solve(q, lin.pixel_weights(points, weights * inliers))
    err2 = lin.errors_sq(points[:, None, :], xn)[0][:, 0]
    return points, err2, inliers


def robust_row_weights(err_px, scale_px, loss):
    if loss == "none":
        return np.ones_like(err_px)
    u = err_px / scale_px
    if loss == "cauchy":
        return 1.0 / np.sqrt(1.0 + u * u)
    if loss == "huber":
        with np.errstate(divide="ignore"):
            return np.sqrt(np.minimum(1.0, 1.0 / np.maximum(u, 1e-12)))
    raise ValueError(loss)


def robust_cost(err_px, scale_px, gross_px, loss):
    e = np.minimum(err_px, gross_px)
    u = e / scale_px
    if loss == "cauchy":
        return 0.5 * scale_px * scale_px * np.log1p(u * u)
    if loss == "huber":
        return np.where(u <= 1.0, 0.5 * e * e, scale_px * (e - 0.5 * scale_px))
    return 0.5 * e * e


def soft_refit(lin, xn, valid, weights, points, scale_px, gross_px, loss="cauchy", iterations=4, chunk=16384,
               prior=None, prior_radius_m=0.1):
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


# --------------------------------------------------------------------------- swap.py
def joint_swap_gains(lin, xn, valid, permutation, threshold_px=15.0):
    n_cams, n_frames, n_joints = valid.shape
    permutation = np.asarray(permutation)
    lr = np.flatnonzero(permutation != np.arange(n_joints))
    if n_cams < 3 or lr.size == 0 or n_frames == 0:
        return np.zeros((n_frames, lr.size, n_cams)), lr

    def points_first(a):
        return np.moveaxis(a, 0, 2).reshape((n_frames * lr.size, n_cams) + a.shape[3:])

    ok = points_first(valid[:, :, lr])
    obs = np.where(ok[..., None], points_first(xn[:, :, lr]), 0.0)
    ok_sw = points_first(valid[:, :, permutation[lr]])
    obs_sw = np.where(ok_sw[..., None], points_first(xn[:, :, permutation[lr]]), 0.0)
    t2 = threshold_px * threshold_px
    pairs = camera_pairs(n_cams)
    hyp = pair_hypotheses(lin, lin.terms(obs), obs, ok, threshold_px, pairs)
    n = np.arange(hyp.err2.shape[0])[:, None]
    k = np.arange(len(pairs))
    own = (hyp.err2[n, k, pairs[:, 0]] < t2) & (hyp.err2[n, k, pairs[:, 1]] < t2)
    total = np.where(own, hyp.total_cost(), np.inf)
    contains = np.zeros((len(pairs), n_cams), dtype=bool)
    contains[k, pairs[:, 0]] = True
    contains[k, pairs[:, 1]] = True
    loo = np.where(contains[None], np.inf, total[..., None] - hyp.cost)
    best = np.argmin(loo, axis=1)
    cams = np.arange(n_cams)[None, :]
    usable = ok & ok_sw & np.isfinite(loo[n, best, cams])
    keep = np.minimum(hyp.err2[n, best, cams], t2)
    flip = np.minimum(_own_camera_err2(lin, hyp.points[n, best], obs_sw), t2)
    return np.where(usable, keep - flip, 0.0).reshape(n_frames, lr.size, n_cams), lr


def _own_camera_err2(lin, points, obs):
    ext = lin.extrinsics
    cam = np.einsum("nck,cjk->ncj", points, ext[:, :, :3]) + ext[:, :, 3]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = (cam[..., 0] / z - obs[..., 0]) * lin.fx
        dy = (cam[..., 1] / z - obs[..., 1]) * lin.fy
    return np.where(z > 0, dx * dx + dy * dy, np.inf)


def permute_joints(values, state):
    idx = state.reshape(state.shape + (1,) * (values.ndim - 3))
    return np.take_along_axis(values, np.broadcast_to(idx, state.shape + values.shape[3:]), axis=2)


def detect_swap_states(lin, xn, valid, hypotheses, threshold_px=15.0):
    hypotheses = np.atleast_2d(np.asarray(hypotheses))
    full = hypotheses[0]
    n_cams, n_frames, n_joints = valid.shape
    lr = np.flatnonzero(full != np.arange(n_joints))
    member = (hypotheses[:, lr] != lr[None]).astype(np.float64)
    state = np.broadcast_to(np.arange(n_joints), (n_cams, n_frames, n_joints)).copy()
    changed = np.zeros((n_cams, n_frames), dtype=bool)
    frames = np.arange(n_frames)
    for _ in range(n_cams - 1):
        if frames.size == 0:
            break
        sub_state = state[:, frames]
        sub_xn = permute_joints(xn[:, frames], sub_state)
        sub_valid = permute_joints(valid[:, frames], sub_state)
        per_joint, _ = joint_swap_gains(lin, sub_xn, sub_valid, full, threshold_px)
        gains = np.einsum("hl,flc->hcf", member, per_joint)
        gains[:, changed[:, frames]] = 0.0
        flat = gains.reshape(-1, frames.size)
        best = np.argmax(flat, axis=0)
        ok = flat[best, np.arange(frames.size)] > 0.5 * threshold_px * threshold_px
        h, cam = np.divmod(best[ok], n_cams)
        fr = frames[ok]
        state[cam, fr] = np.take_along_axis(state[cam, fr], hypotheses[h], axis=-1)
        changed[cam, fr] = True
        frames = fr
    return state


def swap_candidates(valid, inliers, permutation, min_joints=2, min_fraction=0.15):
    lr = np.flatnonzero(np.asarray(permutation) != np.arange(valid.shape[-1]))
    if lr.size == 0:
        return np.zeros(valid.shape[1], dtype=bool)
    seen = valid[..., lr]
    bad = (seen & ~inliers[..., lr]).sum(axis=-1)
    flagged = (bad >= min_joints) & (bad >= min_fraction * seen.sum(axis=-1))
    return flagged.any(axis=0)


def apply_swaps(values, swapped, permutation):
    out = np.array(values, copy=True)
    out[swapped] = out[swapped][:, np.asarray(permutation)]
    return out


# --------------------------------------------------------------------------- engine.py
def neighbour_median(points, window):
    n = points.shape[0]
    pad = np.full((window,) + points.shape[1:], np.nan)
    padded = np.concatenate([pad, points, pad])
    idx = np.arange(n)[:, None] + np.concatenate([np.arange(window), np.arange(window + 1, 2 * window + 1)])[None]
    stack = np.sort(padded[idx], axis=1)
    count = np.isfinite(stack).sum(axis=1, keepdims=True)
    lo = np.maximum(count - 1, 0) // 2
    hi = count // 2
    hi = np.where(count > 0, np.minimum(hi, np.maximum(count - 1, 0)), 0)
    med = 0.5 * (np.take_along_axis(stack, lo, axis=1) + np.take_along_axis(stack, hi, axis=1))[:, 0]
    return np.where(count[:, 0] > 0, med, np.nan)


def mirrored_frames(points, permutation, window, min_shift_m=0.1):
    permutation = np.asarray(permutation)
    lr = np.flatnonzero(permutation != np.arange(points.shape[1]))
    if lr.size == 0 or points.shape[0] < 2:
        return np.zeros(points.shape[0], dtype=bool)
    prior = neighbour_median(points[:, lr], window)
    keep = np.linalg.norm(points[:, lr] - prior, axis=-1)
    flip = np.linalg.norm(points[:, permutation[lr]] - prior, axis=-1)
    both = np.isfinite(keep) & np.isfinite(flip)
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        keep_mean = np.where(both, keep, 0.0).sum(axis=1) / n
        flip_mean = np.where(both, flip, 0.0).sum(axis=1) / n
    return (n >= 3) & (flip_mean < 0.5 * keep_mean) & (keep_mean > min_shift_m)


LOSS_SCALE = {"cauchy": 4.0, "huber": 1.345}  # the soft weighting's scale as the engine now has it (issue 11)


def reference_run(cameras, config, permutation, swap_hypotheses, keypoints, lens):
    """``Triangulator.run`` of commit 79454dd for the default path: ``(points, error_px, n_views, inliers, state)``.

    ``cameras``, ``config`` (a TriangulationConfig), the skeleton's swap
    ``permutation`` and ``swap_hypotheses`` (None: no repair), keypoints
    (C, F, J, 3), and ``lens`` (a :class:`triangulate.lens.LensBatch` of the cameras: the lens model
    is shared, it is not what is compared).
    """
    cfg = config
    assert not (cfg.auto_threshold or cfg.refine or cfg.optimize), "the reference covers the default path only"
    lin = LinearTriangulator(np.array([np.hstack([c.R, c.tvec[:, None]]) for c in cameras]),
                             np.array([c.matrix for c in cameras]))
    kp = np.asarray(keypoints, dtype=np.float64)
    n_cams, n_frames, n_joints = kp.shape[:3]
    pixels = kp[..., :2]
    conf = kp[..., 2]
    xn = lens.undistort(pixels)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(xn[..., 0]) & np.isfinite(xn[..., 1]) & (conf >= cfg.min_confidence)
    weights = np.where(valid, conf if cfg.weight_by_confidence else 1.0, 0.0)

    def points_first(a):
        return np.moveaxis(a, 0, 2).reshape((n_frames * n_joints, n_cams) + a.shape[3:])

    xn_p, valid_p, weights_p = points_first(xn), points_first(valid), points_first(weights)
    threshold, noise = cfg.threshold_px, float("nan")
    sel = select_views(lin, xn_p, valid_p, weights_p, threshold, cfg.min_views)
    state = np.broadcast_to(np.arange(n_joints), (n_cams, n_frames, n_joints)).copy()
    if cfg.swap_repair and permutation is not None:
        inl = np.moveaxis(sel.inliers.reshape(n_frames, n_joints, n_cams), 2, 0)
        cand = np.flatnonzero(swap_candidates(valid, inl, permutation))
        if cand.size:
            state[:, cand] = detect_swap_states(lin, xn[:, cand], valid[:, cand], swap_hypotheses, threshold)
        changed = (state != np.arange(n_joints)).any(axis=-1)
        relabelled = bool(changed.any())
        if relabelled:
            xn, valid, weights, pixels = (permute_joints(a, state) for a in (xn, valid, weights, pixels))
            xn_p, valid_p, weights_p = points_first(xn), points_first(valid), points_first(weights)
            redo = np.repeat(changed.any(axis=0), n_joints)
            sel.update(redo, select_views(lin, xn_p[redo], valid_p[redo], weights_p[redo], threshold, cfg.min_views))
        if cfg.temporal_window and n_frames > 1:
            flip = mirrored_frames(sel.points.reshape(n_frames, n_joints, 3), permutation, cfg.temporal_window)
            if flip.any():
                all_cams = np.zeros((n_cams, n_frames), dtype=bool)
                all_cams[:, flip] = True
                state[:, flip] = state[:, flip][..., permutation]
                xn, valid, weights, pixels = (apply_swaps(a, all_cams, permutation)
                                              for a in (xn, valid, weights, pixels))
                sel.relabel(flip, n_joints, permutation)
                relabelled = True
        if relabelled:
            xn_p, valid_p, weights_p = points_first(xn), points_first(valid), points_first(weights)
    prior = None
    if cfg.temporal_window and n_frames > 1:
        prior = neighbour_median(sel.points.reshape(n_frames, n_joints, 3), cfg.temporal_window).reshape(-1, 3)
        n_valid = sum_last(valid_p)
        redo = (n_valid >= 2) & ((sel.n_views != n_valid) | (sel.n_views <= 2))
        sel.update(redo, select_views(lin, xn_p[redo], valid_p[redo], weights_p[redo], threshold,
                                      cfg.min_views, prior=prior[redo], prior_radius_m=cfg.prior_radius_m,
                                      prior_gate_m=cfg.prior_gate_m))
    if cfg.robust_loss != "none":
        scale = cfg.robust_scale_px if cfg.robust_scale_px is not None else (
            LOSS_SCALE.get(cfg.robust_loss, 1.0) * threshold / 3.0)
        sel, _ = soft_refit(lin, xn_p, valid_p, weights_p, sel.points, scale, cfg.gross_factor * threshold,
                            cfg.robust_loss, prior=prior if cfg.soft_prior else None, prior_radius_m=cfg.prior_gate_m)
    px = points_first(pixels)
    d = lens.project(sel.points) - px
    err = np.hypot(d[..., 0], d[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        error = sum_last(np.where(sel.inliers, err, 0.0)) / sel.n_views
    error[sel.n_views == 0] = np.nan
    inliers = np.moveaxis(sel.inliers.reshape(n_frames, n_joints, n_cams), 2, 0)
    return (sel.points.reshape(n_frames, n_joints, 3), error.reshape(n_frames, n_joints),
            sel.n_views.reshape(n_frames, n_joints), inliers, state)
