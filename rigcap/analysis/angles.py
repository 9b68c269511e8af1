"""Joint angles from 3D joints: the definitions, in one place, and their vectorised computation.

Every angle is in degrees, computed for all frames (and persons) at once from joint
positions alone.  Any skeleton rigcap reads works: its joints are first mapped by name onto
Halpe-26 (:func:`triangulate.skeletons.joint_mapping`), so COCO-17, Halpe-26, MediaPipe-33
(``foot_index`` stands in for the big toe) and BODY-25 all give the same angles; an angle
whose joints a skeleton lacks (COCO-17 has no heel or toe, so no ankle angle) is NaN, and so
is every angle in a frame where one of its joints is missing.

Body frames (built per frame, ISB axis names: X forward, Y up, Z to the right)
    *pelvis-trunk frame* (hips): Z = left hip -> right hip; Y = the trunk line (hip midpoint ->
    shoulder midpoint) made perpendicular to Z; X = Y x Z.  Two hip joints do not show the
    pelvis' tilt (ISB builds the pelvis from ASIS/PSIS markers), so the trunk line stands in
    for its long axis: hip flexion is the thigh against the trunk, which is also what a coach
    reads as "hip angle".
    *thorax frame* (shoulders): Z = left shoulder -> right shoulder; Y = the trunk line made
    perpendicular to Z; X = Y x Z.
    *heading frame* (whole-body angles): ``up`` = the world's vertical (given, or estimated
    from the body: see :func:`estimate_up`); right = the hip line made horizontal; forward =
    up x right.  The frontal plane is spanned by up and right, the sagittal plane by up and
    forward.

Conventions of each angle are in :data:`DEFINITIONS` (the table ``angle_definitions.toml``,
printed by ``rigcap angles --list``); left and right angles share one sign convention
(abduction, valgus and dorsiflexion are positive on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triangulate.skeletons import HALPE26, joint_mapping, skeleton_for_joints


@dataclass(frozen=True)
class AngleDefinition:
    """One angle's meaning: what it measures, from which joints, its zero and positive sense."""

    name: str  # e.g. "knee_flexion" (with a side: "knee_flexion_left")
    joints: tuple[str, ...]  # Halpe-26 names, per side with {side}
    zero: str
    positive: str
    plane: str
    isb: str = ""
    sided: bool = True


DEFINITIONS_FILE = "angle_definitions.toml"  # beside this module: one [[angle]] table per angle, in output order


def _load_definitions() -> tuple[AngleDefinition, ...]:
    """The definitions are data (name, joints, zero, positive sense, plane, ISB name), so they are a
    table, not code: ``angle_definitions.toml``; :func:`_compute` holds the computation."""
    import tomllib
    from importlib.resources import files

    rows = tomllib.loads(files(__package__).joinpath(DEFINITIONS_FILE).read_text(encoding="utf-8"))["angle"]
    return tuple(AngleDefinition(**{**row, "joints": tuple(row["joints"])}) for row in rows)


DEFINITIONS: tuple[AngleDefinition, ...] = _load_definitions()

SIDES = ("left", "right")


def _expand(defs) -> list[tuple[str, AngleDefinition, str | None]]:
    out = []
    for d in defs:
        for side in (SIDES if d.sided else (None,)):
            out.append((f"{d.name}_{side}" if side else d.name, d, side))
    return out


_ALL = _expand(DEFINITIONS)
ANGLE_NAMES: tuple[str, ...] = tuple(n for n, _, _ in _ALL)
_J = {n: i for i, n in enumerate(HALPE26.joint_names)}
_END_ON = 0.3  # projections shorter than this fraction of the segment: the angle is undefined there
_MIN_ELEVATION_FOR_PLANE = 20.0


def definition(name: str) -> AngleDefinition:
    """The definition of ``name`` (with or without its ``_left``/``_right``)."""
    for full, d, _ in _ALL:
        if name in (full, d.name):
            return d
    raise KeyError(f"unknown angle {name!r}; known: {', '.join(ANGLE_NAMES)}")


def joints_needed(name: str) -> tuple[str, ...]:
    for full, d, side in _ALL:
        if full == name:
            return tuple(j.format(side=side) for j in d.joints)
    raise KeyError(f"unknown angle {name!r}; known: {', '.join(ANGLE_NAMES)}")


@dataclass
class JointAngles:
    """Angles in degrees, ``values`` (..., A) with the leading axes of the points (frames, or
    persons x frames); ``names`` (A,) in :data:`ANGLE_NAMES` order; ``up`` the vertical used."""

    values: np.ndarray
    names: tuple[str, ...]
    up: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[..., self.names.index(name)]
        except ValueError:
            raise KeyError(f"unknown angle {name!r}; known: {', '.join(self.names)}") from None

    def as_dict(self) -> dict[str, np.ndarray]:
        return {n: self.values[..., i] for i, n in enumerate(self.names)}


# ------------------------------------------------------------------ vector helpers (all (..., 3))
def _dot(a, b):
    return np.einsum("...i,...i->...", a, b)


def _norm(a):
    return np.sqrt(_dot(a, a))


def _unit(a):
    n = _norm(a)[..., None]
    return a / np.where(n > 1e-12, n, np.nan)


def _reject(a, axis_unit):
    """``a`` without its component along the unit vector ``axis_unit``."""
    return a - _dot(a, axis_unit)[..., None] * axis_unit


def _angle_between(a, b):
    """Unsigned 3D angle between vectors, degrees."""
    return np.degrees(np.arccos(np.clip(_dot(_unit(a), _unit(b)), -1.0, 1.0)))


def _unwrap_nan(deg: np.ndarray) -> np.ndarray:
    """np.unwrap along the last (frames) axis, stepping over NaN frames."""
    if deg.ndim == 0 or deg.shape[-1] == 0:
        return deg
    finite = np.isfinite(deg)
    idx = np.where(finite, np.arange(deg.shape[-1]), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(deg, idx, axis=-1)
    filled = np.where(np.isfinite(filled), filled, 0.0)
    return np.where(finite, np.degrees(np.unwrap(np.radians(filled), axis=-1)), np.nan)


# ------------------------------------------------------------------ vertical
_AXES = {"x": 0, "y": 1, "z": 2}


def parse_up(text: str) -> np.ndarray | None:
    """'auto' -> None; 'z', '+y', '-y' ... -> the unit vector."""
    t = text.strip().lower()
    if t == "auto":
        return None
    sign = -1.0 if t.startswith("-") else 1.0
    axis = t.lstrip("+-")
    if axis not in _AXES:
        raise ValueError(f"up must be auto, x, y, z, -x, -y or -z, got {text!r}")
    v = np.zeros(3)
    v[_AXES[axis]] = sign
    return v


def estimate_up(canonical: np.ndarray, snap_deg: float = 25.0) -> np.ndarray:
    """The world vertical from the body: the median direction from the ankles' midpoint to the
    shoulders' midpoint over all frames (a person mostly stands), snapped to a world axis
    when within ``snap_deg`` of one (a rig calibrated with its floor has an exact axis up).
    ``canonical``: (..., 26, 3) Halpe-26 joints.  Falls back to +Z when nothing is visible."""
    c = canonical
    top = 0.5 * (c[..., _J["left_shoulder"], :] + c[..., _J["right_shoulder"], :])
    bottom = 0.5 * (c[..., _J["left_ankle"], :] + c[..., _J["right_ankle"], :])
    hips = 0.5 * (c[..., _J["left_hip"], :] + c[..., _J["right_hip"], :])
    bottom = np.where(np.isfinite(bottom), bottom, hips)
    v = _unit(top - bottom).reshape(-1, 3)
    v = v[np.isfinite(v).all(-1)]
    if len(v) == 0:
        return np.array([0.0, 0.0, 1.0])
    up = _unit(np.median(v, axis=0))
    if not np.isfinite(up).all():
        return np.array([0.0, 0.0, 1.0])
    k = int(np.argmax(np.abs(up)))
    if np.degrees(np.arccos(min(1.0, abs(up[k])))) <= snap_deg:
        up = np.zeros(3)
        up[k] = np.sign(_unit(np.median(v, axis=0))[k])
    return up


# ------------------------------------------------------------------ the angles
def to_halpe26(points: np.ndarray, joint_names) -> np.ndarray:
    """(..., J, 3) joints of any skeleton -> (..., 26, 3) Halpe-26 by name (NaN where absent)."""
    return joint_mapping(skeleton_for_joints(joint_names), HALPE26).apply(points)


def joint_angles(points: np.ndarray, joint_names, up: np.ndarray | None = None) -> JointAngles:
    """All angles of :data:`ANGLE_NAMES` for ``points`` (..., J, 3) metres (any leading axes).

    ``up``: the world's vertical (unit 3-vector), or None to estimate it from the body.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., joints, 3), got {points.shape}")
    c = to_halpe26(points, joint_names)
    up = estimate_up(c) if up is None else _unit(np.asarray(up, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = _compute(c, up)
    return JointAngles(np.stack([values[n] for n in ANGLE_NAMES], axis=-1), ANGLE_NAMES, up)


def _frame(z_axis, y_hint):
    """Right-handed frame (X, Y, Z) with Z = unit(z_axis), Y = y_hint made perpendicular."""
    z = _unit(z_axis)
    y = _unit(_reject(y_hint, z))
    return np.cross(y, z), y, z


def _compute(c: np.ndarray, up: np.ndarray) -> dict[str, np.ndarray]:
    def j(name):
        return c[..., _J[name], :]

    hip_mid = 0.5 * (j("left_hip") + j("right_hip"))
    sh_mid = 0.5 * (j("left_shoulder") + j("right_shoulder"))
    trunk = sh_mid - hip_mid
    hip_line = j("right_hip") - j("left_hip")
    px, py, pz = _frame(hip_line, trunk)  # pelvis-trunk frame
    tx, ty, tz = _frame(j("right_shoulder") - j("left_shoulder"), trunk)  # thorax frame
    e1 = _world_horizontal(up)  # zero of the heading
    e2 = np.cross(up, e1)
    up = np.broadcast_to(up, hip_line.shape)
    right_h = _unit(_reject(hip_line, up))
    fwd_h = np.cross(up, right_h)

    out: dict[str, np.ndarray] = {}
    for side, outward in (("left", -1.0), ("right", 1.0)):
        hip, knee, ankle = j(f"{side}_hip"), j(f"{side}_knee"), j(f"{side}_ankle")
        thigh, shank = knee - hip, ankle - knee
        out[f"hip_flexion_{side}"] = np.degrees(np.arctan2(_dot(thigh, px), -_dot(thigh, py)))
        out[f"hip_abduction_{side}"] = np.degrees(np.arcsin(np.clip(outward * _dot(_unit(thigh), pz), -1, 1)))
        flex = _angle_between(thigh, shank)
        sign = np.sign(_dot(np.cross(thigh, shank), -pz))
        out[f"knee_flexion_{side}"] = np.where(sign < 0, -flex, flex)
        # frontal-plane projection angle, in the leg's own frontal plane: through the hip-ankle
        # line and the mediolateral axis (the body's frontal plane when standing; in a deep squat
        # the thigh points forward and the body's frontal plane sees it end-on)
        leg = _unit(hip - ankle)
        ml = _unit(_reject(right_h, leg))
        th2 = np.stack([_dot(thigh, ml), _dot(thigh, leg)], -1)
        sh2 = np.stack([_dot(shank, ml), _dot(shank, leg)], -1)
        cross2 = th2[..., 0] * sh2[..., 1] - th2[..., 1] * sh2[..., 0]
        dot2 = (th2 * sh2).sum(-1)
        fppa = np.degrees(np.arctan2(cross2, dot2)) * (outward)  # left: medial is +right -> valgus = -angle
        seen = (_norm(th2) >= _END_ON * _norm(thigh)) & (_norm(sh2) >= _END_ON * _norm(shank))
        out[f"knee_valgus_{side}"] = np.where(seen, fppa, np.nan)
        sole = j(f"{side}_big_toe") - j(f"{side}_heel")
        out[f"ankle_dorsiflexion_{side}"] = 90.0 - _angle_between(knee - ankle, sole)

        shoulder, elbow, wrist = j(f"{side}_shoulder"), j(f"{side}_elbow"), j(f"{side}_wrist")
        arm = elbow - shoulder
        ax, ay, ao = _dot(arm, tx), _dot(arm, ty), outward * _dot(arm, tz)
        length = _norm(arm)
        sag, fro = np.hypot(ax, ay), np.hypot(ao, ay)
        out[f"shoulder_flexion_{side}"] = np.where(sag >= _END_ON * length, _arm_range(np.arctan2(ax, -ay)), np.nan)
        out[f"shoulder_abduction_{side}"] = np.where(fro >= _END_ON * length, _arm_range(np.arctan2(ao, -ay)), np.nan)
        elevation = np.degrees(np.arccos(np.clip(-ay / np.where(length > 0, length, np.nan), -1, 1)))
        out[f"shoulder_elevation_{side}"] = elevation
        out[f"shoulder_elevation_plane_{side}"] = np.where(
            elevation >= _MIN_ELEVATION_FOR_PLANE, np.degrees(np.arctan2(ax, ao)), np.nan)
        out[f"elbow_flexion_{side}"] = _angle_between(arm, wrist - elbow)

    out["trunk_lean_forward"] = np.degrees(np.arctan2(_dot(trunk, fwd_h), _dot(trunk, up)))
    out["trunk_lean_sideways"] = np.degrees(np.arctan2(_dot(trunk, right_h), _dot(trunk, up)))
    out["pelvis_rotation"] = _unwrap_nan(np.degrees(np.arctan2(_dot(fwd_h, e2), _dot(fwd_h, e1))))
    sh_h = _unit(_reject(j("right_shoulder") - j("left_shoulder"), up))
    out["trunk_rotation"] = np.degrees(np.arctan2(_dot(np.cross(right_h, sh_h), up), _dot(right_h, sh_h)))
    return out


def _arm_range(rad: np.ndarray) -> np.ndarray:
    """Radians -> degrees in [-90, 270): overhead (180) is a common value and must not wrap."""
    return (np.degrees(rad) + 90.0) % 360.0 - 90.0


def _world_horizontal(up: np.ndarray) -> np.ndarray:
    """The world axis most perpendicular to ``up``, made horizontal: the zero of headings."""
    k = int(np.argmin(np.abs(up)))
    e = np.zeros(3)
    e[k] = 1.0
    return _unit(_reject(e, up))
