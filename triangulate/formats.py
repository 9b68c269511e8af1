"""The two array files every stage reads and writes (documented in README).

2D keypoints ``.npz``
    ``keypoints`` float32 (cameras, frames, joints, 3) = x px, y px, confidence;
    NaN where missing.  ``camera_names`` (cameras,), ``joint_names`` (joints,);
    optional ``timestamps_ns`` int64 (cameras, frames), optional ``fps``;
    after ``rigcap sync``: ``time_offsets_s``, ``sync_confidence`` and
    ``clock_drift`` float64 (cameras,) (kept in ``Keypoints2D.extra``).
    Multi-person form: ``keypoints`` (cameras, frames, persons, joints, 3),
    NaN-padded; the person index is the detector's order in that camera-frame,
    not an identity (association finds who is who).

3D points ``.npz``
    ``points`` float64 (frames, joints, 3) metres, NaN where not triangulated;
    ``joint_names``; ``reprojection_error`` float64 (frames, joints) px;
    ``n_views`` int (frames, joints); optional ``timestamps_ns`` (frames,),
    optional ``fps``.  Multi-person form: ``points`` (persons, frames, joints,
    3), NaN where a person is not seen, ``person_ids`` int (persons,) (stable
    track identities), ``reprojection_error`` and ``n_views`` (persons,
    frames, joints).

Loading validates shapes and names and raises :class:`InputFileError`
naming the file and the problem.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rigcap.errors import InputFileError


def _open_npz(path: Path) -> dict:
    if not path.is_file():
        raise InputFileError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputFileError(path, f"not a readable .npz file ({exc})") from None


def _require(path, data: dict, keys) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputFileError(path, f"missing array {', '.join(repr(k) for k in missing)} (has: {', '.join(sorted(data)) or 'nothing'})")


def _fps(data: dict) -> float | None:
    return float(data["fps"]) if "fps" in data and np.isfinite(data["fps"]) else None


#: optional per-camera arrays a 2D keypoint file may carry (written by ``rigcap sync``)
PER_CAMERA_EXTRAS = ("time_offsets_s", "sync_confidence", "clock_drift")


@dataclass
class Keypoints2D:
    keypoints: np.ndarray  # (C, F, J, 3) float32, or (C, F, P, J, 3) multi-person
    camera_names: list[str]
    joint_names: list[str]
    timestamps_ns: np.ndarray | None = None  # (C, F) int64
    fps: float | None = None
    extra: dict = field(default_factory=dict)  # per-camera arrays (C,) named in PER_CAMERA_EXTRAS

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        self.camera_names = [str(c) for c in self.camera_names]
        self.joint_names = [str(j) for j in self.joint_names]
        problem = self.shape_problem()
        if problem:
            raise ValueError(problem)
        if self.timestamps_ns is not None:
            self.timestamps_ns = np.asarray(self.timestamps_ns, dtype=np.int64)

    def shape_problem(self) -> str | None:
        kp = self.keypoints
        if kp.ndim not in (4, 5) or kp.shape[-1] != 3:
            return (f"'keypoints' must have shape (cameras, frames, joints, 3) or (cameras, frames, persons, "
                    f"joints, 3), got {kp.shape}")
        if kp.shape[0] != len(self.camera_names):
            return f"'keypoints' has {kp.shape[0]} cameras but 'camera_names' lists {len(self.camera_names)}"
        if kp.shape[-2] != len(self.joint_names):
            return f"'keypoints' has {kp.shape[-2]} joints but 'joint_names' lists {len(self.joint_names)}"
        if self.timestamps_ns is not None and np.shape(self.timestamps_ns) != kp.shape[:2]:
            return f"'timestamps_ns' must have shape (cameras, frames) = {kp.shape[:2]}, got {np.shape(self.timestamps_ns)}"
        for key, value in (self.extra or {}).items():
            if np.shape(value) != (kp.shape[0],):
                return f"'{key}' must have one value per camera ({kp.shape[0]},), got shape {np.shape(value)}"
        return None

    @property
    def n_cameras(self) -> int:
        return self.keypoints.shape[0]

    @property
    def n_frames(self) -> int:
        return self.keypoints.shape[1]

    @property
    def multi_person(self) -> bool:
        """True for the multi-person form (C, F, P, J, 3)."""
        return self.keypoints.ndim == 5

    def persons_form(self) -> np.ndarray:
        """(C, F, P, J, 3): the multi-person array (the single-person form as P = 1)."""
        return self.keypoints if self.multi_person else self.keypoints[:, :, None]

    @property
    def xy(self) -> np.ndarray:
        return self.keypoints[..., :2]

    @property
    def confidence(self) -> np.ndarray:
        return self.keypoints[..., 2]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            keypoints=self.keypoints,
            camera_names=np.array(self.camera_names),
            joint_names=np.array(self.joint_names),
        )
        if self.timestamps_ns is not None:
            arrays["timestamps_ns"] = self.timestamps_ns
        if self.fps is not None:
            arrays["fps"] = np.float64(self.fps)
        for key, value in (self.extra or {}).items():
            arrays[key] = np.asarray(value, dtype=np.float64)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Keypoints2D":
        path = Path(path)
        data = _open_npz(path)
        _require(path, data, ("keypoints", "camera_names", "joint_names"))
        try:
            return cls(data["keypoints"], list(data["camera_names"]), list(data["joint_names"]),
                       data.get("timestamps_ns"), _fps(data), {k: data[k] for k in PER_CAMERA_EXTRAS if k in data})
        except ValueError as exc:
            raise InputFileError(path, str(exc)) from None


@dataclass
class Points3D:
    points: np.ndarray  # (F, J, 3) float64 metres, or (P, F, J, 3) multi-person
    joint_names: list[str]
    reprojection_error: np.ndarray | None = None  # (F, J) px  ((P, F, J) multi-person)
    n_views: np.ndarray | None = None  # (F, J)  ((P, F, J) multi-person)
    timestamps_ns: np.ndarray | None = None  # (F,)
    fps: float | None = None
    person_ids: np.ndarray | None = None  # (P,) int: the multi-person form's track ids
    method: str | None = None  # how the points were made, when not plain triangulation (e.g. the spatio-temporal solve)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        self.joint_names = [str(j) for j in self.joint_names]
        if self.person_ids is not None:
            self.person_ids = np.asarray(self.person_ids).astype(np.int64).ravel()
            if self.points.ndim != 4 or self.points.shape[-1] != 3:
                raise ValueError(f"with 'person_ids', 'points' must have shape (persons, frames, joints, 3), "
                                 f"got {self.points.shape}")
            if self.points.shape[0] != self.person_ids.size:
                raise ValueError(f"'points' has {self.points.shape[0]} persons but 'person_ids' lists "
                                 f"{self.person_ids.size}")
        elif self.points.ndim != 3 or self.points.shape[-1] != 3:
            raise ValueError(f"'points' must have shape (frames, joints, 3) (or (persons, frames, joints, 3) with "
                             f"'person_ids'), got {self.points.shape}")
        lead = self.points.shape[:-1]
        f, j = lead[-2:]
        if j != len(self.joint_names):
            raise ValueError(f"'points' has {j} joints but 'joint_names' lists {len(self.joint_names)}")
        if self.reprojection_error is None:
            self.reprojection_error = np.full(lead, np.nan)
        if self.n_views is None:
            self.n_views = np.where(np.isfinite(self.points).all(-1), -1, 0)
        self.reprojection_error = np.asarray(self.reprojection_error, dtype=np.float64)
        self.n_views = np.asarray(self.n_views).astype(np.int16)
        axes = "(persons, frames, joints)" if self.multi_person else "(frames, joints)"
        for key in ("reprojection_error", "n_views"):
            if getattr(self, key).shape != lead:
                raise ValueError(f"'{key}' must have shape {axes} = {lead}, got {getattr(self, key).shape}")
        if self.timestamps_ns is not None:
            self.timestamps_ns = np.asarray(self.timestamps_ns, dtype=np.int64)
            if self.timestamps_ns.shape != (f,):
                raise ValueError(f"'timestamps_ns' must have shape (frames,) = {(f,)}, got {self.timestamps_ns.shape}")

    @property
    def n_frames(self) -> int:
        return self.points.shape[-3]

    @property
    def multi_person(self) -> bool:
        return self.person_ids is not None

    @property
    def n_persons(self) -> int:
        return self.points.shape[0] if self.multi_person else 1

    def person(self, index: int) -> "Points3D":
        """Person ``index`` (position on the persons axis) as a single-person :class:`Points3D`."""
        if not self.multi_person:
            if index != 0:
                raise IndexError(f"a single-person file has person 0 only, not {index}")
            return self
        return Points3D(self.points[index], self.joint_names, self.reprojection_error[index], self.n_views[index],
                        self.timestamps_ns, self.fps, method=self.method)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            points=self.points,
            joint_names=np.array(self.joint_names),
            reprojection_error=self.reprojection_error,
            n_views=self.n_views,
        )
        if self.person_ids is not None:
            arrays["person_ids"] = self.person_ids
        if self.timestamps_ns is not None:
            arrays["timestamps_ns"] = self.timestamps_ns
        if self.fps is not None:
            arrays["fps"] = np.float64(self.fps)
        if self.method:
            arrays["method"] = np.array(self.method)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Points3D":
        """A ``.npz``; or a live recording (``points3d.bin``, its ``fusion/`` folder or the session folder),
        whose missing ``points3d.npz`` is then rebuilt (see :mod:`triangulate.fused_recording`)."""
        from triangulate.fused_recording import rebuild_points_npz, session_of

        path = Path(path)
        session = session_of(path)
        if session is not None and (path.suffix != ".npz"):
            return rebuild_points_npz(session)
        data = _open_npz(path)
        _require(path, data, ("points", "joint_names"))
        try:
            return cls(data["points"], list(data["joint_names"]), data.get("reprojection_error"),
                       data.get("n_views"), data.get("timestamps_ns"), _fps(data), data.get("person_ids"),
                       str(data["method"]) if "method" in data else None)
        except ValueError as exc:
            raise InputFileError(path, str(exc)) from None
