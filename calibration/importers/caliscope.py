"""Read caliscope's ``camera_array.toml`` into a :class:`~calibration.rig.Rig`.

caliscope's format (``[cameras.N]`` tables, N the camera's port)::

    [cameras.0]
    size = [1280, 720]
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]
    rotation = [[...], [...], [...]]    # 3x3 matrix
    translation = [tx, ty, tz]          # metres
    error = 0.54                        # intrinsic RMSE, px
    rotation_count = 0                  # 90-degree image rotations applied at capture
    ignore = false

Conventions, checked against caliscope's source (``CameraData.projection_matrix
= matrix @ [rotation | translation]``, ``extrinsics_to_vector`` =
``cv2.Rodrigues(rotation)`` + translation): ``rotation``/``translation`` map
world -> camera exactly like OpenCV's ``rvec``/``tvec`` (its comments say
"camera relative to world", but the projection uses them world -> camera),
so they move into :class:`~calibration.camera.Camera` unchanged.  Lengths are
metres (the board's square size is given to caliscope in metres), which
:mod:`tests.test_importers` confirms by triangulating the real board.
A ``rotation`` given as a Rodrigues vector (3 numbers) is accepted too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig
from rigcap.errors import InputFileError, read_toml


def is_caliscope_array(data: dict) -> bool:
    """True for a parsed TOML shaped like caliscope's camera array (``[cameras.<port>]`` tables)."""
    cams = data.get("cameras")
    return isinstance(cams, dict) and bool(cams) and all(isinstance(v, dict) for v in cams.values())


def _numbers(path, port, key, value, shapes) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputFileError(path, f"caliscope camera {port}: key '{key}' must hold numbers, got {value!r}") from None
    if arr.shape not in shapes:
        raise InputFileError(path, f"caliscope camera {port}: key '{key}' has shape {arr.shape}; expected {' or '.join(map(str, shapes))}")
    if not np.all(np.isfinite(arr)):
        raise InputFileError(path, f"caliscope camera {port}: key '{key}' holds a non-finite number")
    return arr


def rig_from_caliscope(data: dict, path="<camera_array>", name_format: str = "cam_{port}",
                       keep_ignored: bool = False) -> Rig:
    """A parsed caliscope camera array -> Rig; cameras named ``name_format.format(port=N)``, sorted by port.

    Cameras marked ``ignore = true`` are left out (listed in ``metadata["ignored"]``) unless ``keep_ignored``.
    """
    if not is_caliscope_array(data):
        raise InputFileError(path, "not a caliscope camera array (expected [cameras.0], [cameras.1], ... tables)")
    cameras, ignored, errors, rot_counts = [], [], {}, {}
    for port_key in sorted(data["cameras"], key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k))):
        table = data["cameras"][port_key]
        port = table.get("cam_id", table.get("port", port_key))
        name = name_format.format(port=port)
        if table.get("ignore", False) and not keep_ignored:
            ignored.append(name)
            continue
        missing = [k for k in ("size", "matrix", "distortions", "rotation", "translation") if table.get(k) is None]
        if missing:
            raise InputFileError(path, f"caliscope camera {port}: missing {', '.join(missing)} "
                                       f"(intrinsics and extrinsics must both be calibrated in caliscope first)")
        size = _numbers(path, port, "size", table["size"], [(2,)])
        matrix = _numbers(path, port, "matrix", table["matrix"], [(3, 3)])
        dist = _numbers(path, port, "distortions", table["distortions"], [(4,), (5,), (8,), (12,), (14,), (1, 5)]).ravel()
        rot = _numbers(path, port, "rotation", table["rotation"], [(3, 3), (3,)])
        tvec = _numbers(path, port, "translation", table["translation"], [(3,), (3, 1)]).ravel()
        if rot.shape == (3, 3) and (abs(np.linalg.det(rot) - 1.0) > 1e-3 or np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3):
            raise InputFileError(path, f"caliscope camera {port}: 'rotation' is not a rotation matrix")
        cam = Camera(name, (int(size[0]), int(size[1])), matrix, dist, np.zeros(3), tvec)
        if rot.shape == (3, 3):
            cam.R = rot
        else:
            cam.rvec = rot
        cameras.append(cam)
        if table.get("error") is not None:
            errors[name] = float(table["error"])
        rot_counts[name] = int(table.get("rotation_count", 0))
    if not cameras:
        raise InputFileError(path, "every camera of the caliscope array is marked ignore = true")
    meta = {"source": str(path), "format": "caliscope camera_array.toml", "intrinsic_rmse_px": errors,
            "rotation_count": rot_counts}
    if ignored:
        meta["ignored"] = ignored
    return Rig(cameras, meta)


def load_caliscope(path: str | Path, name_format: str = "cam_{port}", keep_ignored: bool = False) -> Rig:
    """Read caliscope's ``camera_array.toml`` (or a ``config.toml`` holding its ``[cameras.N]`` tables)."""
    path = Path(path)
    data = read_toml(path, "caliscope camera array")
    return rig_from_caliscope(data, path, name_format, keep_ignored)
