"""Per-camera intrinsics from ChArUco views: ``cv2.calibrateCamera`` on a well-spread subset.

Which views go in matters more than how many: a hundred views of the board
in the image centre pin the focal length no better than ten, and leave the
distortion at the image edges extrapolated.  Views are picked greedily:

1. a first pass picks views for **image coverage**: each view covers the
   grid cells under the convex hull of its corners; the view adding the
   most uncovered cells wins, ties broken by corner count;
2. a first calibration on those gives each candidate view a board pose; the
   second pass scores coverage again plus **pose diversity** (the angle
   between the view's board normal and the nearest already-picked normal:
   tilted views are what separate focal length from distance).

Views whose reprojection RMS is far above the others (a mis-detected corner)
are dropped and the camera calibrated again.

Lens model (:func:`choose_lens_model`): OpenCV's default ``k1 k2 p1 p2 k3``
when the corners cover enough of the image; simpler ones when they do not.
A board seen only in the image centre leaves the higher-order terms free to
fit noise: on the real caliscope recording (corners on 8-19 % of the image
grid) the full model gave k3 up to +44 and a principal point 234 px off,
and a rig that measured the board worse than one holding caliscope's own
lenses.  Measured there (bench_calibration real section): rigidity 1.02 ->
0.71 mm with the chosen models (caliscope's K held: 0.80), reprojection
1.25 -> 1.39 px (fewer terms); calibrated on every other instant and
measured on the rest: 1.09 / 1.19 -> 0.68 / 0.73 mm.  The thresholds come
from that one recording (8-19 %) and the synthetic studio (51-85 %, full
model, unchanged); cameras between 25 and 40 % are untested on real data.  The same model is used in bundle adjustment (the per-camera mask
:func:`lens_free_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.board import BoardDefinition
from calibration.camera import Camera, rodrigues_to_matrix
from rigcap.errors import RigcapError

GRID = (16, 9)  # coverage grid over the image, columns x rows
COVERAGE_WARNING = 0.5  # warn below this fraction of grid cells with a corner
MIN_CORNERS = 6


# name -> which of fx fy cx cy k1 k2 p1 p2 k3 are estimated (the others: 0, or the image centre)
LENS_MODELS = {
    "full": np.array([1, 1, 1, 1, 1, 1, 1, 1, 1], bool),
    "no-k3": np.array([1, 1, 1, 1, 1, 1, 1, 1, 0], bool),
    "radial": np.array([1, 1, 1, 1, 1, 1, 0, 0, 0], bool),
    "radial-centred": np.array([1, 1, 0, 0, 1, 1, 0, 0, 0], bool),
}
_LENS_FLAGS = {
    "full": 0,
    "no-k3": cv2.CALIB_FIX_K3,
    "radial": cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST,
    "radial-centred": cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_PRINCIPAL_POINT,
}
# coverage (fraction of grid cells holding a corner) at and above which each model is chosen
LENS_COVERAGE = (("full", 0.40), ("no-k3", 0.25), ("radial", 0.15), ("radial-centred", 0.0))


def choose_lens_model(coverage: float) -> tuple[str, str]:
    """The richest lens model the corners' image coverage supports, and why (one line)."""
    for name, least in LENS_COVERAGE:
        if coverage >= least:
            break
    if name == "full":
        return name, f"corners cover {coverage:.0%} of the image: k1 k2 p1 p2 k3"
    held = {"no-k3": "k3 = 0", "radial": "k3 = 0, no tangential terms",
            "radial-centred": "k3 = 0, no tangential terms, principal point at the image centre"}[name]
    return name, f"corners cover only {coverage:.0%} of the image: {held} (higher terms would fit noise)"


def lens_free_mask(model: str) -> np.ndarray:
    """The 9 booleans (fx fy cx cy k1 k2 p1 p2 k3) bundle adjustment refines for ``model``."""
    if model not in LENS_MODELS:
        raise ValueError(f"unknown lens model {model!r} ({', '.join(LENS_MODELS)})")
    return LENS_MODELS[model].copy()


@dataclass
class IntrinsicsResult:
    camera: Camera  # pose left at zero
    rms: float  # px, over the views used
    views: np.ndarray  # frame indices used
    n_candidates: int  # frames with a usable view
    coverage: float  # fraction of grid cells holding a detected corner (all frames)
    warnings: list[str] = field(default_factory=list)
    lens_model: str = "full"  # see LENS_MODELS
    lens_reason: str = ""


def usable_views(corners: np.ndarray, board: BoardDefinition, min_corners: int = MIN_CORNERS) -> np.ndarray:
    """Frames (indices) with enough corners not all on one line of the board."""
    obj = board.corner_points()[:, :2]
    vis = np.isfinite(corners[..., 0])
    out = []
    for f in np.flatnonzero(vis.sum(axis=1) >= min_corners):
        pts = obj[vis[f]]
        sv = np.linalg.svd(pts - pts.mean(axis=0), compute_uv=False)
        if sv[-1] > 0.25 * board.square_length:  # spans two rows and two columns at least
            out.append(f)
    return np.asarray(out, dtype=np.int64)


def _hull_cells(corners_f: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool grid (rows, cols) of the cells under the convex hull of one view's corners."""
    gw, gh = GRID
    pts = corners_f[np.isfinite(corners_f[:, 0])]
    scaled = pts / np.array([size[0] / gw, size[1] / gh])
    # rasterise the hull at 4x the grid resolution, then pool to the grid
    sub = 4
    canvas = np.zeros((gh * sub, gw * sub), np.uint8)
    hull = cv2.convexHull((scaled * sub).astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(canvas, hull, 1)
    return canvas.reshape(gh, sub, gw, sub).max(axis=(1, 3)).astype(bool)


def point_coverage(corners: np.ndarray, size: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Fraction of grid cells that hold at least one detected corner, and the grid."""
    gw, gh = GRID
    pts = corners.reshape(-1, 2)
    pts = pts[np.isfinite(pts[:, 0])]
    grid = np.zeros((gh, gw), bool)
    if pts.size:
        col = np.clip((pts[:, 0] / size[0] * gw).astype(int), 0, gw - 1)
        row = np.clip((pts[:, 1] / size[1] * gh).astype(int), 0, gh - 1)
        grid[row, col] = True
    return float(grid.mean()), grid


def _describe_gaps(grid: np.ndarray) -> str:
    gh, gw = grid.shape
    regions = {
        "left edge": grid[:, : gw // 4], "right edge": grid[:, -(gw // 4):],
        "top edge": grid[: gh // 4], "bottom edge": grid[-(gh // 4):],
    }
    empty = [name for name, cells in regions.items() if cells.mean() < 0.34]
    return f"few corners near the {', '.join(empty)}" if empty else "gaps across the image"


def _normals(rvecs: np.ndarray) -> np.ndarray:
    return rodrigues_to_matrix(rvecs)[..., :, 2]


def select_views(
    corners: np.ndarray,
    size: tuple[int, int],
    candidates: np.ndarray,
    max_views: int,
    rvecs: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy choice of up to ``max_views`` frames from ``candidates``: coverage, then pose diversity."""
    if len(candidates) <= max_views:
        return np.asarray(candidates)
    cells = np.array([_hull_cells(corners[f], size).ravel() for f in candidates])
    counts = np.isfinite(corners[candidates, :, 0]).sum(axis=1).astype(float)
    normals = _normals(rvecs) if rvecs is not None else None
    # how often each cell is already covered: coverage keeps paying off, less each time
    depth = np.zeros(cells.shape[1])
    chosen: list[int] = []
    available = np.ones(len(candidates), bool)
    for _ in range(max_views):
        gain = (cells * (1.0 / (1.0 + depth))).sum(axis=1) / cells.shape[1]
        score = 4.0 * gain + 0.05 * counts / counts.max()
        if normals is not None:
            if chosen:
                cos = np.clip(np.abs(normals @ normals[chosen].T), 0, 1)
                novelty = np.degrees(np.arccos(cos.max(axis=1)))
            else:
                novelty = np.full(len(candidates), 30.0)
            score += np.minimum(novelty, 30.0) / 30.0
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        depth += cells[best]
    return np.asarray(candidates)[np.sort(chosen)]


def _calibrate(corners, frames, board, size, flags, matrix=None, dist=None):
    obj_all = board.corner_points().astype(np.float32)
    objs, imgs = [], []
    for f in frames:
        vis = np.isfinite(corners[f, :, 0])
        objs.append(obj_all[vis].reshape(-1, 1, 3))
        imgs.append(corners[f, vis].astype(np.float32).reshape(-1, 1, 2))
    if matrix is None:
        matrix = cv2.initCameraMatrix2D(objs, imgs, tuple(size))
        dist = np.zeros(5)
    else:
        flags |= cv2.CALIB_USE_INTRINSIC_GUESS
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    rms, k, d, rvecs, tvecs = cv2.calibrateCamera(objs, imgs, tuple(size), matrix.copy(), dist.copy(), flags=flags, criteria=criteria)
    per_view = []
    for o, i, r, t in zip(objs, imgs, rvecs, tvecs):
        proj, _ = cv2.projectPoints(o, r, t, k, d)
        per_view.append(np.sqrt(np.mean(np.sum((proj - i) ** 2, axis=-1))))
    return rms, k, d.ravel(), np.array(rvecs).reshape(-1, 3), np.array(per_view)


_FALLBACK_FLAGS = (0, cv2.CALIB_FIX_K3, cv2.CALIB_FIX_K3 | cv2.CALIB_FIX_K2 | cv2.CALIB_ZERO_TANGENT_DIST)


def _calibrate_safe(corners, frames, board, size, flags, matrix=None, dist=None):
    """:func:`_calibrate`, falling back to simpler lens models (then no starting guess) when
    OpenCV fails or returns a non-positive focal length (few or poorly spread views)."""
    last_exc = None
    for guess in ((matrix, dist), (None, None)) if matrix is not None else ((None, None),):
        for extra in _FALLBACK_FLAGS:
            try:
                out = _calibrate(corners, frames, board, size, flags | extra, *guess)
            except cv2.error as exc:
                last_exc = exc
                continue
            k = out[1]
            if k[0, 0] > 0 and k[1, 1] > 0 and np.isfinite(out[0]):
                return out
    raise RigcapError(f"OpenCV could not calibrate this camera from {len(frames)} views ({last_exc or 'non-positive focal length'})")


def calibrate_intrinsics(
    name: str,
    corners: np.ndarray,
    size: tuple[int, int],
    board: BoardDefinition,
    max_views: int = 40,
    min_corners: int = MIN_CORNERS,
    flags: int = 0,
    lens_model: str = "auto",
) -> IntrinsicsResult:
    """Intrinsics of one camera from its corners ``(F, N, 2)`` (NaN = not detected).

    ``lens_model``: ``"auto"`` (:func:`choose_lens_model` from the corners'
    coverage) or one of :data:`LENS_MODELS`.
    """
    candidates = usable_views(corners, board, min_corners)
    if len(candidates) < 3:
        raise RigcapError(
            f"camera {name!r}: only {len(candidates)} frame(s) show the board with {min_corners}+ corners "
            f"over two rows; intrinsics need at least 3 (better 20+) views, tilted and spread over the image. "
            f"Record the board closer to {name!r}, moving it through the whole image."
        )
    warnings: list[str] = []
    coverage, grid = point_coverage(corners, size)
    if lens_model == "auto":
        lens_model, reason = choose_lens_model(coverage)
    else:
        lens_free_mask(lens_model)
        reason = f"lens model {lens_model} as asked"
    flags |= _LENS_FLAGS[lens_model]
    if coverage < COVERAGE_WARNING:
        warnings.append(
            f"camera {name!r}: the board's corners cover only {coverage:.0%} of the image ({_describe_gaps(grid)}); "
            f"lens distortion is extrapolated there. Record the board in the image corners and edges too, "
            f"or calibrate the lens from its own recording and hold it with --intrinsics RIG."
        )
    # pass 1: coverage only; pass 2: coverage + pose diversity from pass 1's poses
    first = select_views(corners, size, candidates, max(max_views // 2, 3))
    _, k0, d0, _, _ = _calibrate_safe(corners, first, board, size, flags | cv2.CALIB_FIX_K3)
    rvecs = np.zeros((len(candidates), 3))
    obj_all = board.corner_points()
    for j, f in enumerate(candidates):
        vis = np.isfinite(corners[f, :, 0])
        ok, r, _t = cv2.solvePnP(obj_all[vis], corners[f, vis], k0, d0, flags=cv2.SOLVEPNP_IPPE)
        rvecs[j] = r.ravel() if ok else 0.0
    views = select_views(corners, size, candidates, max_views, rvecs)
    rms, k, d, _, per_view = _calibrate_safe(corners, views, board, size, flags, k0, d0)
    # one robust pass: a view far worse than the rest holds a mis-detection
    bad = per_view > max(3.0 * np.median(per_view), 1.0)
    if bad.any() and (~bad).sum() >= 3:
        views = views[~bad]
        rms, k, d, _, per_view = _calibrate_safe(corners, views, board, size, flags, k, d)
    if len(views) < 10:
        warnings.append(f"camera {name!r}: intrinsics from only {len(views)} views; 20+ tilted views give steadier results")
    cam = Camera(name, size, k, d)
    return IntrinsicsResult(cam, float(rms), views, len(candidates), coverage, warnings, lens_model, reason)
