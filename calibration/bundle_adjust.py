"""Bundle adjustment of a rig on ChArUco observations.

Unknowns: every camera's pose (6: Rodrigues + translation), every board pose
(6, board -> world), and optionally every camera's intrinsics (9: fx fy cx
cy k1 k2 p1 p2 k3).  Camera 0's pose is held at its starting value: that is
the gauge (six degrees of freedom); scale is not free, it comes from the
board's metric corner positions.

Residuals are pixel differences between detected corners and the projection
of the board's corners, computed for all observations at once in numpy (no
per-observation Python loop), with an analytic Jacobian.

Solver (default ``"schur"``): Levenberg-Marquardt on the normal equations
with the board poses eliminated by the Schur complement (their 6x6 blocks
inverted all at once), so each step solves a dense system the size of the
camera parameters.  ``scipy.optimize.least_squares`` (TRF + LSMR, ``x_scale="jac"``)
is kept as ``solver="scipy"`` with the analytic Jacobian passed as a sparse
matrix, and as ``"scipy-numeric"`` with finite differences over
``jac_sparsity``.  Measured (perturbed start, intrinsics refined, robust +
final pass, 2 shared cores): 4 cameras x 30 instants (1 782 corners): Schur
0.14 s, scipy analytic 3.1 s, scipy numeric 4.8 s; 4 x 80 (4 843 corners):
Schur 0.47 s, scipy analytic 14 s -- 20-30x, growing with the problem: LSMR
needs hundreds of inner iterations per step on this badly conditioned
system (intrinsics vs poses).  Tried and not better: LSMR tolerances
(``atol``/``btol`` 1e-10: converges, 4x slower still), no ``x_scale``
(does not converge in 200 evaluations), a block-Jacobi change of variables
(camera and board blocks whitened at the start: 4 x 120, 413 s, diverged
on the robust pass).  Both reach the same optimum
(``tests/test_bundle_adjust.py``); on small, loose problems TRF stops on
``ftol`` a little above the Schur solver's cost.

Robustness: a first solve with a robust loss (soft-L1, ``f_scale`` 1 px, by
iteratively reweighted least squares) keeps bad corners from pulling the
solution; then corners whose error exceeds ``max(trim_px, trim_sigma *
robust sigma)`` are dropped, and so are whole views (one camera, one board
pose) whose RMS exceeds ``view_trim`` x the median view's (a blurred or
grazing view is wrong as a whole, by correlated errors no per-corner test
sees); the problem is solved again with the plain squared loss (the
maximum-likelihood estimate for the inliers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from calibration import lens_model
from calibration.camera import Camera, rodrigues_to_matrix

N_INTR = 9  # fx fy cx cy k1 k2 p1 p2 k3
LSMR_MAXITER = 500
VIEW_TRIM = 2.0
# Measured with saddle-refined corners (~0.1 px): this drops 14-18 % of the views (the blurrier
# cameras' views sit above 2x the median); never dropping a view below 0.2-0.3 px brings rigidity
# to the true rig's (4-cam seed 1: 0.364 -> 0.283 mm, true 0.290; 8-cam hard centre 1.97 -> 0.65 mm)
# but the 4-cam worst rotation moves 0.082-0.086 -> 0.12-0.13 deg.  Per-view corner bias against
# the truth is at the noise level (0.015 vs 0.016 px), so both are sampling noise of the
# principal point; kept at 2x until a larger benchmark (more seeds) decides.
VERBOSE = 0


@dataclass
class Observations:
    """Flat list of corner sightings: observation m is corner ``corner[m]`` of board pose ``board[m]`` in camera ``cam[m]``."""

    cam: np.ndarray  # (M,) int
    board: np.ndarray  # (M,) int, index into the board-pose list
    corner: np.ndarray  # (M,) int, ChArUco corner id
    uv: np.ndarray  # (M, 2) detected pixel

    def __len__(self) -> int:
        return int(self.cam.size)

    def subset(self, keep: np.ndarray) -> "Observations":
        return Observations(self.cam[keep], self.board[keep], self.corner[keep], self.uv[keep])

    @classmethod
    def from_corners(cls, corners: np.ndarray, instants: np.ndarray) -> "Observations":
        """From ``corners (C, F, N, 2)``; ``instants`` (K,) are the instants given board poses, in order."""
        sub = corners[:, instants]  # (C, K, N, 2)
        c, k, n = np.nonzero(np.isfinite(sub[..., 0]))
        return cls(c, k, n, sub[c, k, n])


def intrinsics_vector(cam: Camera) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, cam.dist.size)] = cam.dist[:5]
    return np.array([cam.matrix[0, 0], cam.matrix[1, 1], cam.matrix[0, 2], cam.matrix[1, 2], *d])


def project_observations(
    cam_r: np.ndarray, cam_t: np.ndarray, intr: np.ndarray, board_r: np.ndarray, board_t: np.ndarray,
    points: np.ndarray, obs: Observations,
) -> np.ndarray:
    """Pixels (M, 2) of every observation: board corner -> world -> camera -> distorted pixel.

    ``cam_r (C,3)``/``cam_t (C,3)`` world -> camera Rodrigues/translation,
    ``intr (C,9)``, ``board_r (K,3)``/``board_t (K,3)`` board -> world,
    ``points (N,3)`` corners in the board frame.
    """
    rc = rodrigues_to_matrix(cam_r)
    centers = -np.einsum("cji,cj->ci", rc, cam_t)
    rb = rodrigues_to_matrix(board_r)
    return _project(rc, centers, intr, rb, board_t, points, obs)


def _project(rc, centers, intr, rb, origin, points, obs) -> np.ndarray:
    """Same as :func:`project_observations` with cameras as (R, centre): ``x_cam = R (x_world - centre)``."""
    # per board pose and corner first (K*N is smaller than M when many cameras share a pose)
    xw = (np.einsum("kij,nj->kni", rb, points) + origin[:, None, :])[obs.board, obs.corner]
    return _project_world(rc, centers, intr, xw, obs)


@dataclass
class BundleResult:
    cameras: list[Camera]
    board_rvecs: np.ndarray  # (K, 3) board -> world
    board_tvecs: np.ndarray  # (K, 3)
    inliers: np.ndarray  # (M,) bool over the observations given
    errors: np.ndarray  # (M,) px, reprojection error of every observation (final rig)
    rmse: float  # px over inliers
    seconds: float
    n_evaluations: int
    log: list[str] = field(default_factory=list)


class _Layout:
    """Where each unknown lives in the parameter vector.

    Cameras first (the free entries of each camera's 6 pose values, then
    its free intrinsics), then one block of ``block`` values per structure
    element: 6 for a board pose, 3 for a free point.  ``pose_free (C, 6)``
    says which pose values (rvec, centre) are refined; default: all but
    camera ``fixed_cam``'s (the six-degree-of-freedom gauge).
    """

    def __init__(self, n_cams: int, n_boards: int, refine_intrinsics: bool, fixed_cam: int = 0,
                 intrinsics_free: np.ndarray | None = None, block: int = 6, pose_free: np.ndarray | None = None,
                 offset_groups: int = 0):
        self.n_cams, self.n_boards, self.block = n_cams, n_boards, int(block)
        # which of fx fy cx cy k1 k2 p1 p2 k3 are refined, per camera (C, 9) (all by default)
        free = np.ones(N_INTR, bool) if intrinsics_free is None else np.asarray(intrinsics_free, bool)
        self.imask = np.broadcast_to(free, (n_cams, N_INTR)).copy() if refine_intrinsics else np.zeros((n_cams, N_INTR), bool)
        self.refine = bool(self.imask.any())
        self.n_intr = int(self.imask.sum())  # intrinsic unknowns, all cameras
        if pose_free is None:
            self.pmask = np.ones((n_cams, 6), bool)
            self.pmask[fixed_cam] = False
        else:
            self.pmask = np.asarray(pose_free, bool).reshape(n_cams, 6).copy()
        self.n_pose = int(self.pmask.sum())
        # column of each camera's pose value (-1 = held), camera by camera in row-major order
        self.cam_col = np.full((n_cams, 6), -1, dtype=np.int64)
        self.cam_col[self.pmask] = np.arange(self.n_pose)
        off = self.n_pose
        self.intr_off = off
        # column of each camera's intrinsic (-1 = held), camera by camera in row-major order
        self.intr_col = np.full((n_cams, N_INTR), -1, dtype=np.int64)
        self.intr_col[self.imask] = off + np.arange(self.n_intr)
        off += self.n_intr
        # per camera, a 2D pixel offset per observation group (obs.corner): see :class:`OffsetPrior`
        self.n_groups = int(offset_groups)
        self.offset_off = off
        self.offset_col = off + np.arange(n_cams * 2 * self.n_groups, dtype=np.int64).reshape(n_cams, 2 * self.n_groups)
        off += n_cams * 2 * self.n_groups
        self.board_off = off
        self.size = off + self.block * n_boards

    def camera_columns(self, c: int) -> np.ndarray:
        """Parameter indices of camera ``c``'s free values: pose first, then intrinsics."""
        return np.concatenate([self.cam_col[c][self.pmask[c]], self.intr_col[c][self.imask[c]], self.offset_col[c]])

    def offsets(self, x: np.ndarray) -> np.ndarray:
        """(C, G, 2) the per-camera group offsets in ``x`` (G = 0: none)."""
        return x[self.offset_off: self.board_off].reshape(self.n_cams, self.n_groups, 2)

    def pack(self, cam_rt: np.ndarray, intr: np.ndarray, board_rt: np.ndarray) -> np.ndarray:
        parts = [cam_rt[self.pmask]]
        if self.refine:
            parts.append(intr[self.imask])
        parts.append(np.zeros(self.n_cams * 2 * self.n_groups))
        parts.append(np.asarray(board_rt).ravel())
        return np.concatenate(parts)

    def unpack(self, x: np.ndarray, cam_rt0: np.ndarray, intr0: np.ndarray):
        cam_rt = cam_rt0.copy()
        cam_rt[self.pmask] = x[: self.n_pose]
        if self.refine:
            intr = intr0.copy()
            intr[self.imask] = x[self.intr_off: self.intr_off + self.n_intr]
        else:
            intr = intr0
        board_rt = x[self.board_off:].reshape(-1, self.block)
        return cam_rt, intr, board_rt

    def sparsity(self, obs: Observations) -> coo_matrix:
        m = len(obs)
        rows, cols = [], []
        r2 = np.stack([2 * np.arange(m), 2 * np.arange(m) + 1], axis=1)  # (M, 2)
        for col_table in (self.cam_col, self.intr_col if self.refine else None):
            if col_table is None:
                continue
            cols_m = col_table[obs.cam]  # (M, w), -1 = held
            rr = np.repeat(r2[:, :, None], cols_m.shape[1], axis=2)
            cc = np.broadcast_to(cols_m[:, None, :], rr.shape)
            held = cc < 0
            rows.append(rr[~held])
            cols.append(cc[~held])
        rr = np.repeat(r2, self.block, axis=1)
        cc = np.tile(self.board_off + self.block * obs.board[:, None] + np.arange(self.block), (1, 2))
        rows.append(rr.ravel())
        cols.append(cc.ravel())
        rows = np.concatenate(rows)
        cols = np.concatenate(cols)
        return coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(2 * m, self.size))


def _rodrigues_jacobians(rvecs: np.ndarray) -> np.ndarray:
    """(K, 3, 3, 3) ``d R[i, k] / d rvec[j]`` stored as ``[K, j, i, k]`` (OpenCV's exact derivative)."""
    out = np.empty((len(rvecs), 3, 3, 3))
    for n, r in enumerate(rvecs):
        _, jac = cv2.Rodrigues(np.ascontiguousarray(r, dtype=np.float64))
        out[n] = jac.reshape(3, 3, 3)
    return out


# ------------------------------------------------------------ what the cameras look at
class BoardStructure:
    """Rigid boards: each structure element is a board pose (rvec, position of the board's
    centroid), ``points (N, 3)`` its corners about that centroid; observation ``m`` sees
    corner ``obs.corner[m]`` of board pose ``obs.board[m]``."""

    block = 6

    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, dtype=np.float64)

    def world(self, params: np.ndarray, obs: Observations) -> np.ndarray:
        """(M, 3) world position of every observed corner."""
        rb = rodrigues_to_matrix(params[:, :3])
        # per board pose and corner first (K*N is smaller than M when many cameras share a pose)
        xw = np.einsum("kij,nj->kni", rb, self.points) + params[:, None, 3:]
        return xw[obs.board, obs.corner]

    def world_jacobian(self, params: np.ndarray, obs: Observations) -> np.ndarray:
        """(M, 3, 6) d world point / d (board rvec, board position)."""
        m = len(obs)
        drb = _rodrigues_jacobians(params[:, :3])
        pb = self.points[obs.corner]
        dxw_drb = (drb.reshape(-1, 9, 3)[obs.board] @ pb[:, :, None]).reshape(m, 3, 3).transpose(0, 2, 1)
        return np.concatenate([dxw_drb, np.broadcast_to(np.eye(3), (m, 3, 3))], axis=2)


class PointStructure:
    """Free 3D points (a joint at one instant, a wand's marker): each structure element is a
    point's world position; observation ``m`` sees point ``obs.board[m]`` (``obs.corner`` unused)."""

    block = 3

    def world(self, params: np.ndarray, obs: Observations) -> np.ndarray:
        return params[obs.board]

    def world_jacobian(self, params: np.ndarray, obs: Observations) -> np.ndarray:
        return np.broadcast_to(np.eye(3), (len(obs), 3, 3))


def _structure(points_or_structure):
    """A structure object; a plain ``(N, 3)`` array means board corners (the historical signature)."""
    if isinstance(points_or_structure, (BoardStructure, PointStructure)):
        return points_or_structure
    return BoardStructure(points_or_structure)


def _distort_pixels(xc: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Camera-frame points (M, 3) through each observation's intrinsics ``p (M, 9)`` to pixels."""
    xy = xc[:, :2] / xc[:, 2:3]
    return lens_model.distort(xy, p[:, 4:9]) * p[:, 0:2] + p[:, 2:4]


def _project_world(rc, centers, intr, xw, obs) -> np.ndarray:
    """Pixels (M, 2) of world points ``xw (M, 3)`` in each observation's camera."""
    xc = np.einsum("mij,mj->mi", rc[obs.cam], xw - centers[obs.cam])
    return _distort_pixels(xc, intr[obs.cam])


def _jacobian_blocks_fn(layout, cam_rt0, intr0, points, obs):
    """Analytic Jacobian of :func:`_residual_fn`'s residuals, as dense per-observation blocks.

    Returns a function ``x -> (camera pose (M, 2, 6), intrinsics (M, 2, 9) or
    None, structure (M, 2, block))``: the only non-zero columns of each
    observation's two rows (held pose values are dropped by the callers).

    Chain: structure (board pose and corner, or a free point) -> world ->
    camera (camera rotation, centre) -> normalised -> distorted -> pixels
    (intrinsics).  Same parametrisation and column layout as the residuals.
    """
    m = len(obs)
    structure = _structure(points)

    def blocks(x):
        cam_p, intr, board_p = layout.unpack(x, cam_rt0, intr0)
        rc = rodrigues_to_matrix(cam_p[:, :3])
        drc = _rodrigues_jacobians(cam_p[:, :3])  # (C, j, i, k)
        xw = structure.world(board_p, obs)
        d = xw - cam_p[obs.cam, 3:]
        r_m = rc[obs.cam]
        xc = (r_m @ d[:, :, None])[:, :, 0]
        z = xc[:, 2]
        x_n, y_n = xc[:, 0] / z, xc[:, 1] / z
        p = intr[obs.cam]
        fx, fy = p[:, 0], p[:, 1]
        # distorted (xd, yd), d(xd, yd) / d(x, y) and d(xd, yd) / d(k1 k2 p1 p2 k3)
        xyd, dd, d_dist = lens_model.distort(np.stack([x_n, y_n], axis=1), p[:, 4:9], jacobians=True)
        # d(x, y) / d xc
        dn = np.zeros((m, 2, 3))
        dn[:, 0, 0] = 1.0 / z
        dn[:, 1, 1] = 1.0 / z
        dn[:, 0, 2] = -x_n / z
        dn[:, 1, 2] = -y_n / z
        duv_dxc = np.stack([fx, fy], axis=1)[:, :, None] * (dd @ dn)  # (M, 2, 3)
        # camera: rotation (via dR/drvec applied to d) and centre (-R)
        dxc_drc = (drc.reshape(-1, 9, 3)[obs.cam] @ d[:, :, None]).reshape(m, 3, 3).transpose(0, 2, 1)  # (M, 3 xc, 3 rvec)
        cam_vals = np.concatenate([duv_dxc @ dxc_drc, -duv_dxc @ r_m], axis=2)  # (M, 2, 6)
        iv = None
        if layout.refine:
            iv = np.zeros((m, 2, N_INTR))
            iv[:, 0, 0] = xyd[:, 0]
            iv[:, 1, 1] = xyd[:, 1]
            iv[:, 0, 2] = 1.0
            iv[:, 1, 3] = 1.0
            iv[:, :, 4:9] = np.stack([fx, fy], axis=1)[:, :, None] * d_dist
        duv_dxw = duv_dxc @ r_m
        board_vals = duv_dxw @ structure.world_jacobian(board_p, obs)
        return cam_vals, iv, board_vals

    return blocks


def _jacobian_fn(layout, cam_rt0, intr0, points, obs):
    """Analytic Jacobian of :func:`_residual_fn`'s residuals, as a CSR matrix (2M x P)."""
    m = len(obs)
    blocks = _jacobian_blocks_fn(layout, cam_rt0, intr0, points, obs)
    row2 = np.stack([2 * np.arange(m), 2 * np.arange(m) + 1], axis=1)  # (M, 2)

    def jacobian(x):
        cam_vals, iv, board_vals = blocks(x)
        rows, cols, vals = [], [], []
        for table, values in ((layout.cam_col, cam_vals), (layout.intr_col, iv)):
            if values is None:
                continue
            cols_m = np.broadcast_to(table[obs.cam][:, None, :], values.shape)
            held = cols_m < 0
            rows.append(np.broadcast_to(row2[:, :, None], values.shape)[~held])
            cols.append(cols_m[~held])
            vals.append(values[~held])
        w = layout.block
        rows.append(np.repeat(row2[:, :, None], w, axis=2).ravel())
        cols.append(np.broadcast_to((layout.board_off + w * obs.board[:, None] + np.arange(w))[:, None, :],
                                    board_vals.shape).ravel())
        vals.append(board_vals.ravel())
        return coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(2 * m, layout.size)).tocsr()

    return jacobian


@dataclass
class _Normal:
    """The normal equations in Schur form: ``a`` (pc, pc) camera block; per camera ``c``,
    ``couple[c] = (struct ids (n,), W (n, q_c, block))`` its coupling with each structure
    element it sees; ``d`` (K, block, block) structure blocks; gradients ``g_c`` (pc,),
    ``g_b`` (K, block)."""

    a: np.ndarray
    couple: list
    d: np.ndarray
    g_c: np.ndarray
    g_b: np.ndarray


class _NormalEquations:
    """``J^T W J`` and ``J^T W r`` assembled block by block from the dense per-observation Jacobian.

    Camera blocks (pose and intrinsics of one camera) by one matrix product
    per camera; structure blocks (6x6 board poses, 3x3 points) and the
    camera-structure coupling blocks by segment sums over observations sorted
    by structure element.  No sparse matrix is formed, and the coupling is
    kept per camera (only the elements it sees), so tens of thousands of free
    points cost what they touch.
    """

    def __init__(self, layout, obs: Observations):
        self.layout = layout
        self.obs = obs
        n_cams = layout.n_cams
        self.cam_cols = [layout.camera_columns(c) for c in range(n_cams)]
        self.per_cam = []
        for c in range(n_cams):
            idx = np.flatnonzero(obs.cam == c)
            idx = idx[np.argsort(obs.board[idx], kind="stable")]
            boards, starts = np.unique(obs.board[idx], return_index=True)
            self.per_cam.append((idx, boards, starts))
        self.board_order = np.argsort(obs.board, kind="stable")
        self.boards, self.board_starts = np.unique(obs.board[self.board_order], return_index=True)

    def _cam_jac(self, c, idx, cam_vals, iv):
        parts = []
        if self.layout.pmask[c].any():
            parts.append(cam_vals[idx][:, :, self.layout.pmask[c]])
        if iv is not None and self.layout.imask[c].any():
            parts.append(iv[idx][:, :, self.layout.imask[c]])
        if self.layout.n_groups:  # d residual / d offset of (camera, group): the identity
            ov = np.zeros((idx.size, 2, 2 * self.layout.n_groups))
            rows = np.arange(idx.size)
            ov[rows, 0, 2 * self.obs.corner[idx]] = 1.0
            ov[rows, 1, 2 * self.obs.corner[idx] + 1] = 1.0
            parts.append(ov)
        return np.concatenate(parts, axis=2) if parts else np.zeros((idx.size, 2, 0))

    def assemble(self, blocks, r: np.ndarray, w: np.ndarray) -> _Normal:
        layout = self.layout
        cam_vals, iv, board_vals = blocks
        pc, k, nb = layout.board_off, layout.n_boards, layout.block
        r2 = r.reshape(-1, 2)
        wr = r2 * w[:, None]  # (M, 2)
        a = np.zeros((pc, pc))
        g_c = np.zeros(pc)
        couple = []
        for c, (idx, boards, starts) in enumerate(self.per_cam):
            cols = self.cam_cols[c]
            if idx.size == 0 or cols.size == 0:
                couple.append((boards, np.zeros((boards.size, cols.size, nb))))
                continue
            jc = self._cam_jac(c, idx, cam_vals, iv)  # (m, 2, q)
            wjc = jc * w[idx, None, None]
            q = cols.size
            a[np.ix_(cols, cols)] += wjc.reshape(-1, q).T @ jc.reshape(-1, q)
            g_c[cols] += jc.reshape(-1, q).T @ wr[idx].ravel()
            cross = wjc.transpose(0, 2, 1) @ board_vals[idx]  # (m, q, block)
            couple.append((boards, cross if boards.size == idx.size else np.add.reduceat(cross, starts, axis=0)))
        jb = board_vals[self.board_order]
        wjb = jb * w[self.board_order, None, None]
        d = np.zeros((k, nb, nb))
        d[self.boards] = np.add.reduceat(wjb.transpose(0, 2, 1) @ jb, self.board_starts, axis=0)
        g_b = np.zeros((k, nb))
        g_b[self.boards] = np.add.reduceat((jb.transpose(0, 2, 1) @ wr[self.board_order][:, :, None])[:, :, 0], self.board_starts, axis=0)
        return _Normal(a, couple, d, g_c, g_b)


def _from_hessian(layout, obs: Observations, h, g) -> _Normal:
    """The same Schur form from a full (sparse) ``J^T W J`` and ``J^T W r`` (finite differences)."""
    pc, k, nb = layout.board_off, layout.n_boards, layout.block
    h = h.tocsr()
    couple = []
    for c in range(layout.n_cams):
        boards = np.unique(obs.board[obs.cam == c])
        cols = layout.camera_columns(c)
        struct_cols = (pc + nb * boards[:, None] + np.arange(nb)).ravel()
        w = h[cols][:, struct_cols].toarray().reshape(cols.size, boards.size, nb).transpose(1, 0, 2)
        couple.append((boards, w))
    hb = h[pc:, pc:].tocoo()
    same = (hb.row // nb) == (hb.col // nb)
    d = np.zeros((k, nb, nb))
    d[hb.row[same] // nb, hb.row[same] % nb, hb.col[same] % nb] = hb.data[same]
    return _Normal(h[:pc, :pc].toarray(), couple, d, g[:pc], g[pc:].reshape(k, nb))


class _SchurSystem:
    """Solves the damped normal equations of one :class:`_Normal` for the camera step, then the
    structure step, with the structure blocks eliminated.

    The reduced camera matrix ``S = A - sum_k W_k D_k^-1 W_k^T`` is built pair of cameras by pair
    of cameras over the structure elements both see (one matrix product per pair): its cost
    grows with the co-visibility, not with cameras x elements.
    """

    def __init__(self, layout, obs: Observations):
        self.layout = layout
        n = layout.n_cams
        self.cam_cols = [layout.camera_columns(c) for c in range(n)]
        ids = [np.unique(obs.board[obs.cam == c]) for c in range(n)]
        self.pairs = []  # (a, b, rows into a's list, rows into b's list) for b > a
        for a_ in range(n):
            for b_ in range(a_ + 1, n):
                _, ia, ib = np.intersect1d(ids[a_], ids[b_], assume_unique=True, return_indices=True)
                if ia.size:
                    self.pairs.append((a_, b_, ia, ib))

    def solve(self, ne: _Normal, lam: float):
        layout = self.layout
        pc, nb = layout.board_off, layout.block
        diag_a = np.diag(ne.a)
        diag_d = np.einsum("kii->ki", ne.d)
        s = ne.a + np.diag(lam * np.maximum(diag_a, 1e-12))
        d_l = ne.d.copy()
        idx = np.arange(nb)
        d_l[:, idx, idx] += lam * np.maximum(diag_d, 1e-12)
        d_inv = np.linalg.inv(d_l)
        rhs = -ne.g_c.copy()
        v = []  # W D^-1 per camera
        for c, (boards, w) in enumerate(ne.couple):
            cols = self.cam_cols[c]
            vc = w @ d_inv[boards]  # (n, q, block)
            v.append(vc)
            if cols.size == 0 or boards.size == 0:
                continue
            q = cols.size
            s[np.ix_(cols, cols)] -= vc.transpose(1, 0, 2).reshape(q, -1) @ w.transpose(1, 0, 2).reshape(q, -1).T
            rhs[cols] += np.einsum("nqi,ni->q", vc, ne.g_b[boards])
        for a_, b_, ia, ib in self.pairs:
            ca, cb = self.cam_cols[a_], self.cam_cols[b_]
            if ca.size == 0 or cb.size == 0:
                continue
            va = v[a_][ia].transpose(1, 0, 2).reshape(ca.size, -1)
            wb = ne.couple[b_][1][ib].transpose(1, 0, 2).reshape(cb.size, -1)
            blk = va @ wb.T
            s[np.ix_(ca, cb)] -= blk
            s[np.ix_(cb, ca)] -= blk.T
        dx_c = np.linalg.solve(s, rhs) if pc else np.zeros(0)
        t = -ne.g_b.copy()
        for c, (boards, w) in enumerate(ne.couple):
            cols = self.cam_cols[c]
            if cols.size and boards.size:
                t[boards] -= np.einsum("nqi,q->ni", w, dx_c[cols])
        dx_b = np.einsum("kij,kj->ki", d_inv, t)
        return np.concatenate([dx_c, dx_b.ravel()])


def _residual_fn(layout, cam_rt0, intr0, points, obs):
    # internal parametrisation (better conditioned): cameras as (rvec, centre),
    # boards as (rvec, position of the board's centroid); the board's points
    # centred on their centroid.  Free points: their world position.
    structure = _structure(points)

    def residuals(x):
        cam_p, intr, board_p = layout.unpack(x, cam_rt0, intr0)
        rc = rodrigues_to_matrix(cam_p[:, :3])
        uv = _project_world(rc, cam_p[:, 3:], intr, structure.world(board_p, obs), obs)
        if layout.n_groups:
            uv = uv + layout.offsets(x)[obs.cam, obs.corner]
        return (uv - obs.uv).ravel()

    return residuals


@dataclass
class _Solution:
    x: np.ndarray
    fun: np.ndarray
    nfev: int
    iterations: int


def _solve_scipy(layout, x0, residuals, obs, loss, f_scale, max_nfev, ftol, jacobian=None) -> _Solution:
    """``scipy.optimize.least_squares`` (TRF + LSMR on the sparse Jacobian); kept for comparison:
    LSMR needs hundreds of inner iterations per step on these problems.  ``jacobian``: the
    analytic sparse Jacobian (callable returning CSR); without it, finite differences over
    ``jac_sparsity``."""
    jac = {"jac": jacobian} if jacobian is not None else {"jac_sparsity": layout.sparsity(obs)}
    res = least_squares(
        residuals, x0, **jac, method="trf", tr_solver="lsmr", loss=loss,
        f_scale=f_scale, x_scale="jac", max_nfev=max_nfev, ftol=ftol, xtol=1e-10, gtol=1e-10, verbose=VERBOSE,
        tr_options=dict(regularize=False, atol=1e-8, btol=1e-8, maxiter=LSMR_MAXITER),
    )
    return _Solution(res.x, res.fun, int(res.nfev), int(res.nfev))


def robust_rho(err2: np.ndarray, loss: str, f_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-observation cost rho and IRLS weight rho' for squared pixel errors ``err2`` (M,)."""
    if loss == "linear":
        return err2, np.ones_like(err2)
    z = err2 / f_scale**2
    if loss == "soft_l1":
        return 2.0 * f_scale**2 * (np.sqrt(1.0 + z) - 1.0), 1.0 / np.sqrt(1.0 + z)
    if loss == "cauchy":
        return f_scale**2 * np.log1p(z), 1.0 / (1.0 + z)
    if loss == "huber":
        return np.where(z <= 1, err2, f_scale**2 * (2.0 * np.sqrt(z) - 1.0)), np.where(z <= 1, 1.0, 1.0 / np.sqrt(np.maximum(z, 1)))
    raise ValueError(f"unknown loss {loss!r} (linear, soft_l1, huber, cauchy)")


def _solve_schur(layout, x0, residuals, obs, loss, f_scale, max_iter, ftol, blocks=None, progress=None,
                 offset_weight: float = 0.0) -> _Solution:
    """Levenberg-Marquardt on the normal equations, the structure (board poses or free points)
    eliminated by the Schur complement.

    The Jacobian is analytic (``blocks``, assembled into the normal
    equations block by block, see :class:`_NormalEquations`), or else comes from finite
    differences over the sparsity pattern (columns that share no row are
    perturbed together: ~20-40 residual evaluations per Jacobian whatever
    the problem size).  Structure elements only couple with cameras, so their
    6x6 (board) or 3x3 (point) blocks of ``J^T J`` are inverted all at once and
    the step solves a dense system the size of the camera parameters (~15 per
    camera, see :class:`_SchurSystem`): milliseconds for 8+ cameras and
    thousands of sightings.  Robust losses by iteratively reweighted least
    squares.  ``progress(iteration, cost)`` is called after every iteration.
    ``offset_weight``: the ridge ``w * sum(offset^2)`` added to the cost when the layout has
    per-camera group offsets (their Gaussian prior, see :class:`OffsetPrior`).
    """
    from scipy.optimize._numdiff import approx_derivative, group_columns

    if blocks is None:
        sparsity = layout.sparsity(obs).tocsc()
        groups = group_columns(sparsity)
    else:
        normal = _NormalEquations(layout, obs)
    system = _SchurSystem(layout, obs)
    x = x0.copy()
    r = residuals(x)
    nfev = 1

    prior_cols = layout.offset_col.ravel() if layout.n_groups else np.zeros(0, np.int64)

    def cost_of(res, x):
        rho, _ = robust_rho((res.reshape(-1, 2) ** 2).sum(axis=1), loss, f_scale)
        return float(rho.sum()) + offset_weight * float(np.sum(x[prior_cols] ** 2))

    cost = cost_of(r, x)
    lam = 1e-3
    it = 0
    for it in range(1, max_iter + 1):
        _, w = robust_rho((r.reshape(-1, 2) ** 2).sum(axis=1), loss, f_scale)
        if blocks is not None:
            ne = normal.assemble(blocks(x), r, w)
        else:
            jac = approx_derivative(residuals, x, method="2-point", f0=r, sparsity=(sparsity, groups)).tocsr()
            nfev += int(groups.max()) + 1
            jw = jac.multiply(np.repeat(w, 2)[:, None]).tocsr()
            ne = _from_hessian(layout, obs, jac.T @ jw, jw.T @ r)
        if prior_cols.size:
            ne.a[prior_cols, prior_cols] += offset_weight
            ne.g_c[prior_cols] += offset_weight * x[prior_cols]
        improved = False
        while lam < 1e12:
            try:
                step = system.solve(ne, lam)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            x_new = x + step
            r_new = residuals(x_new)
            nfev += 1
            cost_new = cost_of(r_new, x_new) if np.all(np.isfinite(r_new)) else np.inf
            if cost_new < cost:
                improved = True
                rel = (cost - cost_new) / max(cost, 1e-300)
                x, r, cost = x_new, r_new, cost_new
                lam = max(lam / 3.0, 1e-9)
                break
            lam *= 4.0
        if progress is not None:
            progress(it, cost)
        if not improved or rel < ftol:
            break
    return _Solution(x, r, nfev, it)


def _solve(layout, x0, cam_rt0, intr0, points, obs, loss, f_scale, max_nfev, ftol, solver="schur", progress=None,
           offset_weight: float = 0.0):
    residuals = _residual_fn(layout, cam_rt0, intr0, points, obs)
    if layout.n_groups and solver != "schur":
        raise ValueError(f"per-camera group offsets need the schur solver, not {solver!r}")
    if solver == "scipy":
        return _solve_scipy(layout, x0, residuals, obs, loss, f_scale, max_nfev, ftol,
                            _jacobian_fn(layout, cam_rt0, intr0, points, obs))
    if solver == "scipy-numeric":
        return _solve_scipy(layout, x0, residuals, obs, loss, f_scale, max_nfev, ftol)
    if solver == "schur":
        return _solve_schur(layout, x0, residuals, obs, loss, f_scale, max_nfev, ftol,
                            _jacobian_blocks_fn(layout, cam_rt0, intr0, points, obs), progress, offset_weight)
    if solver == "schur-numeric":
        return _solve_schur(layout, x0, residuals, obs, loss, f_scale, max_nfev, ftol, progress=progress)
    raise ValueError(f"unknown solver {solver!r} (schur, schur-numeric, scipy, scipy-numeric)")


def _check_pinhole(cameras: list[Camera]) -> None:
    for cam in cameras:
        if cam.fisheye or np.any(cam.dist[5:]):
            raise ValueError(f"camera {cam.name!r}: bundle adjustment models k1 k2 p1 p2 k3 only (pinhole)")


def _robust_sigma(err: np.ndarray) -> float:
    """Per-axis noise sigma from pixel error norms: the median of a Rayleigh distribution."""
    return float(np.median(err) / np.sqrt(2.0 * np.log(2.0))) if err.size else float("nan")


def _robust_then_trim(layout, structure, cam_rt0, intr0, x0, obs, *, loss, f_scale, trim_px, trim_sigma,
                      views, view_trim, min_per_element, max_nfev, ftol, solver, log, robust_passes=1,
                      progress=None, offsets: "OffsetPrior | None" = None):
    """The robust pass(es), the trimming of bad observations (and bad views), and the final
    squared-loss pass on the inliers; the shared outer loop of both bundle adjustments.

    ``views`` (M,) groups observations into views (one camera, one board pose)
    for ``view_trim``; ``min_per_element``: inlier observations a structure
    element needs to stay in the problem.  With ``robust_passes`` > 1 every
    further robust pass takes ``f_scale`` = the noise sigma the previous pass
    left (for a start far from the optimum, where 1 px means nothing yet).
    ``offsets``: the prior of the per-camera group offsets in the layout; each pass weighs it
    by the noise the previous one left (:meth:`OffsetPrior.weight`).
    Returns (solution, inlier mask, evaluations).
    """
    n_eval = 0
    keep = np.ones(len(obs), bool)
    tick = (lambda name: (lambda it, cost: progress(name, it, cost))) if progress else (lambda name: None)

    def prior_weight(x, o):
        if offsets is None:
            return 0.0
        err = np.linalg.norm(_residual_fn(layout, cam_rt0, intr0, structure, o)(x).reshape(-1, 2), axis=1)
        return offsets.weight(_robust_sigma(err))

    res = _solve(layout, x0, cam_rt0, intr0, structure, obs, loss, f_scale, max_nfev, ftol, solver, tick("robust pass 1"),
                 prior_weight(x0, obs))
    n_eval += res.nfev
    if loss == "linear":
        return res, keep, n_eval
    scale = f_scale
    for p in range(2, robust_passes + 1):
        err = np.linalg.norm(res.fun.reshape(-1, 2), axis=1)
        scale = max(f_scale, _robust_sigma(err))
        log.append(f"robust pass {p - 1}: {res.iterations} iterations, median error {np.median(err):.3f} px")
        res = _solve(layout, res.x, cam_rt0, intr0, structure, obs, loss, scale, max_nfev, ftol, solver,
                     tick(f"robust pass {p}"), prior_weight(res.x, obs))
        n_eval += res.nfev
    err = np.linalg.norm(res.fun.reshape(-1, 2), axis=1)
    threshold = max(trim_px, trim_sigma * _robust_sigma(err))
    keep = err <= threshold
    view_log = ""
    if view_trim and views is not None:
        # a view (one camera, one board pose) mis-detected as a whole (blur, a grazing angle)
        # carries correlated errors that per-corner trimming cannot see; its RMS gives it away
        _, inv = np.unique(views, return_inverse=True)
        n_v = np.bincount(inv, keep)
        v_rms = np.sqrt(np.bincount(inv, np.where(keep, err, 0.0) ** 2) / np.maximum(n_v, 1))
        bad_view = v_rms > view_trim * np.median(v_rms[n_v > 0])
        keep &= ~bad_view[inv]
        view_log = f"; {int(bad_view.sum())} of {bad_view.size} views with RMS above {view_trim:g} x the median view's dropped"
    log.append(f"robust pass: {res.iterations} iterations, {res.nfev} evaluations, median error {np.median(err):.3f} px; "
               f"{(err > threshold).sum()} of {keep.size} observations above {threshold:.2f} px dropped" + view_log)
    # a structure element left with too few observations cannot be solved: drop it (and its rows)
    per_element = np.bincount(obs.board[keep], minlength=layout.n_boards)
    keep &= per_element[obs.board] >= min_per_element
    res = _solve(layout, res.x, cam_rt0, intr0, structure, obs.subset(keep), "linear", f_scale, max_nfev, ftol, solver,
                 tick("final pass"), prior_weight(res.x, obs.subset(keep)))
    n_eval += res.nfev
    log.append(f"final pass (squared loss, inliers): {res.iterations} iterations, {res.nfev} evaluations")
    return res, keep, n_eval


def _cameras_from(cameras: list[Camera], layout, cam_p: np.ndarray, intr: np.ndarray) -> list[Camera]:
    """Copies of ``cameras`` with the adjusted poses (rvec, centre) and intrinsics."""
    rc = rodrigues_to_matrix(cam_p[:, :3])
    out = []
    for c, cam in enumerate(cameras):
        new = cam.copy()
        new.rvec, new.tvec = cam_p[c, :3], -rc[c] @ cam_p[c, 3:]
        if layout.imask[c].any():
            k = np.array([[intr[c, 0], 0.0, intr[c, 2]], [0.0, intr[c, 1], intr[c, 3]], [0.0, 0.0, 1.0]])
            dist = new.dist.copy() if new.dist.size >= 5 else np.zeros(5)
            dist[:5] = intr[c, 4:]
            new = Camera(new.name, new.size, k, dist, new.rvec, new.tvec, new.fisheye)
        out.append(new)
    return out


def bundle_adjust(
    cameras: list[Camera],
    board_rvecs: np.ndarray,
    board_tvecs: np.ndarray,
    points: np.ndarray,
    obs: Observations,
    refine_intrinsics: bool = True,
    intrinsics_free: np.ndarray | None = None,
    loss: str = "soft_l1",
    f_scale: float = 1.0,
    trim_px: float = 1.0,
    trim_sigma: float = 4.0,
    view_trim: float | None = VIEW_TRIM,
    max_nfev: int = 100,
    ftol: float = 1e-7,
    solver: str = "schur",
) -> BundleResult:
    """Jointly refine camera poses (camera 0 held), board poses and optionally intrinsics.

    ``points (N, 3)`` are the board's corners in its own frame (metres).
    ``solver``: ``"schur"`` (Levenberg-Marquardt with the board poses
    eliminated and an analytic Jacobian, the default), ``"schur-numeric"``
    (the same with finite differences over ``jac_sparsity``), ``"scipy"``
    (``least_squares``, TRF + LSMR, the analytic Jacobian as a sparse matrix:
    same optimum, 25-35x slower here, see the module docstring) or
    ``"scipy-numeric"`` (``least_squares`` with ``jac_sparsity``).
    ``max_nfev``: iterations (schur) or residual evaluations (scipy) per pass.
    ``intrinsics_free``: 9 booleans (fx fy cx cy k1 k2 p1 p2 k3) saying which
    intrinsics are refined when ``refine_intrinsics`` (default all), or one
    such row per camera ``(C, 9)`` (a simpler lens model for a camera whose
    board sightings cover little of its image); the others keep the
    cameras' values.
    Observations with error above ``max(trim_px, trim_sigma * robust sigma)``
    after the robust pass are dropped before the final squared-loss pass.
    """
    t0 = time.perf_counter()
    _check_pinhole(cameras)
    log: list[str] = []
    n_cams, n_boards = len(cameras), len(board_rvecs)
    cam_rt0 = np.array([np.concatenate([c.rvec, c.center]) for c in cameras])
    intr0 = np.array([intrinsics_vector(c) for c in cameras])
    centroid = points.mean(axis=0)
    points = points - centroid
    board_rt = np.concatenate([board_rvecs, board_tvecs + rodrigues_to_matrix(board_rvecs) @ centroid], axis=1)
    layout = _Layout(n_cams, n_boards, refine_intrinsics, intrinsics_free=intrinsics_free)
    x0 = layout.pack(cam_rt0, intr0, board_rt)
    structure = BoardStructure(points)
    views = obs.cam.astype(np.int64) * n_boards + obs.board
    res, keep, n_eval = _robust_then_trim(
        layout, structure, cam_rt0, intr0, x0, obs, loss=loss, f_scale=f_scale, trim_px=trim_px,
        trim_sigma=trim_sigma, views=views, view_trim=view_trim, min_per_element=4, max_nfev=max_nfev, ftol=ftol,
        solver=solver, log=log)
    cam_p, intr, board_p = layout.unpack(res.x, cam_rt0, intr0)
    rc = rodrigues_to_matrix(cam_p[:, :3])
    errors = np.linalg.norm(_project_world(rc, cam_p[:, 3:], intr, structure.world(board_p, obs), obs) - obs.uv, axis=1)
    rb = rodrigues_to_matrix(board_p[:, :3])
    board_t = board_p[:, 3:] - rb @ centroid
    out = _cameras_from(cameras, layout, cam_p, intr)
    rmse = float(np.sqrt(np.mean(errors[keep] ** 2))) if keep.any() else float("nan")
    return BundleResult(out, board_p[:, :3], board_t, keep, errors, rmse, time.perf_counter() - t0, n_eval, log)


# ---------------------------------------------------------------- free points
@dataclass
class OffsetPrior:
    """A 2D pixel offset per camera and observation group (``obs.corner``: a joint), solved with
    the rig: a detector's systematic error where its "joint" is not the same anatomical point
    in every view (the hip seen from the front or the side).  Each offset has a zero-mean
    Gaussian prior of ``sigma_px`` per axis: the data would otherwise trade it against the
    camera pose (a common offset of every group is a small rotation) and against the points
    (a joint displaced in 3D moves its image in every camera).  The ridge weighs
    ``(noise sigma / sigma_px)^2`` against the squared pixel residuals, the noise taken from
    the residuals before each pass (or ``noise_px`` when given)."""

    groups: int
    sigma_px: float
    noise_px: float | None = None

    def weight(self, noise_sigma_px: float) -> float:
        noise = self.noise_px if self.noise_px else noise_sigma_px
        noise = noise if np.isfinite(noise) and noise > 0 else 1.0
        return float((noise / self.sigma_px) ** 2)


@dataclass
class PointBundleResult:
    cameras: list[Camera]
    points: np.ndarray  # (P, 3) adjusted world points (NaN: too few inlier views left)
    inliers: np.ndarray  # (M,) bool over the observations given
    errors: np.ndarray  # (M,) px, reprojection error of every observation (final rig and points)
    rmse: float  # px over inliers
    sigma_px: float  # per-axis noise sigma of the inliers (robust estimate)
    seconds: float
    n_evaluations: int
    log: list[str] = field(default_factory=list)
    offsets: np.ndarray | None = None  # (C, G, 2) px, the per-camera group offsets (with an OffsetPrior)


def scale_gauge(cameras: list[Camera], fixed_cam: int = 0, scale_cam: int | None = None) -> np.ndarray:
    """(C, 6) pose values refined when the structure carries no scale (free points): all but
    camera ``fixed_cam``'s pose and one centre coordinate of ``scale_cam`` (default: the camera
    farthest from it), the coordinate along which the two are farthest apart.  That fixes the
    seven-degree-of-freedom similarity gauge; the scale the rig then has is the start's baseline
    along that axis, to be replaced by a metric one (see :mod:`calibration.keypoint_calibration`)."""
    centers = np.array([c.center for c in cameras])
    free = np.ones((len(cameras), 6), bool)
    free[fixed_cam] = False
    if len(cameras) > 1:
        dist = np.linalg.norm(centers - centers[fixed_cam], axis=1)
        other = int(np.argmax(dist)) if scale_cam is None else int(scale_cam)
        axis = int(np.argmax(np.abs(centers[other] - centers[fixed_cam])))
        free[other, 3 + axis] = False
    return free


def bundle_adjust_points(
    cameras: list[Camera],
    points: np.ndarray,
    obs: Observations,
    refine_intrinsics: bool = True,
    intrinsics_free: np.ndarray | None = None,
    pose_free: np.ndarray | None = None,
    loss: str = "soft_l1",
    f_scale: float = 1.0,
    trim_px: float = 1.0,
    trim_sigma: float = 4.0,
    robust_passes: int = 2,
    max_nfev: int = 100,
    ftol: float = 1e-7,
    solver: str = "schur",
    progress=None,
    offsets: OffsetPrior | None = None,
) -> PointBundleResult:
    """Jointly refine camera poses, free 3D points and optionally intrinsics: the same solver
    as :func:`bundle_adjust`, with each structure element a point (3 unknowns) instead of a
    board pose.

    ``points (P, 3)`` starting world points; ``obs.board[m]`` is the point observation
    ``m`` sees (``obs.corner`` unused).  ``pose_free (C, 6)``: pose values
    refined (default :func:`scale_gauge`: camera 0 and one centre coordinate
    of the farthest camera held, since free points fix no scale).
    ``robust_passes``: robust solves before trimming, each after the first at
    ``f_scale`` = the noise the previous one left.  Points left with fewer
    than 2 inlier views are dropped (NaN).  ``progress(pass_name, iteration,
    cost)`` after every iteration.  ``offsets``: also solve a pixel offset per camera and
    ``obs.corner`` group (a detector's per-camera, per-joint bias), under its prior.
    """
    t0 = time.perf_counter()
    _check_pinhole(cameras)
    log: list[str] = []
    points = np.asarray(points, dtype=np.float64)
    cam_rt0 = np.array([np.concatenate([c.rvec, c.center]) for c in cameras])
    intr0 = np.array([intrinsics_vector(c) for c in cameras])
    layout = _Layout(len(cameras), len(points), refine_intrinsics, intrinsics_free=intrinsics_free, block=3,
                     pose_free=scale_gauge(cameras) if pose_free is None else pose_free,
                     offset_groups=0 if offsets is None else offsets.groups)
    x0 = layout.pack(cam_rt0, intr0, points)
    structure = PointStructure()
    res, keep, n_eval = _robust_then_trim(
        layout, structure, cam_rt0, intr0, x0, obs, loss=loss, f_scale=f_scale, trim_px=trim_px,
        trim_sigma=trim_sigma, views=None, view_trim=None, min_per_element=2, max_nfev=max_nfev, ftol=ftol,
        solver=solver, log=log, robust_passes=robust_passes, progress=progress, offsets=offsets)
    cam_p, intr, pts = layout.unpack(res.x, cam_rt0, intr0)
    errors = np.linalg.norm(_residual_fn(layout, cam_rt0, intr0, structure, obs)(res.x).reshape(-1, 2), axis=1)
    pts = pts.copy()
    pts[np.bincount(obs.board[keep], minlength=len(points)) < 2] = np.nan
    rmse = float(np.sqrt(np.mean(errors[keep] ** 2))) if keep.any() else float("nan")
    return PointBundleResult(_cameras_from(cameras, layout, cam_p, intr), pts, keep, errors, rmse,
                             _robust_sigma(errors[keep]), time.perf_counter() - t0, n_eval, log,
                             layout.offsets(res.x).copy() if layout.n_groups else None)
