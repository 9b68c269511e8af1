"""Skeleton definitions as data: joint names, bones, left/right pairs.

One definition serves triangulation (which labels to swap), the viewer (which
joints to connect) and the exports (marker names).  Left/right pairs are
derived from the names (``left_x`` <-> ``right_x``), so a new skeleton only
lists joints and bones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
_COCO17_BONES = [
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
]
_HALPE26 = _COCO17 + [
    "head", "neck", "hip", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
]
_HALPE26_BONES = [
    ("head", "nose"), ("nose", "neck"), ("nose", "left_eye"), ("nose", "right_eye"),
    ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("neck", "left_shoulder"), ("neck", "right_shoulder"), ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("neck", "hip"), ("hip", "left_hip"), ("hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_ankle", "left_heel"), ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"),
    ("right_ankle", "right_heel"), ("right_ankle", "right_big_toe"), ("right_big_toe", "right_small_toe"),
]
_MEDIAPIPE33 = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]
_MEDIAPIPE33_BONES = [
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"), ("left_eye_outer", "left_ear"),
    ("nose", "right_eye_inner"), ("right_eye_inner", "right_eye"), ("right_eye", "right_eye_outer"), ("right_eye_outer", "right_ear"),
    ("mouth_left", "mouth_right"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_wrist", "left_pinky"), ("left_wrist", "left_index"), ("left_pinky", "left_index"), ("left_wrist", "left_thumb"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_wrist", "right_pinky"), ("right_wrist", "right_index"), ("right_pinky", "right_index"), ("right_wrist", "right_thumb"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_heel"), ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_heel"), ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
]
# OpenPose BODY_25, in OpenPose's index order (``hip`` = OpenPose's MidHip).
_BODY25 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
]
_BODY25_BONES = [
    ("nose", "neck"), ("neck", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("neck", "hip"), ("hip", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("hip", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("nose", "right_eye"), ("right_eye", "right_ear"), ("nose", "left_eye"), ("left_eye", "left_ear"),
    ("left_ankle", "left_big_toe"), ("left_big_toe", "left_small_toe"), ("left_ankle", "left_heel"),
    ("right_ankle", "right_big_toe"), ("right_big_toe", "right_small_toe"), ("right_ankle", "right_heel"),
]


@dataclass(frozen=True)
class Skeleton:
    """Joint names in array order, bones as index pairs, left/right index pairs."""

    name: str
    joint_names: tuple[str, ...]
    bone_names: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = {j for b in self.bone_names for j in b} - set(self.joint_names)
        if unknown:
            raise ValueError(f"skeleton {self.name}: bones name unknown joints {sorted(unknown)}")

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint: str) -> int:
        return self.joint_names.index(joint)

    @property
    def builtin(self) -> bool:
        """True for a skeleton every rigcap knows by name (the wire then sends no joint list)."""
        return SKELETONS.get(self.name) == self

    @property
    def bones(self) -> np.ndarray:
        """(B, 2) joint indices of each bone."""
        return np.array([[self.index(a), self.index(b)] for a, b in self.bone_names], dtype=np.int64).reshape(-1, 2)

    @property
    def lr_pairs(self) -> np.ndarray:
        """(P, 2) indices (left, right) of joints whose labels a detector can swap."""
        pairs = []
        for i, name in enumerate(self.joint_names):
            mirrored = _mirror(name)
            if mirrored != name and "left" in name and mirrored in self.joint_names:
                pairs.append((i, self.index(mirrored)))
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def swap_permutation(self) -> np.ndarray:
        """Index array that swaps every left joint with its right twin."""
        perm = np.arange(self.n_joints)
        for left, right in self.lr_pairs:
            perm[left], perm[right] = right, left
        return perm


def _mirror(name: str) -> str:
    if "left" in name:
        return name.replace("left", "right")
    if "right" in name:
        return name.replace("right", "left")
    return name


COCO17 = Skeleton("coco17", tuple(_COCO17), tuple(_COCO17_BONES))
HALPE26 = Skeleton("halpe26", tuple(_HALPE26), tuple(_HALPE26_BONES))
MEDIAPIPE33 = Skeleton("mediapipe33", tuple(_MEDIAPIPE33), tuple(_MEDIAPIPE33_BONES))
BODY25 = Skeleton("body25", tuple(_BODY25), tuple(_BODY25_BONES))

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, HALPE26, MEDIAPIPE33, BODY25)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {', '.join(SKELETONS)}") from None


def skeleton_for_joints(joint_names) -> Skeleton:
    """The known skeleton with exactly these joints, else one without bones."""
    names = tuple(str(j) for j in joint_names)
    for skel in SKELETONS.values():
        if skel.joint_names == names:
            return skel
    return Skeleton("custom", names, ())


def skeleton_for_count(n_joints: int) -> Skeleton:
    """The usual skeleton of a detector that outputs ``n_joints`` joints.

    17: COCO-17, 25: OpenPose BODY_25, 26: Halpe-26, 33: MediaPipe-33 (the
    layouts Pose2Sim's OpenPose-style JSON files come in).
    """
    for skel in (COCO17, BODY25, HALPE26, MEDIAPIPE33):
        if skel.n_joints == n_joints:
            return skel
    raise KeyError(f"no known skeleton has {n_joints} joints (known: "
                   f"{', '.join(f'{s.name} ({s.n_joints})' for s in SKELETONS.values())})")


# Joints one skeleton lacks but can derive from another's: the mean of the
# listed joints (first list whose joints all exist).  ``neck`` and ``hip`` are
# the shoulder and hip midpoints, as in BODY_25 and Halpe-26.  Halpe's
# ``head`` (top of the head) has no counterpart: the ear midpoint stands in,
# about 10 cm low.
DERIVED_JOINTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "neck": (("left_shoulder", "right_shoulder"),),
    "hip": (("left_hip", "right_hip"),),
    "head": (("left_ear", "right_ear"),),
    "left_big_toe": (("left_foot_index",),),
    "right_big_toe": (("right_foot_index",),),
}


@dataclass(frozen=True, eq=False)
class JointMapping:
    """How to build ``target``'s joints from ``source``'s (see :func:`joint_mapping`)."""

    source: Skeleton
    target: Skeleton
    weights: np.ndarray  # (J_target, J_source): each row averages its source joints; all-zero = no source

    @property
    def missing(self) -> list[str]:
        """Target joints with no source: NaN after :meth:`apply`."""
        return [n for n, row in zip(self.target.joint_names, self.weights) if not row.any()]

    def apply(self, values: np.ndarray, confidence_last: bool = False) -> np.ndarray:
        """values (..., J_source, D) -> (..., J_target, D).

        A derived joint is the mean of its sources and NaN if any source is
        NaN.  With ``confidence_last`` (2D keypoints ``x, y, confidence``) the
        last column takes the smallest source confidence instead of the mean.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-2] != self.source.n_joints:
            raise ValueError(f"values have {values.shape[-2]} joints; {self.source.name} has {self.source.n_joints}")
        used = self.weights > 0
        out = np.einsum("ts,...sd->...td", self.weights, np.nan_to_num(values))
        bad = np.einsum("ts,...s->...t", used.astype(float), (~np.isfinite(values)).any(-1).astype(float)) > 0
        out[..., ~used.any(axis=1), :] = np.nan
        out[bad] = np.nan
        if confidence_last:
            conf = np.where(used, values[..., None, :, -1], np.inf).min(axis=-1)
            out[..., -1] = np.where(np.isfinite(out[..., -1]), conf, np.nan)
        return out


def joint_mapping(source: Skeleton, target: Skeleton) -> JointMapping:
    """Map ``source`` joints onto ``target`` by name, deriving what is missing (:data:`DERIVED_JOINTS`).

    E.g. ``joint_mapping(MEDIAPIPE33, HALPE26).apply(kp)`` turns the default
    detector's 33 joints into the synthetic studio's 26 (small toes stay NaN).
    """
    weights = np.zeros((target.n_joints, source.n_joints))
    for t, name in enumerate(target.joint_names):
        if name in source.joint_names:
            weights[t, source.index(name)] = 1.0
            continue
        for sources in DERIVED_JOINTS.get(name, ()):
            if all(s in source.joint_names for s in sources):
                for s in sources:
                    weights[t, source.index(s)] = 1.0 / len(sources)
                break
    return JointMapping(source, target, weights)
