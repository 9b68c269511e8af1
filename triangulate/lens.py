"""Lens model of all cameras at once: undistortion by a vectorised Newton solve, batched projection.

:meth:`calibration.Camera.undistort` calls OpenCV's fixed-point solver with a
tight criterion (up to 50 iterations per point, one call per camera): exact,
but it is the largest single cost of live triangulation.  For the usual
pinhole model (``k1 k2 p1 p2 [k3]``) inverting the distortion is a 2x2
Newton problem per point with a closed-form Jacobian; started at the
distorted point it converges to machine precision in 3-5 steps for any lens a
camera is calibrated with.  All cameras go in one array pass (coefficients
broadcast over the camera axis).

Points that have not converged after ``iterations`` steps (far outside the
calibrated field, where the distortion polynomial folds over) are handed to
:meth:`Camera.undistort`, so the result always equals OpenCV's; fisheye
cameras and longer distortion models go there too.

:meth:`LensBatch.project` is the forward model for all cameras in one pass
(what a loop over :meth:`Camera.project` gives, without the loop), used for
reprojection errors and the Gauss-Newton refinement.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class LensBatch:
    """Undistortion and projection for a fixed list of cameras, vectorised over cameras and points."""

    def __init__(self, cameras: Sequence, iterations: int = 2, tol: float = 1e-8):
        self.cameras = list(cameras)
        self.iterations = iterations
        self.tol = tol
        n = len(self.cameras)
        self.fast = np.array([not c.fisheye and c.dist.size <= 5 for c in self.cameras], dtype=bool)
        k = np.array([c.matrix for c in self.cameras], dtype=np.float64).reshape(n, 3, 3)
        self.fx, self.fy = k[:, 0, 0], k[:, 1, 1]
        self.skew, self.cx, self.cy = k[:, 0, 1], k[:, 0, 2], k[:, 1, 2]
        d = np.zeros((n, 5))
        for i, c in enumerate(self.cameras):
            if self.fast[i]:
                d[i, : c.dist.size] = c.dist
        self.dist = d
        self.distorted = np.any(d != 0, axis=1)
        self.rotation = np.array([c.R for c in self.cameras]).reshape(n, 3, 3)
        self.translation = np.array([c.tvec for c in self.cameras]).reshape(n, 3)
        # (4, 3C): homogeneous world point @ proj -> camera-frame xyz of every camera.
        self.proj = np.concatenate([self.rotation.transpose(2, 0, 1).reshape(3, -1),
                                    self.translation.reshape(1, -1)])

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> distorted pixels (..., C, 2) in every camera; NaN behind a camera."""
        points = np.asarray(points, dtype=np.float64)
        lead = points.shape[:-1]
        n = len(self.cameras)
        cam = (points.reshape(-1, 3) @ self.proj[:3] + self.proj[3]).reshape(-1, n, 3)
        z = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = np.where(z > 0, 1.0 / z, np.nan)
        x, y = cam[..., 0] * inv_z, cam[..., 1] * inv_z
        k1, k2, p1, p2, k3 = (self.dist[:, i] for i in range(5))
        xx, yy, xy = x * x, y * y, x * y
        r2 = xx + yy
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * xx)
        yd = y * radial + p1 * (r2 + 2.0 * yy) + 2.0 * p2 * xy
        out = np.stack([self.fx * xd + self.skew * yd + self.cx, self.fy * yd + self.cy], axis=-1)
        flat = points.reshape(-1, 3)
        for i in np.flatnonzero(~self.fast):
            out[:, i] = self.cameras[i].project(flat)
        return out.reshape(lead + (n, 2))

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels (C, ..., 2) -> normalised undistorted coordinates (C, ..., 2)."""
        return self(pixels)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, dtype=np.float64)
        n = len(self.cameras)
        if pixels.shape[0] != n or pixels.shape[-1] != 2:
            raise ValueError(f"pixels must have shape ({n}, ..., 2), got {pixels.shape}")
        flat = pixels.reshape(n, -1, 2)
        col = (slice(None), None)  # per-camera constants against (C, N)
        yd = (flat[..., 1] - self.cy[col]) / self.fy[col]
        xd = (flat[..., 0] - self.cx[col] - self.skew[col] * yd) / self.fx[col]
        out = np.stack([xd, yd], axis=-1)
        if self.distorted[self.fast].any():
            out = self._newton(xd, yd)
        for i in np.flatnonzero(~self.fast):
            out[i] = self.cameras[i].undistort(flat[i])
        return out.reshape(pixels.shape)

    def _newton(self, xd: np.ndarray, yd: np.ndarray) -> np.ndarray:
        k = tuple(self.dist[:, i][:, None] for i in range(5))  # (C, 1) each
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            # Start from two fixed-point steps on the radial term (within ~1e-4 of the answer
            # for a studio lens), so two Newton steps reach machine precision in the image.
            x, y = xd, yd
            k1, k2, _, _, k3 = k
            for _ in range(2):
                r2 = x * x + y * y
                inv = 1.0 / (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)))
                x, y = xd * inv, yd * inv
            for _ in range(self.iterations):
                x, y, step = _newton_step(x, y, xd, yd, k)
            # Newton converges quadratically: a last step this small leaves an error far below it.
            bad = ~(step <= self.tol) & np.isfinite(xd) & np.isfinite(yd)
            if bad.any():  # beyond the image: more steps for those few points
                cam = np.broadcast_to(np.arange(xd.shape[0])[:, None], xd.shape)[bad]
                kb = tuple(c[cam, 0] for c in k)
                xb, yb, xdb, ydb = x[bad], y[bad], xd[bad], yd[bad]
                for _ in range(20):
                    xb, yb, stepb = _newton_step(xb, yb, xdb, ydb, kb)
                    if not (stepb > self.tol).any():
                        break
                x[bad], y[bad] = xb, yb
                bad[bad] = ~(stepb <= self.tol)
        out = np.stack([x, y], axis=-1)
        for c in np.flatnonzero(bad.any(axis=1) & self.fast):  # a folded-over polynomial: OpenCV decides
            cam = self.cameras[c]
            px = np.stack([xd[c, bad[c]], yd[c, bad[c]]], axis=-1)
            out[c, bad[c]] = cam.undistort(cam.normalized_to_pixels(px))
        return out


def _newton_step(x, y, xd, yd, k):
    """One Newton step of ``distort(x, y) = (xd, yd)`` for Brown-Conrady ``k = (k1, k2, p1, p2, k3)``.

    Returns the new ``x, y`` and the step length (L1).
    """
    k1, k2, p1, p2, k3 = k
    xx, yy, xy = x * x, y * y, x * y
    r2 = xx + yy
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    d_radial = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d radial / d r2
    fx = x * radial + 2.0 * p1 * xy + p2 * (r2 + 2.0 * xx) - xd
    fy = y * radial + p1 * (r2 + 2.0 * yy) + 2.0 * p2 * xy - yd
    a = radial + 2.0 * xx * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
    b = 2.0 * xy * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
    d = radial + 2.0 * yy * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
    inv_det = 1.0 / (a * d - b * b)
    dx = (d * fx - b * fy) * inv_det
    dy = (a * fy - b * fx) * inv_det
    return x - dx, y - dy, np.abs(dx) + np.abs(dy)
