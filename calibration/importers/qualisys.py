"""Read a Qualisys QTM calibration export (``.qca.txt``, XML) into a :class:`~calibration.rig.Rig`.

Conventions (the reference is Pose2Sim's converter, ``calib_qca_fun`` /
``read_qca`` in ``Pose2Sim/calibration.py``, which reads this very file for
its demo):

* ``transform``: ``x y z`` is the camera **position** in the lab frame, in
  **millimetres**; ``r11 .. r33`` (row-major ``M``) is the camera's
  orientation with Qualisys camera axes (x right, y up, z pointing backwards,
  out of the lens).  OpenCV's world->camera rotation is therefore
  ``R = diag(1, -1, -1) @ M`` (Pose2Sim: transpose twice, then rotate the
  camera by pi about its x axis) and ``t = -R @ position / 1000``.
* ``intrinsic``: values in sensor sub-pixels, 64 per pixel (``sensorMaxU``
  69568 = 1087 x 64): focal lengths ``focalLengthU/V / 64``, principal point
  ``centerPointU/V / 64`` minus the video window's ``left``/``top``
  (``fov_video``), and the distortion terms divided by 64 as Pose2Sim does
  (``radialDistortion1..2``, ``tangentalDistortion1..2`` -> ``k1 k2 p1 p2``;
  ``radialDistortion3`` -> ``k3``).  ``binning`` (sensor binning factor)
  divides all of these further, as in Pose2Sim.
* image size: the ``fov_video`` window (``right - left + 1`` x
  ``bottom - top + 1``), divided by ``binning``.  The *video files* may be
  smaller: the Pose2Sim demo's cam01/cam02 videos are 1080 x 1920 while the
  window is 1088 x 1920 (the encoder crops the last columns).  Cropping on
  the right/bottom keeps pixel coordinates, so ``video_sizes`` only replaces
  ``size`` and leaves the camera matrix alone.
* ``viewrotation`` other than 0 (QTM rotates the image by 90/180/270
  degrees) is refused rather than guessed.
* Only cameras with a video window are returned (marker-only cameras have
  no images to triangulate from); names are the ``serial`` attributes,
  naturally sorted, as in Pose2Sim.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig
from rigcap.errors import InputFileError

SUBPIXELS = 64.0
QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # camera axes: y up / z backwards -> y down / z forwards


def is_qualisys_calibration(text: str) -> bool:
    head = text[:4000]
    return "<calibration" in head and "<cameras" in head and "<transform" in text


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _float(path, serial, tag, key) -> float:
    if tag is None:
        raise InputFileError(path, f"Qualisys camera {serial}: missing element for '{key}'")
    value = tag.get(key)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputFileError(path, f"Qualisys camera {serial}: attribute '{key}' of <{tag.tag}> must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise InputFileError(path, f"Qualisys camera {serial}: attribute '{key}' is not finite")
    return out


def camera_from_qca(elem: ET.Element, path="<qca>", binning: float = 1.0) -> Camera:
    """One ``<camera>`` element -> :class:`Camera` (OpenCV conventions, metres, pixels)."""
    serial = elem.get("serial") or "?"
    if int(float(elem.get("viewrotation", "0") or 0)) != 0:
        raise InputFileError(path, f"Qualisys camera {serial}: viewrotation {elem.get('viewrotation')} is not supported "
                                   "(export the calibration with the image unrotated)")
    fov = elem.find("fov_video")
    if fov is None:
        raise InputFileError(path, f"Qualisys camera {serial}: no <fov_video> (not a video camera)")
    left, top = _float(path, serial, fov, "left"), _float(path, serial, fov, "top")
    width = (_float(path, serial, fov, "right") - left + 1) / binning
    height = (_float(path, serial, fov, "bottom") - top + 1) / binning
    intr = elem.find("intrinsic")
    g = lambda key: _float(path, serial, intr, key)  # noqa: E731
    scale = SUBPIXELS * binning
    fu, fv = g("focalLengthU") / scale, g("focalLengthV") / scale
    cu = g("centerPointU") / scale - left / binning
    cv = g("centerPointV") / scale - top / binning
    skew = float(intr.get("skew", 0.0) or 0.0) / scale if intr is not None else 0.0
    k3 = float(intr.get("radialDistortion3", 0.0) or 0.0)
    dist = np.array([g("radialDistortion1"), g("radialDistortion2"), g("tangentalDistortion1"),
                     g("tangentalDistortion2"), k3]) / scale
    if fu <= 0 or fv <= 0:
        raise InputFileError(path, f"Qualisys camera {serial}: non-positive focal length")
    tr = elem.find("transform")
    m = np.array([[_float(path, serial, tr, f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)])
    if abs(np.linalg.det(m) - 1.0) > 1e-3 or np.abs(m @ m.T - np.eye(3)).max() > 1e-3:
        raise InputFileError(path, f"Qualisys camera {serial}: r11..r33 is not a rotation matrix")
    position_m = np.array([_float(path, serial, tr, k) for k in ("x", "y", "z")]) / 1000.0
    rot = QUALISYS_TO_OPENCV @ m
    matrix = np.array([[fu, skew, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]])
    cam = Camera(serial, (int(round(width)), int(round(height))), matrix, dist, np.zeros(3), -rot @ position_m)
    cam.R = rot
    return cam


def load_qualisys(path: str | Path, binning: float = 1.0, video_sizes: dict | None = None) -> Rig:
    """Read a ``.qca.txt``; ``video_sizes`` {name: (w, h)} overrides image sizes (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Qualisys calibration not found")
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise InputFileError(path, f"not a valid Qualisys .qca.txt XML file ({exc})") from None
    if root.tag != "calibration" or root.find("cameras") is None:
        raise InputFileError(path, "not a Qualisys calibration (expected <calibration><cameras><camera ...>)")
    cams, residuals, skipped = [], {}, []
    for elem in root.findall("cameras/camera"):
        serial = elem.get("serial") or f"camera{len(cams) + len(skipped)}"
        if elem.get("active", "1") == "0" or elem.find("fov_video") is None:
            skipped.append(serial)
            continue
        cam = camera_from_qca(elem, path, binning)
        if video_sizes and cam.name in video_sizes:
            w, h = video_sizes[cam.name]
            cam.size = (int(w), int(h))
        cams.append(cam)
        if elem.get("avg-residual") is not None:
            residuals[cam.name] = float(elem.get("avg-residual"))
    if not cams:
        raise InputFileError(path, "no active video camera in the Qualisys calibration")
    cams.sort(key=lambda c: _natural_key(c.name))
    meta = {"source": str(path), "format": "Qualisys qca", "avg_residual_mm": residuals}
    if skipped:
        meta["skipped"] = skipped
    return Rig(cams, meta)
