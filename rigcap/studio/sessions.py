"""Folders of synthetic sessions, the input ``rigcap batch`` reprocesses, with their 3D truth.

Each session is a folder holding ``rig.toml`` (the true rig), ``keypoints2d.npz`` (what a
detector would report: noise, misses, outliers, swaps, clock offsets) and
``points3d_true.npz``: the smallest folder ``rigcap batch`` accepts.  Seeds differ per session,
so every session has its own rig, person and detector errors.
"""

from __future__ import annotations

from pathlib import Path

from calibration.rigfile import save_rig
from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio

RIG_FILE = "rig.toml"
KEYPOINTS_FILE = "keypoints2d.npz"
TRUTH_FILE = "points3d_true.npz"


def write_synthetic_session(folder: str | Path, seed: int = 0, seconds: float = 10.0, cameras: int = 4,
                            fps: float = 30.0, noise: DetectorNoise | None = None) -> Path:
    """One session folder (see the module docstring); returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    studio = SyntheticStudio(n_cameras=cameras, fps=fps, duration_s=seconds, seed=seed, noise=noise)
    save_rig(studio.rig, folder / RIG_FILE)
    studio.keypoints2d().save(folder / KEYPOINTS_FILE)
    studio.points3d_true().save(folder / TRUTH_FILE)
    return folder


def write_synthetic_sessions(root: str | Path, count: int, seconds: float = 10.0, cameras: int = 4,
                             fps: float = 30.0, seed: int = 0) -> list[Path]:
    """``count`` sessions ``root/session-000`` ... with seeds ``seed``, ``seed + 1``, ..."""
    root = Path(root)
    return [write_synthetic_session(root / f"session-{i:03d}", seed=seed + i, seconds=seconds, cameras=cameras, fps=fps)
            for i in range(count)]
