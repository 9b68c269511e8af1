"""Read and write the rig TOML that anipose, aniposelib, Pose2Sim and caliscope share.

One table per camera::

    [cam_0]
    name = "cam_0"
    size = [1280, 720]            # width, height in pixels
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]   # fx < 0: the image is mirrored left-right
    distortions = [k1, k2, p1, p2, k3]
    rotation = [rx, ry, rz]       # Rodrigues vector, world -> camera
    translation = [tx, ty, tz]    # metres, world -> camera
    fisheye = false

and a ``[metadata]`` table (free-form; rigcap writes its calibration report
there).  A Pose2Sim ``Calib.toml`` reads unchanged; what rigcap writes reads
back in ``aniposelib.cameras.CameraGroup.load``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import tomli_w

from calibration.camera import Camera
from calibration.rig import Rig
from rigcap.errors import InputFileError

REQUIRED_KEYS = ("size", "matrix", "distortions", "rotation", "translation")


def _array(path, section: str, key: str, value, shape: tuple | None, allowed_sizes=None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputFileError(path, f"camera [{section}]: key '{key}' must hold numbers, got {value!r}") from None
    if shape is not None and arr.shape != shape:
        raise InputFileError(path, f"camera [{section}]: key '{key}' must have shape {shape}, got {arr.shape}")
    if allowed_sizes is not None and (arr.ndim != 1 or arr.size not in allowed_sizes):
        raise InputFileError(
            path, f"camera [{section}]: key '{key}' must be a list of {' or '.join(map(str, allowed_sizes))} numbers, got {value!r}"
        )
    if not np.all(np.isfinite(arr)):
        raise InputFileError(path, f"camera [{section}]: key '{key}' holds a non-finite number")
    return arr


def camera_from_table(table: dict, section: str, path="<rig>") -> Camera:
    """One camera table -> :class:`Camera`, with errors naming file, camera and key."""
    missing = [k for k in REQUIRED_KEYS if k not in table]
    if missing:
        raise InputFileError(path, f"camera [{section}]: missing key {', '.join(repr(k) for k in missing)}")
    fisheye = bool(table.get("fisheye", False))
    size = _array(path, section, "size", table["size"], (2,))
    matrix = _array(path, section, "matrix", table["matrix"], (3, 3))
    dist = _array(path, section, "distortions", table["distortions"], None, (4,) if fisheye else (4, 5, 8, 12, 14))
    rot = np.asarray(table["rotation"], dtype=np.float64) if _is_numeric(table["rotation"]) else None
    if rot is None or rot.shape not in ((3,), (3, 3)):
        raise InputFileError(path, f"camera [{section}]: key 'rotation' must be a Rodrigues vector [rx, ry, rz] (or a 3x3 matrix), got {table['rotation']!r}")
    tvec = _array(path, section, "translation", table["translation"], (3,))
    # fx < 0 is a camera whose image is mirrored left-right (calibration.mirror), fy must be positive
    if matrix[0, 0] == 0 or matrix[1, 1] <= 0:
        raise InputFileError(path, f"camera [{section}]: key 'matrix' has a zero fx or a non-positive fy")
    cam = Camera(str(table.get("name", section)), (int(size[0]), int(size[1])), matrix, dist, np.zeros(3), tvec, fisheye)
    if rot.shape == (3, 3):
        cam.R = rot
    else:
        cam.rvec = rot
    return cam


def _is_numeric(value) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
        return True
    except (TypeError, ValueError):
        return False


def rig_from_dict(data: dict, path="<rig>") -> Rig:
    cameras = []
    for section, table in data.items():
        if section == "metadata":
            continue
        if not isinstance(table, dict):
            raise InputFileError(path, f"top-level key '{section}' is not a camera table")
        cameras.append(camera_from_table(table, section, path))
    if not cameras:
        raise InputFileError(path, "no camera tables found (expected [cam_0], [cam_1], ... each with name, size, matrix, ...)")
    return Rig(cameras, dict(data.get("metadata", {})))


def rig_to_dict(rig: Rig) -> dict:
    """Rig -> plain dict of Python floats, ready for TOML."""
    out: dict = {}
    for cam in rig.cameras:
        out[cam.name] = {
            "name": cam.name,
            "size": [int(cam.size[0]), int(cam.size[1])],
            "matrix": cam.matrix.tolist(),
            "distortions": cam.dist.tolist(),
            "rotation": cam.rvec.tolist(),
            "translation": cam.tvec.tolist(),
            "fisheye": bool(cam.fisheye),
        }
    out["metadata"] = _plain(rig.metadata)
    return out


def _plain(value):
    """numpy scalars/arrays -> Python types tomli-w accepts; None dropped."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_rig(path: str | Path) -> Rig:
    """Read a rig file, whichever tool wrote it.

    A rig TOML (rigcap, anipose/aniposelib, Pose2Sim ``Calib.toml``) directly;
    caliscope's ``camera_array.toml`` and a Qualisys ``.qca.txt`` through
    :mod:`calibration.importers`, so every command takes any of them.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "rig file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not a text rig file ({exc})") from None
    if text.lstrip().startswith("<"):  # XML: the only XML rig format rigcap reads is Qualisys's
        from calibration.importers.qualisys import load_qualisys

        return load_qualisys(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"not a valid TOML file ({exc})") from None
    from calibration.importers.caliscope import is_caliscope_array, load_caliscope

    if is_caliscope_array(data):
        return load_caliscope(path)
    return rig_from_dict(data, path)


def save_rig(rig: Rig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(rig_to_dict(rig)), encoding="utf-8")
    return path
