"""Non-linear refinement of triangulated points by reprojection error, batched.

Minimises, for every point independently, ``sum_c w_c^2 |project_c(X) - p_c|^2``
in *distorted* pixels through each camera's full model
(:meth:`calibration.Camera.project`, so any distortion model the camera
supports).  Gauss-Newton on all points at once: the 2x3 Jacobian of every view
by central differences (six extra projections per camera per iteration, each a
vectorised call), 3x3 normal equations solved in closed form, and a step kept
only where it lowers that point's cost.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from triangulate.dlt import solve_sym3


def project_all(cameras: Sequence, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) -> pixels (N, C, 2) in every camera."""
    return np.stack([cam.project(points) for cam in cameras], axis=1)


def refine_points(
    cameras: Sequence,
    pixels: np.ndarray,
    weights: np.ndarray,
    points: np.ndarray,
    iterations: int = 3,
    step_m: float = 1e-5,
    project=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine points (N, 3) against observed pixels (N, C, 2) with row weights (N, C).

    Views with weight 0 are ignored; points with fewer than two weighted views
    or a non-finite start are returned unchanged.  ``project`` (points (n, 3)
    -> pixels (n, C, 2)) replaces the per-camera loop, e.g.
    :meth:`triangulate.lens.LensBatch.project`.  Returns ``(points, error)``
    with ``error`` (N, C) the pixel distance of every view to the refined point
    (NaN where the view is missing).
    """
    if project is None:
        def project(xa):
            return project_all(cameras, xa)
    points = np.array(points, dtype=np.float64, copy=True)
    pixels = np.asarray(pixels, dtype=np.float64)
    weights = np.where(np.isfinite(pixels).all(-1), np.nan_to_num(weights), 0.0)
    obs = np.where(weights[..., None] > 0, pixels, 0.0)
    active = np.isfinite(points).all(-1) & ((weights > 0).sum(-1) >= 2)

    idx = np.flatnonzero(active)
    x = points[idx]
    w = weights[idx]
    o = obs[idx]

    def res(xa):
        return (project(xa) - o) * w[..., None]

    r = res(x)
    cost = np.sum(np.where(w[..., None] > 0, r * r, 0.0), axis=(1, 2))
    eye = np.eye(3)
    for _ in range(iterations):
        if x.shape[0] == 0:
            break
        jac = np.empty(r.shape + (3,))  # (n, C, 2, 3)
        for k in range(3):
            dx = eye[k] * step_m
            jac[..., k] = (res(x + dx) - res(x - dx)) / (2.0 * step_m)
        jac = np.where(np.isfinite(jac), jac, 0.0)
        rr = np.where(np.isfinite(r), r, 0.0)
        h = np.einsum("ncak,ncal->nkl", jac, jac)
        g = np.einsum("ncak,nca->nk", jac, rr)
        delta = solve_sym3(h, -g)
        trial = x + np.nan_to_num(delta)
        r_trial = res(trial)
        cost_trial = np.sum(np.where(w[..., None] > 0, r_trial * r_trial, 0.0), axis=(1, 2))
        better = cost_trial < cost  # NaN (a view behind a camera) never wins
        x[better] = trial[better]
        r[better] = r_trial[better]
        cost[better] = cost_trial[better]
    points[idx] = x
    error = np.linalg.norm(project(points) - pixels, axis=-1)
    return points, error
