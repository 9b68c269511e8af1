"""ChArUco corner detection: every frame of every camera -> one array of corners.

Output convention (used by every later step): per camera an array
``corners (F, N, 2)`` of sub-pixel corner positions, ``N = board.n_corners``
indexed by ChArUco corner id, NaN where that corner was not found in that
frame.  :class:`Detections` stacks cameras on axis 0 after frames have been
grouped into instants (see :mod:`calibration.sync`).

Detection uses OpenCV's ``CharucoDetector`` (marker detection, corner
interpolation through the markers' homography, then ``cornerSubPix`` on the
chessboard corners), then moves every corner to the saddle point of the
image intensity (:func:`refine_saddle`: OpenCV's window must dodge the
markers and is too small to average noise; measured against exact corners
on rendered frames, RMS 0.32 -> 0.09 px).  A board printed inverted is detected on ``255 - gray``
(more corners than ``detectInvertedMarker`` on the real caliscope recording:
2 029 vs 1 710 over its four cameras).  Cameras run in parallel threads
when there are cores for them (threads: OpenCV releases the GIL); a rich
progress bar counts frames.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from calibration.board import BoardDefinition
from calibration.video_io import FrameSource, open_source
from rigcap.errors import InputFileError, RigcapError

# Marker corners refined on their contours: better seeds for the chessboard corners
# (synthetic studio, 4 cameras: corner error RMS 0.35 -> 0.31 px, p95 0.80 -> 0.57 px; 8 cameras:
# 0.33 -> 0.29, p95 0.66 -> 0.52; board rigidity 1.00 -> 0.90 and 0.80 -> 0.69 mm; caliscope:
# 0.93 -> 0.91 mm) than CORNER_REFINE_SUBPIX.
MARKER_REFINEMENT = cv2.aruco.CORNER_REFINE_CONTOUR


# A board seen mirrored (a webcam set to mirror its image, or a transparent board seen from behind)
# gives OpenCV no marker with a valid id: such frames are detected again on the mirrored image
# (cv2.flip(gray, 1)) and the corners mapped back to the camera's own pixels, x -> (w - 1) - x.
# Tried only where the image itself gave fewer than MIRROR_TRY_BELOW corners, kept only with at
# least MIRROR_MIN_CORNERS (a mirrored marker seldom decodes as a valid one, a whole board never).
MIRROR_TRY_BELOW = 4
MIRROR_MIN_CORNERS = 4


# ---------------------------------------------------------------- one image
class CheckerboardDetector:
    """A plain checkerboard: OpenCV's ``findChessboardCornersSB`` (the whole board must be in view),
    corners put in rigcap's order (row by row from the corner whose outer square is black, as
    :class:`~calibration.board.BoardDefinition` numbers them).

    Why the reordering: OpenCV may return the grid starting from either end (a 180 degree turn
    looks alike), which is harmless for one camera's lens but wrong for extrinsics.  When
    ``squares_x + squares_y`` is odd the two end squares differ in colour, so the darker one says
    where corner 0 is; otherwise the board looks the same turned over and
    :attr:`BoardDefinition.orientation_unique` is false (extrinsics refuse it, saying why).
    """

    def __init__(self, board: BoardDefinition):
        self.board = board

    def detect(self, gray: np.ndarray, inverted: bool = False, saddle: bool = True) -> np.ndarray:
        nx, ny = self.board.inner_corners
        out = np.full((nx * ny, 2), np.nan)
        found, c = cv2.findChessboardCornersSB(gray, (nx, ny), cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found or c is None:
            return out
        c = np.asarray(c, dtype=np.float64).reshape(-1, 2)
        if self.board.orientation_unique:
            blur = cv2.GaussianBlur(gray, (0, 0), 1.0)

            def outer_square(i: int, j: int) -> float:  # grey level half a diagonal beyond corner i
                p = c[i] + 0.5 * (c[i] - c[j])
                x = int(np.clip(round(p[0]), 0, gray.shape[1] - 1))
                y = int(np.clip(round(p[1]), 0, gray.shape[0] - 1))
                return float(blur[y, x])

            first, last = outer_square(0, nx + 1), outer_square(nx * ny - 1, nx * ny - nx - 2)
            if (first > last) != bool(inverted):  # corner 0's outer square is the black one
                c = c[::-1].copy()
        out[:] = c
        if saddle:
            out = refine_saddle(gray, out, (self.board.squares_x, self.board.squares_y))
        return out


def make_detector(board: BoardDefinition, inverted_markers: bool = False):
    if board.is_checkerboard:
        return CheckerboardDetector(board)
    return _charuco_detector(board, inverted_markers)


def _charuco_detector(board: BoardDefinition, inverted_markers: bool = False) -> "cv2.aruco.CharucoDetector":
    """OpenCV's detector for ``board`` with refined marker corners (:data:`MARKER_REFINEMENT`).

    ``inverted_markers`` asks OpenCV to accept white-on-black markers as well
    (used by the board self-check; detection of an ``inverted`` board negates
    the image instead).
    """
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = MARKER_REFINEMENT
    params.detectInvertedMarker = bool(inverted_markers)
    charuco = cv2.aruco.CharucoParameters()
    charuco.tryRefineMarkers = True
    return cv2.aruco.CharucoDetector(board.cv_board(), charuco, params)


def detect_frame_or_mirrored(detector, gray: np.ndarray, n_corners: int, inverted: bool = False,
                             saddle: bool = True) -> tuple[np.ndarray, int, bool]:
    """:func:`detect_frame`, then, when that finds too few corners, the same on the mirrored image.

    Returns corners in ``gray``'s own pixel coordinates either way, the marker
    count and whether the board was found mirrored.  Which physical case a
    mirrored board is (mirrored image or board seen from behind) is decided
    later from the other cameras (:mod:`calibration.mirror`).
    """
    c, m = detect_frame(detector, gray, n_corners, inverted, saddle)
    found = int(np.isfinite(c[:, 0]).sum())
    if found >= MIRROR_TRY_BELOW or isinstance(detector, CheckerboardDetector):  # a checkerboard has no mirror
        return c, m, False
    cf, mf = detect_frame(detector, cv2.flip(gray, 1), n_corners, inverted, saddle)
    found_f = int(np.isfinite(cf[:, 0]).sum())
    if found_f >= MIRROR_MIN_CORNERS and found_f > found:
        cf[:, 0] = (gray.shape[1] - 1) - cf[:, 0]
        return cf, mf, True
    return c, m, False


def detect_frame(detector, gray: np.ndarray, n_corners: int, inverted: bool = False,
                 saddle: bool = True) -> tuple[np.ndarray, int]:
    """Corners ``(N, 2)`` (NaN where missing) and the number of markers found in one frame.

    ``saddle`` (default) re-refines OpenCV's corners as intensity saddle points
    (:func:`refine_saddle`) and drops the corners where the two disagree.
    """
    if isinstance(detector, CheckerboardDetector):
        return detector.detect(gray, inverted, saddle), 0
    if inverted:
        gray = 255 - gray
    corners, ids, _marker_corners, marker_ids = detector.detectBoard(gray)
    out = np.full((n_corners, 2), np.nan)
    if ids is not None and len(ids):
        ids = np.asarray(ids).reshape(-1)
        out[ids] = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
        if saddle:
            out = refine_saddle(gray, out, detector.getBoard().getChessboardSize())
    return out, 0 if marker_ids is None else int(np.asarray(marker_ids).size)


# ------------------------------------------------------- saddle refinement
# Why: OpenCV's ChArUco corners come from cornerSubPix in a window that must stay clear of the
# markers (1 cm from the square edges on a 9 cm board: 2 px at 20 px per square), so the window is
# tiny, and an oblique or sheared board puts marker edges inside it.  Measured on the synthetic
# studio (4 cameras, 1009 corners, true positions known): OpenCV alone RMS 0.32 px, median 0.12,
# p95 0.63, max 1.7; the saddle fit keeps 94 % of the corners at RMS 0.11, median 0.05, p95 0.21.
# A blurred X-junction is point-symmetric about the corner for any symmetric lens blur and any
# perspective shear, so its intensity saddle sits exactly on the corner.
SADDLE_RADIUS_FRACTION = 0.08  # window radius per px of local square size (smallest direction)
SADDLE_RADIUS_PX = (1.5, 6.0)
SADDLE_PRESMOOTH_SIGMA = 0.7  # px: averages sensor noise before the quadratic fit
SADDLE_MAX_DISAGREEMENT_PX = 0.5  # corners moved further than this from OpenCV's are dropped


def local_square_px(corners: np.ndarray, chessboard_size: tuple[int, int]) -> np.ndarray:
    """(N,) smallest singular value of the local image Jacobian, px per board square, at each corner
    (finite differences to neighbouring corners; NaN for a corner with no neighbour in x or y)."""
    sx, sy = chessboard_size
    g = corners.reshape(sy - 1, sx - 1, 2)
    pad = np.full((sy + 1, sx + 1, 2), np.nan)
    pad[1:-1, 1:-1] = g
    with np.errstate(invalid="ignore"):
        fwd_x, bwd_x = pad[1:-1, 2:] - g, g - pad[1:-1, :-2]
        fwd_y, bwd_y = pad[2:, 1:-1] - g, g - pad[:-2, 1:-1]
        jx = np.where(np.isfinite(fwd_x) & np.isfinite(bwd_x), (fwd_x + bwd_x) / 2, np.where(np.isfinite(fwd_x), fwd_x, bwd_x))
        jy = np.where(np.isfinite(fwd_y) & np.isfinite(bwd_y), (fwd_y + bwd_y) / 2, np.where(np.isfinite(fwd_y), fwd_y, bwd_y))
    jac = np.stack([jx, jy], -1).reshape(-1, 2, 2)
    out = np.full(jac.shape[0], np.nan)
    ok = np.isfinite(jac).all(axis=(1, 2))
    if ok.any():
        out[ok] = np.linalg.svd(jac[ok], compute_uv=False)[:, -1]
    return out


def refine_saddle(gray: np.ndarray, corners: np.ndarray, chessboard_size: tuple[int, int],
                  iterations: int = 10) -> np.ndarray:
    """Corners ``(N, 2)`` moved to the saddle point of the (lightly smoothed) intensity.

    Per corner: a Gaussian-weighted quadratic surface fitted in a window of radius
    ``SADDLE_RADIUS_FRACTION`` x the local square size (so it stays inside the marker-free
    cross around the corner), its stationary point taken, repeated until it stops moving.
    Corners whose fit is not a saddle or that end more than ``SADDLE_MAX_DISAGREEMENT_PX``
    from OpenCV's estimate are set to NaN: both methods are unreliable there (measured: the
    worst corners of very oblique boards).  All corners of a frame are fitted at once.
    """
    out = np.array(corners, dtype=np.float64, copy=True)
    ok = np.isfinite(out[:, 0])
    if not ok.any():
        return out
    square = local_square_px(out, chessboard_size)[ok]
    radius = np.clip(SADDLE_RADIUS_FRACTION * np.where(np.isfinite(square), square, 0.0), *SADDLE_RADIUS_PX)
    img = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), SADDLE_PRESMOOTH_SIGMA)
    start = out[ok]
    pts = start.copy()
    r_max = int(np.ceil(radius.max()))
    o = np.arange(-r_max, r_max + 1, dtype=np.float64)
    ox, oy = (a.ravel() for a in np.meshgrid(o, o))
    design = np.stack([ox * ox, ox * oy, oy * oy, ox, oy, np.ones_like(ox)], -1)  # (K, 6)
    r2 = ox**2 + oy**2
    weight = np.exp(-r2[None] / (2 * (radius[:, None] / 1.5) ** 2)) * (r2[None] <= (radius[:, None] + 0.5) ** 2)
    normal = np.einsum("mk,ki,kj->mij", weight, design, design)
    saddle = np.ones(len(pts), bool)
    for _ in range(iterations):
        mx = (pts[:, :1] + ox[None]).astype(np.float32)
        my = (pts[:, 1:] + oy[None]).astype(np.float32)
        values = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float64)
        rhs = np.einsum("mk,ki,mk->mi", weight, design, values)
        a, b, c, d, e = np.linalg.solve(normal, rhs[..., None])[..., 0].T[:5]
        det = 4 * a * c - b * b
        saddle = det < 0
        safe = np.where(saddle, det, -1.0)
        step = np.stack([(-2 * c * d + b * e) / safe, (b * d - 2 * a * e) / safe], -1)
        step[~saddle] = 0.0
        norm = np.linalg.norm(step, axis=1)
        step *= np.minimum(1.0, 0.5 * radius / np.maximum(norm, 1e-12))[:, None]
        pts += step
        if np.abs(step).max() < 1e-3:
            break
    bad = ~saddle | (np.linalg.norm(pts - start, axis=1) > SADDLE_MAX_DISAGREEMENT_PX)
    pts[bad] = np.nan
    out[ok] = pts
    return out


# -------------------------------------------------------------- one camera
@dataclass
class CameraDetections:
    """Everything detected in one camera's input, frame by frame (its own frame numbering)."""

    name: str
    source: str
    size: tuple[int, int]
    corners: np.ndarray  # (F, N, 2) float64, NaN where not found
    n_markers: np.ndarray  # (F,) markers of the board's dictionary found
    mirrored: np.ndarray | None = None  # (F,) bool: the board was found on the mirrored image

    def __post_init__(self) -> None:
        if self.mirrored is None:
            self.mirrored = np.zeros(self.corners.shape[0], dtype=bool)

    @property
    def n_frames(self) -> int:
        return self.corners.shape[0]

    def corner_counts(self) -> np.ndarray:
        return np.isfinite(self.corners[..., 0]).sum(axis=1)


def detect_source(
    source: FrameSource | str | Path,
    board: BoardDefinition,
    on_progress: Callable[[int], None] | None = None,
) -> CameraDetections:
    """Detect the board in every frame of one input."""
    if not isinstance(source, FrameSource):
        source = open_source(source)
    detector = make_detector(board)
    n = board.n_corners
    corners: list[np.ndarray] = []
    markers: list[int] = []
    mirrored: list[bool] = []
    for i, gray in source.frames(gray=True):
        c, m, flipped = detect_frame_or_mirrored(detector, gray, n, board.inverted)
        corners.append(c)
        markers.append(m)
        mirrored.append(flipped)
        if on_progress is not None and (i % 8 == 7):
            on_progress(8)
    if on_progress is not None:
        on_progress(len(corners) % 8)
    return CameraDetections(
        source.name,
        str(source.path),
        source.size,
        np.array(corners, dtype=np.float64).reshape(-1, n, 2),
        np.array(markers, dtype=np.int32),
        np.array(mirrored, dtype=bool),
    )


def detect_all(
    inputs: Sequence[str | Path],
    board: BoardDefinition,
    workers: int | None = None,
    progress: bool = True,
) -> list[CameraDetections]:
    """Detect the board in every input (one camera each), cameras in parallel threads.

    All inputs are opened (and so validated, each error naming its file)
    before any decoding starts.  Threads, not processes: OpenCV releases the
    GIL while decoding and detecting, and a fork after OpenCV has started its
    own thread pool can deadlock the children.
    """
    sources = [open_source(p) for p in inputs]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RigcapError(f"two inputs have the same camera name {dupes[0]!r} (camera name = file or folder stem); rename one")
    if workers is None:
        workers = min(len(sources), os.cpu_count() or 1)
    workers = max(1, min(workers, len(sources)))

    bar = _Bar(sources, enabled=progress)
    with bar:
        if workers == 1:
            return [detect_source(s, board, lambda k, i=i: bar.advance(i, k)) for i, s in enumerate(sources)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(detect_source, s, board, lambda k, i=i: bar.advance(i, k)) for i, s in enumerate(sources)]
            return [f.result() for f in futures]


class _Bar:
    """A rich progress bar with one line per camera (frames detected / frames declared)."""

    def __init__(self, sources: list[FrameSource], enabled: bool):
        self.enabled = enabled
        self.sources = sources
        self.progress = None
        self.tasks: list = []

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("detecting board  {task.description:>12}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("frames"), TimeRemainingColumn(),
            )
            self.progress.__enter__()
            self.tasks = [self.progress.add_task(s.name, total=s.n_frames or None) for s in self.sources]
        return self

    def advance(self, slot: int, k: int) -> None:
        if self.progress is not None and k:
            self.progress.advance(self.tasks[slot], k)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False


# ----------------------------------------------------------- all cameras
@dataclass
class Detections:
    """Board corners of all cameras grouped into instants.

    ``corners[c, k]`` holds camera ``c``'s corners at instant ``k`` (its own
    frame ``frames[c, k]``, -1 where that camera has no frame at that instant).
    """

    names: list[str]
    sizes: list[tuple[int, int]]
    corners: np.ndarray  # (C, F, N, 2)
    frames: np.ndarray  # (C, F) int, -1 = no frame
    n_markers: np.ndarray = field(default=None)  # (C, F)
    sources: list[str] = field(default_factory=list)
    mirrored: np.ndarray = field(default=None)  # (C, F) bool: board found on the mirrored image

    def __post_init__(self) -> None:
        self.corners = np.asarray(self.corners, dtype=np.float64)
        c, f = self.corners.shape[:2]
        if self.n_markers is None:
            self.n_markers = np.zeros((c, f), dtype=np.int32)
        self.mirrored = np.zeros((c, f), dtype=bool) if self.mirrored is None else np.asarray(self.mirrored, bool)
        if len(self.names) != c or len(self.sizes) != c:
            raise ValueError("names and sizes must have one entry per camera (axis 0 of corners)")

    @property
    def n_cameras(self) -> int:
        return self.corners.shape[0]

    @property
    def n_instants(self) -> int:
        return self.corners.shape[1]

    def visible(self) -> np.ndarray:
        """(C, F, N) bool: corner found."""
        return np.isfinite(self.corners[..., 0])

    def counts(self) -> np.ndarray:
        """(C, F) number of corners found."""
        return self.visible().sum(axis=2)

    def subset_instants(self, keep: np.ndarray) -> "Detections":
        return Detections(
            list(self.names), list(self.sizes), self.corners[:, keep], self.frames[:, keep],
            self.n_markers[:, keep], list(self.sources), self.mirrored[:, keep],
        )

    @classmethod
    def from_arrays(cls, corners: np.ndarray, sizes, names=None) -> "Detections":
        """Wrap ``(C, F, N, 2)`` corners already aligned in time (frame k = instant k)."""
        corners = np.asarray(corners, dtype=np.float64)
        c, f = corners.shape[:2]
        names = list(names) if names is not None else [f"cam_{i}" for i in range(c)]
        frames = np.broadcast_to(np.arange(f), (c, f)).copy()
        return cls(names, [tuple(int(v) for v in s) for s in sizes], corners, frames)
