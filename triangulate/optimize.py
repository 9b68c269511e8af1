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
* **bone-length consistency**: every bone of the skeleton keeps one length per
  recording, a free variable started at the median of the per-frame lengths
  (estimated from the data, never assumed), over ``length_m``.

All residuals are in units of their scale and go through one robust loss
(Cauchy by default: a real impact or a bad detection is not smoothed away at
any price).  The Jacobian is analytic and sparse (scipy ``least_squares``
``trf`` with ``lsmr``), built vectorised over frames x joints x cameras.
Points the engine could not triangulate stay NaN (no invented joints).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import least_squares

from triangulate.dlt import LinearTriangulator


@dataclass
class OptimizeConfig:
    """Scales of :func:`optimize_points` (the loss sees each residual over its scale)."""

    smooth_mps2: float = 40.0  # acceleration a joint may have at 1 sigma, m/s^2
    length_m: float = 0.005  # bone-length deviation at 1 sigma, m
    loss: str = "cauchy"  # scipy least_squares loss on the scaled residuals
    loss_scale: float = 2.5  # f_scale: residuals beyond this many sigma are down-weighted
    max_nfev: int = 40
    progress: bool = False  # a tqdm progress bar over the solver's iterations

    def __post_init__(self) -> None:
        for name in ("smooth_mps2", "length_m", "loss_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_nfev < 1:
            raise ValueError(f"max_nfev must be >= 1, got {self.max_nfev}")


@dataclass
class OptimizeResult:
    points: np.ndarray  # (F, J, 3) metres, NaN where the start was NaN
    bone_lengths: np.ndarray  # (B,) metres, as solved
    cost_start: float
    cost_end: float
    n_iterations: int


def _bone_index(bones, n_joints: int) -> np.ndarray:
    b = np.asarray(bones, dtype=np.intp).reshape(-1, 2)
    return b[(b >= 0).all(1) & (b < n_joints).all(1)]


def optimize_points(
    lin: LinearTriangulator,
    xn: np.ndarray,
    weights: np.ndarray,
    points: np.ndarray,
    bones,
    fps: float,
    noise_px: float,
    config: OptimizeConfig | None = None,
) -> OptimizeResult:
    """Jointly refine all frames' points.

    ``xn`` (C, F, J, 2) normalised undistorted observations, ``weights``
    (C, F, J) row weights of the views to use (confidence; 0 = unused),
    ``points`` (F, J, 3) the per-frame start (NaN where none), ``bones``
    (B, 2) joint index pairs, ``fps`` the frame rate, ``noise_px`` the
    detector noise (px) that scales the reprojection residuals.
    """
    cfg = config or OptimizeConfig()
    points = np.asarray(points, dtype=np.float64)
    n_cams, n_frames, n_joints = weights.shape
    known = np.isfinite(points).all(-1)  # (F, J)
    var_idx = np.full((n_frames, n_joints), -1, dtype=np.intp)
    var_idx[known] = np.arange(known.sum())
    n_pts = int(known.sum())
    bones = _bone_index(bones, n_joints)
    if n_pts == 0:
        return OptimizeResult(points.copy(), np.full(len(bones), np.nan), 0.0, 0.0, 0)

    # ---- reprojection terms: one per used view of a known point
    w = np.where(np.isfinite(weights) & known[None], weights, 0.0)
    w = np.where(np.isfinite(xn).all(-1), w, 0.0)
    cam_i, fr_i, jn_i = np.nonzero(w > 0)
    obs = xn[cam_i, fr_i, jn_i]  # (V, 2)
    sw = w[cam_i, fr_i, jn_i]
    pv = var_idx[fr_i, jn_i]  # (V,) point variable of each view
    ext = lin.extrinsics  # (C, 3, 4)
    rot, trans = ext[:, :, :3], ext[:, :, 3]
    fxy = np.stack([lin.fx, lin.fy], axis=-1)[cam_i] / noise_px  # (V, 2) px per normalised unit / sigma
    row_scale = fxy * sw[:, None]

    # ---- smoothness terms: second differences of consecutive known points
    dt = 1.0 / float(fps)
    s_smooth = cfg.smooth_mps2 * dt * dt
    tri = known[:-2] & known[1:-1] & known[2:] if n_frames >= 3 else np.zeros((0, n_joints), bool)
    sf, sj = np.nonzero(tri)
    s0, s1, s2 = var_idx[sf, sj], var_idx[sf + 1, sj], var_idx[sf + 2, sj]

    # ---- bone-length terms
    if len(bones):
        both = known[:, bones[:, 0]] & known[:, bones[:, 1]]  # (F, B)
        bf, bb = np.nonzero(both)
        ba, bz = var_idx[bf, bones[bb, 0]], var_idx[bf, bones[bb, 1]]
        lengths = np.linalg.norm(points[:, bones[:, 0]] - points[:, bones[:, 1]], axis=-1)
        with np.errstate(all="ignore"):
            l0 = np.nanmedian(np.where(both, lengths, np.nan), axis=0)
        has_len = np.isfinite(l0)
        l0 = np.where(has_len, l0, 0.0)
        keep = has_len[bb]
        bf, bb, ba, bz = bf[keep], bb[keep], ba[keep], bz[keep]
    else:
        bf = bb = ba = bz = np.zeros(0, np.intp)
        l0, has_len = np.zeros(0), np.zeros(0, bool)
    n_bones = len(l0)
    n_var = 3 * n_pts + n_bones

    n_rep, n_sm, n_bn = 2 * len(cam_i), 3 * len(sf), len(bf)

    def unpack(theta):
        return theta[:3 * n_pts].reshape(n_pts, 3), theta[3 * n_pts:]

    def residuals(theta):
        x, lens = unpack(theta)
        xc = np.einsum("vij,vj->vi", rot[cam_i], x[pv]) + trans[cam_i]
        with np.errstate(divide="ignore", invalid="ignore"):
            proj = xc[:, :2] / xc[:, 2:3]
        r_rep = ((proj - obs) * row_scale).ravel()
        r_sm = ((x[s0] - 2 * x[s1] + x[s2]) / s_smooth).ravel()
        d = x[ba] - x[bz]
        r_bn = (np.linalg.norm(d, axis=-1) - lens[bb]) / cfg.length_m
        return np.nan_to_num(np.concatenate([r_rep, r_sm, r_bn]), nan=0.0, posinf=0.0, neginf=0.0)

    # Constant parts of the Jacobian's pattern.
    rep_rows = np.repeat(np.arange(n_rep), 3)
    rep_cols = (3 * np.repeat(pv, 2)[:, None] + np.arange(3)).ravel()
    sm_rows = np.repeat(n_rep + np.arange(n_sm), 3)
    sm_vals = np.tile(np.array([1.0, -2.0, 1.0]) / s_smooth, n_sm)
    sm_cols = np.stack([3 * s0[:, None] + np.arange(3), 3 * s1[:, None] + np.arange(3),
                        3 * s2[:, None] + np.arange(3)], axis=-1).reshape(-1)  # (n_sf, 3 axes, 3 points)
    bn_base = n_rep + n_sm + np.arange(n_bn)

    def jacobian(theta):
        x, lens = unpack(theta)
        xc = np.einsum("vij,vj->vi", rot[cam_i], x[pv]) + trans[cam_i]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1.0 / xc[:, 2]
        r = rot[cam_i]
        # d(x/z)/dX = (R0 - (x/z) R2) / z, d(y/z)/dX = (R1 - (y/z) R2) / z
        du = (r[:, 0] - (xc[:, 0] * inv_z)[:, None] * r[:, 2]) * inv_z[:, None] * row_scale[:, :1]
        dv = (r[:, 1] - (xc[:, 1] * inv_z)[:, None] * r[:, 2]) * inv_z[:, None] * row_scale[:, 1:]
        rep_vals = np.stack([du, dv], axis=1).ravel()
        d = x[ba] - x[bz]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = d / np.linalg.norm(d, axis=-1, keepdims=True) / cfg.length_m
        u = np.nan_to_num(u)
        rows = np.concatenate([rep_rows, sm_rows, np.repeat(bn_base, 3), np.repeat(bn_base, 3), bn_base])
        cols = np.concatenate([rep_cols, sm_cols, (3 * ba[:, None] + np.arange(3)).ravel(),
                               (3 * bz[:, None] + np.arange(3)).ravel(), 3 * n_pts + bb])
        vals = np.concatenate([np.nan_to_num(rep_vals), sm_vals, u.ravel(), -u.ravel(),
                               np.full(n_bn, -1.0 / cfg.length_m)])
        return sparse.csr_matrix((vals, (rows, cols)), shape=(n_rep + n_sm + n_bn, n_var))

    theta0 = np.concatenate([points[known].ravel(), l0])
    bar = None
    callback = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_nfev, desc="spatio-temporal solve", unit="it", leave=False)

        def callback(intermediate_result):
            bar.update(1)
            bar.set_postfix(cost=f"{intermediate_result.cost:.4g}")

    r0 = residuals(theta0)
    try:
        sol = least_squares(residuals, theta0, jac=jacobian, method="trf", tr_solver="lsmr", loss=cfg.loss,
                            f_scale=cfg.loss_scale, max_nfev=cfg.max_nfev, x_scale="jac", ftol=1e-4,
                            callback=callback)
    finally:
        if bar is not None:
            bar.close()
    x, lens = unpack(sol.x)
    out = np.full_like(points, np.nan)
    out[known] = x
    bone_len = np.where(has_len, lens, np.nan) if n_bones else lens.copy()
    return OptimizeResult(out, bone_len, _loss_sum(r0, cfg), float(sol.cost), int(sol.nfev))


def _loss_sum(r: np.ndarray, cfg: OptimizeConfig) -> float:
    z = (r / cfg.loss_scale) ** 2
    if cfg.loss == "cauchy":
        rho = np.log1p(z)
    elif cfg.loss == "soft_l1":
        rho = 2 * (np.sqrt(1 + z) - 1)
    elif cfg.loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    else:
        rho = z
    return float(0.5 * cfg.loss_scale ** 2 * rho.sum())
