"""Draw the synthetic person as a camera sees it: shaded body parts over the studio room.

The body is the capsule model of :mod:`rigcap.studio.body` (the same one that
decides occlusion for the keypoints): torso, pelvis, limbs, hands and shoes as
shaded capsules, a head with hair and a face (eyes, brows, mouth, when turned
towards the camera), a soft shadow on the floor.  Parts are drawn far to near
(painter's algorithm on the distance to the camera), with OpenCV, anti-aliased.
Endpoints go through the full lens model, so the figure sits exactly where the
joints project; capsule outlines themselves are straight in the image (no
curvature from distortion inside one limb).

About 5-10 ms per 1280x720 frame once the camera's room background is cached.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.camera import Camera
from rigcap.studio.body import CAPSULES, RADII, capsule_endpoints, derived_points
from rigcap.studio.scene import room_background
from triangulate.skeletons import HALPE26, Skeleton

_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT

SKIN = [(140, 170, 225), (110, 145, 200), (80, 110, 160), (60, 80, 120)]  # BGR
SHIRTS = [(170, 90, 40), (50, 50, 170), (60, 130, 60), (130, 130, 130), (40, 140, 200), (120, 60, 110)]
TROUSERS = [(90, 55, 35), (40, 40, 40), (110, 140, 160), (70, 70, 80)]
HAIR = [(20, 25, 35), (30, 60, 100), (60, 110, 160), (100, 100, 100)]
SHOE = (35, 35, 40)


def _palette(seed: int) -> dict:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC010]))
    pick = lambda arr: np.array(arr[int(rng.integers(len(arr)))], np.float64)
    return {"skin": pick(SKIN), "shirt": pick(SHIRTS), "trousers": pick(TROUSERS), "hair": pick(HAIR),
            "shoe": np.array(SHOE, np.float64)}


def _pts(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _stadium(a: np.ndarray, b: np.ndarray, ra: float, rb: float, n: int = 10) -> np.ndarray:
    """Polygon (M, 2) of two circles (centres a, b, radii ra, rb) and their common tangents."""
    d = b - a
    length = float(np.hypot(*d))
    if length < 1e-6:
        ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
        return a + max(ra, rb) * np.stack([np.cos(ang), np.sin(ang)], -1)
    u = d / length
    base = np.arctan2(u[1], u[0])
    # tangent angle correction for unequal radii
    phi = np.arcsin(np.clip((ra - rb) / length, -0.99, 0.99))
    angs_b = np.linspace(base - np.pi / 2 - phi, base + np.pi / 2 + phi, n)
    angs_a = np.linspace(base + np.pi / 2 + phi, base + 3 * np.pi / 2 - phi, n)
    pb = b + rb * np.stack([np.cos(angs_b), np.sin(angs_b)], -1)
    pa = a + ra * np.stack([np.cos(angs_a), np.sin(angs_a)], -1)
    return np.concatenate([pb, pa])


def _draw_shaded(img, a, b, ra, rb, color, light=np.array([-0.45, -0.6])) -> None:
    """A capsule shaded like a lit cylinder: dark rim, brighter core shifted to the light."""
    color = np.asarray(color, float)
    layers = ((1.0, 0.55), (0.82, 0.75), (0.6, 0.92), (0.35, 1.08))
    for k, (scale, bright) in enumerate(layers):
        off = light * (1.0 - scale) * max(ra, rb) * 0.9
        poly = _stadium(a + off, b + off, ra * scale, rb * scale)
        col = tuple(float(c) for c in np.clip(color * bright, 0, 255))
        cv2.fillPoly(img, [_pts(poly)], col, cv2.LINE_AA, _SHIFT)


def render_person(camera: Camera, joints3d: np.ndarray, skeleton: Skeleton = HALPE26,
                  background: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 BGR picture of the person with joints ``joints3d`` (J, 3), world metres.

    ``background``: an image to draw over (copied), else the studio room for this
    camera.  ``seed`` picks the clothes and skin colours.  Joints must be in
    ``skeleton`` order (HALPE26; other skeletons are drawn as plain sticks).
    """
    w, h = camera.size
    img = (room_background(camera, seed) if background is None else np.asarray(background, np.uint8)).copy()
    joints3d = np.asarray(joints3d, float)
    if not np.isfinite(joints3d).all():
        return img
    if skeleton.joint_names != HALPE26.joint_names:
        uv = camera.project(joints3d)
        for i, j in skeleton.bones:
            if np.isfinite(uv[[i, j]]).all():
                cv2.line(img, tuple(_pts(uv[i]).ravel()), tuple(_pts(uv[j]).ravel()), (40, 200, 240), 6, cv2.LINE_AA, _SHIFT)
        return img
    pal = _palette(seed)
    cam_c = camera.center
    f = float(camera.matrix[0, 0])

    # soft floor shadow under the pelvis
    hip = joints3d[HALPE26.index("hip")]
    ang = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = np.stack([hip[0] + 0.32 * np.cos(ang), hip[1] + 0.26 * np.sin(ang), np.zeros_like(ang)], -1)
    if np.all(camera.world_to_camera(ring)[:, 2] > 0.1):
        shadow = img.copy()
        cv2.fillPoly(shadow, [_pts(camera.project(ring))], (0, 0, 0), cv2.LINE_AA, _SHIFT)
        cv2.addWeighted(shadow, 0.28, img, 0.72, 0, dst=img)

    a3, b3 = capsule_endpoints(joints3d)  # (K, 3)
    za = camera.world_to_camera(a3)[:, 2]
    zb = camera.world_to_camera(b3)[:, 2]
    depth = np.linalg.norm(0.5 * (a3 + b3) - cam_c, axis=-1)
    order = np.argsort(-depth)
    a2 = camera.project(a3)
    b2 = camera.project(b3)
    extra = derived_points(joints3d)
    for k in order:
        name, _, _, radius, cloth = CAPSULES[k]
        if za[k] < 0.1 or zb[k] < 0.1 or not (np.isfinite(a2[k]).all() and np.isfinite(b2[k]).all()):
            continue
        ra, rb = f * radius / za[k], f * radius / zb[k]
        if name == "head":
            _draw_head(img, camera, joints3d, extra, pal, ra, a2[k])
            continue
        _draw_shaded(img, a2[k], b2[k], ra, rb, pal[cloth])
    return img


def render_people(camera: Camera, people3d: np.ndarray, seeds, skeleton: Skeleton = HALPE26,
                  background: np.ndarray | None = None, room_seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 BGR picture of several people ``people3d`` (P, J, 3), world metres (NaN: away).

    People are drawn far to near (by the distance of their pelvis to the camera),
    so a nearer person hides the one behind, as in the occlusion the keypoint
    simulation computes; ``seeds`` (P,) pick each one's clothes."""
    img = (room_background(camera, room_seed) if background is None else np.asarray(background, np.uint8)).copy()
    people3d = np.asarray(people3d, float)
    hip = people3d[:, skeleton.index("hip") if "hip" in skeleton.joint_names else 0]
    depth = np.linalg.norm(hip - camera.center, axis=-1)
    for p in np.argsort(-np.nan_to_num(depth, nan=-1.0)):
        if np.isfinite(people3d[p]).all():
            img = render_person(camera, people3d[p], skeleton, background=img, seed=int(seeds[p]))
    return img


def _draw_head(img, camera, joints3d, extra, pal, radius_px, center_px) -> None:
    idx = HALPE26.index
    hc = extra["head_center"]
    nose = joints3d[idx("nose")]
    top = joints3d[idx("head")]
    fwd = nose - hc
    fwd /= np.linalg.norm(fwd)
    to_cam = camera.center - hc
    to_cam /= np.linalg.norm(to_cam)
    facing = float(fwd @ to_cam)  # 1: face towards the camera, -1: back of the head
    # face ellipse (slightly taller than wide) in skin
    _draw_shaded(img, center_px, center_px, radius_px * 0.95, radius_px * 0.95, pal["skin"])
    # hair: a cap over the top and back of the head
    back = hc - 0.06 * fwd + 0.04 * (top - hc) / np.linalg.norm(top - hc)
    hair_c = camera.project(back)
    if np.isfinite(hair_c).all():
        r = radius_px * (0.95 if facing < 0 else 0.85)
        center = hair_c if facing < 0.2 else 0.5 * (hair_c + camera.project(hc + 0.045 * (top - hc) / np.linalg.norm(top - hc)))
        _draw_shaded(img, center, center, r, r, pal["hair"])
    if facing > 0.1:  # face details
        up = (top - hc) / np.linalg.norm(top - hc)
        for eye in ("left_eye", "right_eye"):
            e = joints3d[idx(eye)]
            p = camera.project(e)
            brow = camera.project(e + 0.022 * up)
            if np.isfinite(p).all():
                rr = max(1.0, radius_px * 0.09)
                cv2.circle(img, tuple(_pts(p).ravel()), int(rr * _ONE), (245, 245, 245), -1, cv2.LINE_AA, _SHIFT)
                cv2.circle(img, tuple(_pts(p).ravel()), int(rr * 0.6 * _ONE), (40, 30, 30), -1, cv2.LINE_AA, _SHIFT)
            if np.isfinite(brow).all():
                side = np.cross(up, fwd)
                b0 = camera.project(e + 0.022 * up + 0.015 * side)
                b1 = camera.project(e + 0.022 * up - 0.015 * side)
                cv2.line(img, tuple(_pts(b0).ravel()), tuple(_pts(b1).ravel()), tuple(float(c) for c in pal["hair"]),
                         max(1, int(radius_px * 0.05)), cv2.LINE_AA, _SHIFT)
        mouth_c = nose - 0.045 * up - 0.01 * fwd
        side = np.cross(up, fwd)
        m0 = camera.project(mouth_c + 0.022 * side)
        m1 = camera.project(mouth_c - 0.022 * side)
        if np.isfinite(m0).all() and np.isfinite(m1).all():
            cv2.line(img, tuple(_pts(m0).ravel()), tuple(_pts(m1).ravel()), (70, 70, 150),
                     max(1, int(radius_px * 0.07)), cv2.LINE_AA, _SHIFT)
        n2 = camera.project(nose)
        if np.isfinite(n2).all():
            col = tuple(float(c) for c in pal["skin"] * 0.75)
            cv2.circle(img, tuple(_pts(n2).ravel()), int(max(1.0, radius_px * 0.1) * _ONE), col, -1, cv2.LINE_AA, _SHIFT)
