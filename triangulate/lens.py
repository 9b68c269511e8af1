"""Lens model of all cameras at once: batched undistortion and projection.

The math is :mod:`calibration.lens_model`'s (Newton undistortion, every
distortion model, the camera matrix's skew); this class only batches it over
cameras: cameras sharing a model and coefficient count form one group, whose
coefficients broadcast over the camera axis, so a rig of like cameras is one
array pass, not a loop over :meth:`Camera.undistort`.

:meth:`LensBatch.project` is the forward model for all cameras in one pass
(what a loop over :meth:`Camera.project` gives, without the loop), used for
reprojection errors and the Gauss-Newton refinement.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from calibration import lens_model
from triangulate.dlt import rigid_planes

# Entries (cameras x points) per block of :meth:`LensBatch.project_planes`: its ~40 temporaries stay in a
# core's cache.
PROJECT_BLOCK = 1 << 14


class LensBatch:
    """Undistortion and projection for a fixed list of cameras, vectorised over cameras and points."""

    def __init__(self, cameras: Sequence, iterations: int = 2, tol: float = 1e-8):
        self.cameras = list(cameras)
        self.iterations = iterations
        self.tol = tol  # Newton step (normalised units) below which a point has converged
        n = len(self.cameras)
        self.matrix = np.array([c.matrix for c in self.cameras], dtype=np.float64).reshape(n, 3, 3)
        groups: dict[tuple[str, int], list[int]] = {}
        for i, c in enumerate(self.cameras):
            size = 5 if c.distortion_model == lens_model.PINHOLE and c.dist.size <= 5 else c.dist.size
            groups.setdefault((c.distortion_model, size), []).append(i)
        # (model, camera indices, coefficients (G, n) padded with zeros, any non-zero)
        self.groups = []
        for (model, size), idx in groups.items():
            d = np.zeros((len(idx), size))
            for row, i in enumerate(idx):
                d[row, : self.cameras[i].dist.size] = self.cameras[i].dist
            self.groups.append((model, np.array(idx), d, bool(np.any(d))))
        self.rotation = np.array([c.R for c in self.cameras]).reshape(n, 3, 3)  # cam_from_world
        self.translation = np.array([c.tvec for c in self.cameras]).reshape(n, 3)
        # (3C, 3) and (3C, 1): points (3, N) -> camera-frame planes, component-major (project_planes).
        self.rot_planar = self.rotation.transpose(1, 0, 2).reshape(3 * n, 3)
        self.trans_planar = self.translation.T.reshape(3 * n, 1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> distorted pixels (..., C, 2) in every camera; NaN behind a camera
        (:meth:`project_planes`, the one implementation, in the points-first layout)."""
        points = np.asarray(points, dtype=np.float64)
        lead = points.shape[:-1]
        u, v = self.project_planes(points.reshape(-1, 3).T)
        return np.stack([u.T, v.T], -1).reshape(lead + (len(self.cameras), 2))

    def project_planes(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (3, N) -> distorted pixels ``(u, v)``, each (C, N); NaN behind a camera.

        :meth:`project` in the points-last layout of the engine (one contiguous
        plane per camera and coordinate), in blocks of points that stay in the
        core's cache (:data:`PROJECT_BLOCK`).
        """
        points = np.asarray(points, dtype=np.float64)
        n_cams, n = len(self.cameras), points.shape[1]
        u, v = np.empty((n_cams, n)), np.empty((n_cams, n))
        step = max(64, PROJECT_BLOCK // max(1, n_cams))
        for s in range(0, n, step):
            blk = slice(s, s + step)
            cx, cy, z = rigid_planes(self.rot_planar, self.trans_planar, points[:, blk]).reshape(3, n_cams, -1)
            with np.errstate(divide="ignore", invalid="ignore"):
                inv_z = np.where(z > 0, 1.0 / z, np.nan)
            x, y = cx * inv_z, cy * inv_z
            for model, idx, d, _ in self.groups:
                if len(self.groups) == 1:
                    x, y = lens_model.distort_planes(x, y, d[:, None], model)
                else:
                    x[idx], y[idx] = lens_model.distort_planes(x[idx], y[idx], d[:, None], model)
            u[:, blk], v[:, blk] = lens_model.pixel_planes(x, y, self.matrix[:, None])
        return u, v

    def undistort(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels (C, ..., 2) -> normalised undistorted coordinates (C, ..., 2)."""
        return self(pixels)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, dtype=np.float64)
        n = len(self.cameras)
        if pixels.shape[0] != n or pixels.shape[-1] != 2:
            raise ValueError(f"pixels must have shape ({n}, ..., 2), got {pixels.shape}")
        flat = pixels.reshape(n, -1, 2)
        xyd = lens_model.pixels_to_normalized(flat, self.matrix[:, None])
        if len(self.groups) == 1:
            model, _, d, distorted = self.groups[0]
            out = self._undistort(xyd, d, model) if distorted else xyd
        else:
            out = xyd
            for model, idx, d, distorted in self.groups:
                if distorted:
                    out[idx] = self._undistort(xyd[idx], d, model)
        return out.reshape(pixels.shape)

    def _undistort(self, xyd, d, model):
        return lens_model.undistort_normalized(xyd, d[:, None], model, tol=self.tol, newton_iter=self.iterations)
