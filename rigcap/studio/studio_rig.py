"""A virtual studio rig with exact ground truth.

World frame: z up, floor at z = 0, metres.  The capture volume (where the
person walks and the board is waved) is centred near ``(0, 0, 1)`` on a floor
of about 4 m x 4 m; the cameras stand outside it on a ring of radius
``radius`` at heights drawn from ``height``, each aimed at the volume centre
with a little random jitter (aim point, roll), as people mount real cameras.

Intrinsics are what a 720p/1080p webcam or machine-vision camera with a
standard lens gives: focal length 0.8-1.0 x image width (about 65-77 deg
horizontal field of view), principal point within ~1.5 % of the image centre,
barrel distortion ``k1`` in [-0.3, -0.1] with a small positive ``k2`` (chosen
so the lens stays monotonic well beyond the image corners: points outside
the field of view never fold back into the image) and tangential terms of a
few 1e-4.
"""

from __future__ import annotations

import numpy as np

from calibration import lens_model
from calibration.camera import Camera, matrix_to_rodrigues
from calibration.rig import Rig

VOLUME_CENTER = np.array([0.0, 0.0, 0.9])


def look_at_rotation(center: np.ndarray, target: np.ndarray, roll_rad: float = 0.0) -> np.ndarray:
    """Rotation ``cam_from_world`` (OpenCV axes: x right, y down, z forward) for a camera at
    ``center`` looking at ``target`` with the world z axis up in the image."""
    forward = np.asarray(target, float) - np.asarray(center, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:  # looking straight down or up
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    if roll_rad:
        c, s = np.cos(roll_rad), np.sin(roll_rad)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
    return rot


def distortion_is_monotonic(k1: float, k2: float, r_max: float) -> bool:
    """True when the radial distortion ``k1 k2`` keeps increasing up to radius ``r_max`` (no fold-back):
    its slope along a radius (the lens model's Jacobian) stays above 0.05."""
    r = np.sqrt(np.linspace(0.0, r_max**2, 512))
    _, slope = lens_model.distort(np.stack([r, np.zeros_like(r)], -1), [k1, k2, 0.0, 0.0, 0.0], jacobians="xy")
    return bool(np.all(slope[:, 0, 0] > 0.05))


def max_normalized_radius(camera: Camera) -> float:
    """Largest undistorted normalised radius that lands inside the image (its corners)."""
    w, h = camera.size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    return float(np.linalg.norm(camera.undistort(corners), axis=-1).max())


def make_studio_rig(
    n_cameras: int = 4,
    size: tuple[int, int] = (1280, 720),
    seed: int = 0,
    radius: float = 3.2,
    height: tuple[float, float] = (1.6, 2.6),
    focal_px: float | None = None,
    distortion: bool = True,
) -> Rig:
    """A reproducible ring of ``n_cameras`` cameras named ``cam_0 .. cam_{n-1}``.

    ``radius`` is the ring radius in metres (the ring is slightly elliptical,
    +-5 %, and each camera's angle is jittered by up to a quarter of the
    spacing); ``height`` the range of mounting heights; ``focal_px`` fixes the
    focal length (else 0.8-1.0 x width, per camera); ``distortion=False``
    gives ideal pinhole cameras.  Works for any count (4, 8, 16, ...).
    """
    if n_cameras < 1:
        raise ValueError(f"n_cameras must be >= 1, got {n_cameras}")
    w, h = int(size[0]), int(size[1])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5715]))
    spacing = 2 * np.pi / n_cameras
    phase = rng.uniform(0, spacing)
    ellipse = 1.0 + rng.uniform(-0.05, 0.05, size=2)
    cameras = []
    for i in range(n_cameras):
        angle = phase + i * spacing + rng.uniform(-0.25, 0.25) * spacing
        r = radius * (1.0 + rng.uniform(-0.04, 0.04))
        z = rng.uniform(*height)
        center = np.array([r * ellipse[0] * np.cos(angle), r * ellipse[1] * np.sin(angle), z])
        target = VOLUME_CENTER + np.array([rng.normal(0, 0.15), rng.normal(0, 0.15), rng.normal(0, 0.1)])
        rot = look_at_rotation(center, target, np.deg2rad(rng.normal(0, 1.5)))
        fx = float(focal_px) if focal_px else w * rng.uniform(0.8, 1.0)
        fy = fx * (1.0 + rng.normal(0, 0.002))
        cx = (w - 1) / 2 + rng.normal(0, 0.008 * w)
        cy = (h - 1) / 2 + rng.normal(0, 0.008 * h)
        matrix = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        if distortion:
            # image-corner radius in normalised units, with margin for points outside the image
            r_corner = np.hypot(w / 2, h / 2) / fx
            while True:
                k1 = rng.uniform(-0.3, -0.1)
                k2 = rng.uniform(0.0, 0.12)
                if distortion_is_monotonic(k1, k2, 2.0 * r_corner):
                    break
            p1, p2 = rng.normal(0, 4e-4, size=2)
            dist = np.array([k1, k2, p1, p2, 0.0])
        else:
            dist = np.zeros(5)
        tvec = -rot @ center
        cameras.append(Camera(f"cam_{i}", (w, h), matrix, dist, matrix_to_rodrigues(rot), tvec))
    meta = {"source": "rigcap synthetic studio", "seed": int(seed), "radius_m": float(radius)}
    return Rig(cameras, meta)


def visible_in_image(camera: Camera, points: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """Mask (...) of world points (..., 3) that this camera images: in front of it, inside
    the field of view (checked on the undistorted ray, so lens fold-back cannot fake a
    hit) and with their distorted pixel inside the image (``margin_px`` from the border)."""
    points = np.asarray(points, dtype=np.float64)
    cam = camera.world_to_camera(points)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.hypot(cam[..., 0], cam[..., 1]) / z
    uv = camera.project(points)
    w, h = camera.size
    with np.errstate(invalid="ignore"):
        ok = (z > 1e-6) & (r <= _radius_limit(camera))
        ok &= (uv[..., 0] >= -0.5 + margin_px) & (uv[..., 0] <= w - 0.5 - margin_px)
        ok &= (uv[..., 1] >= -0.5 + margin_px) & (uv[..., 1] <= h - 0.5 - margin_px)
    return ok


_RADIUS_CACHE: dict = {}


def _radius_limit(camera: Camera) -> float:
    key = (camera.size, camera.matrix.tobytes(), camera.dist.tobytes(), camera.fisheye)
    if key not in _RADIUS_CACHE:
        _RADIUS_CACHE[key] = max_normalized_radius(camera) * 1.001
    return _RADIUS_CACHE[key]
