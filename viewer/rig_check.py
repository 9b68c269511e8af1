"""Does the rig match the 3D points?  The same test ``triangulate`` runs on 2D keypoints.

A points file shown with the wrong rig (another session's, another world
frame, metres against millimetres) draws a skeleton far from every frustum, or
behind the cameras, and nothing says why.  This projects the points through
every camera and reuses :func:`triangulate.engine.outside_image_warnings`, so
"outside the image" means the same thing everywhere.
"""

from __future__ import annotations

import numpy as np

from calibration.rig import Rig
from triangulate.engine import outside_image_warnings

MAX_SAMPLED_FRAMES = 200


def rig_mismatch_warnings(rig: Rig, points: np.ndarray) -> list[str]:
    """Warnings for ``points`` (..., J, 3) seen through ``rig``; empty when the rig sees them.

    Frames are subsampled to at most :data:`MAX_SAMPLED_FRAMES`.  One line per
    camera that sees under 80% of the finite points, and a first line when no
    camera sees any point at all.
    """
    pts = np.asarray(points, dtype=np.float64)
    pts = pts.reshape(-1, *pts.shape[-2:]) if pts.ndim >= 2 else pts.reshape(1, 1, 3)
    pts = pts[:: max(1, len(pts) // MAX_SAMPLED_FRAMES)].reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(-1)]
    if len(pts) < 10:
        return []
    cams = list(rig.cameras)
    xy = [cam.project(pts) for cam in cams]
    present = [np.ones(len(pts), bool)] * len(cams)
    lines = outside_image_warnings(cams, xy, "of the 3D points project", present)
    seen = np.zeros(len(pts), bool)
    for cam, p in zip(cams, xy):
        w, h = cam.size
        with np.errstate(invalid="ignore"):
            seen |= (p[:, 0] >= 0) & (p[:, 0] <= w) & (p[:, 1] >= 0) & (p[:, 1] <= h)
    if not seen.any():
        dist = np.linalg.norm(pts.mean(axis=0) - rig.centers.mean(axis=0))
        lines.insert(0, f"no camera of the rig sees any of the 3D points (their centre is {dist:.1f} m "
                        "from the cameras' centre): is this the rig these points were triangulated with?")
    return lines
