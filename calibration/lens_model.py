"""The lens model: distortion, its inverse and the camera matrix, in one place, vectorised.

Every part of rigcap that maps between a camera-frame ray and a pixel goes
through here (``Camera.project``/``undistort``, the batched
``triangulate.lens.LensBatch``, the live triangulator, bundle adjustment's
Jacobians, the synthetic renderer), so the copies cannot disagree.

Conventions are OpenCV's, so coefficients move between tools unchanged:

* normalised coordinates ``xy = (x/z, y/z)`` of a point in the camera frame;
* ``model="pinhole"``: ``k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]``
  (0, 4, 5, 8, 12 or 14 coefficients: Brown-Conrady, rational, thin prism,
  tilted sensor), exactly ``cv2.projectPoints``;
* ``model="fisheye"``: ``k1 k2 k3 k4`` on the angle ``theta = atan(r)``,
  exactly ``cv2.fisheye.projectPoints``;
* pixels from distorted normalised coordinates by the *full* camera matrix
  ``u = fx x + s y + cx, v = fy y + cy`` with the skew ``s = K[0, 1]``.
  (OpenCV's ``projectPoints``/``undistortPoints`` ignore ``K[0, 1]``: a
  camera with skew, e.g. from a Qualisys file, was 0.5 px off round trip
  when undistortion went through OpenCV while projection applied the skew.)

Arrays broadcast: ``xy (..., 2)`` against ``dist (..., n)`` and
``K (..., 3, 3)``, so one call covers cameras x points (``dist (C, 1, n)``
against ``xy (C, N, 2)``, or ``dist (C, n)`` against ``xy (N, C, 2)``).
NaN in gives NaN out.
"""

from __future__ import annotations

import numpy as np

PINHOLE = "pinhole"
FISHEYE = "fisheye"
PINHOLE_SIZES = (0, 4, 5, 8, 12, 14)
FISHEYE_SIZES = (4,)


def model_of(fisheye: bool) -> str:
    return FISHEYE if fisheye else PINHOLE


def check_dist(dist, model: str = PINHOLE) -> np.ndarray:
    """Coefficients as float64 (last axis = coefficients); ValueError for a count the model has not."""
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim == 0:
        raise ValueError("distortion coefficients must be an array")
    allowed = FISHEYE_SIZES if model == FISHEYE else PINHOLE_SIZES
    if model not in (PINHOLE, FISHEYE):
        raise ValueError(f"unknown lens model {model!r}; expected {PINHOLE!r} or {FISHEYE!r}")
    if dist.shape[-1] not in allowed:
        raise ValueError(f"{dist.shape[-1]} {model} distortion coefficients; expected one of {allowed}")
    return dist


def _pinhole_padded(dist: np.ndarray) -> np.ndarray:
    """Pinhole coefficients padded with zeros to the next model size (0, 4 -> 5)."""
    n = dist.shape[-1]
    if n in (0, 4):
        pad = np.zeros(dist.shape[:-1] + (5 - n,))
        return np.concatenate([dist, pad], axis=-1)
    return dist


# ------------------------------------------------------------------ distortion
def distort(xy, dist, model: str = PINHOLE, jacobians: bool | str = False):
    """Undistorted normalised ``xy (..., 2)`` -> distorted normalised ``(..., 2)``.

    With ``jacobians=True`` returns ``(xyd, d_xy, d_dist)``: ``d_xy (..., 2, 2)``
    is ``d xyd / d xy`` and ``d_dist (..., 2, n)`` is ``d xyd / d dist`` for the
    ``n`` coefficients given (what bundle adjustment needs; analytic, except the
    two tilt angles of a 14-coefficient model, by central differences).
    ``jacobians="xy"`` returns ``(xyd, d_xy)`` only (what Newton needs).
    """
    xy = np.asarray(xy, dtype=np.float64)
    dist = check_dist(dist, model)
    n = dist.shape[-1]
    d = dist if model == FISHEYE else _pinhole_padded(dist)
    level = 0 if not jacobians else (1 if jacobians == "xy" else 2)
    terms = _terms(xy[..., 0], xy[..., 1], d, model, level)
    out = np.stack(terms[:2], axis=-1)
    if level == 0:
        return out
    jxx, jxy, jyx, jyy = np.broadcast_arrays(*terms[2:6])
    d_xy = np.stack([np.stack([jxx, jxy], -1), np.stack([jyx, jyy], -1)], -2)
    if level == 1:
        return out, d_xy
    return out, d_xy, terms[6][..., :n]


def _terms(x, y, d, model, level):
    """Distortion of ``(x, y)`` as separate arrays (no stacking: the Newton loop's speed).

    ``level`` 0: ``(xd, yd)``; 1: also ``d(xd, yd)/d(x, y)`` as ``jxx, jxy, jyx, jyy``;
    2: also the coefficient Jacobian ``(..., 2, n)``.
    """
    if model == FISHEYE:
        return _fisheye_terms(x, y, d, level)
    n = d.shape[-1]
    k1, k2, p1, p2, k3 = d[..., 0], d[..., 1], d[..., 2], d[..., 3], d[..., 4]
    xx, yy, xy_ = x * x, y * y, x * y
    r2 = xx + yy
    num = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if n >= 8:
        k4, k5, k6 = d[..., 5], d[..., 6], d[..., 7]
        inv_den = 1.0 / (1.0 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        radial = num * inv_den
    else:
        radial = num
    xd = x * radial + 2.0 * p1 * xy_ + p2 * (r2 + 2.0 * xx)
    yd = y * radial + p1 * (r2 + 2.0 * yy) + 2.0 * p2 * xy_
    if n >= 12:
        s1, s2, s3, s4 = d[..., 8], d[..., 9], d[..., 10], d[..., 11]
        r4 = r2 * r2
        xd = xd + s1 * r2 + s2 * r4
        yd = yd + s3 * r2 + s4 * r4
    tilted = n == 14 and bool(np.any(d[..., 12:14] != 0))
    if tilted:
        xd, yd, tilt_jac = _tilt(xd, yd, d[..., 12], d[..., 13])
    if level == 0:
        return xd, yd

    d_num = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d radial / d r2
    if n >= 8:
        d_den = k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2)
        d_radial = (d_num - radial * d_den) * inv_den
    else:
        d_radial = d_num
    cross = 2.0 * xy_ * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
    jxx = radial + 2.0 * xx * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
    jyy = radial + 2.0 * yy * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
    jxy = jyx = cross
    if n >= 12:
        dsx = 2.0 * (s1 + 2.0 * s2 * r2)  # d (s1 r2 + s2 r4) / d r2, times 2 (d r2 / dx = 2x)
        dsy = 2.0 * (s3 + 2.0 * s4 * r2)
        jxx, jxy = jxx + dsx * x, jxy + dsx * y
        jyx, jyy = jyx + dsy * x, jyy + dsy * y
    if tilted:
        ta, tb, tc, td = tilt_jac
        jxx, jxy, jyx, jyy = ta * jxx + tb * jyx, ta * jxy + tb * jyy, tc * jxx + td * jyx, tc * jxy + td * jyy
    if level == 1:
        return xd, yd, jxx, jxy, jyx, jyy

    shape = np.broadcast_shapes(x.shape, d.shape[:-1])
    cols = np.zeros(shape + (2, n))
    scale = inv_den if n >= 8 else 1.0
    r6 = r2 * r2 * r2
    for i, rk in ((0, r2), (1, r2 * r2), (4, r6)):  # k1 k2 k3
        cols[..., 0, i] = x * rk * scale
        cols[..., 1, i] = y * rk * scale
    cols[..., 0, 2] = 2.0 * xy_
    cols[..., 1, 2] = r2 + 2.0 * yy
    cols[..., 0, 3] = r2 + 2.0 * xx
    cols[..., 1, 3] = 2.0 * xy_
    if n >= 8:
        for i, rk in ((5, r2), (6, r2 * r2), (7, r6)):  # k4 k5 k6
            cols[..., 0, i] = -x * radial * rk * inv_den
            cols[..., 1, i] = -y * radial * rk * inv_den
    if n >= 12:
        cols[..., 0, 8], cols[..., 0, 9] = r2, r4
        cols[..., 1, 10], cols[..., 1, 11] = r2, r4
    if tilted:
        ta, tb, tc, td = tilt_jac
        c0, c1 = cols[..., 0, :12].copy(), cols[..., 1, :12].copy()
        cols[..., 0, :12] = ta[..., None] * c0 + tb[..., None] * c1
        cols[..., 1, :12] = tc[..., None] * c0 + td[..., None] * c1
        eps = 1e-7
        for i in (12, 13):
            step = np.zeros(n)
            step[i] = eps
            hi = np.stack(_terms(x, y, d + step, model, 0), -1)
            lo = np.stack(_terms(x, y, d - step, model, 0), -1)
            cols[..., i] = (hi - lo) / (2.0 * eps)
    return xd, yd, jxx, jxy, jyx, jyy, cols


def _tilt(xd, yd, tau_x, tau_y):
    """OpenCV's tilted-sensor homography on distorted coordinates; returns them and its Jacobian (a, b, c, d)."""
    cx, sx, cy, sy = np.cos(tau_x), np.sin(tau_x), np.cos(tau_y), np.sin(tau_y)
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rot_x = np.stack([one, zero, zero, zero, cx, sx, zero, -sx, cx], -1).reshape(cx.shape + (3, 3))
    rot_y = np.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).reshape(cx.shape + (3, 3))
    rxy = rot_y @ rot_x
    proj_z = np.stack([rxy[..., 2, 2], zero, -rxy[..., 0, 2], zero, rxy[..., 2, 2], -rxy[..., 1, 2],
                       zero, zero, one], -1).reshape(cx.shape + (3, 3))
    h = proj_z @ rxy  # (..., 3, 3)
    v0 = h[..., 0, 0] * xd + h[..., 0, 1] * yd + h[..., 0, 2]
    v1 = h[..., 1, 0] * xd + h[..., 1, 1] * yd + h[..., 1, 2]
    w = h[..., 2, 0] * xd + h[..., 2, 1] * yd + h[..., 2, 2]
    inv_w = np.where(w != 0, 1.0 / np.where(w != 0, w, 1.0), 1.0)
    u0, u1 = v0 * inv_w, v1 * inv_w
    jac = ((h[..., 0, 0] - u0 * h[..., 2, 0]) * inv_w, (h[..., 0, 1] - u0 * h[..., 2, 1]) * inv_w,
           (h[..., 1, 0] - u1 * h[..., 2, 0]) * inv_w, (h[..., 1, 1] - u1 * h[..., 2, 1]) * inv_w)
    return u0, u1, jac


def _fisheye_terms(x, y, d, level):
    r2 = x * x + y * y
    r = np.sqrt(r2)
    theta = np.arctan(r)
    t2 = theta * theta
    k1, k2, k3, k4 = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    theta_d = theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
    small = r < 1e-12
    safe_r = np.where(small, 1.0, r)
    scale = np.where(small, 1.0, theta_d / safe_r)
    xd, yd = x * scale, y * scale
    if level == 0:
        return xd, yd
    d_theta_d = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
    # d (xy s(r)) / d xy = s I + s'(r) xy xy^T / r
    g = np.where(small, 0.0, (d_theta_d / (1.0 + r2) - scale) / safe_r) / safe_r
    cross = g * x * y
    jxx, jyy = scale + g * x * x, scale + g * y * y
    if level == 1:
        return xd, yd, jxx, cross, cross, jyy
    theta_over_r = np.where(small, 1.0, theta / safe_r)
    powers = np.stack([t2, t2 * t2, t2 * t2 * t2, t2 * t2 * t2 * t2], -1) * theta_over_r[..., None]
    shape = np.broadcast_shapes(x.shape, d.shape[:-1])
    cols = np.broadcast_to(np.stack([x, y], -1)[..., :, None] * powers[..., None, :], shape + (2, 4))
    return xd, yd, jxx, cross, cross, jyy, cols


def distort_planes(x, y, dist, model: str = PINHOLE):
    """:func:`distort` of separate coordinate planes: ``(xd, yd)`` of ``x, y`` (broadcasting with ``dist (..., n)``).

    The same arithmetic without the stacking and strided reads of ``(..., 2)``
    arrays, for batched projection of cameras x points laid out as contiguous
    planes (:meth:`triangulate.lens.LensBatch.project_planes`).
    """
    dist = check_dist(dist, model)
    d = dist if model == FISHEYE else _pinhole_padded(dist)
    return _terms(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), d, model, 0)


# -------------------------------------------------------------- camera matrix
def normalized_to_pixels(xy, matrix) -> np.ndarray:
    """Normalised (distorted) coordinates ``(..., 2)`` -> pixels through the full ``K (..., 3, 3)``, skew included."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack(pixel_planes(xy[..., 0], xy[..., 1], matrix), axis=-1)


def pixel_planes(x, y, matrix):
    """:func:`normalized_to_pixels` of separate planes ``x, y``: ``(u, v)``."""
    k = np.asarray(matrix, dtype=np.float64)
    return k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2], k[..., 1, 1] * y + k[..., 1, 2]


def pixels_to_normalized(pixels, matrix) -> np.ndarray:
    """Inverse of :func:`normalized_to_pixels` (``K`` upper triangular: back-substitution)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    k = np.asarray(matrix, dtype=np.float64)
    y = (pixels[..., 1] - k[..., 1, 2]) / k[..., 1, 1]
    x = (pixels[..., 0] - k[..., 0, 2] - k[..., 0, 1] * y) / k[..., 0, 0]
    return np.stack([x, y], axis=-1)


def project(points_cam, matrix, dist, model: str = PINHOLE) -> np.ndarray:
    """Camera-frame points ``(..., 3)`` -> distorted pixels ``(..., 2)``; NaN behind the camera (z <= 0)."""
    points_cam = np.asarray(points_cam, dtype=np.float64)
    z = points_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(z > 0, 1.0 / z, np.nan)
    xy = points_cam[..., :2] * inv_z[..., None]
    return normalized_to_pixels(distort(xy, dist, model), matrix)


# ----------------------------------------------------------------- undistortion
def undistort_normalized(xyd, dist, model: str = PINHOLE, tol: float = 1e-12, max_iter: int = 30,
                         newton_iter: int = 2) -> np.ndarray:
    """Distorted normalised ``(..., 2)`` -> undistorted normalised ``(..., 2)``: ``distort(result) == xyd``.

    Newton on ``distort(xy) - xyd`` with the analytic 2x2 Jacobian, started
    from two fixed-point steps on the radial term; ``newton_iter`` steps are
    taken for all points, then only the points whose last step was above
    ``tol`` (normalised units; 1e-12 is ~1e-9 px) keep iterating, up to
    ``max_iter``.  Quadratic convergence: the error left is far below the last
    step.  Points that still have not converged (beyond the radius where the
    polynomial folds over, so no inverse exists there) get what OpenCV's
    ``undistortPoints`` gives them: its fixed-point iteration
    ``xy = (xyd - tangential) / radial``, ``max_iter`` steps (a point that
    means little; it may be NaN).
    """
    xyd = np.asarray(xyd, dtype=np.float64)
    dist = check_dist(dist, model)
    shape = np.broadcast_shapes(xyd.shape[:-1], dist.shape[:-1])
    if dist.shape[-1] == 0 or not np.any(dist):
        return np.array(np.broadcast_to(xyd, shape + (2,)))
    d = dist if model == FISHEYE else _pinhole_padded(dist)
    xd, yd = xyd[..., 0], xyd[..., 1]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        x, y, step = _first_steps(xd, yd, d, model, newton_iter, shape)
        todo = ~(step <= tol) & np.isfinite(xd) & np.isfinite(yd)
        if todo.any():  # the few points far out: more steps for those alone
            x, y = x.copy(), y.copy()
            db = np.broadcast_to(d, shape + d.shape[-1:])[todo]
            xdb, ydb = np.broadcast_to(xd, shape)[todo], np.broadcast_to(yd, shape)[todo]
            xb, yb = x[todo], y[todo]
            stepb = np.full(xb.shape, np.inf)
            for _ in range(max_iter):
                xb, yb, stepb = _newton_step(xb, yb, xdb, ydb, db, model)
                if not (stepb > tol).any():
                    break
            failed = ~(stepb <= tol)
            if failed.any():
                xb[failed], yb[failed] = _fixed_point(xdb[failed], ydb[failed], db[failed], model, max_iter)
            x[todo], y[todo] = xb, yb
    return np.stack([x, y], axis=-1)


# Entries per block of the first Newton steps (:func:`_first_steps`): each step makes ~70 temporaries,
# which at 2^14 entries (128 KB each) stay in a core's cache instead of streaming through memory.  Measured
# (one thread, 16 cameras x 15 600 points, a loaded machine): 1.5-2x faster than one pass over everything
# (2^13-2^15 alike, 2^12 and below slower again); 4 cameras ~1.2x.
UNDISTORT_BLOCK = 1 << 14


def _first_steps(xd, yd, d, model, newton_iter, shape):
    """Start and ``newton_iter`` Newton steps for every point: ``(x, y, step)``, each of ``shape``.

    Elementwise, so done in blocks along the longest axis (:data:`UNDISTORT_BLOCK`), which gives the
    same numbers as one pass over all points, only faster.
    """
    size = int(np.prod(shape))
    if size <= 2 * UNDISTORT_BLOCK:
        x, y = _start(xd, yd, d, model)
        step = np.full(shape, np.inf)
        for _ in range(newton_iter):
            x, y, step = _newton_step(x, y, xd, yd, d, model)
        return np.broadcast_to(x, shape), np.broadcast_to(y, shape), np.broadcast_to(step, shape)
    axis = int(np.argmax(shape))
    length = max(1, UNDISTORT_BLOCK * shape[axis] // size)
    xd, yd = np.broadcast_to(xd, shape), np.broadcast_to(yd, shape)
    d = np.broadcast_to(d, shape + d.shape[-1:])
    x, y, step = np.empty(shape), np.empty(shape), np.full(shape, np.inf)
    for s in range(0, shape[axis], length):
        blk = (slice(None),) * axis + (slice(s, s + length),)
        xdb, ydb, db = xd[blk], yd[blk], d[blk]
        xb, yb = _start(xdb, ydb, db, model)
        for _ in range(newton_iter):
            xb, yb, step[blk] = _newton_step(xb, yb, xdb, ydb, db, model)
        x[blk], y[blk] = xb, yb
    return x, y, step


def _start(xd, yd, d, model):
    """A starting point close to the answer: two fixed-point steps on the radial term alone."""
    if model == FISHEYE:
        return xd, yd
    k1, k2, k3 = d[..., 0], d[..., 1], d[..., 4]
    x, y = xd, yd
    for _ in range(2):
        r2 = x * x + y * y
        inv = 1.0 / (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)))
        x, y = xd * inv, yd * inv
    return x, y


def _newton_step(x, y, xd, yd, d, model):
    """One Newton step of ``distort(x, y) = (xd, yd)``; returns the new ``x, y`` and the step length (L1)."""
    fx, fy, a, b, c, e = _terms(x, y, d, model, 1)
    rx, ry = fx - xd, fy - yd
    inv_det = 1.0 / (a * e - b * c)
    dx = (e * rx - b * ry) * inv_det
    dy = (a * ry - c * rx) * inv_det
    return x - dx, y - dy, np.abs(dx) + np.abs(dy)


def _fixed_point(xd, yd, d, model, iterations):
    """OpenCV's undistortion iteration (what ``cv2.undistortPoints`` does) for points Newton cannot invert."""
    x, y = xd, yd
    if model == FISHEYE:  # radial only: divide by the distortion's scale at the current point
        for _ in range(iterations):
            r = np.hypot(x, y)
            fx, fy = _terms(x, y, d, model, 0)
            scale = np.where(r > 0, np.hypot(fx, fy) / np.where(r > 0, r, 1.0), 1.0)
            x, y = xd / scale, yd / scale
        return x, y
    radial_only = np.zeros_like(d)
    idx = [0, 1, 4] + ([5, 6, 7] if d.shape[-1] >= 8 else [])
    radial_only[..., idx] = d[..., idx]
    for _ in range(iterations):
        # distort(xy) = xy * radial + rest: solve xy = (xyd - rest) / radial at the current point
        fx, fy = _terms(x, y, d, model, 0)
        rx, ry = _terms(x, y, radial_only, model, 0)
        r2 = x * x + y * y
        radial = np.where(r2 > 0, (rx * x + ry * y) / np.where(r2 > 0, r2, 1.0), 1.0)
        x, y = (xd - (fx - rx)) / radial, (yd - (fy - ry)) / radial
    return x, y


def undistort(pixels, matrix, dist, model: str = PINHOLE, **newton) -> np.ndarray:
    """Distorted pixels ``(..., 2)`` -> undistorted normalised ``(..., 2)`` (``x_cam ~ (x, y, 1)``)."""
    return undistort_normalized(pixels_to_normalized(pixels, matrix), dist, model, **newton)
