"""Per-camera ray grids and the studio room that every synthetic image is drawn over.

Rendering is exact under lens distortion because it goes *backwards*: every
pixel centre (u, v) of the distorted image is undistorted once into its
normalised ray ``(x, y, 1)`` in the camera frame (``Camera.undistort``, 50
iterations, re-distorted error < 1e-4 px); a planar surface is then a
homography of those rays, and the room is a ray/box intersection.  The ray
grid of a camera never changes, so it is computed once and cached.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from calibration.camera import Camera

ROOM_HALF = (4.6, 4.2)  # half extents x, y of the room, metres (cameras stand inside)
ROOM_HEIGHT = 3.3

_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_CACHE_MAX = 48


def _camera_key(camera: Camera, *extra) -> tuple:
    return (camera.size, camera.matrix.tobytes(), camera.dist.tobytes(), camera.fisheye,
            camera.rvec.tobytes(), camera.tvec.tobytes()) + extra


def _cached(key, make):
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = make()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_MAX:
        _CACHE.popitem(last=False)
    return value


def camera_rays(camera: Camera) -> np.ndarray:
    """(h, w, 2) float32: the undistorted normalised ray ``(x, y)`` of every pixel centre."""
    key = ("rays", camera.size, camera.matrix.tobytes(), camera.dist.tobytes(), camera.fisheye)

    def make():
        w, h = camera.size
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        xy = camera.undistort(np.stack([u, v], axis=-1))
        return np.ascontiguousarray(xy.astype(np.float32))

    return _cached(key, make)


def world_rays(camera: Camera) -> np.ndarray:
    """(h, w, 3) float32 unit ray directions of every pixel in world coordinates."""

    def make():
        xy = camera_rays(camera)
        d = np.concatenate([xy, np.ones(xy.shape[:2] + (1,), np.float32)], axis=-1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return np.ascontiguousarray(d @ camera.R.astype(np.float32))  # rows: R^T d

    return _cached(_camera_key(camera, "world_rays"), make)


def _value_noise(shape, cells, rng) -> np.ndarray:
    """Smooth noise in [0, 1] of the given (h, w) shape, ``cells`` blobs across."""
    small = rng.random((max(2, cells[1]), max(2, cells[0]))).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def room_background(camera: Camera, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 BGR: the studio as this camera sees it.

    A box room (floor at z = 0, walls at ``ROOM_HALF``, ceiling at
    ``ROOM_HEIGHT``): a grey-blue floor with a 0.5 m tile grid and a darker
    4 m x 4 m capture mat with 1 m lines, four differently tinted walls with a
    skirting board, doors and pictures, and a ceiling with light panels.
    Deterministic in the camera and ``seed``; cached.
    """
    return _cached(_camera_key(camera, "room", int(seed)), lambda: _render_room(camera, seed))


def _render_room(camera: Camera, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x600D]))
    d = world_rays(camera).astype(np.float64)
    c = camera.center
    h, w = d.shape[:2]
    big = 1e9
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[..., 2] < 0, -c[2] / d[..., 2], big)
        t_ceil = np.where(d[..., 2] > 0, (ROOM_HEIGHT - c[2]) / d[..., 2], big)
        tx = np.where(d[..., 0] > 0, (ROOM_HALF[0] - c[0]) / d[..., 0], (-ROOM_HALF[0] - c[0]) / d[..., 0])
        ty = np.where(d[..., 1] > 0, (ROOM_HALF[1] - c[1]) / d[..., 1], (-ROOM_HALF[1] - c[1]) / d[..., 1])
    tx = np.where(np.isfinite(tx) & (tx > 0), tx, big)
    ty = np.where(np.isfinite(ty) & (ty > 0), ty, big)
    stack = np.stack([t_floor, t_ceil, tx, ty])
    which = stack.argmin(axis=0)
    t = stack.min(axis=0)
    p = c + d * t[..., None]
    img = np.zeros((h, w, 3), np.float32)

    # floor: tiles, a capture mat, grid lines
    floor = which == 0
    px, py = p[..., 0], p[..., 1]
    tile = ((np.floor(px / 0.5) + np.floor(py / 0.5)) % 2).astype(np.float32)
    base = np.array([150, 150, 140], np.float32) + tile[..., None] * np.array([10, 10, 8], np.float32)
    mat = (np.abs(px) < 2.0) & (np.abs(py) < 2.0)
    base = np.where(mat[..., None], np.array([95, 105, 100], np.float32), base)
    # line half-width grows with distance so lines stay about a pixel wide
    pix = np.maximum(t / camera.matrix[0, 0], 1e-4) * 1.2
    gx = np.abs(px - np.round(px / 0.5) * 0.5)
    gy = np.abs(py - np.round(py / 0.5) * 0.5)
    line = (np.minimum(gx, gy) < np.maximum(0.006, pix)).astype(np.float32)
    mx = np.abs(px - np.round(px)) ; my = np.abs(py - np.round(py))
    major = mat & (np.minimum(mx, my) < np.maximum(0.012, 1.5 * pix))
    floor_col = base * (1 - 0.35 * line[..., None])
    floor_col = np.where(major[..., None], np.array([215, 225, 225], np.float32), floor_col)
    img[floor] = floor_col[floor]

    # ceiling with light panels
    ceil = which == 1
    panel = ((np.abs((px % 2.0) - 1.0) < 0.3) & (np.abs((py % 2.0) - 1.0) < 0.3))
    ceil_col = np.where(panel[..., None], np.array([250, 250, 250], np.float32), np.array([200, 205, 205], np.float32))
    img[ceil] = ceil_col[ceil]

    # walls: tint per wall, skirting board, doors and pictures
    tints = rng.uniform(150, 215, size=(4, 3)).astype(np.float32)
    side_x = np.where(px > 0, 0, 1)
    side_y = np.where(py > 0, 2, 3)
    wall_id = np.where(which == 2, side_x, side_y)
    along = np.where(which == 2, py, px)
    pz = p[..., 2]
    wall = which >= 2
    wall_col = tints[wall_id]
    wall_col = np.where((pz < 0.12)[..., None], np.array([70, 70, 75], np.float32), wall_col)
    for wid in range(4):
        for _ in range(3):
            a0 = rng.uniform(-3.5, 3.0)
            if rng.random() < 0.3:  # a door
                a1, z0, z1 = a0 + 0.9, 0.0, 2.05
            else:  # a picture or a shelf
                a1 = a0 + rng.uniform(0.4, 1.2)
                z0 = rng.uniform(0.9, 1.6)
                z1 = z0 + rng.uniform(0.3, 0.8)
            col = rng.uniform(30, 230, size=3).astype(np.float32)
            sel = (wall_id == wid) & (along > a0) & (along < a1) & (pz > z0) & (pz < z1)
            wall_col = np.where(sel[..., None], col, wall_col)
    img[wall] = wall_col[wall]

    # soft shading: darker far away and near the floor corners, plus grain
    fall = (1.0 / (1.0 + 0.04 * t)).astype(np.float32)
    img *= (0.75 + 0.35 * fall)[..., None]
    img *= (0.9 + 0.2 * _value_noise((h, w), (12, 8), rng))[..., None]
    img += rng.normal(0, 2.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
