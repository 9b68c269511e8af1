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
    if model == FISHEYE:
        return _distort_fisheye(xy, dist, jacobians)
    n = dist.shape[-1]
    d = _pinhole_padded(dist)
    out = _distort_pinhole(xy, d, jacobians)
    if jacobians is True and n != d.shape[-1]:
        out = (out[0], out[1], out[2][..., :n])
    return out


def _distort_pinhole(xy, d, jacobians):
    n = d.shape[-1]
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, p1, p2, k3 = (d[..., i] for i in range(5))
    xx, yy, xy_ = x * x, y * y, x * y
    r2 = xx + yy
    r4 = r2 * r2
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
        s1, s2, s3, s4 = (d[..., i] for i in range(8, 12))
        xd = xd + s1 * r2 + s2 * r4
        yd = yd + s3 * r2 + s4 * r4
    out = np.stack([xd, yd], axis=-1)
    tilted = n == 14 and np.any(d[..., 12:14] != 0)
    if tilted:
        out, d_tilt = _tilt(out, d[..., 12], d[..., 13])
    if not jacobians:
        return out

    # d radial / d r2
    d_num = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)
    if n >= 8:
        d_den = k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2)
        d_radial = (d_num - radial * d_den) * inv_den
    else:
        d_radial = d_num
    cross = 2.0 * xy_ * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
    jxx = radial + 2.0 * xx * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
    jyy = radial + 2.0 * yy * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
    jxy = cross
    jyx = cross
    if n >= 12:
        dsx = 2.0 * (s1 + 2.0 * s2 * r2)  # d (s1 r2 + s2 r4) / d r2, times 2 (d r2 / dx = 2x)
        dsy = 2.0 * (s3 + 2.0 * s4 * r2)
        jxx, jxy = jxx + dsx * x, jxy + dsx * y
        jyx, jyy = jyx + dsy * x, jyy + dsy * y
    d_xy = np.stack([np.stack([jxx, jxy], -1), np.stack([jyx, jyy], -1)], -2)
    if jacobians == "xy":
        return out, (d_tilt @ d_xy if tilted else d_xy)

    shape = np.broadcast_shapes(x.shape, d.shape[:-1])
    cols = np.zeros(shape + (2, n))
    scale = inv_den if n >= 8 else 1.0
    r6 = r4 * r2
    for i, rk in ((0, r2), (1, r4), (4, r6)):  # k1 k2 k3
        cols[..., 0, i] = x * rk * scale
        cols[..., 1, i] = y * rk * scale
    cols[..., 0, 2] = 2.0 * xy_
    cols[..., 1, 2] = r2 + 2.0 * yy
    cols[..., 0, 3] = r2 + 2.0 * xx
    cols[..., 1, 3] = 2.0 * xy_
    if n >= 8:
        for i, rk in ((5, r2), (6, r4), (7, r6)):  # k4 k5 k6
            cols[..., 0, i] = -x * radial * rk * inv_den
            cols[..., 1, i] = -y * radial * rk * inv_den
    if n >= 12:
        cols[..., 0, 8], cols[..., 0, 9] = r2, r4
        cols[..., 1, 10], cols[..., 1, 11] = r2, r4
    if tilted:
        d_xy = d_tilt @ d_xy
        cols[..., :12] = d_tilt @ cols[..., :12]
        eps = 1e-7
        for i in (12, 13):
            step = np.zeros(n)
            step[i] = eps
            hi = _distort_pinhole(xy, d + step, False)
            lo = _distort_pinhole(xy, d - step, False)
            cols[..., i] = (hi - lo) / (2.0 * eps)
    return out, d_xy, cols


def _tilt(xyd, tau_x, tau_y):
    """OpenCV's tilted-sensor homography on distorted coordinates; returns them and its 2x2 Jacobian."""
    cx, sx, cy, sy = np.cos(tau_x), np.sin(tau_x), np.cos(tau_y), np.sin(tau_y)
    one, zero = np.ones_like(cx), np.zeros_like(cx)
    rot_x = np.stack([one, zero, zero, zero, cx, sx, zero, -sx, cx], -1).reshape(cx.shape + (3, 3))
    rot_y = np.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).reshape(cx.shape + (3, 3))
    rxy = rot_y @ rot_x
    proj_z = np.stack([rxy[..., 2, 2], zero, -rxy[..., 0, 2], zero, rxy[..., 2, 2], -rxy[..., 1, 2],
                       zero, zero, one], -1).reshape(cx.shape + (3, 3))
    h = proj_z @ rxy  # (..., 3, 3)
    homog = np.concatenate([xyd, np.ones(xyd.shape[:-1] + (1,))], -1)
    v = np.einsum("...ij,...j->...i", h, homog)
    w = v[..., 2:3]
    inv_w = np.where(w != 0, 1.0 / np.where(w != 0, w, 1.0), 1.0)
    out = v[..., :2] * inv_w
    # d out / d xyd = (H[:2,:2] - out H[2,:2]) / w
    jac = (h[..., :2, :2] - out[..., :, None] * h[..., None, 2, :2]) * inv_w[..., None]
    return out, jac


def _distort_fisheye(xy, dist, jacobians):
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    r = np.sqrt(r2)
    theta = np.arctan(r)
    t2 = theta * theta
    k1, k2, k3, k4 = (dist[..., i] for i in range(4))
    poly = 1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    theta_d = theta * poly
    small = r < 1e-12
    safe_r = np.where(small, 1.0, r)
    scale = np.where(small, 1.0, theta_d / safe_r)
    out = xy * scale[..., None]
    if not jacobians:
        return out
    d_theta_d = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + t2 * 9.0 * k4)))
    d_scale_dr = np.where(small, 0.0, (d_theta_d / (1.0 + r2) - scale) / safe_r)
    # d (xy * s(r)) / d xy = s I + s'(r) xy xy^T / r
    outer = xy[..., :, None] * xy[..., None, :] * (d_scale_dr / safe_r)[..., None, None]
    d_xy = scale[..., None, None] * np.eye(2) + outer
    if jacobians == "xy":
        return out, d_xy
    theta_over_r = np.where(small, 1.0, theta / safe_r)
    powers = np.stack([t2, t2 * t2, t2 * t2 * t2, t2 * t2 * t2 * t2], -1) * theta_over_r[..., None]
    d_dist = xy[..., :, None] * powers[..., None, :]
    shape = np.broadcast_shapes(x.shape, dist.shape[:-1])
    return out, np.broadcast_to(d_xy, shape + (2, 2)), np.broadcast_to(d_dist, shape + (2, 4))


# -------------------------------------------------------------- camera matrix
def normalized_to_pixels(xy, matrix) -> np.ndarray:
    """Normalised (distorted) coordinates ``(..., 2)`` -> pixels through the full ``K (..., 3, 3)``, skew included."""
    xy = np.asarray(xy, dtype=np.float64)
    k = np.asarray(matrix, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2], k[..., 1, 1] * y + k[..., 1, 2]], axis=-1)


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
    polynomial folds over, so no inverse exists there) get OpenCV's answer, the
    fixed-point iteration ``xy = (xyd - tangential) / radial`` after
    ``max_iter`` steps, so callers see what they saw before.
    """
    xyd = np.asarray(xyd, dtype=np.float64)
    dist = check_dist(dist, model)
    shape = np.broadcast_shapes(xyd.shape[:-1], dist.shape[:-1])
    xyd = np.broadcast_to(xyd, shape + (2,))
    if dist.shape[-1] == 0 or not np.any(dist):
        return np.array(xyd)
    dist = np.broadcast_to(dist, shape + dist.shape[-1:])
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        xy = _start(xyd, dist, model)
        for _ in range(newton_iter):
            xy, step = _newton_step(xy, xyd, dist, model)
        todo = ~(step <= tol) & np.isfinite(xyd).all(-1)
        if todo.any():
            xb, xdb, db = xy[todo], xyd[todo], dist[todo]
            for _ in range(max_iter):
                xb, stepb = _newton_step(xb, xdb, db, model)
                if not (stepb > tol).any():
                    break
            failed = ~(stepb <= tol)
            if failed.any():
                xb[failed] = _fixed_point(xdb[failed], db[failed], model, max_iter)
            xy[todo] = xb
    return xy


def _start(xyd, dist, model):
    """A starting point close to the answer: two fixed-point steps on the radial term alone."""
    if model == FISHEYE:
        return np.array(xyd)
    d = _pinhole_padded(dist)
    k1, k2, k3 = d[..., 0], d[..., 1], d[..., 4]
    xy = xyd
    for _ in range(2):
        r2 = (xy * xy).sum(-1)
        xy = xyd / (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)))[..., None]
    return xy


def _newton_step(xy, xyd, dist, model):
    """One Newton step of ``distort(xy) = xyd``; returns the new ``xy`` and the step length (L1)."""
    f, jac = distort(xy, dist, model, jacobians="xy")
    rx, ry = f[..., 0] - xyd[..., 0], f[..., 1] - xyd[..., 1]
    a, b, c, d = jac[..., 0, 0], jac[..., 0, 1], jac[..., 1, 0], jac[..., 1, 1]
    inv_det = 1.0 / (a * d - b * c)
    dx = (d * rx - b * ry) * inv_det
    dy = (a * ry - c * rx) * inv_det
    return np.stack([xy[..., 0] - dx, xy[..., 1] - dy], -1), np.abs(dx) + np.abs(dy)


def _fixed_point(xyd, dist, model, iterations):
    """OpenCV's undistortion iteration (what ``cv2.undistortPoints`` does) for points Newton cannot invert."""
    xy = np.array(xyd)
    if model == FISHEYE:  # radial only: divide by the distortion scale at the current point
        for _ in range(iterations):
            r = np.linalg.norm(xy, axis=-1, keepdims=True)
            scale = np.where(r > 0, np.linalg.norm(distort(xy, dist, model), axis=-1, keepdims=True)
                             / np.where(r > 0, r, 1.0), 1.0)
            xy = xyd / scale
        return xy
    d = _pinhole_padded(dist)
    zero = np.zeros_like(d)
    radial_only = zero.copy()
    idx = [0, 1, 4] + ([5, 6, 7] if d.shape[-1] >= 8 else [])
    radial_only[..., idx] = d[..., idx]
    for _ in range(iterations):
        # distort(xy) = xy * radial + rest; solve xy = (xyd - rest) / radial at the current point
        full = distort(xy, d)
        rad = distort(xy, radial_only)
        with np.errstate(invalid="ignore", divide="ignore"):
            radial = np.where(xy != 0, rad / np.where(xy != 0, xy, 1.0), 1.0)
        xy = (xyd - (full - rad)) / radial
    return xy


def undistort(pixels, matrix, dist, model: str = PINHOLE, **newton) -> np.ndarray:
    """Distorted pixels ``(..., 2)`` -> undistorted normalised ``(..., 2)`` (``x_cam ~ (x, y, 1)``)."""
    return undistort_normalized(pixels_to_normalized(pixels, matrix), dist, model, **newton)
