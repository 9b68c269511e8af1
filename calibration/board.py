"""The calibration board definition: what was printed, in metres.

Most "0 boards detected" failures come from a definition that does not match
the print (wrong dictionary, legacy pattern, inverted colours), so the
definition is one small, explicit object read from ``configs/board.toml`` and
turned into OpenCV's board in exactly one place.

Two patterns: ``"charuco"`` (default; markers give every corner its id, so
partial and oblique views count) and ``"checkerboard"`` (plain squares:
``squares_x`` x ``squares_y`` squares, one fewer inner corners per side, found
only when the whole board is in view).  Both number their inner corners the
same way (row by row from the top-left, ``(squares_x - 1)`` per row) at the
same positions, so every later stage treats them alike.

A board file may be rigcap's own or another tool's, told apart by content
(:func:`BoardDefinition.from_toml`, readers in :mod:`calibration.board_formats`):
caliscope's ``charuco.toml`` and anipose's ``config.toml`` ``[calibration]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import tomli_w

from rigcap.errors import InputFileError, read_toml


def aruco_dictionary_names() -> list[str]:
    return sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_") and not n.endswith("_ORIGINAL") or n == "DICT_ARUCO_ORIGINAL")


PATTERNS = ("charuco", "checkerboard")


@dataclass(frozen=True)
class BoardDefinition:
    squares_x: int
    squares_y: int
    square_length: float  # metres
    marker_length: float = 0.0  # metres (ChArUco only)
    dictionary: str = "DICT_4X4_50"
    legacy_pattern: bool = False
    inverted: bool = False
    pattern: str = "charuco"  # or "checkerboard"

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {', '.join(map(repr, PATTERNS))}, got {self.pattern!r}")
        if self.pattern == "checkerboard":
            if self.squares_x < 3 or self.squares_y < 3:
                raise ValueError(f"a checkerboard needs at least 3x3 squares (2x2 inner corners), got "
                                 f"{self.squares_x}x{self.squares_y}")
            if not self.square_length > 0:
                raise ValueError(f"square_length must be positive, got {self.square_length}")
            return
        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError(f"a ChArUco board needs at least 2x2 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_length < self.square_length:
            raise ValueError(
                f"marker_length ({self.marker_length} m) must be positive and smaller than square_length ({self.square_length} m)"
            )
        if not hasattr(cv2.aruco, str(self.dictionary)) or not str(self.dictionary).startswith("DICT_"):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}; use an OpenCV name such as DICT_4X4_50")
        n_markers = (self.squares_x * self.squares_y) // 2
        dict_size = int(self.dictionary.rsplit("_", 1)[-1]) if self.dictionary.rsplit("_", 1)[-1].isdigit() else None
        if dict_size is not None and n_markers > dict_size:
            raise ValueError(f"the board needs {n_markers} markers but {self.dictionary} has only {dict_size}")

    # ------------------------------------------------------------- file io
    @classmethod
    def from_toml(cls, path: str | Path) -> "BoardDefinition":
        """A board file, whichever tool wrote it: rigcap's board TOML, caliscope's ``charuco.toml``
        or anipose's ``config.toml`` (its ``[calibration]`` table), told apart by their keys."""
        from calibration.board_formats import board_from_any

        path = Path(path)
        return board_from_any(read_toml(path, "board definition"), path)

    @classmethod
    def from_dict(cls, data: dict, path="<board>") -> "BoardDefinition":
        pattern = data.get("pattern", "charuco")
        if pattern not in PATTERNS:
            raise InputFileError(path, f"pattern must be one of {', '.join(map(repr, PATTERNS))}, got {pattern!r}")
        checker = pattern == "checkerboard"
        required = ("squares_x", "squares_y", "square_length") + (() if checker else ("marker_length",))
        missing = [k for k in required if k not in data]
        if missing:
            raise InputFileError(path, f"missing key {', '.join(repr(k) for k in missing)}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputFileError(path, f"unknown key {', '.join(sorted(repr(k) for k in unknown))}")
        kinds = {"squares_x": int, "squares_y": int, "square_length": float, "marker_length": float}
        values = {}
        for key, kind in kinds.items():
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise InputFileError(path, f"{key} must be {'an integer' if kind is int else 'a number (metres)'}, "
                                           f"got {value!r}")
            values[key] = kind(value)
        for key in ("legacy_pattern", "inverted"):
            if not isinstance(data.get(key, False), bool):
                raise InputFileError(path, f"{key} must be true or false, got {data[key]!r}")
        try:
            return cls(
                **values,
                dictionary=str(data.get("dictionary", "DICT_4X4_50")),
                legacy_pattern=data.get("legacy_pattern", False),
                inverted=data.get("inverted", False),
                pattern=pattern,
            )
        except (TypeError, ValueError) as exc:
            raise InputFileError(path, str(exc)) from None

    def to_dict(self) -> dict:
        """The board TOML's keys (a checkerboard has no marker keys)."""
        out = asdict(self)
        if self.pattern == "checkerboard":
            for key in ("marker_length", "dictionary", "legacy_pattern"):
                out.pop(key)
        return out

    @property
    def is_checkerboard(self) -> bool:
        return self.pattern == "checkerboard"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomli_w.dumps(self.to_dict()), encoding="utf-8")
        return path

    # --------------------------------------------------------------- OpenCV
    def cv_dictionary(self):
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def cv_board(self) -> "cv2.aruco.CharucoBoard":
        if self.is_checkerboard:
            raise ValueError("a checkerboard has no ChArUco board (no markers)")
        board = cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_length, self.marker_length, self.cv_dictionary()
        )
        board.setLegacyPattern(self.legacy_pattern)
        return board

    @property
    def n_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    @property
    def orientation_unique(self) -> bool:
        """A view of the board tells which corner is corner 0: always for ChArUco (markers), for a
        checkerboard only when ``squares_x + squares_y`` is odd (the end squares differ in colour) and
        the board is not square (a 90 degree turn would look alike)."""
        if not self.is_checkerboard:
            return True
        return (self.squares_x + self.squares_y) % 2 == 1 and self.squares_x != self.squares_y

    @property
    def inner_corners(self) -> tuple[int, int]:
        """Inner corners per row and per column (OpenCV's ``patternSize`` for a checkerboard)."""
        return self.squares_x - 1, self.squares_y - 1

    def corner_points(self) -> np.ndarray:
        """(N, 3) inner-corner positions in the board frame, metres, z = 0, indexed by corner id
        (ChArUco id; a checkerboard numbers its corners the same way)."""
        nx, ny = self.inner_corners
        i = np.arange(nx * ny)
        return np.stack([(i % nx + 1) * self.square_length, (i // nx + 1) * self.square_length, np.zeros(i.size)], -1)

    @property
    def size_m(self) -> tuple[float, float]:
        """Board width and height in metres (outer squares included)."""
        return self.squares_x * self.square_length, self.squares_y * self.square_length

    def render(self, pixels_per_square: int = 100, margin_px: int = 0) -> np.ndarray:
        """The board as OpenCV draws it (uint8 grayscale), colours swapped when ``inverted``.

        Pixel (u, v) maps to board metres ``((u - margin) / pps * square_length, ...)``.
        """
        w = self.squares_x * pixels_per_square + 2 * margin_px
        h = self.squares_y * pixels_per_square + 2 * margin_px
        if self.is_checkerboard:
            image = np.full((h, w), 255, np.uint8)
            inner = checker_image(self.squares_x, self.squares_y, self.squares_x * pixels_per_square,
                                  self.squares_y * pixels_per_square)
            image[margin_px:margin_px + inner.shape[0], margin_px:margin_px + inner.shape[1]] = inner
        else:
            image = self.cv_board().generateImage((w, h), marginSize=margin_px, borderBits=1)
        return 255 - image if self.inverted else image


def checker_image(squares_x: int, squares_y: int, width_px: int, height_px: int) -> np.ndarray:
    """A plain checkerboard of ``squares_x`` x ``squares_y`` squares, black top-left (as OpenCV's
    ChArUco boards), at exactly ``width_px`` x ``height_px``."""
    u = (np.arange(width_px) * squares_x) // width_px
    v = (np.arange(height_px) * squares_y) // height_px
    return np.where((u[None, :] + v[:, None]) % 2 == 0, 0, 255).astype(np.uint8)
