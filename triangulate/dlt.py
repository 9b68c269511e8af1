"""Batched linear (DLT) triangulation on normalised, undistorted image coordinates.

Every view ``c`` of a point ``X`` seen at normalised coordinates ``(x, y)``
(``x_cam ~ (x, y, 1)``, see :meth:`calibration.Camera.undistort`) gives two
linear equations in the homogeneous point ``h = (X, 1)``::

    a . h = 0,  a = x P[2] - P[0]
    b . h = 0,  b = y P[2] - P[1]          P = [R | t]  (3, 4)

The textbook DLT stacks them into ``A (2C, 4)`` and takes the last right
singular vector (:func:`dlt_svd`, kept as the reference).  The fast path here
uses the fact that the normal matrix ``A^T A`` is a *sum over views* of
``Q_c = a a^T + b b^T``, and that each ``Q_c`` is linear in the features
``(x^2 + y^2, x, y, 1)`` with a per-camera constant basis
(:func:`normal_basis`).  So, for all points at once:

1. one matrix product per camera gives the ten unique entries of every
   ``Q_c``  (:func:`view_terms`, shape ``(N, C, 10)``);
2. any view subset or weighting is a weighted sum over ``C``;
3. the point solves the 3x3 system ``Q[:3,:3] X = -Q[:3,3]`` (``h_4 = 1``, the
   point is finite) in closed form, elementwise (:func:`solve_terms`).

No per-point Python, no batched LAPACK call: on one core this is about 40x
faster than a stacked ``np.linalg.svd`` and 10x faster than ``np.linalg.eigh``
on the 4x4 normal matrices (``benchmarks/bench_triangulation.py --dlt``).

The algebraic residual of a view is ``depth * (normalised reprojection
error)``; weighting a view by ``focal / depth`` (depth from a first estimate)
turns the linear fit into a least-squares fit in pixels, which is what
:func:`triangulate_dlt` does with ``reweight >= 1``.

Layout: points first, cameras second (``(N, C, ...)``), so per-point sums are
reductions over a short contiguous axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

# (row, col) of the ten unique entries of a symmetric 4x4 matrix, in storage order.
TERM_INDEX = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


def sum_last(a: np.ndarray, dtype=None) -> np.ndarray:
    """Sum over a short last axis (cameras, xyz) as a few whole-array adds.

    numpy reduces a short contiguous last axis one row at a time, 10-20x
    slower than adding its columns; on the hot path that matters.
    """
    a = np.asarray(a)
    out = a[..., 0].astype(dtype if dtype is not None else (np.int64 if a.dtype == bool else a.dtype))
    for i in range(1, a.shape[-1]):
        out += a[..., i]
    return out


def all_last(a: np.ndarray) -> np.ndarray:
    """``a.all(axis=-1)`` for a short last axis, as whole-array ands (see :func:`sum_last`)."""
    out = np.array(a[..., 0], dtype=bool)
    for i in range(1, a.shape[-1]):
        out &= a[..., i]
    return out


def normal_basis(extrinsics: np.ndarray) -> np.ndarray:
    """(C, 4, 10) basis: ``features (x^2+y^2, x, y, 1) @ basis[c]`` = unique entries of ``Q_c``.

    ``extrinsics`` (C, 3, 4) are the ``[R | t]`` matrices of the cameras.
    """
    p = np.asarray(extrinsics, dtype=np.float64)
    p0, p1, p2 = p[:, 0], p[:, 1], p[:, 2]
    basis = np.empty((p.shape[0], 4, len(TERM_INDEX)))
    for m, (i, j) in enumerate(TERM_INDEX):
        basis[:, 0, m] = p2[:, i] * p2[:, j]
        basis[:, 1, m] = -(p2[:, i] * p0[:, j] + p0[:, i] * p2[:, j])
        basis[:, 2, m] = -(p2[:, i] * p1[:, j] + p1[:, i] * p2[:, j])
        basis[:, 3, m] = p0[:, i] * p0[:, j] + p1[:, i] * p1[:, j]
    return basis


def view_terms(xn: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Normal-matrix entries of every view: xn (N, C, 2) -> (N, C, 10).

    ``xn`` must be finite (put zeros where a view is missing and give it zero
    weight): a NaN here would poison every sum it enters.
    """
    x = xn[..., 0]
    y = xn[..., 1]
    feats = np.stack([x * x + y * y, x, y, np.ones_like(x)], axis=-1)  # (N, C, 4)
    # One GEMM per camera: (C, N, 4) @ (C, 4, 10).
    return np.matmul(feats.transpose(1, 0, 2), basis).transpose(1, 0, 2)


def rigid_planes(rot_planar: np.ndarray, trans_planar: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (3, N) -> every camera's frame coordinates (3C, N), component-major (``rot_planar`` (3C, 3),
    ``trans_planar`` (3C, 1)).

    A compiled loop of three multiply-adds per entry rather than a matrix product: BLAS picks its
    kernel (and its FMA and summation order) by matrix size, so a product gives
    different last bits for a block of points than for all of them; this is the
    same number for a point in any batch, which keeps chunked and whole runs,
    and every CPU, bit for bit alike.
    """
    out = np.empty((rot_planar.shape[0], points.shape[1]))
    _rigid_planes(rot_planar, trans_planar, np.ascontiguousarray(points, dtype=np.float64), out)
    return out


@njit(cache=True)
def _rigid_planes(rot, trans, points, out) -> None:
    for r in range(rot.shape[0]):
        a, b, c, t = rot[r, 0], rot[r, 1], rot[r, 2], trans[r, 0]
        for n in range(points.shape[1]):
            out[r, n] = a * points[0, n] + b * points[1, n] + c * points[2, n] + t


SINGULAR_EPS = 1e-12  # |det| below this times trace^3: fewer than two independent views (NaN)


def solve_terms(q: np.ndarray, eps: float = SINGULAR_EPS) -> np.ndarray:
    """Finite point ``X`` (..., 3) from normal-matrix entries q (..., 10): :func:`solve_normal` with the terms last."""
    return np.moveaxis(solve_normal(np.moveaxis(q, -1, 0), eps), 0, -1)


def solve_normal(q: np.ndarray, eps: float = SINGULAR_EPS) -> np.ndarray:
    """Finite point ``X`` (3, ...) from normal-matrix entries q (10, ...), terms first.

    Solves ``Q[:3,:3] X = -Q[:3,3]`` by the adjugate, elementwise.  Singular
    systems (fewer than two independent views) give NaN.  Terms first, so
    every entry ``q[m]`` is a contiguous plane: the ~50 elementwise steps run
    at memory speed (terms last they are strided, several times slower).
    """
    q00, q01, q02, q03, q11, q12, q13, q22, q23 = (q[m] for m in range(9))
    c00 = _minus(q11 * q22, q12 * q12)
    c01 = _minus(q02 * q12, q01 * q22)
    c02 = _minus(q01 * q12, q02 * q11)
    c11 = _minus(q00 * q22, q02 * q02)
    c12 = _minus(q01 * q02, q00 * q12)
    c22 = _minus(q00 * q11, q01 * q01)
    det = _dot3(q00, c00, q01, c01, q02, c02)
    # Scale-aware singularity test: det against the cube of the trace.
    trace = q00 + q11
    trace += q22
    ok = np.abs(det) > eps * trace * trace * trace
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, -1.0 / det, np.nan)
    out = np.empty((3,) + q.shape[1:])
    for row, (a, b, c) in enumerate(((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))):
        np.multiply(_dot3(a, q03, b, q13, c, q23), inv, out=out[row])
    return out


def _minus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` into ``a`` (a fresh temporary): one buffer fewer per step of :func:`solve_normal`."""
    a -= b
    return a


def _dot3(a, b, c, d, e, f) -> np.ndarray:
    """``a * b + c * d + e * f``, left to right, in one buffer."""
    out = a * b
    out += c * d
    out += e * f
    return out


def solve_sym3(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``H x = g`` for stacks of symmetric 3x3 ``H`` (..., 3, 3), ``g`` (..., 3); NaN if singular."""
    q = np.stack([h[..., 0, 0], h[..., 0, 1], h[..., 0, 2], -g[..., 0],
                  h[..., 1, 1], h[..., 1, 2], -g[..., 1], h[..., 2, 2], -g[..., 2],
                  np.ones(h.shape[:-2])], axis=-1)
    return solve_terms(q)


class LinearTriangulator:
    """Camera constants for repeated linear triangulation with one set of cameras.

    ``extrinsics`` (C, 3, 4) ``[R | t]``; ``intrinsics`` (C, 3, 3) camera
    matrices, used only to express errors and weights in (undistorted) pixels.
    """

    def __init__(self, extrinsics: np.ndarray, intrinsics: np.ndarray):
        self.extrinsics = np.asarray(extrinsics, dtype=np.float64)
        self.intrinsics = np.asarray(intrinsics, dtype=np.float64)
        self.n_cameras = self.extrinsics.shape[0]
        self.basis = normal_basis(self.extrinsics)
        # (4, 3C): homogeneous point @ proj_stack -> camera-frame xyz of every camera.
        self.proj_stack = self.extrinsics.transpose(2, 0, 1).reshape(4, -1)
        self.fx = self.intrinsics[:, 0, 0]
        self.fy = self.intrinsics[:, 1, 1]
        self.focal = 0.5 * (self.fx + self.fy)
        # Points-last layout (:class:`Views`): (10, 4C) maps the stacked, weighted features
        # (feature-major, camera-minor) to the ten normal-matrix entries, one matrix product for all
        # points; (3C, 3) and (3C, 1) give every camera's frame coordinates, component-major.
        n = self.n_cameras
        self.basis_planar = self.basis.transpose(2, 1, 0).reshape(len(TERM_INDEX), 4 * n)
        self.rot_planar = self.extrinsics[:, :, :3].transpose(1, 0, 2).reshape(3 * n, 3)
        self.trans_planar = self.extrinsics[:, :, 3].T.reshape(3 * n, 1)

    def terms(self, xn: np.ndarray) -> np.ndarray:
        return view_terms(xn, self.basis)

    def camera_coords(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) -> camera-frame coordinates (..., C, 3) in every camera."""
        lead = points.shape[:-1]
        flat = points.reshape(-1, 3)
        out = flat @ self.proj_stack[:3] + self.proj_stack[3]
        return out.reshape(lead + (self.n_cameras, 3))

    def errors_sq(self, points: np.ndarray, xn: np.ndarray):
        """Squared undistorted-pixel error and depth of points (N, ..., 3) in every camera.

        ``xn`` (N, C, 2) observations.  Returns ``(err2, depth)``, each
        (N, ..., C); points behind a camera get an infinite error.
        """
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

    def solve(self, q: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Point (N, 3) from view terms (N, C, 10) and row weights (N, C) (0 = view unused)."""
        w2 = weights * weights
        acc = q[:, 0] * w2[:, :1]
        for c in range(1, q.shape[1]):
            acc += q[:, c] * w2[:, c:c + 1]
        return solve_terms(acc)

    def pixel_weights(self, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Row weights that turn the algebraic fit into a pixel fit around ``points`` (N, 3)."""
        z = self.camera_coords(points)[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(z > 0, self.focal / z, 0.0)
        return np.where(np.isfinite(scale), weights * scale, 0.0)


    # ------------------------------------------------------------ points last (Views)
    def normal(self, feats: np.ndarray, w2: np.ndarray) -> np.ndarray:
        """Normal-matrix entries (10, N) of features (4, C, N) with squared row weights w2 (C, N)."""
        return self.basis_planar @ (feats * w2).reshape(feats.shape[0] * feats.shape[1], feats.shape[-1])  # N may be 0

    def fit(self, views: "Views", weights: np.ndarray) -> np.ndarray:
        """Weighted linear fit (3, N) of the views with row weights (C, N) (0 = view unused)."""
        return solve_normal(self.normal(views.feats, weights * weights))

    def camera_terms(self, feats: np.ndarray) -> np.ndarray:
        """Every view's own normal-matrix entries (C, 10, N) from features (4, C, N) (for unweighted subsets)."""
        return np.matmul(self.basis.transpose(0, 2, 1), feats.transpose(1, 0, 2))

    def camera_planes(self, points: np.ndarray) -> np.ndarray:
        """Points (3, ...) -> camera-frame coordinates (3, C, ...) in every camera."""
        lead = points.shape[1:]
        flat = rigid_planes(self.rot_planar, self.trans_planar, points.reshape(3, -1))
        return flat.reshape((3, self.n_cameras) + lead)

    def residuals_sq(self, points: np.ndarray, x: np.ndarray, y: np.ndarray, scale: bool = True):
        """Squared undistorted-pixel error and pixel scale (C, ...) of points (3, ...) in every camera.

        ``x``, ``y`` the observations, broadcastable to (C, ...) (e.g. (C, N)
        for points (3, N), (C, 1, N) for hypotheses (3, K, N)).  A point
        behind a camera (or NaN) gets an infinite error.  The scale is
        ``focal / depth`` (0 behind the camera): row weights times it turn
        the linear fit around these points into a least-squares fit in pixels
        (``scale=False``: not computed, None; :meth:`pixel_scale` alone when
        the error is not needed).  In-place steps: every pass over (C, ...)
        planes counts on the hot path.
        """
        u, v, z = self.camera_planes(points)
        shape = (self.n_cameras,) + (1,) * (points.ndim - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1.0 / z
            dx = u * inv_z
            dx -= x
            dx *= self.fx.reshape(shape)
            dy = v * inv_z
            dy -= y
            dy *= self.fy.reshape(shape)
            err2 = np.multiply(dx, dx, out=dx)
            err2 += np.multiply(dy, dy, out=dy)
        behind = ~(z > 0)
        np.copyto(err2, np.inf, where=behind)  # copyto, not err2[behind] = ...: boolean indexing is slower
        if not scale:
            return err2, None
        return err2, self._scale(inv_z, behind, shape)

    def pixel_scale(self, points: np.ndarray) -> np.ndarray:
        """The scale ``focal / depth`` (C, ...) of :meth:`residuals_sq` alone (0 behind a camera or NaN)."""
        z = self.camera_planes(points)[2]
        shape = (self.n_cameras,) + (1,) * (points.ndim - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = 1.0 / z
        return self._scale(inv_z, ~(z > 0), shape)

    def _scale(self, inv_z: np.ndarray, behind: np.ndarray, shape) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            scale = np.multiply(inv_z, self.focal.reshape(shape), out=inv_z)
        behind |= ~np.isfinite(scale)
        np.copyto(scale, 0.0, where=behind)
        return scale


@dataclass
class Views:
    """Observations of N points by C cameras, points last: every array (C, N), features (4, C, N).

    The layout the robust fits work in (:mod:`triangulate.robust`): the
    engine's keypoints are camera-first already, and each camera's row is a
    contiguous plane, so every elementwise step runs at memory speed and
    the normal equations of all points are one matrix product
    (:meth:`LinearTriangulator.normal`).
    """

    x: np.ndarray  # normalised undistorted x, 0 where not valid
    y: np.ndarray
    valid: np.ndarray  # bool
    w: np.ndarray  # row weights (detector confidence), 0 where not valid
    feats: np.ndarray  # (4, C, N): x^2 + y^2, x, y, 1

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> "Views":
        """Views from (C, N) arrays (any value where not ``valid``)."""
        valid = np.asarray(valid, dtype=bool)
        x = np.where(valid, x, 0.0)
        y = np.where(valid, y, 0.0)
        feats = np.empty((4,) + valid.shape)
        np.multiply(x, x, out=feats[0])
        feats[0] += y * y
        feats[1], feats[2], feats[3] = x, y, 1.0
        return cls(x, y, valid, np.where(valid, weights, 0.0), feats)

    @property
    def n_points(self) -> int:
        return self.valid.shape[1]

    def __getitem__(self, idx) -> "Views":
        """The views of a subset of the points (an index array, mask or slice)."""
        return Views(self.x[:, idx], self.y[:, idx], self.valid[:, idx], self.w[:, idx], self.feats[:, :, idx])

    def assign(self, idx, other: "Views") -> None:
        """Overwrite the views of the points ``idx`` with ``other`` (views of just those)."""
        self.x[:, idx], self.y[:, idx], self.valid[:, idx], self.w[:, idx] = other.x, other.y, other.valid, other.w
        self.feats[:, :, idx] = other.feats


def triangulate_dlt(
    xn: np.ndarray,
    extrinsics: np.ndarray,
    weights: np.ndarray | None = None,
    intrinsics: np.ndarray | None = None,
    reweight: int = 1,
    min_views: int = 2,
) -> np.ndarray:
    """Weighted linear triangulation of normalised points, batched over any leading shape.

    ``xn`` (C, ..., 2) normalised undistorted coordinates, NaN where missing;
    ``extrinsics`` (C, 3, 4); ``weights`` (C, ...) per-view row weights (e.g.
    detector confidence; 0 or NaN = unused; default 1).  With ``intrinsics``
    (C, 3, 3) and ``reweight >= 1`` the fit is repeated with ``focal / depth``
    weights, i.e. least squares in pixels.  Returns (..., 3); NaN where fewer
    than ``min_views`` views are usable.
    """
    xn = np.asarray(xn, dtype=np.float64)
    n_cams = xn.shape[0]
    lead = xn.shape[1:-1]
    flat = np.moveaxis(xn.reshape(n_cams, -1, 2), 0, 1)  # (N, C, 2)
    if weights is None:
        w = np.ones(flat.shape[:2])
    else:
        w = np.moveaxis(np.asarray(weights, dtype=np.float64).reshape(n_cams, -1), 0, 1)
    valid = np.isfinite(flat).all(-1) & np.isfinite(w) & (w > 0)
    w = np.where(valid, w, 0.0)
    flat = np.where(valid[..., None], flat, 0.0)
    k = np.broadcast_to(np.eye(3), (n_cams, 3, 3)) if intrinsics is None else intrinsics
    lin = LinearTriangulator(extrinsics, k)
    q = lin.terms(flat)
    points = lin.solve(q, w)
    if intrinsics is not None:
        for _ in range(reweight):
            points = lin.solve(q, lin.pixel_weights(points, w))
    points[valid.sum(axis=1) < max(min_views, 2)] = np.nan
    return points.reshape(lead + (3,))


def dlt_svd(xn: np.ndarray, extrinsics: np.ndarray, weights: np.ndarray | None = None, min_views: int = 2) -> np.ndarray:
    """Textbook homogeneous DLT (one stacked SVD), the reference for :func:`triangulate_dlt`.

    Same arguments and result as :func:`triangulate_dlt` without reweighting.
    """
    xn = np.asarray(xn, dtype=np.float64)
    n_cams = xn.shape[0]
    lead = xn.shape[1:-1]
    flat = np.moveaxis(xn.reshape(n_cams, -1, 2), 0, 1)
    w = np.ones(flat.shape[:2]) if weights is None else np.moveaxis(
        np.asarray(weights, dtype=np.float64).reshape(n_cams, -1), 0, 1)
    valid = np.isfinite(flat).all(-1) & np.isfinite(w) & (w > 0)
    w = np.where(valid, w, 0.0)
    flat = np.where(valid[..., None], flat, 0.0)
    p = np.asarray(extrinsics, dtype=np.float64)
    rows_a = flat[..., 0:1] * p[None, :, 2] - p[None, :, 0]  # (N, C, 4)
    rows_b = flat[..., 1:2] * p[None, :, 2] - p[None, :, 1]
    a = np.concatenate([rows_a * w[..., None], rows_b * w[..., None]], axis=1)  # (N, 2C, 4)
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    h = vt[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        points = h[:, :3] / h[:, 3:]
    points[valid.sum(axis=1) < max(min_views, 2)] = np.nan
    return points.reshape(lead + (3,))


# ---------------------------------------------------------------- one point at a time (compiled)
# The live path's kernels (``triangulate.fusion``) visit one point per loop turn; these are the same
# formulas as :func:`solve_normal`, :meth:`LinearTriangulator.errors_sq` and ``pixel_weights`` above,
# kept here beside them so that a change to one is seen next to the other.

@njit(cache=True)
def solve_point(q: np.ndarray, out: np.ndarray) -> None:
    """``out`` (3,) from the ten normal-matrix entries ``q``: :func:`solve_normal`'s adjugate
    solve for one point, in its operation order (NaN where singular)."""
    q00, q01, q02, q03, q11, q12, q13, q22, q23 = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8]
    c00 = q11 * q22 - q12 * q12
    c01 = q02 * q12 - q01 * q22
    c02 = q01 * q12 - q02 * q11
    c11 = q00 * q22 - q02 * q02
    c12 = q01 * q02 - q00 * q12
    c22 = q00 * q11 - q01 * q01
    det = q00 * c00 + q01 * c01 + q02 * c02
    trace = q00 + q11 + q22
    inv = -1.0 / det if abs(det) > SINGULAR_EPS * trace * trace * trace else np.nan
    out[0] = (c00 * q03 + c01 * q13 + c02 * q23) * inv
    out[1] = (c01 * q03 + c11 * q13 + c12 * q23) * inv
    out[2] = (c02 * q03 + c12 * q13 + c22 * q23) * inv


@njit(cache=True)
def fit_point(q: np.ndarray, weights: np.ndarray, acc: np.ndarray, out: np.ndarray) -> None:
    """Weighted fit of one point: its views' terms ``q`` (C, 10), row weights (C,) (0: unused) -> ``out`` (3,)."""
    acc[:] = 0.0
    for c in range(q.shape[0]):
        w2 = weights[c] * weights[c]
        for m in range(10):
            acc[m] += w2 * q[c, m]
    solve_point(acc, out)


@njit(cache=True)
def errors_sq_point(p, xn, ext, fx, fy, out) -> None:
    """Squared undistorted-pixel error (C,) of point ``p`` against its views ``xn`` (C, 2)
    (:meth:`LinearTriangulator.errors_sq`; inf behind a camera or for a NaN point)."""
    for c in range(xn.shape[0]):
        z = ext[c, 2, 0] * p[0] + ext[c, 2, 1] * p[1] + ext[c, 2, 2] * p[2] + ext[c, 2, 3]
        if z > 0:
            inv_z = 1.0 / z
            dx = ((ext[c, 0, 0] * p[0] + ext[c, 0, 1] * p[1] + ext[c, 0, 2] * p[2] + ext[c, 0, 3]) * inv_z - xn[c, 0]) * fx[c]
            dy = ((ext[c, 1, 0] * p[0] + ext[c, 1, 1] * p[1] + ext[c, 1, 2] * p[2] + ext[c, 1, 3]) * inv_z - xn[c, 1]) * fy[c]
            e = dx * dx + dy * dy
            out[c] = np.inf if np.isnan(e) else e
        else:
            out[c] = np.inf


@njit(cache=True)
def pixel_weights_point(p, weights, ext, focal, out) -> None:
    """Row weights (C,) that turn the algebraic fit into a pixel fit around ``p``
    (:meth:`LinearTriangulator.pixel_weights`: ``weights * focal / depth``, 0 behind a camera)."""
    for c in range(weights.shape[0]):
        z = ext[c, 2, 0] * p[0] + ext[c, 2, 1] * p[1] + ext[c, 2, 2] * p[2] + ext[c, 2, 3]
        s = focal[c] / z if z > 0 else 0.0
        out[c] = weights[c] * s if np.isfinite(s) else 0.0
