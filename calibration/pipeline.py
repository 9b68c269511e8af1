"""ChArUco recordings -> a bundle-adjusted, metric rig with a report: the calibration API.

Stable entry points (benchmarks and the ``rigcap calibrate`` command call these)::

    calibrate(inputs: list[str | Path], board: BoardDefinition, timestamps: str | Path | None = None,
              *, origin: str | int = "camera0", refine_intrinsics: bool = True, workers: int | None = None,
              progress: bool = True, selfcheck: bool = True, max_views: int = 40,
              max_instants: int | None = 400, board_path: str | Path | None = None,
              intrinsics: Rig | list[Camera] | None = None) -> CalibrationResult

    calibrate_from_detections(detections: Detections | np.ndarray, board: BoardDefinition,
              image_sizes: list[tuple[int, int]] | None = None, names: list[str] | None = None,
              *, origin: str | int = "camera0", refine_intrinsics: bool = True,
              initial_rig: Rig | None = None, intrinsics: Rig | list[Camera] | None = None,
              max_views: int = 40, max_instants: int | None = 400,
              lens_model: str | list[str] = "auto") -> CalibrationResult

* ``inputs``: one video file or image folder per camera (camera name = stem).
* ``timestamps``: caliscope's ``timestamps.csv`` or a folder of rigcap
  per-camera CSVs (see :mod:`calibration.sync`); ``None``: frame i of every
  input is instant i.
* ``detections``: a :class:`~calibration.detect.Detections` or a plain array
  ``corners (C, F, N, 2)`` (pixels, NaN = not found, corner id = ChArUco id,
  instant f the same moment in every camera) with ``image_sizes`` (w, h) per
  camera -- what a benchmark feeds to rigcap and to aniposelib alike.
* ``origin``: ``"camera0"`` (world = camera 0's frame) or an instant index
  at which the board lay face up on the floor (world origin at the board's
  origin corner, z up, x along the board's rows).  Metres throughout (the
  board's ``square_length``).
* ``initial_rig``: start bundle adjustment from this rig (its intrinsics and
  poses) instead of the graph initialisation, e.g. the true rig, to measure
  the best the detections allow.  ``intrinsics``: fixed starting intrinsics
  (skips the per-camera ``calibrateCamera``): a :class:`Rig` (any file
  :func:`calibration.rigfile.load_rig` reads) matched by camera name, or a
  list in camera order; with ``refine_intrinsics=False`` they are held.
* ``lens_model``: ``"auto"`` (default) gives each camera the distortion
  model its corners' image coverage supports
  (:func:`calibration.intrinsics.choose_lens_model`: full ``k1 k2 p1 p2 k3``
  from 40 % of the image grid, k3 = 0 from 25 %, also no tangential terms
  from 15 %, also the principal point at the image centre below), in
  ``calibrateCamera`` and in bundle adjustment alike; or one of
  ``calibration.intrinsics.LENS_MODELS`` for all or per camera.  Each
  camera's model and the reason are in its report and in ``[metadata]``.
  Given ``intrinsics`` refined under a simpler model keep their own values
  of the held terms.
* ``max_instants``: board sightings given to bundle adjustment, evenly
  thinned to at most this many (``None``: all).

:class:`CalibrationResult` holds ``rig`` (the calibrated rig, report in
``rig.metadata["calibration"]``), ``rmse_px`` (name -> px), ``rigidity_rmse_mm``,
``cameras`` (per-camera :class:`~calibration.report.CameraReport`),
``detections``, the board poses in the world frame (``board_rvecs``,
``board_tvecs``, ``instants``), ``bundle`` (the raw bundle-adjustment
result), ``warnings`` and ``seconds`` per stage.

Pipeline: detection (+ board self-check when a camera finds nothing usable)
-> intrinsics per camera from a well-spread subset of views -> board poses by
PnP -> camera graph and best spanning tree -> chained initial poses -> sparse
bundle adjustment with robust loss and outlier trimming -> world frame ->
report (per-camera RMSE, board rigidity).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.board import BoardDefinition
from calibration.bundle_adjust import BundleResult, Observations, bundle_adjust
from calibration.camera import Camera
from calibration.detect import Detections, detect_all
from calibration.extrinsics_init import board_poses, board_poses_world, initial_extrinsics
from calibration.intrinsics import calibrate_intrinsics, choose_lens_model, lens_free_mask, point_coverage
from calibration.mirror import decide_mirrored_images, flip_pixel_frame, flip_pixels, is_mirrored, mirrored_lens
from calibration.report import CameraReport, board_rigidity_mm, metadata
from calibration.rig import Rig
from calibration.sync import group_detections, read_timestamps
from calibration.uncertainty import camera_uncertainty
from calibration.world import frame_from_board, frame_from_camera, still_pose, transform_board_poses, transform_rig
from rigcap.errors import RigcapError


MIN_VIEW_CORNERS = 4
SIGMA_NOTE = ("sigma_*: 1-sigma from the bundle adjustment's covariance, relative to the first camera, worst "
              "direction; a lower bound when the lens model is simpler than the lens (calibration.uncertainty)")


@dataclass
class CalibrationResult:
    rig: Rig
    cameras: list[CameraReport]
    rigidity_rmse_mm: float
    detections: Detections
    instants: np.ndarray  # (K,) instants given to bundle adjustment (index into detections)
    board_rvecs: np.ndarray  # (K, 3) board -> world
    board_tvecs: np.ndarray  # (K, 3)
    bundle: BundleResult
    warnings: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    sigmas: list = field(default_factory=list)  # per camera calibration.uncertainty.CameraUncertainty (BA frame)

    @property
    def rmse_px(self) -> dict[str, float]:
        return {c.name: c.rmse_px for c in self.cameras}

    def board_points_world(self, board: BoardDefinition) -> np.ndarray:
        """(K, N, 3) the board's corners at every adjusted sighting, world metres."""
        from calibration.camera import rodrigues_to_matrix

        rb = rodrigues_to_matrix(self.board_rvecs)
        return np.einsum("kij,nj->kni", rb, board.corner_points()) + self.board_tvecs[:, None, :]


# ------------------------------------------------------------------ inputs
def _as_detections(detections, image_sizes, names) -> Detections:
    if isinstance(detections, Detections):
        return detections
    corners = np.asarray(detections, dtype=np.float64)
    if corners.ndim != 4 or corners.shape[-1] != 2:
        raise ValueError(f"corners must have shape (C, F, N, 2), got {corners.shape}")
    if image_sizes is None:
        raise ValueError("image_sizes (width, height per camera) are needed with a plain corner array")
    return Detections.from_arrays(corners, image_sizes, names)


#: image sizes within this fraction per side are padding or a crop of a few pixels (a Qualisys export
#: says 1088 where the video is 1080): a warning; beyond it, another resolution: an error
SIZE_PADDING_FRACTION = 0.02


def _match_intrinsics(intrinsics: Rig | Sequence[Camera], det: Detections, warnings: list[str]) -> list[Camera]:
    """Copies of ``intrinsics``' cameras in ``det``'s order: by name for a :class:`Rig`, by position for a list.

    Lens parameters only mean something at the resolution they were
    calibrated at: a camera whose image size differs by a few pixels
    (:data:`SIZE_PADDING_FRACTION`) gets a warning in ``warnings`` naming both
    sizes, one at another resolution is an error.
    """
    if isinstance(intrinsics, Rig):
        missing = [n for n in det.names if n not in intrinsics.names]
        if missing:
            raise RigcapError(
                f"intrinsics rig has no camera named {', '.join(map(repr, missing))} "
                f"(it has {', '.join(map(repr, intrinsics.names))}); name the inputs as the rig names its cameras"
            )
        cams = [intrinsics[n].copy() for n in det.names]
    else:
        cams = [c.copy() for c in intrinsics]
        if len(cams) != det.n_cameras:
            raise ValueError(f"{len(cams)} starting intrinsics for {det.n_cameras} cameras")
    from calibration.rig import size_mismatch_warnings

    for c, n, size in zip(cams, det.names, det.sizes):
        if c.size is None or tuple(c.size) == tuple(size):
            continue
        rel = np.abs(np.array(c.size, float) - np.array(size, float)) / np.array(size, float)
        if (rel > SIZE_PADDING_FRACTION).any():
            raise RigcapError(f"intrinsics were calibrated at another image size: {n!r} {tuple(c.size)} vs "
                              f"{tuple(size)} (rig vs recording)")
        probe = Rig([Camera(n, c.size, c.matrix)])
        warnings.extend(w + " (intrinsics used as they are)" for w in
                        size_mismatch_warnings(probe, {n: tuple(size)}, "the recording"))
    return cams


def _lens_models(lens_model, coverage: np.ndarray, n_cams: int) -> list[tuple[str, str]]:
    """(model, reason) per camera: ``"auto"`` chooses from each camera's corner coverage."""
    asked = [lens_model] * n_cams if isinstance(lens_model, str) else list(lens_model)
    if len(asked) != n_cams:
        raise ValueError(f"{len(asked)} lens models for {n_cams} cameras")
    out = []
    for m, cov in zip(asked, coverage):
        if m == "auto":
            out.append(choose_lens_model(float(cov)))
        else:
            lens_free_mask(m)  # validates the name
            out.append((m, f"lens model {m} as asked"))
    return out


def _thin(instants: np.ndarray, max_instants: int | None) -> np.ndarray:
    if max_instants is None or instants.size <= max_instants:
        return instants
    pick = np.unique(np.round(np.linspace(0, instants.size - 1, max_instants)).astype(int))
    return instants[pick]


# ---------------------------------------------------------------- pipeline
@dataclass
class _Lenses:
    """Step 1's result: a starting camera per view of the rig, in unflipped pixels, and how it was chosen."""

    cameras: list[Camera]
    corners: np.ndarray  # (C, T, N, 2) in the cameras' unflipped pixels
    coverage: np.ndarray  # (C,) image coverage of the corners
    models: list  # (C,) (lens model, reason)
    intrinsics_rms: np.ndarray  # (C,) calibrateCamera RMS (NaN: lenses given)
    mirror: object  # calibration.mirror decision


def _starting_lenses(det: Detections, corners: np.ndarray, board: BoardDefinition, lens_model, initial_rig,
                     intrinsics, max_views: int, warnings: list[str]) -> _Lenses:
    """1. intrinsics, each camera with the lens model its corners' coverage supports; mirrored cameras resolved."""
    n_cams = det.n_cameras
    intr_rms = np.full(n_cams, np.nan)
    coverage = np.array([point_coverage(corners[c], det.sizes[c])[0] for c in range(n_cams)])
    models = _lens_models(lens_model, coverage, n_cams)
    if initial_rig is not None:
        cams = [initial_rig[n].copy() if n in initial_rig.names else initial_rig[i].copy() for i, n in enumerate(det.names)]
    elif intrinsics is not None:
        cams = _match_intrinsics(intrinsics, det, warnings)
    else:
        cams = []
        for c in range(n_cams):
            res = calibrate_intrinsics(det.names[c], corners[c], det.sizes[c], board, max_views=max_views,
                                       lens_model=models[c][0])
            cams.append(res.camera)
            intr_rms[c] = res.rms
            warnings.extend(res.warnings)
    for cam, name, size in zip(cams, det.names, det.sizes):
        cam.name, cam.size = name, tuple(size)
    # a camera that found the board mirrored: mirrored image or board seen from behind (calibration.mirror);
    # from here to the world frame, mirrored-image cameras work in unflipped pixels with an ordinary lens
    known = np.array([is_mirrored(cam) for cam in cams])
    corners = corners.copy()
    for c in np.flatnonzero(known):
        cams[c] = flip_pixel_frame(cams[c])
        corners[c] = flip_pixels(corners[c], det.sizes[c][0])
    mirror = decide_mirrored_images(corners, det.mirrored, cams, board, det.names, known)
    for c in np.flatnonzero(mirror.image_mirrored & ~known):
        cams[c] = mirrored_lens(cams[c])
        corners[c] = flip_pixels(corners[c], det.sizes[c][0])
    warnings.extend(mirror.notes[c] for c in sorted(mirror.notes))
    return _Lenses(cams, corners, coverage, models, intr_rms, mirror)


def _starting_rig(cams: list[Camera], corners: np.ndarray, board: BoardDefinition, from_initial_rig: bool):
    """2. board poses per view, camera graph, initial extrinsics: (cameras, world_from_board rvecs, tvecs)."""
    poses = board_poses(corners, cams, board)
    if from_initial_rig:
        return (cams, *board_poses_world(cams, poses))
    init = initial_extrinsics(cams, poses)
    return init.cameras, init.board_rvecs, init.board_tvecs


def _adjusted_instants(board_rvecs: np.ndarray, origin, max_instants: int | None) -> np.ndarray:
    """The instants bundle adjustment uses: those with a board pose, thinned, never without the floor sighting."""
    instants = _thin(np.flatnonzero(np.isfinite(board_rvecs[:, 0])), max_instants)
    if origin not in ("camera0", None) and np.isfinite(board_rvecs[int(origin), 0]) and int(origin) not in instants:
        instants = np.sort(np.append(instants, int(origin)))
    if instants.size == 0:
        raise RigcapError("no instant has a usable board pose in any camera; nothing to calibrate")
    return instants


def _to_world(ba: BundleResult, instants: np.ndarray, board_rvecs_start: np.ndarray, origin, image_mirrored):
    """4. the world frame (camera 0's, or the board on the floor), back in the pixels as recorded.

    Returns the rig and the world_from_board poses of the adjusted instants.
    """
    rig = Rig(ba.cameras)
    if origin == "camera0" or origin is None:
        r_new_old, t_new_old = frame_from_camera(rig, 0)
    else:
        k = np.flatnonzero(instants == int(origin))
        if k.size == 0:
            seen = np.flatnonzero(np.isfinite(board_rvecs_start[:, 0]))
            raise RigcapError(
                f"origin instant {origin}: no camera has a usable board pose there (instants with one: "
                f"{', '.join(map(str, seen[:10]))}{' ...' if seen.size > 10 else ''})"
            )
        r_new_old, t_new_old = frame_from_board(*still_pose(ba.board_rvecs, ba.board_tvecs, int(k[0])))
    rig = transform_rig(rig, r_new_old, t_new_old)
    board_rvecs, board_tvecs = transform_board_poses(ba.board_rvecs, ba.board_tvecs, r_new_old, t_new_old)
    rig = Rig([flip_pixel_frame(cam) if m else cam for cam, m in zip(rig.cameras, image_mirrored)],
              rig.metadata)  # back to the pixels as recorded: fx < 0
    return rig, board_rvecs, board_tvecs


def _camera_reports(det: Detections, lenses: _Lenses, obs: Observations, ba: BundleResult, sigmas,
                    warnings: list[str], lenses_held: bool) -> list[CameraReport]:
    """5. one report row per camera: reprojection error, views, inliers, lens model, mirror, uncertainty."""
    reports = []
    corners, mirror = lenses.corners, lenses.mirror
    for c in range(det.n_cameras):
        mine = obs.cam == c
        inl = mine & ba.inliers
        rmse = float(np.sqrt(np.mean(ba.errors[inl] ** 2))) if inl.any() else float("nan")
        cam_warn = [w for w in warnings if f"{det.names[c]!r}" in w]
        model, reason = ("held", "lens parameters given and held") if lenses_held else lenses.models[c]
        reports.append(CameraReport(
            det.names[c], rmse, int(np.isfinite(corners[c, :, :, 0]).any(axis=1).sum()), int(inl.sum()),
            int((mine & ~ba.inliers).sum()), float(lenses.coverage[c]), float(lenses.intrinsics_rms[c]), cam_warn,
            model, reason, bool(mirror.image_mirrored[c]),
            int((mirror.back_views[c] & np.isfinite(corners[c, :, :, 0]).any(axis=1)).sum()),
            sigmas[c].position_mm, sigmas[c].orientation_deg, sigmas[c].focal_pct,
        ))
    return reports


def calibrate_from_detections(
    detections: Detections | np.ndarray,
    board: BoardDefinition,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    names: Sequence[str] | None = None,
    *,
    origin: str | int = "camera0",
    refine_intrinsics: bool = True,
    initial_rig: Rig | None = None,
    intrinsics: Rig | Sequence[Camera] | None = None,
    max_views: int = 40,
    max_instants: int | None = 400,
    lens_model: str | Sequence[str] = "auto",
) -> CalibrationResult:
    """Calibrate a rig from grouped corner detections (see the module docstring), in five named steps."""
    det = _as_detections(detections, image_sizes, names)
    if not board.orientation_unique and det.n_cameras > 1:
        raise RigcapError(
            f"a {board.squares_x} x {board.squares_y} checkerboard looks the same turned by "
            f"{'90' if board.squares_x == board.squares_y else '180'} degrees, so two cameras cannot tell which "
            "corner is which: use a checkerboard with squares_x != squares_y and squares_x + squares_y odd, or a "
            "ChArUco board, for extrinsics (any checkerboard works with --intrinsics-only)")
    # a view with a corner or three is most often a stray marker's interpolation, and
    # constrains little anyway: calibration uses views with MIN_VIEW_CORNERS or more
    corners_recorded = np.where((det.counts() >= MIN_VIEW_CORNERS)[:, :, None, None], det.corners, np.nan)
    seconds: dict = {}
    warnings: list[str] = []

    t0 = time.perf_counter()
    lenses = _starting_lenses(det, corners_recorded, board, lens_model, initial_rig, intrinsics, max_views, warnings)
    seconds["intrinsics"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    start, b_r, b_t = _starting_rig(lenses.cameras, lenses.corners, board, initial_rig is not None)
    seconds["initialisation"] = time.perf_counter() - t1

    # 3. bundle adjustment over the instants with a board pose, then its uncertainty
    t2 = time.perf_counter()
    instants = _adjusted_instants(b_r, origin, max_instants)
    obs = Observations.from_corners(lenses.corners, instants)
    free = np.array([lens_free_mask(m) for m, _ in lenses.models])
    ba = bundle_adjust(start, b_r[instants], b_t[instants], board.corner_points(), obs,
                       refine_intrinsics=refine_intrinsics, intrinsics_free=free)
    seconds["bundle_adjustment"] = time.perf_counter() - t2
    t_u = time.perf_counter()
    inl = obs.subset(ba.inliers)
    sigmas = camera_uncertainty(ba.cameras, ba.board_rvecs, ba.board_tvecs, board.corner_points(), inl.cam,
                                inl.board, inl.corner, inl.uv, free if refine_intrinsics else None)
    seconds["uncertainty"] = time.perf_counter() - t_u

    rig, board_rvecs, board_tvecs = _to_world(ba, instants, b_r, origin, lenses.mirror.image_mirrored)

    t3 = time.perf_counter()
    rigidity, _ = board_rigidity_mm(rig, corners_recorded[:, instants], board)
    lenses_held = not refine_intrinsics and (initial_rig is not None or intrinsics is not None)
    reports = _camera_reports(det, lenses, obs, ba, sigmas, warnings, lenses_held)
    seconds["report"] = time.perf_counter() - t3
    rig.metadata["calibration"] = metadata(reports, rigidity, {
        "board": board.to_dict(),
        "origin": "camera0" if origin in ("camera0", None) else f"board on the floor at instant {int(origin)}",
        "refine_intrinsics": bool(refine_intrinsics),
        "board_sightings": int(instants.size),
        "units": "metres",
        "sigma_note": SIGMA_NOTE,
    })
    return CalibrationResult(rig, reports, rigidity, det, instants, board_rvecs, board_tvecs, ba, warnings, seconds,
                             sigmas)


def detect_inputs(
    inputs: Sequence[str | Path],
    board: BoardDefinition,
    timestamps: str | Path | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    selfcheck: bool = True,
    board_path: str | Path | None = None,
) -> Detections:
    """Detect the board in every input and group frames into instants.

    A camera in which the board is never usable (fewer than 3 frames with
    corners) is checked against other board definitions
    (:mod:`calibration.selfcheck`), and the error says which one fits.
    """
    per_camera = detect_all(inputs, board, workers=workers, progress=progress)
    if selfcheck and not board.is_checkerboard:  # the self-check reads markers; a checkerboard has none
        from calibration.selfcheck import check_detections

        check_detections(per_camera, board, str(board_path) if board_path else "the board TOML")
    frames = read_timestamps(timestamps, [d.name for d in per_camera]) if timestamps is not None else None
    return group_detections(per_camera, frames)


def calibrate(
    inputs: Sequence[str | Path],
    board: BoardDefinition,
    timestamps: str | Path | None = None,
    *,
    origin: str | int = "camera0",
    refine_intrinsics: bool = True,
    workers: int | None = None,
    progress: bool = True,
    selfcheck: bool = True,
    max_views: int = 40,
    max_instants: int | None = 400,
    board_path: str | Path | None = None,
    intrinsics: Rig | Sequence[Camera] | None = None,
) -> CalibrationResult:
    """Calibrate a rig from one board recording per camera (see the module docstring).

    ``board_path``: where ``board`` was read from, so a board self-check
    error names the file to edit.
    """
    t0 = time.perf_counter()
    det = detect_inputs(inputs, board, timestamps, workers=workers, progress=progress, selfcheck=selfcheck,
                        board_path=board_path)
    t_det = time.perf_counter() - t0
    result = calibrate_from_detections(det, board, origin=origin, refine_intrinsics=refine_intrinsics,
                                       intrinsics=intrinsics, max_views=max_views, max_instants=max_instants)
    result.seconds = {"detection": t_det, **result.seconds}
    return result
