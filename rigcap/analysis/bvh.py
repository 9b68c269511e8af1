"""BVH export of the skeleton: what Blender, MotionBuilder and game engines import.

The hierarchy (Mixamo-style names, so retargeting tools recognise the bones)::

    Hips (root: position + rotation)        hip midpoint
      Spine (at the hips) -> Neck -> Head   trunk line, then neck -> top of the head
        LeftArm -> LeftForeArm -> LeftHand      shoulder, elbow, wrist (under the Spine, which
        RightArm -> RightForeArm -> RightHand   carries the chest's orientation)
      LeftUpLeg -> LeftLeg -> LeftFoot -> LeftToeBase     hip joint, knee, ankle, big toe
      RightUpLeg -> ...

* **Offsets** are the median bone lengths over the recording (a person's bones do not change
  length; the median ignores frames a joint was badly placed), laid out in a standing rest pose:
  Y up, facing +Z, the person's left on +X, arms hanging down.  Units: centimetres (most BVH
  tools expect them), or metres.
* **Rotations** per frame, ``Zrotation Xrotation Yrotation`` (degrees, R = Rz Rx Ry, each
  joint's rotation relative to its parent): joints with two observed directions (the hips: hip
  line and trunk; the chest: shoulder line and trunk; the head: ear line and neck -> head) get
  their full orientation; a limb segment gets the smallest rotation that turns its rest
  direction onto the observed bone (twist about a bone is not observable from joint centres).
  Forward kinematics of the file then puts every joint where it was seen, up to the difference
  between that frame's bone length and the median.
* World: the rig's vertical becomes +Y; frames where a joint was not seen are filled by linear
  interpolation over time (held at the ends); a joint never seen keeps its rest pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from rigcap.analysis.angles import estimate_up, to_halpe26
from triangulate.skeletons import HALPE26

_J = {n: i for i, n in enumerate(HALPE26.joint_names)}

# (bvh name, parent, joint point, child point that its bone points at, rest direction of that bone)
# Points are Halpe-26 names or "hip_mid" / "neck_mid" / "ear_mid".
_BONES = [
    ("Hips", None, "hip_mid", None, None),
    ("Spine", "Hips", "hip_mid", "neck_mid", (0, 1, 0)),
    ("Neck", "Spine", "neck_mid", "head", (0, 1, 0)),
    ("Head", "Neck", "head", None, None),
    ("LeftArm", "Spine", "left_shoulder", "left_elbow", (0, -1, 0)),
    ("LeftForeArm", "LeftArm", "left_elbow", "left_wrist", (0, -1, 0)),
    ("LeftHand", "LeftForeArm", "left_wrist", None, None),
    ("RightArm", "Spine", "right_shoulder", "right_elbow", (0, -1, 0)),
    ("RightForeArm", "RightArm", "right_elbow", "right_wrist", (0, -1, 0)),
    ("RightHand", "RightForeArm", "right_wrist", None, None),
    ("LeftUpLeg", "Hips", "left_hip", "left_knee", (0, -1, 0)),
    ("LeftLeg", "LeftUpLeg", "left_knee", "left_ankle", (0, -1, 0)),
    ("LeftFoot", "LeftLeg", "left_ankle", "left_big_toe", (0, -0.35, 1)),
    ("LeftToeBase", "LeftFoot", "left_big_toe", None, None),
    ("RightUpLeg", "Hips", "right_hip", "right_knee", (0, -1, 0)),
    ("RightLeg", "RightUpLeg", "right_knee", "right_ankle", (0, -1, 0)),
    ("RightFoot", "RightLeg", "right_ankle", "right_big_toe", (0, -0.35, 1)),
    ("RightToeBase", "RightFoot", "right_big_toe", None, None),
]
BVH_JOINTS = tuple(b[0] for b in _BONES)
# Rest-pose sideways placement (fraction of the measured width) of joints off the body's midline.
_LATERAL = {"left_shoulder": 1, "right_shoulder": -1, "left_hip": 1, "right_hip": -1}


@dataclass
class SkeletonMotion:
    """A fitted skeleton: ``offsets`` (B, 3) of each joint from its parent in the rest pose
    (BVH units), ``end_sites`` {joint: (3,)} offsets of the leaf bones' tips, ``root_position``
    (F, 3), ``local_rotations`` (F, B, 3, 3) each joint relative to its parent, ``points``
    (F, B, 3) where the joints were seen (BVH world and units), ``fps``, ``units``."""

    offsets: np.ndarray
    end_sites: dict
    root_position: np.ndarray
    local_rotations: np.ndarray
    points: np.ndarray
    fps: float
    units: str

    @property
    def n_frames(self) -> int:
        return self.root_position.shape[0]


def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-12, n, np.nan)


def _frame_from(x_dir, y_dir, exact: str = "y"):
    """(F, 3, 3) rotations whose X column is along x_dir and Y column along y_dir, the one named
    by ``exact`` kept as it is and the other made perpendicular; Z = X x Y."""
    if exact == "y":
        y = _unit(y_dir)
        x = _unit(x_dir - (x_dir * y).sum(-1, keepdims=True) * y)
    else:
        x = _unit(x_dir)
        y = _unit(y_dir - (y_dir * x).sum(-1, keepdims=True) * x)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _min_rotation(a, b):
    """(F, 3, 3) the smallest rotation turning unit vectors a onto b (each (F, 3))."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = np.clip((a * b).sum(-1), -1.0, 1.0)
    angle = np.arctan2(s, c)
    # antiparallel: any axis perpendicular to a
    fallback = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    axis = np.where((s < 1e-9)[..., None] & (c < 0)[..., None], _unit(fallback), _unit(np.where(s[..., None] > 1e-12, axis, [[1.0, 0, 0]])))
    return Rotation.from_rotvec(axis * angle[..., None]).as_matrix()


def _fill_time(p: np.ndarray) -> np.ndarray:
    """(F, K, 3): NaN frames filled by linear interpolation per joint (held at the ends)."""
    out = p.copy()
    f = np.arange(p.shape[0])
    ok = np.isfinite(p).all(-1)  # (F, K)
    for k in np.flatnonzero(ok.any(0) & ~ok.all(0)):  # one loop per joint with gaps, vectorised over frames
        for d in range(3):
            out[:, k, d] = np.interp(f, f[ok[:, k]], p[ok[:, k], k, d])
    return out


def to_bvh_world(up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking rig-world vectors to BVH world (``up`` -> +Y)."""
    up = _unit(np.asarray(up, float))
    k = int(np.argmin(np.abs(up)))
    e = np.zeros(3)
    e[k] = 1.0
    a = _unit(e - (e @ up) * up)
    return np.stack([a, up, np.cross(a, up)])


def skeleton_motion(points: np.ndarray, joint_names, fps: float, up: np.ndarray | None = None,
                    units: str = "cm") -> SkeletonMotion:
    """Fit the BVH skeleton to one person's joints (F, J, 3) metres, any skeleton rigcap reads."""
    if units not in ("cm", "m"):
        raise ValueError(f"units must be 'cm' or 'm', got {units!r}")
    c = to_halpe26(np.asarray(points, float), joint_names)
    up = estimate_up(c) if up is None else np.asarray(up, float)
    scale = 100.0 if units == "cm" else 1.0
    c = np.einsum("ij,fkj->fki", to_bvh_world(up), c) * scale
    c = np.concatenate([c, 0.5 * (c[:, [_J["left_hip"]]] + c[:, [_J["right_hip"]]]),
                        0.5 * (c[:, [_J["left_shoulder"]]] + c[:, [_J["right_shoulder"]]]),
                        0.5 * (c[:, [_J["left_ear"]]] + c[:, [_J["right_ear"]]])], axis=1)
    names = {**_J, "hip_mid": 26, "neck_mid": 27, "ear_mid": 28}
    head = np.where(np.isfinite(c[:, [_J["head"]]]).all(-1, keepdims=True), c[:, [_J["head"]]], c[:, [28]])
    c[:, _J["head"]] = head[:, 0]
    c = _fill_time(c)
    # points of each BVH joint (F, B, 3)
    pts = np.stack([c[:, names[b[2]]] for b in _BONES], axis=1)
    idx = {b[0]: i for i, b in enumerate(_BONES)}
    B = len(_BONES)

    with np.errstate(invalid="ignore"):
        def median_len(a, b):
            v = np.linalg.norm(c[:, names[a]] - c[:, names[b]], axis=-1)
            return float(np.nanmedian(v)) if np.isfinite(v).any() else 0.0

        # ---- rest pose offsets
        hip_half = 0.5 * median_len("left_hip", "right_hip")
        sh_half = 0.5 * median_len("left_shoulder", "right_shoulder")
        offsets = np.zeros((B, 3))
        for i, (name, parent, point, child, rest_dir) in enumerate(_BONES):
            if parent is None:
                continue
            p_point = _BONES[idx[parent]][2]
            if point in _LATERAL:  # shoulders from the Spine joint (at the hips), hip joints from the Hips
                if "shoulder" in point:
                    offsets[i] = (_LATERAL[point] * sh_half, median_len("hip_mid", "neck_mid"), 0)
                else:
                    offsets[i] = (_LATERAL[point] * hip_half, 0, 0)
            elif point == p_point:
                offsets[i] = 0.0
            else:
                offsets[i] = median_len(p_point, point) * _unit(np.asarray(_BONES[idx[parent]][4], float))
        end_sites = {}
        for name, _, point, child, rest_dir in _BONES:
            if child is None and name == "Head":
                end_sites[name] = np.array([0.0, median_len("head", "ear_mid") or 0.1 * scale, 0.0])
            elif child is None:
                end_sites[name] = np.array([0.0, -0.08 * scale, 0.0]) if "Hand" in name else np.array([0, 0, 0.05 * scale])

        # ---- global orientations per frame
        F = c.shape[0]
        glob = np.broadcast_to(np.eye(3), (F, B, 3, 3)).copy()

        def frame_or_parent(x_dir, y_dir, parent_g, exact="y"):
            g = _frame_from(x_dir, y_dir, exact)
            return np.where(np.isfinite(g).all((-1, -2))[:, None, None], g, parent_g)

        P = lambda n: c[:, names[n]]  # noqa: E731
        # hips: the hip line exact (it places both hip joints); chest and head: their long axis exact
        glob[:, idx["Hips"]] = frame_or_parent(P("left_hip") - P("right_hip"), P("neck_mid") - P("hip_mid"),
                                               np.eye(3), exact="x")
        glob[:, idx["Spine"]] = frame_or_parent(P("left_shoulder") - P("right_shoulder"),
                                                P("neck_mid") - P("hip_mid"), glob[:, idx["Hips"]])
        glob[:, idx["Neck"]] = frame_or_parent(P("left_ear") - P("right_ear"), P("head") - P("neck_mid"),
                                               glob[:, idx["Spine"]])
        glob[:, idx["Head"]] = glob[:, idx["Neck"]]
        for i, (name, parent, point, child, rest_dir) in enumerate(_BONES):
            if name in ("Hips", "Spine", "Neck", "Head"):
                continue
            pg = glob[:, idx[parent]]
            if child is None:
                glob[:, i] = pg
                continue
            rest_world = np.einsum("fij,j->fi", pg, _unit(np.asarray(rest_dir, float)))
            swing = _min_rotation(rest_world, P(child) - P(point))
            g = swing @ pg
            glob[:, i] = np.where(np.isfinite(g).all((-1, -2))[:, None, None], g, pg)

        local = glob.copy()
        for i, (_, parent, *_rest) in enumerate(_BONES):
            if parent is not None:
                local[:, i] = np.swapaxes(glob[:, idx[parent]], -1, -2) @ glob[:, i]
    root = pts[:, 0]
    root = np.where(np.isfinite(root), root, 0.0)
    return SkeletonMotion(offsets, end_sites, root, local, pts, float(fps), units)


def forward_kinematics(motion: SkeletonMotion) -> np.ndarray:
    """(F, B, 3) joint positions the BVH file describes (what an importer will show)."""
    idx = {b[0]: i for i, b in enumerate(_BONES)}
    F, B = motion.n_frames, len(_BONES)
    glob = np.zeros((F, B, 3, 3))
    pos = np.zeros((F, B, 3))
    for i, (name, parent, *_r) in enumerate(_BONES):
        if parent is None:
            glob[:, i] = motion.local_rotations[:, i]
            pos[:, i] = motion.root_position
        else:
            p = idx[parent]
            glob[:, i] = glob[:, p] @ motion.local_rotations[:, i]
            pos[:, i] = pos[:, p] + np.einsum("fij,j->fi", glob[:, p], motion.offsets[i])
    return pos


def write_bvh(path: str | Path, motion: SkeletonMotion) -> Path:
    """Write the BVH text file (HIERARCHY + MOTION)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    children: dict[str | None, list[int]] = {}
    for i, b in enumerate(_BONES):
        children.setdefault(b[1], []).append(i)
    lines = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        name = _BONES[i][0]
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v:.6f}' for v in motion.offsets[i])}")
        if depth == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        for k in children.get(name, []):
            emit(k, depth + 1)
        if name in motion.end_sites:
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {' '.join(f'{v:.6f}' for v in motion.end_sites[name])}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    # channel order of the MOTION rows is the depth-first order of the hierarchy
    order: list[int] = []

    def walk(i: int) -> None:
        order.append(i)
        for k in children.get(_BONES[i][0], []):
            walk(k)

    walk(0)
    F = motion.n_frames
    euler = Rotation.from_matrix(motion.local_rotations[:, order].reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)
    rows = np.concatenate([motion.root_position, euler.reshape(F, -1)], axis=1)
    lines += ["MOTION", f"Frames: {F}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    body = "\n".join(" ".join(f"{v:.5f}" for v in row) for row in rows)
    path.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
    return path
