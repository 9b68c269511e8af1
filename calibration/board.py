"""The ChArUco board definition: what was printed, in metres.

Most "0 boards detected" failures come from a definition that does not match
the print (wrong dictionary, legacy pattern, inverted colours), so the
definition is one small, explicit object read from ``configs/board.toml`` and
turned into OpenCV's board in exactly one place.
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


@dataclass(frozen=True)
class BoardDefinition:
    squares_x: int
    squares_y: int
    square_length: float  # metres
    marker_length: float  # metres
    dictionary: str = "DICT_4X4_50"
    legacy_pattern: bool = False
    inverted: bool = False

    def __post_init__(self) -> None:
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
        path = Path(path)
        data = read_toml(path, "board definition")
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: dict, path="<board>") -> "BoardDefinition":
        required = ("squares_x", "squares_y", "square_length", "marker_length")
        missing = [k for k in required if k not in data]
        if missing:
            raise InputFileError(path, f"missing key {', '.join(repr(k) for k in missing)}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputFileError(path, f"unknown key {', '.join(sorted(repr(k) for k in unknown))}")
        kinds = {"squares_x": int, "squares_y": int, "square_length": float, "marker_length": float}
        values = {}
        for key, kind in kinds.items():
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
            )
        except (TypeError, ValueError) as exc:
            raise InputFileError(path, str(exc)) from None

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tomli_w.dumps(self.to_dict()), encoding="utf-8")
        return path

    # --------------------------------------------------------------- OpenCV
    def cv_dictionary(self):
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def cv_board(self) -> "cv2.aruco.CharucoBoard":
        board = cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_length, self.marker_length, self.cv_dictionary()
        )
        board.setLegacyPattern(self.legacy_pattern)
        return board

    @property
    def n_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    def corner_points(self) -> np.ndarray:
        """(N, 3) inner-corner positions in the board frame, metres, z = 0, indexed by ChArUco id."""
        return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

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
        image = self.cv_board().generateImage((w, h), marginSize=margin_px, borderBits=1)
        return 255 - image if self.inverted else image
