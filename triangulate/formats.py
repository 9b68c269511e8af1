"""The two array files every stage reads and writes (documented in README).

2D keypoints ``.npz``
    ``keypoints`` float32 (cameras, frames, joints, 3) = x px, y px, confidence;
    NaN where missing.  ``camera_names`` (cameras,), ``joint_names`` (joints,);
    optional ``timestamps_ns`` int64 (cameras, frames), optional ``fps``.

3D points ``.npz``
    ``points`` float64 (frames, joints, 3) metres, NaN where not triangulated;
    ``joint_names``; ``reprojection_error`` float64 (frames, joints) px;
    ``n_views`` int (frames, joints); optional ``timestamps_ns`` (frames,),
    optional ``fps``.

Loading validates shapes and names and raises :class:`InputFileError`
naming the file and the problem.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
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


@dataclass
class Keypoints2D:
    keypoints: np.ndarray  # (C, F, J, 3) float32
    camera_names: list[str]
    joint_names: list[str]
    timestamps_ns: np.ndarray | None = None  # (C, F) int64
    fps: float | None = None

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
        if kp.ndim != 4 or kp.shape[-1] != 3:
            return f"'keypoints' must have shape (cameras, frames, joints, 3), got {kp.shape}"
        if kp.shape[0] != len(self.camera_names):
            return f"'keypoints' has {kp.shape[0]} cameras but 'camera_names' lists {len(self.camera_names)}"
        if kp.shape[2] != len(self.joint_names):
            return f"'keypoints' has {kp.shape[2]} joints but 'joint_names' lists {len(self.joint_names)}"
        if self.timestamps_ns is not None and np.shape(self.timestamps_ns) != kp.shape[:2]:
            return f"'timestamps_ns' must have shape (cameras, frames) = {kp.shape[:2]}, got {np.shape(self.timestamps_ns)}"
        return None

    @property
    def n_cameras(self) -> int:
        return self.keypoints.shape[0]

    @property
    def n_frames(self) -> int:
        return self.keypoints.shape[1]

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
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Keypoints2D":
        path = Path(path)
        data = _open_npz(path)
        _require(path, data, ("keypoints", "camera_names", "joint_names"))
        try:
            return cls(data["keypoints"], list(data["camera_names"]), list(data["joint_names"]),
                       data.get("timestamps_ns"), _fps(data))
        except ValueError as exc:
            raise InputFileError(path, str(exc)) from None


@dataclass
class Points3D:
    points: np.ndarray  # (F, J, 3) float64 metres
    joint_names: list[str]
    reprojection_error: np.ndarray | None = None  # (F, J) px
    n_views: np.ndarray | None = None  # (F, J)
    timestamps_ns: np.ndarray | None = None  # (F,)
    fps: float | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        self.joint_names = [str(j) for j in self.joint_names]
        if self.points.ndim != 3 or self.points.shape[-1] != 3:
            raise ValueError(f"'points' must have shape (frames, joints, 3), got {self.points.shape}")
        f, j = self.points.shape[:2]
        if j != len(self.joint_names):
            raise ValueError(f"'points' has {j} joints but 'joint_names' lists {len(self.joint_names)}")
        if self.reprojection_error is None:
            self.reprojection_error = np.full((f, j), np.nan)
        if self.n_views is None:
            self.n_views = np.where(np.isfinite(self.points).all(-1), -1, 0)
        self.reprojection_error = np.asarray(self.reprojection_error, dtype=np.float64)
        self.n_views = np.asarray(self.n_views).astype(np.int16)
        for key in ("reprojection_error", "n_views"):
            if getattr(self, key).shape != (f, j):
                raise ValueError(f"'{key}' must have shape (frames, joints) = {(f, j)}, got {getattr(self, key).shape}")
        if self.timestamps_ns is not None:
            self.timestamps_ns = np.asarray(self.timestamps_ns, dtype=np.int64)
            if self.timestamps_ns.shape != (f,):
                raise ValueError(f"'timestamps_ns' must have shape (frames,) = {(f,)}, got {self.timestamps_ns.shape}")

    @property
    def n_frames(self) -> int:
        return self.points.shape[0]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = dict(
            points=self.points,
            joint_names=np.array(self.joint_names),
            reprojection_error=self.reprojection_error,
            n_views=self.n_views,
        )
        if self.timestamps_ns is not None:
            arrays["timestamps_ns"] = self.timestamps_ns
        if self.fps is not None:
            arrays["fps"] = np.float64(self.fps)
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
                       data.get("n_views"), data.get("timestamps_ns"), _fps(data))
        except ValueError as exc:
            raise InputFileError(path, str(exc)) from None
