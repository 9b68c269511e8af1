"""Rigs calibrated by other tools, read into a :class:`~calibration.rig.Rig` in rigcap's conventions.

* :func:`load_caliscope` - caliscope's ``camera_array.toml``.
* :func:`load_qualisys` - a Qualisys QTM ``.qca.txt`` export (as Pose2Sim reads it).
* :func:`load_any_rig` - any of those or a rigcap / anipose / Pose2Sim rig TOML, told apart by content.

Every importer returns cameras in OpenCV's model (world -> camera, metres,
pixels), so the rest of rigcap never sees the source format.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from calibration.importers.caliscope import is_caliscope_array, load_caliscope, rig_from_caliscope
from calibration.importers.qualisys import is_qualisys_calibration, load_qualisys
from calibration.rig import Rig
from rigcap.errors import InputFileError

__all__ = ["load_any_rig", "load_caliscope", "load_qualisys", "rig_from_caliscope", "detect_format"]


def detect_format(path: str | Path) -> str:
    """``"qualisys"``, ``"caliscope"`` or ``"rig_toml"``, from the file's content (not only its name)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "rig file not found")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc})") from None
    if text.lstrip().startswith("<") and is_qualisys_calibration(text):
        return "qualisys"
    if text.lstrip().startswith("<"):
        raise InputFileError(path, "an XML file that is not a Qualisys calibration (.qca.txt)")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(path, f"neither a rig TOML, a caliscope camera array nor a Qualisys .qca.txt ({exc})") from None
    return "caliscope" if is_caliscope_array(data) else "rig_toml"


def load_any_rig(path: str | Path) -> Rig:
    """Read a rig from any supported format (see module docstring).

    :func:`calibration.rigfile.load_rig` is the one dispatcher (every command
    calls it); this name stays for callers that start from the importers.
    """
    from calibration.rigfile import load_rig

    return load_rig(path)
