"""Per-camera ray grids and the studio room that every synthetic image is drawn over.

Rendering is exact under lens distortion because it goes *backwards*: every
pixel centre (u, v) of the distorted image is undistorted once into its
normalised ray ``(x, y, 1)`` in the camera frame (``Camera.undistort``: the
lens model's Newton solve, re-distorted error < 1e-6 px); a planar surface is then a
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
    """(h, w, 2) float32: the undistorted normalised ray ``(x, y)`` of every pixel centre.

    Exact undistortion (``Camera.undistort``) on a grid every 8 px, then a bicubic
    spline to every pixel: re-distorting the result lands within 3e-5 px of the
    pixel centre (the float32 storage limit), in ~0.1 s instead of ~0.5 s.
    """
    key = ("rays", camera.size, camera.matrix.tobytes(), camera.dist.tobytes(), camera.fisheye)

    def make():
        from scipy.interpolate import RectBivariateSpline

        w, h = camera.size
        step = 8
        us = np.unique(np.r_[np.arange(0, w, step), w - 1]).astype(np.float64)
        vs = np.unique(np.r_[np.arange(0, h, step), h - 1]).astype(np.float64)
        grid_u, grid_v = np.meshgrid(us, vs)
        xy = camera.undistort(np.stack([grid_u, grid_v], axis=-1))
        fu, fv = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
        out = np.empty((h, w, 2), np.float32)
        out[..., 0] = RectBivariateSpline(vs, us, xy[..., 0])(fv, fu)
        out[..., 1] = RectBivariateSpline(vs, us, xy[..., 1])(fv, fu)
        return out

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
    h, w = camera.size[1], camera.size[0]
    d = world_rays(camera).reshape(-1, 3)
    c = camera.center.astype(np.float32)
    big = np.float32(1e9)
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_z = np.where(dz < 0, -c[2] / dz, np.where(dz > 0, (ROOM_HEIGHT - c[2]) / dz, big))
        t_x = np.where(dx > 0, (ROOM_HALF[0] - c[0]) / dx, (-ROOM_HALF[0] - c[0]) / dx)
        t_y = np.where(dy > 0, (ROOM_HALF[1] - c[1]) / dy, (-ROOM_HALF[1] - c[1]) / dy)
    t_x = np.where(np.isfinite(t_x) & (t_x > 0), t_x, big)
    t_y = np.where(np.isfinite(t_y) & (t_y > 0), t_y, big)
    t = np.minimum(np.minimum(t_z, t_x), t_y).astype(np.float32)
    img = np.empty((h * w, 3), np.float32)
    pix_m = t / np.float32(camera.matrix[0, 0])  # metres per pixel at the hit point

    # floor: tiles, a capture mat, grid lines
    sel = np.flatnonzero((t == t_z) & (dz < 0))
    if sel.size:
        tt = t[sel]
        px, py = c[0] + dx[sel] * tt, c[1] + dy[sel] * tt
        tile = ((np.floor(px * 2) + np.floor(py * 2)) % 2).astype(np.float32)
        col = np.array([150, 150, 140], np.float32) + tile[:, None] * np.array([10, 10, 8], np.float32)
        mat = (np.abs(px) < 2.0) & (np.abs(py) < 2.0)
        col[mat] = (95, 105, 100)
        half = np.maximum(0.006, 1.2 * pix_m[sel])
        line = np.minimum(np.abs(px - np.round(px * 2) / 2), np.abs(py - np.round(py * 2) / 2)) < half
        col[line] *= 0.65
        major = mat & (np.minimum(np.abs(px - np.round(px)), np.abs(py - np.round(py))) < np.maximum(0.012, 1.5 * pix_m[sel]))
        col[major] = (215, 225, 225)
        img[sel] = col

    # ceiling with light panels
    sel = np.flatnonzero((t == t_z) & (dz > 0))
    if sel.size:
        tt = t[sel]
        px, py = c[0] + dx[sel] * tt, c[1] + dy[sel] * tt
        panel = (np.abs((px % 2.0) - 1.0) < 0.3) & (np.abs((py % 2.0) - 1.0) < 0.3)
        img[sel] = (200, 205, 205)
        img[sel[panel]] = (250, 250, 250)

    # walls: a grey-ish tint per wall, skirting board, doors and pictures
    tints = (rng.uniform(150, 205, size=(4, 1)) + rng.normal(0, 12, size=(4, 3))).astype(np.float32)
    items = []
    for wid in range(4):
        for _ in range(3):
            a0 = rng.uniform(-3.5, 3.0)
            if rng.random() < 0.3:  # a door
                a1, z0, z1 = a0 + 0.9, 0.0, 2.05
            else:  # a picture or a shelf
                a1 = a0 + rng.uniform(0.4, 1.2)
                z0 = rng.uniform(0.9, 1.6)
                z1 = z0 + rng.uniform(0.3, 0.8)
            items.append((wid, a0, a1, z0, z1, rng.uniform(30, 230, size=3).astype(np.float32)))
    for is_x, t_w, dcomp in ((True, t_x, dx), (False, t_y, dy)):
        sel = np.flatnonzero((t == t_w) & (t < t_z))
        if not sel.size:
            continue
        tt = t[sel]
        px, py, pz = c[0] + dx[sel] * tt, c[1] + dy[sel] * tt, c[2] + d[sel, 2] * tt
        wall_id = np.where(dcomp[sel] > 0, 0, 1) + (0 if is_x else 2)
        along = py if is_x else px
        col = tints[wall_id]
        for wid, a0, a1, z0, z1, icol in items:
            m = (wall_id == wid) & (along > a0) & (along < a1) & (pz > z0) & (pz < z1)
            col[m] = icol
        col[pz < 0.12] = (70, 70, 75)
        img[sel] = col

    # soft shading: darker far away, low-frequency blotches, fine grain
    img *= (0.75 + 0.35 / (1.0 + 0.04 * t))[:, None]
    img = img.reshape(h, w, 3)
    img *= (0.9 + 0.2 * _value_noise((h, w), (12, 8), rng))[..., None]
    img += rng.normal(0, 2.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
