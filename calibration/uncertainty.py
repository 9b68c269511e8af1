"""How well each camera is known: standard deviations from the bundle adjustment's covariance.

Why: a reprojection RMSE of 0.3 px says how well the model fits the corners, not how far the
cameras may be from the truth; a camera seen in few views, all from one side, is loosely
determined whatever its RMSE.  The covariance of the least-squares solution says it in the units
people think in: camera position (mm), orientation (deg), focal length (%).

Model (first order, at the optimum): with ``J`` the Jacobian of the pixel residuals of the inlier
corners with respect to every unknown, the covariance is ``s^2 (J^T J)^-1``, ``s^2`` the
residual variance ``sum(r^2) / (2 M - n)``.  The board poses are eliminated by the Schur
complement (their 6x6 blocks inverted all at once), leaving the camera block.  The gauge is the
bundle adjustment's: camera 0 is held, so every other camera's sigma is *relative to camera 0*
(camera 0's own pose sigma is zero by construction); scale is fixed by the printed board.  The
Jacobian is taken by forward differences through :meth:`calibration.camera.Camera.project` (the
one lens model), with camera and board rotations perturbed on the left (``R = exp(d) R0``), so
the orientation sigma is an angle in degrees, and camera centres perturbed directly, so the
position sigma is a distance.

Reported per camera: the sigma along the worst-determined direction of its position and of its
orientation (square roots of the largest eigenvalues), and of its mean focal length in percent.

Honesty, in the words of mrcal's documentation, which this follows: the covariance measures
only the effect of the corner noise *under the model fitted*.  A lens model too simple for the
lens (rigcap's coverage-chosen models hold terms at zero when the board covered little of the
image) makes the fit stiffer than the truth, and the sigmas come out too small: they are a lower
bound on the error then, not an estimate of it.  Corner errors that are not independent (blur,
rolling shutter, a board that is not flat) have the same effect.
``benchmarks/bench_calibration.py`` prints how often the true error lies within 2 sigma on the
synthetic studio (about 95 % if the sigmas are right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.spatial.transform import Rotation

from calibration.camera import Camera, rodrigues_to_matrix

N_INTR = 9  # fx fy cx cy k1 k2 p1 p2 k3 (the bundle adjustment's intrinsics)


@dataclass
class CameraUncertainty:
    """One camera's 1-sigma uncertainty (relative to camera 0, the gauge)."""

    name: str
    position_mm: float  # along the worst-determined direction
    orientation_deg: float  # about the worst-determined axis
    focal_pct: float  # of the mean focal length; nan when the focal length was held
    position_cov_m2: np.ndarray  # (3, 3) centre covariance, world axes, m^2
    orientation_cov_rad2: np.ndarray  # (3, 3) rotation perturbation covariance, camera axes (R = exp(d) R0), rad^2


def _intrinsics(cam: Camera) -> np.ndarray:
    d = np.zeros(5)
    d[: min(5, cam.dist.size)] = cam.dist[:5]
    return np.array([cam.matrix[0, 0], cam.matrix[1, 1], cam.matrix[0, 2], cam.matrix[1, 2], *d])


def _with_intrinsics(cam: Camera, intr: np.ndarray) -> Camera:
    out = cam.copy()
    out.matrix = np.array([[intr[0], cam.matrix[0, 1], intr[2]], [0.0, intr[1], intr[3]], [0.0, 0.0, 1.0]])
    dist = out.dist.copy() if out.dist.size >= 5 else np.zeros(5)
    dist[:5] = intr[4:]
    out.dist = dist
    return out


def camera_uncertainty(cameras: list[Camera], board_rvecs: np.ndarray, board_tvecs: np.ndarray,
                       points: np.ndarray, cam: np.ndarray, board: np.ndarray, corner: np.ndarray,
                       uv: np.ndarray, intrinsics_free: np.ndarray | None = None,
                       fixed_cam: int = 0) -> list[CameraUncertainty]:
    """Per-camera sigmas at a bundle-adjustment optimum (see the module docstring).

    ``cameras`` and the board poses (board -> world) are the solution; the observations are the
    inlier corners the final pass used: camera ``cam[m]`` saw corner ``corner[m]`` (``points``,
    board frame) of board pose ``board[m]`` at pixel ``uv[m]``.  ``intrinsics_free (C, 9)`` the
    intrinsics that were refined (fx fy cx cy k1 k2 p1 p2 k3), none when omitted.
    """
    from scipy.optimize._numdiff import approx_derivative, group_columns

    n_c, n_b = len(cameras), len(board_rvecs)
    free = np.zeros((n_c, N_INTR), bool) if intrinsics_free is None else np.broadcast_to(
        np.asarray(intrinsics_free, bool), (n_c, N_INTR)).copy()
    free_cams = [c for c in range(n_c) if c != fixed_cam]
    cam_col = {c: 6 * i for i, c in enumerate(free_cams)}
    intr_off = 6 * len(free_cams)
    intr_col = np.full((n_c, N_INTR), -1)
    intr_col[free] = intr_off + np.arange(int(free.sum()))
    board_off = intr_off + int(free.sum())
    n_par = board_off + 6 * n_b
    r0 = np.array([c.R for c in cameras])
    c0 = np.array([c.center for c in cameras])
    i0 = np.array([_intrinsics(c) for c in cameras])
    rb0 = rodrigues_to_matrix(np.asarray(board_rvecs, float))
    tb0 = np.asarray(board_tvecs, float)
    order = [np.flatnonzero(cam == c) for c in range(n_c)]

    def residuals(x: np.ndarray) -> np.ndarray:
        rb = rodrigues_to_matrix(x[board_off:].reshape(-1, 6)[:, :3]) @ rb0
        tb = tb0 + x[board_off:].reshape(-1, 6)[:, 3:]
        world = np.einsum("mij,mj->mi", rb[board], points[corner]) + tb[board]
        out = np.empty((cam.size, 2))
        for c in range(n_c):
            rows = order[c]
            intr = i0[c].copy()
            intr[free[c]] += x[intr_col[c][free[c]]]
            view = _with_intrinsics(cameras[c], intr)
            if c in cam_col:
                d = x[cam_col[c]: cam_col[c] + 6]
                rot = rodrigues_to_matrix(d[:3]) @ r0[c]
                view.rvec = Rotation.from_matrix(rot).as_rotvec()
                view.tvec = -rot @ (c0[c] + d[3:])
            out[rows] = view.project(world[rows]) - uv[rows]
        return out.ravel()

    # sparsity: each residual pair depends on its camera's pose and intrinsics and its board's pose
    m = cam.size
    rows, cols = [], []
    r2 = np.stack([2 * np.arange(m), 2 * np.arange(m) + 1], 1)
    for c in range(n_c):
        sel = order[c]
        blocks = list(intr_col[c][free[c]]) + (list(range(cam_col[c], cam_col[c] + 6)) if c in cam_col else [])
        for col in blocks:
            rows.append(r2[sel].ravel())
            cols.append(np.full(2 * sel.size, col))
    bcols = board_off + 6 * board[:, None] + np.arange(6)  # (M, 6)
    rows.append(np.repeat(r2[:, :, None], 6, axis=2).ravel())
    cols.append(np.broadcast_to(bcols[:, None, :], (m, 2, 6)).ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    sparsity = coo_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(2 * m, n_par)).tocsc()
    x0 = np.zeros(n_par)
    f0 = residuals(x0)
    if not np.isfinite(f0).all():  # a diverged solution (points behind a camera): no meaningful covariance
        nan3 = np.full((3, 3), np.nan)
        return [CameraUncertainty(c.name, float("nan"), float("nan"), float("nan"), nan3, nan3) for c in cameras]
    jac = approx_derivative(residuals, x0, method="2-point", f0=f0, sparsity=(sparsity, group_columns(sparsity)))
    jac = jac.tocsc()
    dof = max(2 * m - n_par, 1)
    s2 = float(f0 @ f0) / dof

    # Schur complement of the board blocks: (A - B D^-1 B^T)^-1 is the camera block of (J^T J)^-1
    ja, jb = jac[:, :board_off], jac[:, board_off:]
    a = (ja.T @ ja).toarray()
    b = (ja.T @ jb).toarray()  # (P, 6K)
    hb = (jb.T @ jb).tocoo()  # block-diagonal: one 6x6 block per board pose
    same = (hb.row // 6) == (hb.col // 6)
    dd = np.zeros((n_b, 6, 6))
    dd[hb.row[same] // 6, hb.row[same] % 6, hb.col[same] % 6] = hb.data[same]
    unseen = np.bincount(board, minlength=n_b) == 0  # poses the final pass dropped: no rows, no effect
    dd[unseen] = np.eye(6)
    d_inv = np.linalg.pinv(dd, hermitian=True)
    b3 = b.reshape(b.shape[0], n_b, 6)
    schur = a - np.einsum("pki,kij,qkj->pq", b3, d_inv, b3)
    scale = 1.0 / np.sqrt(np.maximum(np.diag(schur), 1e-300))  # unknowns in px, rad, m: equilibrate first
    cov = s2 * scale[:, None] * np.linalg.pinv(schur * scale[:, None] * scale[None], rcond=1e-12,
                                               hermitian=True) * scale[None]

    out = []
    for c in range(n_c):
        if c in cam_col:
            blk = cov[cam_col[c]: cam_col[c] + 6, cam_col[c]: cam_col[c] + 6]
            cov_r, cov_p = blk[:3, :3], blk[3:, 3:]
        else:
            cov_r = cov_p = np.zeros((3, 3))
        ifx, ify = intr_col[c][0], intr_col[c][1]
        f = 0.5 * (abs(i0[c][0]) + abs(i0[c][1]))
        if ifx >= 0 and ify >= 0:
            var_f = 0.25 * (cov[ifx, ifx] + cov[ify, ify] + 2 * cov[ifx, ify])
            focal = float(np.sqrt(max(var_f, 0.0)) / f * 100.0)
        elif ifx >= 0 or ify >= 0:
            j = ifx if ifx >= 0 else ify
            focal = float(np.sqrt(max(cov[j, j], 0.0)) / f * 100.0)
        else:
            focal = float("nan")
        out.append(CameraUncertainty(
            cameras[c].name,
            float(np.sqrt(max(np.linalg.eigvalsh(cov_p)[-1], 0.0)) * 1000.0),
            float(np.degrees(np.sqrt(max(np.linalg.eigvalsh(cov_r)[-1], 0.0)))),
            focal, cov_p, cov_r,
        ))
    return out


def within_two_sigma(error: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(3,) bool: the error's component along each principal axis of ``cov`` lies within 2 sigma.

    Along the principal axes the components are independent Gaussians if the covariance is
    right, so each is within 2 sigma with probability 95.4 %.
    """
    lam, vec = np.linalg.eigh(cov)
    comp = np.asarray(error, float) @ vec
    return np.abs(comp) <= 2.0 * np.sqrt(np.maximum(lam, 1e-300))
