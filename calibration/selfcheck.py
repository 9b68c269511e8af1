"""Board self-check: when a camera never finds the board, find the definition that matches the print.

"0 boards detected" almost always means the board definition does not match
what was printed: another ArUco dictionary, the legacy chessboard pattern
(boards made by OpenCV < 4.6), black and white swapped (an inverted print),
or another number of squares.  The check runs on a few frames of the failing
input (those where the configured detector saw the most markers, else evenly
spaced ones):

1. **Markers**: every dictionary family (4x4 ... 7x7, ArUco original,
   AprilTag) on the image and on its negative; the family and polarity that
   find the most markers win.  The dictionary reported is the smallest of
   the family holding every id seen (``DICT_4X4_50`` and ``DICT_4X4_1000``
   share their first 50 markers), the configured one when it fits.
2. **Layout**: with that dictionary and polarity, ``CharucoDetector`` for
   the configured squares and for every board size whose marker count fits
   the ids seen, each with ``legacy_pattern`` off and on; the layout
   interpolating the most chessboard corners wins (the configured one on a
   tie).

The answer is one sentence a user can act on, e.g. "markers match
DICT_4X4_50 with legacy_pattern = false, printed inverted (inverted = true)".
An input with no marker of any dictionary at all is reported as showing no
board, naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from calibration.board import BoardDefinition
from calibration.detect import CameraDetections, detect_frame, make_detector
from calibration.video_io import open_source
from rigcap.errors import InputFileError, RigcapError

#: marker families: (name stem, dictionaries smallest first)
FAMILIES = [
    (f"{n}X{n}", [f"DICT_{n}X{n}_{s}" for s in (50, 100, 250, 1000)]) for n in (4, 5, 6, 7)
] + [
    ("ARUCO_ORIGINAL", ["DICT_ARUCO_ORIGINAL"]),
    ("APRILTAG_16h5", ["DICT_APRILTAG_16h5"]), ("APRILTAG_25h9", ["DICT_APRILTAG_25h9"]),
    ("APRILTAG_36h10", ["DICT_APRILTAG_36h10"]), ("APRILTAG_36h11", ["DICT_APRILTAG_36h11"]),
]
MIN_USABLE_VIEWS = 3  # frames with 6+ corners a camera needs before the check stays quiet
SAMPLE_FRAMES = 8


def _dict_size(name: str) -> int:
    return len(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name)).bytesList)


@dataclass
class BoardMatch:
    """The definition that explains the frames best, and what it found."""

    board: BoardDefinition
    markers: int  # markers found over the sampled frames (best family and polarity)
    corners: int  # ChArUco corners interpolated over the sampled frames with ``board``
    ids: np.ndarray  # marker ids seen
    frames: int  # frames sampled

    def differences(self, configured: BoardDefinition) -> list[str]:
        """The keys to change in the board TOML, as ``key = value`` strings."""
        out = []
        for key in ("dictionary", "legacy_pattern", "inverted", "squares_x", "squares_y"):
            new, old = getattr(self.board, key), getattr(configured, key)
            if new != old:
                out.append(f'{key} = "{new}"' if isinstance(new, str) else f"{key} = {str(new).lower()}")
        return out

    def describe(self) -> str:
        b = self.board
        text = f"markers match {b.dictionary} with legacy_pattern = {str(b.legacy_pattern).lower()}"
        family = next((d for _, d in FAMILIES if b.dictionary in d), [b.dictionary])
        if family[-1] != b.dictionary and self.ids.size:
            text += f" (ids {int(self.ids.min())}-{int(self.ids.max())}: the larger {b.dictionary.rsplit('_', 1)[0]}_* dictionaries share them)"
        text += ", printed inverted (black and white swapped)" if b.inverted else ", printed black on white"
        return text + f", {b.squares_x} x {b.squares_y} squares"


def sample_frames(path: str | Path, frame_indices: Sequence[int] | None = None, n: int = SAMPLE_FRAMES) -> list[np.ndarray]:
    """Grayscale frames ``frame_indices`` of one input (default: ``n`` evenly spaced)."""
    source = open_source(path)
    if frame_indices is None:
        total = max(source.n_frames, 1)
        frame_indices = np.unique(np.linspace(0, total - 1, min(n, total)).astype(int))
    wanted = set(int(i) for i in frame_indices)
    last = max(wanted)
    out = []
    try:
        for i, gray in source.frames(gray=True):
            if i in wanted:
                out.append(gray)
            if i >= last:
                break
    except InputFileError:
        if not out:
            raise
    return out


def _markers(gray: np.ndarray, dictionary: str) -> np.ndarray:
    params = cv2.aruco.DetectorParameters()
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)), params)
    _, ids, _ = det.detectMarkers(gray)
    return np.zeros(0, int) if ids is None else np.asarray(ids).ravel()


def _count_corners(frames: list[np.ndarray], board: BoardDefinition) -> int:
    detector = make_detector(board)
    total = 0
    for gray in frames:
        c, _ = detect_frame(detector, gray, board.n_corners, board.inverted)
        total += int(np.isfinite(c[:, 0]).sum())
    return total


def _layouts(board: BoardDefinition, max_id: int) -> list[tuple[int, int]]:
    """Board sizes to try: the configured one, its transpose, and every size whose markers fit the ids."""
    need = max_id + 1
    sizes = [(board.squares_x, board.squares_y), (board.squares_y, board.squares_x)]
    for sx in range(3, 16):
        for sy in range(3, 16):
            if need <= (sx * sy) // 2 <= need + max(2, need // 4):
                sizes.append((sx, sy))
    seen, out = set(), []
    for s in sizes:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def diagnose(frames: list[np.ndarray], board: BoardDefinition) -> BoardMatch | None:
    """The board definition that best explains ``frames``; None when no marker of any kind is seen."""
    best = None  # (markers, family dictionaries, inverted, ids)
    for fam, dicts in FAMILIES:
        if fam.startswith("APRILTAG") and best is not None and best[0] > 0:
            break  # AprilTag detection is slow; only when no ArUco family explains the frames
        for inverted in (False, True):
            ids = [_markers(255 - g if inverted else g, dicts[-1]) for g in frames]
            ids_all = np.concatenate(ids) if ids else np.zeros(0, int)
            if best is None or ids_all.size > best[0]:
                best = (ids_all.size, dicts, inverted, ids_all)
    if best is None or best[0] == 0:
        return None
    n_markers, dicts, inverted, ids = best
    max_id = int(ids.max())
    if board.dictionary in dicts and _dict_size(board.dictionary) > max_id:
        dictionary = board.dictionary
    else:
        dictionary = next(d for d in dicts if _dict_size(d) > max_id)
    # the layout search needs only the frames richest in markers
    per_frame = [_markers(255 - g if inverted else g, dicts[-1]).size for g in frames]
    layout_frames = [frames[i] for i in np.argsort(per_frame)[::-1][:4]]
    candidates = []
    for sx, sy in _layouts(board, max_id):
        for legacy in (board.legacy_pattern, not board.legacy_pattern):
            try:
                cand = replace(board, squares_x=sx, squares_y=sy, dictionary=dictionary, legacy_pattern=legacy,
                               inverted=inverted)
            except ValueError:
                continue
            candidates.append((_count_corners(layout_frames, cand), cand))
    corners, match = max(candidates, key=lambda c: c[0])  # first wins ties: the configured layout
    return BoardMatch(match, int(n_markers), int(corners), np.unique(ids), len(frames))


def _usable_views(det: CameraDetections) -> int:
    return int((det.corner_counts() >= 6).sum())


def check_detections(per_camera: Sequence[CameraDetections], board: BoardDefinition, board_path: str = "the board TOML") -> None:
    """Raise a user-facing error when some camera never finds the configured board, saying why.

    Silent when every camera has :data:`MIN_USABLE_VIEWS` usable frames.  A
    camera that finds the board in a few frames only is left to the later
    stages (their errors name it and say what to record).
    """
    failing = [d for d in per_camera if _usable_views(d) < MIN_USABLE_VIEWS]
    if not failing:
        return
    problems = []
    for det in failing:
        if det.n_frames == 0:
            raise InputFileError(det.source, "no frame could be read")
        order = np.argsort(-det.n_markers, kind="stable")
        pick = order[: SAMPLE_FRAMES] if det.n_markers[order[0]] > 0 else None
        frames = sample_frames(det.source, pick)
        match = diagnose(frames, board)
        if match is None:
            raise InputFileError(
                det.source,
                f"no ChArUco board found in any of its {det.n_frames} frames, and no ArUco marker of any "
                f"dictionary (plain or inverted) in {len(frames)} sampled frames: is the board in this camera's "
                f"view, and is this the right file?",
            )
        changes = match.differences(board)
        if changes and match.corners > 0:
            problems.append((det, match, changes))
            break  # one camera's frames tell what the print is
    if not problems:
        return
    det, match, changes = problems[0]
    who = ", ".join(repr(d.name) for d in failing)
    raise RigcapError(
        f"the board definition does not match the print: camera{'s' if len(failing) > 1 else ''} {who} find no usable board with "
        f"{board.dictionary}, legacy_pattern = {str(board.legacy_pattern).lower()}, inverted = "
        f"{str(board.inverted).lower()}, {board.squares_x} x {board.squares_y} squares. In {match.frames} frames "
        f"of {det.source}: {match.describe()} ({match.corners} corners found that way in {min(4, match.frames)} frames). "
        f"Set in {board_path}: {', '.join(changes)} (and check square_length and marker_length against the print)."
    )
