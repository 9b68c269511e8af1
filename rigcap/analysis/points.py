"""The 3D points file as the analysis reads it: one person ``(frames, joints, 3)`` or several
``(persons, frames, joints, 3)``, always handed on with a persons axis."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigcap.errors import InputFileError
from triangulate.formats import Points3D, _open_npz, _require


@dataclass
class PersonsPoints:
    """``points`` (persons, frames, joints, 3) metres (NaN where missing), ``joint_names``,
    ``fps`` (None when the file has none), ``multi`` (the file had a persons axis)."""

    points: np.ndarray
    joint_names: list[str]
    fps: float | None
    multi: bool

    @property
    def n_persons(self) -> int:
        return self.points.shape[0]

    @property
    def n_frames(self) -> int:
        return self.points.shape[1]


def load_points(path: str | Path) -> PersonsPoints:
    """Read a 3D points ``.npz`` (README "3D points .npz"), single- or multi-person."""
    path = Path(path)
    data = _open_npz(path)
    _require(path, data, ("points", "joint_names"))
    pts = np.asarray(data["points"])
    fps = float(data["fps"]) if "fps" in data and np.isfinite(data["fps"]) else None
    if pts.ndim == 3:
        single = Points3D.load(path)  # validates the per-frame arrays too
        return PersonsPoints(single.points[None], single.joint_names, single.fps, False)
    if pts.ndim != 4 or pts.shape[-1] != 3:
        raise InputFileError(path, f"'points' must have shape (frames, joints, 3) or (persons, frames, joints, 3), "
                             f"got {pts.shape}")
    names = [str(j) for j in data["joint_names"]]
    if pts.shape[2] != len(names):
        raise InputFileError(path, f"'points' has {pts.shape[2]} joints but 'joint_names' lists {len(names)}")
    return PersonsPoints(pts.astype(np.float64), names, fps, True)
