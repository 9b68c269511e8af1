"""The person's body volume as capsules: used for occlusion (which joints a camera cannot
see) and, with the same geometry, for drawing the person, so the two agree."""

from __future__ import annotations

import numpy as np

from triangulate.skeletons import HALPE26

_I = {n: i for i, n in enumerate(HALPE26.joint_names)}

#: (name, endpoint A, endpoint B, radius m, cloth) -- endpoints are joint names or
#: derived points computed in :func:`capsule_endpoints`.
CAPSULES = [
    ("torso", "torso_low", "torso_high", 0.125, "shirt"),
    ("flank_l", "left_hip", "left_shoulder", 0.07, "shirt"),
    ("flank_r", "right_hip", "right_shoulder", 0.07, "shirt"),
    ("pelvis", "left_hip", "right_hip", 0.105, "trousers"),
    ("neck", "neck", "head_center", 0.05, "skin"),
    ("head", "head_center", "head_center", 0.105, "skin"),
    ("upperarm_l", "left_shoulder", "left_elbow", 0.05, "shirt"),
    ("upperarm_r", "right_shoulder", "right_elbow", 0.05, "shirt"),
    ("forearm_l", "left_elbow", "left_wrist", 0.04, "skin"),
    ("forearm_r", "right_elbow", "right_wrist", 0.04, "skin"),
    ("hand_l", "left_wrist", "left_hand", 0.04, "skin"),
    ("hand_r", "right_wrist", "right_hand", 0.04, "skin"),
    ("thigh_l", "left_hip", "left_knee", 0.075, "trousers"),
    ("thigh_r", "right_hip", "right_knee", 0.075, "trousers"),
    ("shank_l", "left_knee", "left_ankle", 0.055, "trousers"),
    ("shank_r", "right_knee", "right_ankle", 0.055, "trousers"),
    ("foot_l", "left_heel", "left_big_toe", 0.04, "shoe"),
    ("foot_r", "right_heel", "right_big_toe", 0.04, "shoe"),
]
RADII = np.array([c[3] for c in CAPSULES])


def derived_points(joints: np.ndarray) -> dict:
    """Points the capsules need beyond the joints (each (..., 3))."""
    j = joints
    ears = 0.5 * (j[..., _I["left_ear"], :] + j[..., _I["right_ear"], :])
    head_center = ears + 0.35 * (j[..., _I["head"], :] - ears) + 0.25 * (j[..., _I["nose"], :] - ears)
    neck, hip = j[..., _I["neck"], :], j[..., _I["hip"], :]
    out = {
        "head_center": head_center,
        "torso_low": hip + 0.15 * (neck - hip),
        "torso_high": hip + 0.8 * (neck - hip),
    }
    for side in ("left", "right"):
        wrist, elbow = j[..., _I[f"{side}_wrist"], :], j[..., _I[f"{side}_elbow"], :]
        d = wrist - elbow
        out[f"{side}_hand"] = wrist + 0.35 * d  # about 9 cm of hand beyond the wrist
    return out


def capsule_endpoints(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Capsule axis endpoints A, B, each (..., K, 3), for joints (..., 26, 3)."""
    extra = derived_points(joints)

    def point(name):
        return extra[name] if name in extra else joints[..., _I[name], :]

    a = np.stack([point(c[1]) for c in CAPSULES], axis=-2)
    b = np.stack([point(c[2]) for c in CAPSULES], axis=-2)
    return a, b


def _segment_segment_distance(p0, p1, q0, q1):
    """Distance and the parameters (s on p, t on q) of the closest points of segments
    p0-p1 and q0-q1; all arrays broadcast over leading axes (..., 3)."""
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = (d1 * d1).sum(-1)
    e = (d2 * d2).sum(-1)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = a * e - b * b
    eps = 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > eps, np.clip((b * f - c * e) / np.where(denom > eps, denom, 1), 0, 1), 0.0)
        t = np.where(e > eps, (b * s + f) / np.where(e > eps, e, 1), 0.0)
        t_c = np.clip(t, 0, 1)
        s = np.where(t != t_c, np.clip((b * t_c - c) / np.where(a > eps, a, 1), 0, 1), s)
    t = t_c
    diff = (p0 + d1 * s[..., None]) - (q0 + d2 * t[..., None])
    return np.linalg.norm(diff, axis=-1), s, t


def occluded_joints(camera_center: np.ndarray, joints: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """(F, J) True where the line of sight from the camera to a joint passes through a
    body capsule that does not contain the joint itself, before reaching the joint
    (``margin`` metres short of it).  joints: (F, J, 3)."""
    joints = np.asarray(joints, float)
    a, b = capsule_endpoints(joints)  # (F, K, 3)
    cam = np.asarray(camera_center, float)
    ray = joints - cam  # (F, J, 3)
    length = np.linalg.norm(ray, axis=-1, keepdims=True)
    end = cam + ray * np.clip((length - margin) / length, 0, 1)
    p0 = np.broadcast_to(cam, end.shape)[:, :, None, :]
    p1 = end[:, :, None, :]
    dist, _, _ = _segment_segment_distance(p0, p1, a[:, None], b[:, None])  # (F, J, K)
    # the joint's own capsules (it sits inside them) never hide it
    own, _, _ = _segment_segment_distance(joints[:, :, None, :], joints[:, :, None, :], a[:, None], b[:, None])
    blocks = (dist < RADII) & (own > RADII * 1.05)
    return blocks.any(-1)


_FACE = [_I[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]


def facing_away(camera_center: np.ndarray, joints: np.ndarray, threshold: float = -0.1) -> np.ndarray:
    """(F, J) True for face points (nose, eyes, ears) on the far side of the head."""
    joints = np.asarray(joints, float)
    out = np.zeros(joints.shape[:2], bool)
    hc = derived_points(joints)["head_center"][:, None, :]
    pts = joints[:, _FACE]
    out_dir = pts - hc
    to_cam = np.asarray(camera_center, float) - pts
    cos = (out_dir * to_cam).sum(-1) / (np.linalg.norm(out_dir, axis=-1) * np.linalg.norm(to_cam, axis=-1) + 1e-12)
    out[:, _FACE] = cos < threshold
    return out


def hidden_joints(camera_center: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(F, J) joints this camera cannot see: behind another body part, or a face point
    on the far side of the head.  The inferred centre joints (``hip``, ``neck``,
    ``head``) count as always visible: detectors place them from the whole body."""
    out = occluded_joints(camera_center, joints) | facing_away(camera_center, joints)
    out[:, _VIRTUAL] = False
    return out


_VIRTUAL = [_I[n] for n in ("hip", "neck", "head")]
