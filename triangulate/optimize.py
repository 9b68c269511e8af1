"""Offline spatio-temporal solve: every frame's joints at once, as one sparse least-squares problem.

Per-frame triangulation treats each instant alone, so a real detector's
heavy-tailed, time-correlated errors reach the bone lengths unchecked (a real
femur keeps its length; a per-frame femur wobbles by 1-3 cm).  Over a whole
recording three kinds of evidence are combined (anipose's
``triangulate_optim`` is the model):

* **reprojection**: every view the engine kept (within its gross-outlier
  limit, so swaps and other people stay out), confidence-weighted, in
  undistorted pixels over the detector noise;
* **temporal smoothness**: the second difference of every joint over frames
  (an acceleration; a joint moving at steady speed costs nothing), over an
  acceleration scale ``smooth_mps2`` in m/s^2;
* **bone-length consistency**: every bone of the skeleton keeps one length, a
  free variable started at the median of the engine's per-frame lengths
  (estimated from the data, never assumed), over ``length_m``.

Each term (a view's 2D error, a joint's 3D acceleration, a bone's length
error), in units of its scale, goes through one robust loss (Cauchy by
default: a real impact or a bad detection is not smoothed away at any price).

Solver: Levenberg-Marquardt with iteratively reweighted least squares for the
loss; each step solves the normal equations matrix-free by preconditioned
conjugate gradients (:func:`_pcg`), with an analytic sparse Jacobian built
vectorised over frames x joints x cameras.  It converges in ~10 steps where
scipy's ``least_squares`` (TRF + LSMR) was still far from the optimum after
100 evaluations (synthetic 10 s, 4 cameras: bone-length std 3.5 mm at 100
evaluations, 4.3 s; here 3.3 mm in 11 steps, ~1 s); a sparse direct solve
(SuperLU) of the same steps took 2-30 s each (fill-in from the bone lengths
and the frame-to-frame coupling).  Measured on one thread (4 cameras, 26
joints): ~350 frames/s for ``triangulate`` with the solve, ~2 300 without.

Long recordings are solved in chunks of ``chunk_frames`` frames that overlap
by ``overlap_frames`` and are cross-faded there, so memory stays bounded
(a chunk of 1 000 frames x 26 joints x 4 cameras peaks at 110 MB); each
chunk solves its own bone lengths, all started at the median over its whole
segment (a person in a multi-person recording is its own segment: people
share no bone lengths and no smoothness).  Points the engine could not
triangulate stay NaN: the solve invents no joints (``--max-gap``
interpolation runs after it, as for plain triangulation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import sparse

from calibration.bundle_adjust import robust_rho
from triangulate.dlt import LinearTriangulator

LOSSES = ("cauchy", "huber", "soft_l1", "linear")


@dataclass
class OptimizeConfig:
    """Weights and limits of :func:`optimize_points`: the one place their defaults live.

    Every term is divided by its scale (one sigma) before the robust loss:
    ``smooth_mps2`` the acceleration a joint may have, ``length_m`` how far
    a bone may stray from its length; the reprojection scale is the detector
    noise the engine estimated (or a third of its outlier threshold).
    ``loss``/``loss_scale``: the robust loss and where it starts (terms
    beyond ``loss_scale`` sigma are down-weighted).  ``max_iterations`` and
    ``tolerance`` (relative cost decrease) stop the solver.  ``chunk_frames``
    and ``overlap_frames``: the size of one solve and the cross-fade between
    consecutive ones.
    """

    smooth_mps2: float = 40.0
    length_m: float = 0.005
    loss: str = "cauchy"
    loss_scale: float = 2.5
    max_iterations: int = 30
    tolerance: float = 1e-4
    chunk_frames: int = 1000
    overlap_frames: int = 30

    def __post_init__(self) -> None:
        for name in ("smooth_mps2", "length_m", "loss_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.overlap_frames < 3:
            raise ValueError(f"overlap_frames must be >= 3, got {self.overlap_frames}")
        if self.chunk_frames < 2 * self.overlap_frames:
            raise ValueError(f"chunk_frames must be >= 2 x overlap_frames ({2 * self.overlap_frames}), "
                             f"got {self.chunk_frames}")

    def describe(self) -> str:
        """One line for the output file's metadata: what was done, with which weights."""
        return (f"spatio-temporal solve (rigcap triangulate --optimize): reprojection + smoothness "
                f"{self.smooth_mps2:g} m/s^2 + bone length {1000 * self.length_m:g} mm, {self.loss} loss at "
                f"{self.loss_scale:g} sigma; bone lengths from the data")


@dataclass
class OptimizeResult:
    points: np.ndarray  # (F, J, 3) metres, NaN where the start was NaN
    bone_lengths: np.ndarray  # (S, B) metres per segment (frame-weighted over its chunks), NaN where unseen
    cost_start: float  # robust cost, summed over chunks, in units of sigma^2
    cost_end: float
    n_iterations: int  # summed over chunks
    n_chunks: int
    chunk_costs: list[tuple[float, float]] = field(default_factory=list)


def bone_index(bones, n_joints: int) -> np.ndarray:
    """(B, 2) joint index pairs of the bones that lie within ``n_joints``, each once, in the given order."""
    b = np.asarray(bones, dtype=np.intp).reshape(-1, 2)
    b = b[(b >= 0).all(1) & (b < n_joints).all(1) & (b[:, 0] != b[:, 1])]
    if not len(b):
        return b
    _, first = np.unique(np.sort(b, axis=1), axis=0, return_index=True)  # each bone once, in the given order
    return b[np.sort(first)]


def median_bone_lengths(points: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """(B,) median length of every bone over the frames where both its joints exist (NaN: never)."""
    lengths = np.linalg.norm(points[:, bones[:, 0]] - points[:, bones[:, 1]], axis=-1)
    if lengths.size == 0:
        return np.full(len(bones), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bone never seen: NaN, said here
        return np.nanmedian(lengths, axis=0)


def chunk_ranges(n_frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Frame ranges ``[a, b)`` of about equal size <= ``chunk`` covering ``n_frames``, consecutive ones
    sharing ``overlap`` frames."""
    if n_frames <= chunk:
        return [(0, n_frames)]
    k = int(np.ceil((n_frames - overlap) / (chunk - overlap)))
    size = int(np.ceil((n_frames + (k - 1) * overlap) / k))
    starts = [i * (size - overlap) for i in range(k)]
    return [(a, min(a + size, n_frames)) for a in starts]


def optimize_points(
    lin: LinearTriangulator,
    xn: np.ndarray,
    weights: np.ndarray,
    points: np.ndarray,
    bones,
    fps: float,
    noise_px: float,
    config: OptimizeConfig | None = None,
    segments: Sequence[tuple[int, int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OptimizeResult:
    """Jointly refine all frames' points.

    ``xn`` (C, F, J, 2) normalised undistorted observations, ``weights``
    (C, F, J) row weights of the views to use (confidence; 0 = unused),
    ``points`` (F, J, 3) the per-frame start (NaN where none), ``bones``
    (B, 2) joint index pairs, ``fps`` the frame rate, ``noise_px`` the
    detector noise (px) that scales the reprojection residuals.
    ``segments``: frame ranges ``[a, b)`` solved independently of each other
    (default: the whole recording is one); frames outside them are returned
    as they came.  ``progress(done, total)`` is called as the solve advances
    (frames of the segments solved so far, and in all).
    """
    cfg = config or OptimizeConfig()
    points = np.asarray(points, dtype=np.float64)
    n_frames, n_joints = points.shape[:2]
    bones = bone_index(bones, n_joints)
    segments = [(0, n_frames)] if segments is None else [(int(a), int(b)) for a, b in segments]
    out = points.copy()
    lengths = np.full((len(segments), len(bones)), np.nan)
    chunk_costs, n_iterations = [], 0
    total = sum(b - a for a, b in segments)
    done = 0
    for s, (a, b) in enumerate(segments):
        seg_pts = points[a:b]
        l_start = median_bone_lengths(seg_pts, bones)
        ranges = chunk_ranges(b - a, cfg.chunk_frames, cfg.overlap_frames)
        acc = np.zeros_like(seg_pts)
        wsum = np.zeros(seg_pts.shape[:1])
        len_acc, len_n = np.zeros(len(bones)), np.zeros(len(bones))
        for i, (ca, cb) in enumerate(ranges):
            new = cb - (ranges[i - 1][1] if i else ca)  # frames this chunk adds to the progress
            report = None
            if progress is not None:
                def report(fraction, start=done, new=new):
                    progress(start + int(round(fraction * new)), total)
            sol = _solve_chunk(lin, xn[:, a + ca:a + cb], weights[:, a + ca:a + cb], seg_pts[ca:cb], bones,
                               l_start, fps, noise_px, cfg, report)
            done += new
            fade = np.ones(cb - ca)
            if i > 0:  # rising over the overlap with the previous chunk
                n_ov = ranges[i - 1][1] - ca
                fade[:n_ov] = (np.arange(n_ov) + 0.5) / n_ov
            if i + 1 < len(ranges):  # falling over the overlap with the next one
                n_ov = cb - ranges[i + 1][0]
                fade[-n_ov:] = np.minimum(fade[-n_ov:], 1.0 - (np.arange(n_ov) + 0.5) / n_ov)
            acc[ca:cb] += fade[:, None, None] * np.nan_to_num(sol.points)
            wsum[ca:cb] += fade
            seen = np.isfinite(sol.lengths)
            len_acc[seen] += (cb - ca) * sol.lengths[seen]
            len_n[seen] += cb - ca
            n_iterations += sol.n_iterations
            chunk_costs.append((sol.cost_start, sol.cost_end))
        known = np.isfinite(seg_pts).all(-1)
        out[a:b] = np.where(known[..., None], acc / wsum[:, None, None], np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            lengths[s] = np.where(len_n > 0, len_acc / np.maximum(len_n, 1), np.nan)
    if progress is not None:
        progress(total, total)
    return OptimizeResult(out, lengths, sum(c[0] for c in chunk_costs), sum(c[1] for c in chunk_costs),
                          n_iterations, len(chunk_costs), chunk_costs)


@dataclass
class _ChunkSolution:
    points: np.ndarray
    lengths: np.ndarray
    cost_start: float
    cost_end: float
    n_iterations: int


def _solve_chunk(lin, xn, weights, points, bones, l_start, fps, noise_px, cfg: OptimizeConfig,
                 report: Callable[[float], None] | None = None) -> _ChunkSolution:
    """One chunk: frames (C, F, J, ...) -> its refined points and bone lengths (see the module doc).

    Unknowns: every (frame, joint) point, laid out frame by frame (the ones
    with no start are pinned: no terms, an identity row), then the bone
    lengths.  Each Levenberg-Marquardt step solves ``(J^T W J + lam D) d =
    -J^T W r`` by conjugate gradients (:func:`_pcg`) preconditioned by the
    exact per-frame blocks of ``J^T W J`` (reprojection + bones of one
    frame), so only the smoothness coupling between frames is left to the
    iterations; ``J^T W J`` itself is never formed.
    """
    n_frames, n_joints = points.shape[:2]
    known = np.isfinite(points).all(-1)  # (F, J)
    if not known.any() or n_frames < 3:
        return _ChunkSolution(points.copy(), np.full(len(bones), np.nan), 0.0, 0.0, 0)
    n_pts = n_frames * n_joints
    n_bones = len(bones)
    n_var = 3 * n_pts + n_bones
    pid = np.arange(n_pts).reshape(n_frames, n_joints)  # point variable of (frame, joint)

    # ---- reprojection terms: one per used view of a known point
    w = np.where(np.isfinite(weights) & known[None], weights, 0.0)
    w = np.where(np.isfinite(xn).all(-1), w, 0.0)
    cam_i, fr_i, jn_i = np.nonzero(w > 0)
    obs = xn[cam_i, fr_i, jn_i]  # (V, 2)
    pv = pid[fr_i, jn_i]  # (V,)
    rot = lin.extrinsics[cam_i, :, :3]  # (V, 3, 3)
    trans = lin.extrinsics[cam_i, :, 3]
    # undistorted px per normalised unit, over the noise, times the view's confidence weight
    row_scale = np.stack([lin.fx, lin.fy], axis=-1)[cam_i] / noise_px * w[cam_i, fr_i, jn_i][:, None]

    # ---- smoothness terms: second differences of consecutive known points
    s_smooth = cfg.smooth_mps2 / float(fps) ** 2
    sf, sj = np.nonzero(known[:-2] & known[1:-1] & known[2:])
    s0, s1, s2 = pid[sf, sj], pid[sf + 1, sj], pid[sf + 2, sj]

    # ---- bone-length terms, on the bones with a length to start from
    has_len = np.isfinite(l_start)
    use_b = np.flatnonzero(has_len)
    both = known[:, bones[use_b, 0]] & known[:, bones[use_b, 1]]
    bf, k = np.nonzero(both)
    bb = use_b[k]  # bone of each term
    ja, jz = bones[bb, 0], bones[bb, 1]
    ba, bz = pid[bf, ja], pid[bf, jz]
    n_view, n_sm, n_bn = len(cam_i), len(sf), len(bf)
    n_rep = 2 * n_view
    n_res = n_rep + 3 * n_sm + n_bn

    def residuals(theta):
        x, lens = theta[:3 * n_pts].reshape(n_pts, 3), theta[3 * n_pts:]
        xc = np.einsum("vij,vj->vi", rot, x[pv]) + trans
        with np.errstate(divide="ignore", invalid="ignore"):
            proj = xc[:, :2] / xc[:, 2:3]
        r_rep = (proj - obs) * row_scale
        r_rep[~(xc[:, 2] > 0)] = 1e6  # behind the camera: as bad as it gets
        r_sm = (x[s0] - 2 * x[s1] + x[s2]) / s_smooth
        r_bn = (np.linalg.norm(x[ba] - x[bz], axis=-1) - lens[bb]) / cfg.length_m
        return np.concatenate([r_rep.ravel(), r_sm.ravel(), r_bn])

    # Which term each residual row belongs to (a view's 2 rows, an acceleration's 3, a bone's 1).
    term_of_row = np.concatenate([np.repeat(np.arange(n_view), 2), n_view + np.repeat(np.arange(n_sm), 3),
                                  n_view + n_sm + np.arange(n_bn)])
    n_terms = n_view + n_sm + n_bn

    def term_costs(r):
        return robust_rho(np.bincount(term_of_row, weights=r * r, minlength=n_terms), cfg.loss, cfg.loss_scale)

    # The Jacobian's pattern is fixed: the CSR structure is built once and its values refilled.
    rep_rows = np.repeat(np.arange(n_rep), 3)
    rep_cols = (3 * np.repeat(pv, 2)[:, None] + np.arange(3)).ravel()
    sm_rows = np.repeat(n_rep + np.arange(3 * n_sm), 3)
    sm_cols = (3 * np.stack([s0, s1, s2], axis=-1)[:, None, :] + np.arange(3)[None, :, None]).ravel()
    coef = np.array([1.0, -2.0, 1.0]) / s_smooth
    sm_vals = np.tile(coef, 3 * n_sm)
    bn_row = n_rep + 3 * n_sm + np.arange(n_bn)
    rows = np.concatenate([rep_rows, sm_rows, np.repeat(bn_row, 3), np.repeat(bn_row, 3), bn_row])
    cols = np.concatenate([rep_cols, sm_cols, (3 * ba[:, None] + np.arange(3)).ravel(),
                           (3 * bz[:, None] + np.arange(3)).ravel(), 3 * n_pts + bb])
    pattern = sparse.csr_matrix((np.arange(1, len(rows) + 1, dtype=np.float64), (rows, cols)), shape=(n_res, n_var))
    order = pattern.data.astype(np.intp) - 1  # CSR slot -> entry of (rows, cols)

    def linearise(theta):
        """Jacobian (CSR) and the pieces of the per-frame blocks: per-view rows, bone directions."""
        x = theta[:3 * n_pts].reshape(n_pts, 3)
        xc = np.einsum("vij,vj->vi", rot, x[pv]) + trans
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = np.where(xc[:, 2] > 0, 1.0 / xc[:, 2], 0.0)
        # d(x/z)/dX = (R0 - (x/z) R2) / z, d(y/z)/dX = (R1 - (y/z) R2) / z
        du = (rot[:, 0] - (xc[:, 0] * inv_z)[:, None] * rot[:, 2]) * (inv_z * row_scale[:, 0])[:, None]
        dv = (rot[:, 1] - (xc[:, 1] * inv_z)[:, None] * rot[:, 2]) * (inv_z * row_scale[:, 1])[:, None]
        d = x[ba] - x[bz]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.nan_to_num(d / np.linalg.norm(d, axis=-1, keepdims=True)) / cfg.length_m
        vals = np.concatenate([np.stack([du, dv], axis=1).ravel(), sm_vals, u.ravel(), -u.ravel(),
                               np.full(n_bn, -1.0 / cfg.length_m)])
        jac = pattern.copy()
        jac.data = vals[order]
        return jac, du, dv, u

    pinned = np.ones(n_var)
    pinned[:3 * n_pts] = np.repeat(~known.ravel(), 3)
    pinned[3 * n_pts:] = ~has_len
    ar = np.arange(n_joints)

    eye = np.eye(3).ravel()
    blk_idx = np.concatenate([pv, ba, bz, s0, s1, s2])

    def point_blocks(wt, du, dv, u):
        """(P, 3, 3) blocks of J^T W J on each point's own three unknowns, and the (B,) lengths' diagonal."""
        wv, ws, wb = wt[:n_view], wt[n_view:n_view + n_sm], wt[n_view + n_sm:]
        rep = wv[:, None, None] * (du[:, :, None] * du[:, None, :] + dv[:, :, None] * dv[:, None, :])
        uu = wb[:, None, None] * u[:, :, None] * u[:, None, :]
        sm = [(c * c * ws)[:, None] * eye for c in coef]
        vals = np.concatenate([rep.reshape(-1, 9), uu.reshape(-1, 9), uu.reshape(-1, 9)] + sm)
        blocks = np.stack([np.bincount(blk_idx, weights=vals[:, k], minlength=n_pts) for k in range(9)], axis=-1)
        len_diag = np.bincount(bb, weights=wb, minlength=n_bones) / cfg.length_m ** 2
        return blocks.reshape(n_pts, 3, 3), len_diag

    theta = np.concatenate([np.nan_to_num(points).ravel(), np.where(has_len, l_start, 0.0)])
    r = residuals(theta)
    rho, wt = term_costs(r)
    cost = cost_start = 0.5 * float(rho.sum())
    lam = 1e-3
    it = 0
    for it in range(1, cfg.max_iterations + 1):
        jac, du, dv, u = linearise(theta)
        wrow = wt[term_of_row]
        g = jac.T @ (wrow * r)
        blocks, len_diag = point_blocks(wt, du, dv, u)
        d_h = np.concatenate([np.diagonal(blocks, axis1=1, axis2=2).ravel(), len_diag])
        improved, rel = False, 0.0
        while lam < 1e10:
            damp = lam * d_h + pinned + 1e-12
            step = _pcg(jac, wrow, damp, blocks, len_diag, -g)
            theta_new = theta + step
            r_new = residuals(theta_new)
            rho_new, wt_new = term_costs(r_new)
            cost_new = 0.5 * float(rho_new.sum())
            if np.isfinite(cost_new) and cost_new < cost:
                rel = (cost - cost_new) / max(cost, 1e-300)
                theta, r, cost, wt = theta_new, r_new, cost_new, wt_new
                lam = max(lam / 3.0, 1e-9)
                improved = True
                break
            lam *= 4.0
        if report is not None:
            report(it / cfg.max_iterations)
        if not improved or rel < cfg.tolerance:
            break
    x, lens = theta[:3 * n_pts].reshape(n_frames, n_joints, 3), theta[3 * n_pts:]
    return _ChunkSolution(np.where(known[..., None], x, np.nan), np.where(has_len, lens, np.nan), cost_start, cost, it)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a @ b`` without BLAS: OpenBLAS threads a long dot product, and on a loaded machine its spinning
    threads made the whole solve 5x slower in CPU time (10 s, 4 cameras: 1.1 s -> 6.1 s)."""
    return float(np.einsum("i,i->", a, b))


def _pcg(jac, wrow, damp, blocks, len_diag, b, rtol: float = 1e-3, max_iter: int = 300) -> np.ndarray:
    """Solve ``(J^T diag(wrow) J + diag(damp)) x = b`` by preconditioned conjugate gradients.

    Preconditioner: the inverse of every point's own 3x3 block (``blocks``
    (P, 3, 3), damping added here) and of the lengths' diagonal; the
    couplings between points (bones in a frame, smoothness across frames)
    are left to the iterations: 10-25 per step at 30 fps, 35-60 at 60 fps
    (the acceleration scale shrinks with the frame interval squared).
    Per-frame blocks with the bones inside took fewer iterations but cost
    more (78x78 inverses, or SuperLU, at every step).  Matrix-free: each
    iteration is two sparse products with ``J``.
    """
    n_p = 3 * blocks.shape[0]
    inv = np.linalg.inv(blocks + damp[:n_p].reshape(-1, 3)[:, :, None] * np.eye(3))
    inv_len = 1.0 / (len_diag + damp[n_p:])
    jt = jac.T.tocsr()

    def apply_a(v):
        return jt @ (wrow * (jac @ v)) + damp * v

    def apply_m(v):
        return np.concatenate([np.einsum("pij,pj->pi", inv, v[:n_p].reshape(-1, 3)).ravel(), inv_len * v[n_p:]])

    x = np.zeros_like(b)
    res = b.copy()
    z = apply_m(res)
    p = z.copy()
    rz = _dot(res, z)
    stop = rtol * np.sqrt(_dot(b, b))
    for _ in range(max_iter):
        ap = apply_a(p)
        alpha = rz / _dot(p, ap)
        x += alpha * p
        res -= alpha * ap
        if np.sqrt(_dot(res, res)) <= stop:
            break
        z = apply_m(res)
        rz_new = _dot(res, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    import os
    if os.environ.get("OPT_DEBUG"):
        print("pcg", _k + 1, np.sqrt(_dot(res, res)) / max(np.sqrt(_dot(b, b)), 1e-300))
    return x
