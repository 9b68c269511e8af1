"""Where the viewer looks from: every view is a :class:`calibration.Camera`.

A view is an ordinary pinhole camera (no distortion), so one renderer serves
the default overview, a virtual camera anywhere, and "the view from rig camera
i"; and a test can check a rendered image with ``view.project(points)``.
"""

from __future__ import annotations

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig

WORLD_UP = np.array([0.0, 0.0, 1.0])


def look_at(eye, target, size=(1280, 720), fov_deg: float = 50.0, up=WORLD_UP, name: str = "view") -> Camera:
    """A distortion-free camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image.

    ``fov_deg`` is the horizontal field of view; pixels are square and the
    principal point is the image centre.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along up: any right vector will do
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # image down
    rot = np.stack([x, y, z])
    w, h = int(size[0]), int(size[1])
    f = (w / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    k = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
    cam = Camera(name, (w, h), k, np.zeros(5))
    cam.R = rot
    cam.tvec = -rot @ eye
    return cam


def scene_points(rig: Rig, points: np.ndarray | None = None) -> np.ndarray:
    """World points a default view keeps in frame: camera centres and finite skeleton points."""
    out = [rig.centers]
    if points is not None:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out.append(p[np.isfinite(p).all(axis=1)])
    return np.vstack(out)


def volume_center(rig: Rig) -> np.ndarray:
    """The point nearest (least squares) to every camera's optical axis: where the rig looks.

    Falls back to a point 2 m in front of the cameras' mean position when the
    axes are nearly parallel (one camera, a stereo pair).
    """
    centers = rig.centers
    dirs = np.array([c.R[2] for c in rig])  # optical axes (camera +z) in world
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # (C, 3, 3) projectors orthogonal to each axis
    a = proj.sum(axis=0)
    b = (proj @ centers[:, :, None]).sum(axis=0)[:, 0]
    if len(rig) >= 2 and np.linalg.cond(a) < 1e3:
        target = np.linalg.solve(a, b)
        spread = np.linalg.norm(centers - centers.mean(axis=0), axis=1).max()
        if np.linalg.norm(target - centers.mean(axis=0)) < 3.0 * spread + 1.0:
            return target
    return centers.mean(axis=0) + 2.0 * dirs.mean(axis=0)


def fit_distance(cam_rot: np.ndarray, target: np.ndarray, points: np.ndarray, k: np.ndarray,
                 size, margin: float = 0.9) -> float:
    """Smallest distance back from ``target`` along the view axis that keeps ``points`` in frame.

    ``cam_rot`` rows are the view's x (right), y (down), z (forward) axes;
    ``margin`` is the fraction of the half-image the points may use.
    """
    rel = (np.asarray(points, dtype=np.float64) - target) @ cam_rot.T  # (N, 3) in view axes, origin at target
    w, h = size
    tan_x = margin * min(k[0, 2] + 0.5, w - 0.5 - k[0, 2]) / abs(k[0, 0])  # fx < 0: a mirrored image
    tan_y = margin * min(k[1, 2] + 0.5, h - 0.5 - k[1, 2]) / k[1, 1]
    need = np.maximum(np.abs(rel[:, 0]) / tan_x, np.abs(rel[:, 1]) / tan_y) - rel[:, 2]
    return float(max(need.max(initial=0.0), 0.5))


def overview(rig: Rig, points: np.ndarray | None = None, size=(1280, 720), azimuth_deg: float = -60.0,
             elevation_deg: float = 25.0, fov_deg: float = 50.0, target=None) -> Camera:
    """An elevated oblique view of the whole capture volume, z up.

    Looks at ``target`` (default :func:`volume_center`, lowered to at most 1 m
    above the floor) from the direction given by ``azimuth_deg`` (0 = from +x,
    90 = from +y) and ``elevation_deg`` above the horizon, as far back as needed
    to keep every camera and every finite point of ``points`` (..., 3) in frame.
    """
    if target is None:
        target = volume_center(rig)
        target[2] = float(np.clip(target[2], 0.0, 1.0))
    target = np.asarray(target, dtype=np.float64)
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    back = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])  # target -> eye
    probe = look_at(target + back, target, size, fov_deg)
    dist = fit_distance(probe.R, target, scene_points(rig, points), probe.matrix, probe.size)
    return look_at(target + dist * back, target, size, fov_deg, name="overview")


def from_camera(rig: Rig, which: int | str, size=None) -> Camera:
    """Rig camera ``which`` (index or name) as a distortion-free view, scaled to ``size`` if given."""
    cam = rig[which].copy()
    cam.dist = np.zeros(5)
    cam.fisheye = False
    if size is not None and tuple(size) != tuple(cam.size):
        sx, sy = size[0] / cam.size[0], size[1] / cam.size[1]
        k = cam.matrix.copy()
        k[0, :] *= sx
        k[1, :] *= sy
        k[0, 2] = (cam.matrix[0, 2] + 0.5) * sx - 0.5  # pixel centres stay at integer coordinates
        k[1, 2] = (cam.matrix[1, 2] + 0.5) * sy - 0.5
        cam.matrix = k
        cam.size = (int(size[0]), int(size[1]))
    return cam
