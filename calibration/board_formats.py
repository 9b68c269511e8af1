"""Other tools' board files read unchanged, as a :class:`~calibration.board.BoardDefinition`.

Why: a lab that calibrated with caliscope or anipose already has a board file
that matches its print; retyping it as rigcap's keys is where a wrong
dictionary or a swapped width and height creeps in.  Formats, told apart by
their keys (:func:`board_from_any`):

* rigcap's board TOML: ``squares_x``, ``squares_y``, ``square_length``, ...
  (:meth:`BoardDefinition.from_dict`).
* caliscope's ``charuco.toml`` (or a ``[charuco]`` table): ``columns``,
  ``rows``, ``square_size_override_cm`` (else the square is the largest that
  fits ``board_width`` x ``board_height`` in ``units``, "inch" or "cm", as
  caliscope computes it), marker = ``aruco_scale`` x square, ``dictionary``,
  ``inverted``, ``legacy_pattern``.  ``columns`` run along the board's width,
  as OpenCV's ``(squaresX, squaresY)``.
* anipose's ``config.toml`` ``[calibration]``: ``board_type`` ("charuco" or
  "checkerboard"), ``board_size`` (squares for ChArUco; *inner corners* for a
  checkerboard, as anipose's docs say), ``board_square_side_length``,
  ``board_marker_length``, ``board_marker_bits``, ``board_marker_dict_number``.
  anipose's lengths are in whatever unit its user chose (its examples use
  millimetres): a square side of 1 or more is read as millimetres, below 1 as
  metres (no printable board has a 1 m square or a 1 mm one).
"""

from __future__ import annotations

from pathlib import Path

from calibration.board import BoardDefinition
from rigcap.errors import InputFileError

CM_PER_INCH = 2.54
CALISCOPE_KEYS = ("columns", "rows")
ANIPOSE_BOARD_TYPES = ("charuco", "checkerboard")


def board_from_any(data: dict, path: str | Path = "<board>") -> BoardDefinition:
    """The board a parsed TOML file describes, whichever of the formats above it is."""
    if "squares_x" in data or "pattern" in data:
        return BoardDefinition.from_dict(data, path)
    if all(k in data for k in CALISCOPE_KEYS):
        return board_from_caliscope(data, path)
    if isinstance(data.get("charuco"), dict) and all(k in data["charuco"] for k in CALISCOPE_KEYS):
        return board_from_caliscope(data["charuco"], path)
    if isinstance(data.get("calibration"), dict) and "board_type" in data["calibration"]:
        return board_from_anipose(data["calibration"], path)
    return BoardDefinition.from_dict(data, path)  # names the missing keys of rigcap's own format


def _number(path, key: str, value, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and value != int(value)):
        raise InputFileError(path, f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    return int(value) if integer else float(value)


def _flag(path, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputFileError(path, f"{key} must be true or false, got {value!r}")
    return value


def _build(path, **kwargs) -> BoardDefinition:
    try:
        return BoardDefinition(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, str(exc)) from None


def board_from_caliscope(data: dict, path: str | Path = "<board>") -> BoardDefinition:
    """caliscope's ``Charuco`` (``charuco.toml``) -> board in metres."""
    columns = _number(path, "columns", data["columns"], integer=True)
    rows = _number(path, "rows", data["rows"], integer=True)
    override = data.get("square_size_override_cm")
    if override:
        square_cm = _number(path, "square_size_override_cm", override)
    else:
        units = str(data.get("units", "inch")).lower()
        if units not in ("inch", "cm"):
            raise InputFileError(path, f"units must be \"inch\" or \"cm\", got {data.get('units')!r}")
        missing = [k for k in ("board_width", "board_height") if k not in data]
        if missing:
            raise InputFileError(path, f"caliscope board without square_size_override_cm needs "
                                       f"{' and '.join(missing)} to size its squares")
        scale = CM_PER_INCH if units == "inch" else 1.0
        width_cm = _number(path, "board_width", data["board_width"]) * scale
        height_cm = _number(path, "board_height", data["board_height"]) * scale
        square_cm = min(height_cm / rows, width_cm / columns)
    aruco_scale = _number(path, "aruco_scale", data.get("aruco_scale", 0.75))
    square = round(square_cm / 100.0, 9)  # 5.4 cm -> 0.054 m, not 0.054000000000000006
    return _build(
        path, squares_x=columns, squares_y=rows, square_length=square, marker_length=square * aruco_scale,
        dictionary=str(data.get("dictionary", "DICT_4X4_50")),
        legacy_pattern=_flag(path, "legacy_pattern", data.get("legacy_pattern", False)),
        inverted=_flag(path, "inverted", data.get("inverted", False)),
    )


def _anipose_metres(path, key: str, value) -> float:
    v = _number(path, key, value)
    return v / 1000.0 if v >= 1.0 else v


def board_from_anipose(calib: dict, path: str | Path = "<board>") -> BoardDefinition:
    """anipose's ``[calibration]`` table -> board in metres (see the module docstring for units)."""
    kind = str(calib.get("board_type", "")).lower()
    if kind not in ANIPOSE_BOARD_TYPES:
        raise InputFileError(path, f"[calibration] board_type {calib.get('board_type')!r}: rigcap reads "
                                   f"{' and '.join(ANIPOSE_BOARD_TYPES)} boards (not anipose's plain ArUco grids)")
    for key in ("board_size", "board_square_side_length"):
        if key not in calib:
            raise InputFileError(path, f"[calibration] missing key {key!r}")
    size = calib["board_size"]
    if not isinstance(size, list) or len(size) != 2:
        raise InputFileError(path, f"[calibration] board_size must be [width, height], got {size!r}")
    nx, ny = (_number(path, "board_size", v, integer=True) for v in size)
    square = _anipose_metres(path, "board_square_side_length", calib["board_square_side_length"])
    if kind == "checkerboard":  # anipose counts a checkerboard's inner corners
        return _build(path, squares_x=nx + 1, squares_y=ny + 1, square_length=square, pattern="checkerboard")
    if "board_marker_length" not in calib:
        raise InputFileError(path, "[calibration] missing key 'board_marker_length' (a ChArUco board's marker side)")
    marker = _number(path, "board_marker_length", calib["board_marker_length"])
    marker = marker / 1000.0 if _number(path, "board_square_side_length", calib["board_square_side_length"]) >= 1.0 else marker
    bits = _number(path, "board_marker_bits", calib.get("board_marker_bits", 4), integer=True)
    count = _number(path, "board_marker_dict_number", calib.get("board_marker_dict_number", 50), integer=True)
    return _build(path, squares_x=nx, squares_y=ny, square_length=square, marker_length=marker,
                  dictionary=f"DICT_{bits}X{bits}_{count}")
