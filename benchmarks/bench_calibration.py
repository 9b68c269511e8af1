"""Calibration benchmark: rigcap vs aniposelib on the same detections, against ground truth.

    .venv/bin/python benchmarks/bench_calibration.py               # 4-cam and 8-cam synthetic + real caliscope
    .venv/bin/python benchmarks/bench_calibration.py --quick       # fewer frames (a first look)
    .venv/bin/python benchmarks/bench_calibration.py --only real   # just the real recording
    .venv/bin/python benchmarks/bench_calibration.py --only coverage   # are the reported sigmas honest (20 seeds)

Synthetic rigs (the studio of :mod:`rigcap.studio`): board recordings are
rendered (lens distortion, blur, noise, uneven light) and the board detected
with rigcap's detector (:mod:`calibration.detect`); the detections are cached
(``--cache``) so reruns only calibrate.  Every method gets the SAME detections:

* ``rigcap``: :func:`calibration.pipeline.calibrate_from_detections`.
* ``rigcap BA from truth``: the same bundle adjustment started from the true
  rig: the best these detections allow.
* ``aniposelib``: ``CameraGroup.calibrate_rows`` (its own intrinsic init:
  ``initCameraMatrix2D``, no distortion, then its iterative bundle
  adjustment of extrinsics, one focal length and k1), as anipose runs it.
* ``aniposelib fixed K``: the same, started from and keeping rigcap's
  per-camera OpenCV intrinsics (``only_extrinsics=True``): its extrinsics
  machinery without its intrinsics model.
* ``BA from truth, true K``: an oracle: bundle adjustment of the extrinsics
  only, the true intrinsics held.  The gap between it and ``rigcap BA from
  truth`` is what the lens parameters cost when the recording alone has to
  determine them (a waved board seldom reaches the image corners).
* ``rigcap + close-ups`` / ``aniposelib + close-ups``: the recording plus an
  intrinsic session per camera (``--closeups`` frames of the board held 1.3-2.2
  m in front of that camera alone, swept to the image edges, tilted), all
  given to one calibration, as a person would record them.

Columns (truth comparison after a similarity alignment of each rig to the
true world frame on camera centres and optical axes; the fitted scale is
reported, not hidden): camera centre error mm (mean / max), rotation error deg
(max), focal error % (max), scale error %, board rigidity RMSE mm (every
corner pair of every triangulated board against the printed geometry; a wrong
scale or a bent rig shows here, whatever the pixel error), reprojection RMSE
px (corners triangulated from all views and reprojected), wall time s.

The 8-camera rig is the hard case: the board faces one side of the ring at a
time, so no frame shows it to every camera.

Real recording (``../shared/data/caliscope-charuco-4cam``, skipped when
absent): rigcap's calibration vs caliscope's own ``camera_array.toml`` on the
same detections: reprojection RMSE, rigidity, and the camera-position
differences after similarity alignment.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from calibration.board import BoardDefinition  # noqa: E402
from calibration.camera import Camera  # noqa: E402
from calibration.detect import Detections, detect_frame, make_detector  # noqa: E402
from calibration.rig import Rig  # noqa: E402
from calibration.rigfile import load_rig, save_rig  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
CALISCOPE_BOARD = BoardDefinition(4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)


# ====================================================================== data
def code_stamp() -> str:
    """A short hash of the detector's and the renderer's source: cached detections go stale when either changes."""
    import hashlib

    h = hashlib.sha1()
    for rel in ("calibration/detect.py", "calibration/board.py", "rigcap/studio/board_video.py",
                "rigcap/studio/board_motion.py", "rigcap/studio/studio_rig.py", "rigcap/studio/scene.py"):
        path = REPO / rel
        h.update(path.read_bytes() if path.is_file() else rel.encode())
    return h.hexdigest()[:8]


def synthetic_detections(n_cameras: int, hard: bool, n_frames: int, seed: int, cache: Path):
    """Render a board recording in memory and detect it; cached as npz + the true rig."""
    from rigcap.studio.board_motion import board_trajectory
    from rigcap.studio.board_video import STUDIO_BOARD, BoardRenderer
    from rigcap.studio.studio_rig import make_studio_rig

    key = f"{n_cameras}cam_{'hard' if hard else 'normal'}_{n_frames}f_seed{seed}_{code_stamp()}"
    npz, rig_path = cache / f"{key}.npz", cache / f"{key}_rig_true.toml"
    board = STUDIO_BOARD
    if npz.is_file() and rig_path.is_file():
        data = np.load(npz)
        rig = load_rig(rig_path)
        det = Detections.from_arrays(data["corners"], [c.size for c in rig], rig.names)
        return det, rig, board, data["rvecs"], data["tvecs"], float(data["render_s"])
    rig = make_studio_rig(n_cameras, seed=seed)
    rvecs, tvecs = board_trajectory(n_frames, seed, board, mode="hard" if hard else "normal")
    renderer = BoardRenderer(rig, board, seed=seed)
    detector = make_detector(board)
    corners = np.full((n_cameras, n_frames, board.n_corners, 2), np.nan)
    t0 = time.perf_counter()
    for f in range(n_frames):
        for c in range(n_cameras):
            gray = cv2.cvtColor(renderer.render(c, rvecs[f], tvecs[f], f), cv2.COLOR_BGR2GRAY)
            corners[c, f] = detect_frame(detector, gray, board.n_corners, board.inverted)[0]
        if (f + 1) % 20 == 0:
            print(f"  {key}: rendered and detected {f + 1}/{n_frames} frames ({time.perf_counter() - t0:.0f} s)", flush=True)
    render_s = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz, corners=corners, rvecs=rvecs, tvecs=tvecs, render_s=render_s)
    save_rig(rig, rig_path)
    return Detections.from_arrays(corners, [c.size for c in rig], rig.names), rig, board, rvecs, tvecs, render_s


def closeup_poses(cam: Camera, board: BoardDefinition, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Board->world poses of an intrinsic session for one camera: the board held 1.3-2.2 m in front of it,
    its centre swept over a grid of image positions out to the edges, tilted up to ~35 degrees
    (what a person does for a per-camera intrinsic calibration)."""
    from scipy.spatial.transform import Rotation

    from rigcap.studio.board_motion import board_rotation

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A7, len(cam.name)]))
    w, h = cam.size
    grid = np.array([(u, v) for v in (0.2, 0.5, 0.8) for u in (0.15, 0.38, 0.62, 0.85)])
    uv = grid[np.arange(n) % len(grid)] * [w, h] + rng.normal(0, 0.03, (n, 2)) * [w, h]
    rays = cam.undistort(uv)  # normalised, so the board lands where asked despite distortion
    depth = rng.uniform(1.3, 2.2, n)
    centres = cam.center + (np.concatenate([rays, np.ones((n, 1))], 1) * depth[:, None]) @ cam.R
    to_cam = cam.center - centres
    to_cam /= np.linalg.norm(to_cam, axis=1, keepdims=True)
    tilt = Rotation.from_rotvec(rng.normal(0, 0.35, (n, 3)) * [1, 1, 0.3]).as_matrix()
    face = np.einsum("fij,fj->fi", tilt, to_cam)
    rot = board_rotation(face, rng.uniform(-0.4, 0.4, n))
    half = np.array([board.size_m[0] / 2, board.size_m[1] / 2, 0.0])
    return Rotation.from_matrix(rot).as_rotvec(), centres - rot @ half


def closeup_detections(rig: Rig, board: BoardDefinition, n_per_camera: int, seed: int, key: str,
                       cache: Path) -> np.ndarray:
    """Corners ``(C, C * n, N, 2)`` of one intrinsic session per camera (only that camera sees its frames)."""
    from rigcap.studio.board_video import BoardRenderer

    npz = cache / f"{key}_closeups{n_per_camera}.npz"
    if npz.is_file():
        return np.load(npz)["corners"]
    renderer = BoardRenderer(rig, board, seed=seed + 101)
    detector = make_detector(board)
    n_c = len(rig)
    corners = np.full((n_c, n_c * n_per_camera, board.n_corners, 2), np.nan)
    for c, cam in enumerate(rig):
        rvecs, tvecs = closeup_poses(cam, board, n_per_camera, seed)
        for k in range(n_per_camera):
            gray = cv2.cvtColor(renderer.render(c, rvecs[k], tvecs[k], 10_000 + k), cv2.COLOR_BGR2GRAY)
            corners[c, c * n_per_camera + k] = detect_frame(detector, gray, board.n_corners, board.inverted)[0]
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz, corners=corners)
    return corners


def with_closeups(det: Detections, closeups: np.ndarray) -> Detections:
    """The recording plus the per-camera sessions as extra instants (each seen by one camera)."""
    corners = np.concatenate([det.corners, closeups], axis=1)
    return Detections.from_arrays(corners, det.sizes, det.names)


def caliscope_detections(root: Path, step: int = 1) -> Detections:
    """Detect the (inverted) board in the real caliscope recording, frames grouped by ``sync_index``."""
    from calibration.sync import frames_from_caliscope

    names = [f"cam_{i}" for i in range(4)]
    frames = frames_from_caliscope(root / "extrinsic" / "timestamps.csv", names)[:, ::step]
    detector = make_detector(CALISCOPE_BOARD)
    n = CALISCOPE_BOARD.n_corners
    corners = np.full((4, frames.shape[1], n, 2), np.nan)
    sizes = []
    for c, name in enumerate(names):
        cap = cv2.VideoCapture(str(root / "extrinsic" / f"{name}.mp4"))
        sizes.append((int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))
        where = {int(fi): k for k, fi in enumerate(frames[c]) if fi >= 0}
        i = 0
        while where:
            ok, img = cap.read()
            if not ok:
                break
            if i in where:
                gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
                corners[c, where.pop(i)] = detect_frame(detector, gray, n, inverted=True)[0]
            i += 1
        cap.release()
    det = Detections(names, sizes, corners, frames)
    return det


# ================================================================== methods
def run_rigcap(det: Detections, board: BoardDefinition, initial_rig: Rig | None = None, **kwargs):
    """rigcap's calibration on these detections; ``initial_rig`` starts bundle adjustment there;
    other keywords go to :func:`calibration.pipeline.calibrate_from_detections`."""
    try:
        from calibration.pipeline import calibrate_from_detections
    except ImportError as exc:  # calib-core's API not landed in this checkout
        return None, float("nan"), f"rigcap pipeline unavailable ({exc})"
    t0 = time.perf_counter()
    if initial_rig is not None:
        kwargs["initial_rig"] = initial_rig
    res = calibrate_from_detections(det, board, **kwargs)
    return res.rig, time.perf_counter() - t0, ""


def run_ba_from_truth_direct(det, board, rig_true, rvecs, tvecs, refine_intrinsics: bool = True):
    """Bundle adjustment from the true rig and true board poses.

    With ``refine_intrinsics=False`` the true intrinsics are held: an oracle
    bound on what the extrinsics alone can reach from these detections.
    """
    from calibration.bundle_adjust import Observations, bundle_adjust

    t0 = time.perf_counter()
    instants = np.flatnonzero((det.counts() >= 6).any(axis=0))
    obs = Observations.from_corners(det.corners, instants)
    res = bundle_adjust([c.copy() for c in rig_true], rvecs[instants], tvecs[instants], board.corner_points(), obs,
                        refine_intrinsics=refine_intrinsics)
    return Rig(res.cameras), time.perf_counter() - t0, ""


def _anipose_rows(det: Detections, min_corners: int = 6) -> list[list[dict]]:
    rows = []
    for c in range(det.n_cameras):
        cam_rows = []
        for k in range(det.n_instants):
            seen = np.flatnonzero(np.isfinite(det.corners[c, k, :, 0]))
            if seen.size < min_corners:
                continue
            cam_rows.append({"framenum": (0, int(k)), "corners": det.corners[c, k, seen].astype(np.float32).reshape(-1, 1, 2),
                             "ids": seen.astype(np.int32).reshape(-1, 1)})
        rows.append(cam_rows)
    return rows


def _anipose_board(board: BoardDefinition):
    from aniposelib.boards import CharucoBoard

    bits, size = board.dictionary.split("_")[1], board.dictionary.split("_")[2]
    if board.legacy_pattern:
        raise ValueError("aniposelib builds non-legacy ChArUco boards only")
    return CharucoBoard(board.squares_x, board.squares_y, board.square_length, board.marker_length,
                        marker_bits=int(bits[0]), dict_size=int(size))


def run_aniposelib(det: Detections, board: BoardDefinition, fixed_intrinsics: Rig | None = None):
    """aniposelib's ``calibrate_rows`` on the same corners (stdout of its verbose parts swallowed)."""
    try:
        from aniposelib.cameras import Camera as ACamera, CameraGroup
    except ImportError as exc:
        return None, float("nan"), f"aniposelib unavailable ({exc})"
    cams = []
    for c, (name, size) in enumerate(zip(det.names, det.sizes)):
        if fixed_intrinsics is not None:
            ref = fixed_intrinsics[c]
            cams.append(ACamera(name=name, size=size, matrix=ref.matrix.copy(), dist=ref.dist[:5].copy()))
        else:
            cams.append(ACamera(name=name, size=size))
    group = CameraGroup(cams)
    board_a = _anipose_board(board)
    rows = [board_a.fill_points_rows(r) for r in _anipose_rows(det)]  # init_intrinsics=False skips this step
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if fixed_intrinsics is None:
                group.calibrate_rows(rows, board_a, init_intrinsics=True, init_extrinsics=True,
                                     verbose=False)
            else:
                group.calibrate_rows(rows, board_a, init_intrinsics=False, init_extrinsics=True,
                                     verbose=False, only_extrinsics=True)
    except Exception as exc:  # a failure is a result here, not a crash of the benchmark
        return None, time.perf_counter() - t0, f"aniposelib failed: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    out = []
    for ac, name, size in zip(group.cameras, det.names, det.sizes):
        dist = np.asarray(ac.get_distortions(), float).ravel()
        dist = np.concatenate([dist, np.zeros(max(0, 5 - dist.size))])[:5]
        out.append(Camera(name, size, np.asarray(ac.get_camera_matrix(), float), dist,
                          np.asarray(ac.get_rotation(), float).ravel(), np.asarray(ac.get_translation(), float).ravel()))
    return Rig(out), seconds, ""


def opencv_intrinsics(det: Detections, board: BoardDefinition) -> Rig:
    """Per-camera OpenCV intrinsics (rigcap's view selection), extrinsics left at zero."""
    from calibration.intrinsics import calibrate_intrinsics

    return Rig([calibrate_intrinsics(det.names[c], det.corners[c], det.sizes[c], board).camera
                for c in range(det.n_cameras)])


# ================================================================== metrics
def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: ``s, A, b`` minimising ``|s A src + b - dst|``."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(xd.T @ xs / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    a = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / (xs**2).sum(1).mean())
    return s, a, mu_d - s * a @ mu_s


def align_rig(rig: Rig, reference: Rig) -> tuple[Rig, float]:
    """``rig`` moved into ``reference``'s frame by the similarity fitted on camera centres and on points
    along each optical axis (at the rig's own RMS radius, so they correspond under any scale).

    Returns the moved rig (its cameras' lengths rescaled, so centres compare in metres) and the scale.
    """
    ref = reference.subset(rig.names)

    def anchors(r):
        radius = np.sqrt(((r.centers - r.centers.mean(0)) ** 2).sum(1).mean())
        return np.concatenate([r.centers, r.centers + radius * np.array([c.R[2] for c in r])])

    s, a, b = similarity(anchors(rig), anchors(ref))
    moved = []
    for cam in rig:
        new = cam.copy()
        new.R = cam.R @ a.T  # x_cam = R x_est + t, x_est = A^T (x - b) / s
        new.tvec = s * cam.tvec - new.R @ b  # scale the camera frame so it is metric in the reference world
        moved.append(new)
    return Rig(moved), s


def compare(rig: Rig, truth: Rig) -> dict:
    moved, s = align_rig(rig, truth)
    ref = truth.subset(rig.names)
    centre = np.linalg.norm(moved.centers - ref.centers, axis=1) * 1000
    tr = np.einsum("cij,cij->c", np.array([c.R for c in moved]), np.array([c.R for c in ref]))
    rot = np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))
    f = np.array([c.focal for c in rig]).mean(1)
    f_ref = np.array([c.focal for c in ref]).mean(1)
    return {"centre_mean": centre.mean(), "centre_max": centre.max(), "rot_max": rot.max(),
            "focal_max": (np.abs(f - f_ref) / f_ref * 100).max(), "scale_pct": (1 / s - 1) * 100,
            "centres_mm": centre}


def check_alignment() -> None:
    """The metric's own check: a rig moved by a known similarity compares as identical, its scale reported."""
    from scipy.spatial.transform import Rotation

    from rigcap.studio.studio_rig import make_studio_rig

    truth = make_studio_rig(4, seed=1)
    a, s, b = Rotation.from_rotvec([0.3, -0.2, 1.0]).as_matrix(), 0.8, np.array([0.5, -2.0, 3.0])
    moved = truth.copy()
    for cam, ref in zip(moved, truth):  # the same cameras in a world x' = A^T (x - b) / s
        cam.R = ref.R @ a
        cam.tvec = (ref.tvec + ref.R @ b) / s
    m = compare(moved, truth)
    assert m["centre_max"] < 1e-6 and m["rot_max"] < 1e-4 and abs(m["scale_pct"] - 25.0) < 1e-6, m


def triangulate(rig: Rig, corners: np.ndarray) -> np.ndarray:
    """DLT over every camera that saw a corner: ``corners (C, F, N, 2)`` -> ``(F, N, 3)``."""
    from triangulate.dlt import dlt_svd

    return dlt_svd(rig.undistort(corners), rig.extrinsics)


def rigidity_mm(points: np.ndarray, board: BoardDefinition) -> float:
    q = board.corner_points()
    iu, ju = np.triu_indices(q.shape[0], k=1)
    true_d = np.linalg.norm(q[iu] - q[ju], axis=-1)
    d = np.linalg.norm(points[:, iu] - points[:, ju], axis=-1)
    err = (d - true_d)[np.isfinite(d)]
    return float(np.sqrt(np.mean(err**2)) * 1000) if err.size else float("nan")


def reprojection_rmse(rig: Rig, corners: np.ndarray, points: np.ndarray) -> float:
    err = rig.reprojection_error(points, corners)
    return float(np.sqrt(np.nanmean(err**2)))


def evaluate(rig: Rig, det: Detections, board: BoardDefinition, truth: Rig | None) -> dict:
    rig = rig.subset(det.names)
    pts = triangulate(rig, det.corners)
    out = {"rigidity": rigidity_mm(pts, board), "reproj": reprojection_rmse(rig, det.corners, pts)}
    if truth is not None:
        out.update(compare(rig, truth))
    return out


# ==================================================================== tables
def _f(value: float, width: int, prec: int) -> str:
    """Fixed-point unless huge (a diverged calibration must not break the table)."""
    text = f"{value:.{prec}f}" if np.isfinite(value) and abs(value) < 10 ** (width - prec - 2) else f"{value:.2g}"
    return f"{text:>{width}}"


def print_table(title: str, rows: list[tuple[str, dict | None, float, str]], truth: bool = True) -> None:
    print(f"\n{title}")
    head = f"  {'method':<24}"
    if truth:
        head += f"{'centre mm mean/max':>20}{'rot deg max':>12}{'focal % max':>12}{'scale %':>9}"
    head += f"{'rigidity mm':>12}{'reproj px':>10}{'time s':>8}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for name, m, seconds, note in rows:
        if m is None:
            print(f"  {name:<24}  -- {note}")
            continue
        line = f"  {name:<24}"
        if truth:
            line += (f"{_f(m['centre_mean'], 11, 2)} /{_f(m['centre_max'], 7, 2)}{_f(m['rot_max'], 12, 4)}"
                     f"{_f(m['focal_max'], 12, 3)}{_f(m['scale_pct'], 9, 3)}")
        line += f"{_f(m['rigidity'], 12, 3)}{_f(m['reproj'], 10, 3)}{_f(seconds, 8, 1)}"
        print(line + (f"   {note}" if note else ""))


def bench_synthetic(label: str, n_cameras: int, hard: bool, n_frames: int, seed: int, cache: Path,
                    with_fixed_k: bool = True, closeups: int = 0) -> list:
    det, truth, board, rvecs, tvecs, render_s = synthetic_detections(n_cameras, hard, n_frames, seed, cache)
    counts = det.counts()
    seen = (counts >= 6).sum(axis=0)
    print(f"\n[{label}] {n_cameras} cameras, {n_frames} frames (render+detect {render_s:.0f} s, cached in {cache}); "
          f"board seen (>= 6 corners) by all cameras in {(seen == n_cameras).sum()} frames, max cameras per frame "
          f"{seen.max()}; corners per camera {np.isfinite(det.corners[..., 0]).sum(axis=(1, 2)).tolist()}")
    rows = []
    rig, sec, note = run_rigcap(det, board)
    rows.append(("rigcap", evaluate(rig, det, board, truth) if rig else None, sec, note))
    rig, sec, note = run_rigcap(det, board, initial_rig=truth)
    if rig is None:
        rig, sec, note = run_ba_from_truth_direct(det, board, truth, rvecs, tvecs)
    rows.append(("rigcap BA from truth", evaluate(rig, det, board, truth), sec, note))
    rig, sec, note = run_ba_from_truth_direct(det, board, truth, rvecs, tvecs, refine_intrinsics=False)
    rows.append(("BA from truth, true K", evaluate(rig, det, board, truth), sec, "oracle: intrinsics held at truth"))
    rig, sec, note = run_aniposelib(det, board)
    rows.append(("aniposelib", evaluate(rig, det, board, truth) if rig else None, sec, note))
    if with_fixed_k:
        t0 = time.perf_counter()
        k_rig = opencv_intrinsics(det, board)
        k_s = time.perf_counter() - t0
        rig, sec, note = run_aniposelib(det, board, fixed_intrinsics=k_rig)
        rows.append(("aniposelib fixed K", evaluate(rig, det, board, truth) if rig else None, sec + k_s,
                     note or "rigcap's OpenCV intrinsics, extrinsics by aniposelib"))
    if closeups:
        key = f"{n_cameras}cam_{'hard' if hard else 'normal'}_seed{seed}_{code_stamp()}"
        t0 = time.perf_counter()
        extra = closeup_detections(truth, board, closeups, seed, key, cache)
        print(f"  + intrinsic sessions: {closeups} close-up frames per camera, corners per camera "
              f"{np.isfinite(extra[..., 0]).sum(axis=(1, 2)).tolist()} ({time.perf_counter() - t0:.0f} s)")
        both = with_closeups(det, extra)
        rig, sec, note = run_rigcap(both, board)
        rows.append(("rigcap + close-ups", evaluate(rig, det, board, truth) if rig else None, sec,
                     note or f"recording + {closeups} close-ups per camera, one joint calibration"))
        rig, sec, note = run_aniposelib(both, board)
        rows.append(("aniposelib + close-ups", evaluate(rig, det, board, truth) if rig else None, sec,
                     note or "the same frames given to calibrate_rows"))
    rows.append(("true rig", evaluate(truth, det, board, truth), 0.0, "reference: detection noise only"))
    print_table(f"{label}: errors against the true rig (same detections for every method)", rows)
    print_targets(rows)
    return rows


TARGETS = {"centre_max": 5.0, "rot_max": 0.1, "focal_max": 0.3, "rigidity": 0.5}  # issue 3's "done when"
COMPARED = ("centre_mean", "centre_max", "rot_max", "focal_max", "rigidity")


def print_targets(rows) -> None:
    """Issue 3's acceptance lines for this rig: absolute targets, the BA-from-truth bound, aniposelib."""
    by = {name: m for name, m, _, _ in rows}
    mine, best, anip = by.get("rigcap"), by.get("rigcap BA from truth"), by.get("aniposelib")
    if mine is None:
        print("  targets: rigcap did not run")
        return
    for name in ("rigcap", "rigcap + close-ups"):
        m = by.get(name)
        if m is None:
            continue
        checks = [f"{k} {m[k]:.3g} < {v:g}: {'yes' if m[k] < v else 'NO'}" for k, v in TARGETS.items()]
        print(f"  targets ({name}): " + "; ".join(checks))
    print(f"  (the true rig's own rigidity on these detections is {by['true rig']['rigidity']:.3g} mm: the floor "
          "that corner detection noise sets for this metric)")
    if best is not None:
        worst = max((mine[k] - best[k]) / max(best[k], 1e-9) for k in ("centre_mean", "centre_max", "rot_max", "rigidity"))
        print(f"  rigcap vs BA from truth: worst relative excess {100 * worst:+.1f} % (target <= 10 %): "
              f"{'yes' if worst <= 0.10 else 'NO'}")
    if anip is not None:
        worse = [k for k in COMPARED if mine[k] > anip[k] * 1.0001]
        print(f"  rigcap vs aniposelib: no worse on any row: {'yes' if not worse else 'NO (' + ', '.join(worse) + ')'}; "
              + ", ".join(f"{k} {mine[k]:.3g} vs {anip[k]:.3g}" for k in COMPARED))


def bench_real(root: Path, step: int) -> None:
    from calibration.importers import load_caliscope

    t0 = time.perf_counter()
    det = caliscope_detections(root, step)
    print(f"\n[real] caliscope-charuco-4cam: {det.n_instants} instants, detection {time.perf_counter() - t0:.0f} s; "
          f"corners per camera {np.isfinite(det.corners[..., 0]).sum(axis=(1, 2)).tolist()}")
    theirs = load_caliscope(root / "camera_array.toml")
    rows = []
    mine, sec, note = run_rigcap(det, CALISCOPE_BOARD)
    rows.append(("rigcap", evaluate(mine, det, CALISCOPE_BOARD, None) if mine else None, sec, note))
    rows.append(("caliscope (its file)", evaluate(theirs, det, CALISCOPE_BOARD, None), float("nan"),
                 "camera_array.toml as shipped"))
    # caliscope calibrated intrinsics from separate recordings (grid_count 33-40 boards per camera); the
    # extrinsic recording covers a small part of each image, so also: rigcap's extrinsics on caliscope's lenses
    held, sec_h, note_h = run_rigcap(det, CALISCOPE_BOARD, intrinsics=[c.copy() for c in theirs],
                                     refine_intrinsics=False)
    rows.append(("rigcap, caliscope K held", evaluate(held, det, CALISCOPE_BOARD, None) if held else None, sec_h,
                 note_h or "rigcap extrinsics + BA with caliscope's intrinsics fixed"))
    print_table("real recording: same detections, both rigs (no ground truth)", rows, truth=False)
    for name, rig in (("rigcap", mine), ("caliscope", theirs)):
        if rig is None:
            continue
        pts = triangulate(rig, det.corners)
        err = rig.reprojection_error(pts, det.corners)
        per_cam = np.sqrt(np.nanmean(err.reshape(4, -1) ** 2, axis=1))
        print(f"  {name:<10} per camera: " + "; ".join(
            f"{c.name} reproj {e:.2f} px f {c.focal.mean():.0f} px pp ({c.principal_point[0]:.0f}, "
            f"{c.principal_point[1]:.0f}) k1 {c.dist[0]:+.2f} k3 {c.dist[4] if c.dist.size > 4 else 0:+.2f}"
            for c, e in zip(rig, per_cam)))
    if mine is not None:
        cmp_ = compare(mine, theirs)
        print("  camera-position difference rigcap vs caliscope after similarity alignment (mm): "
              + ", ".join(f"{n} {d:.1f}" for n, d in zip(mine.names, cmp_["centres_mm"]))
              + f"; rotation max {cmp_['rot_max']:.3f} deg; focal max {cmp_['focal_max']:.2f} %; "
              f"scale rigcap/caliscope {100 + cmp_['scale_pct']:.3f} %")
    if held is not None:
        cmp_ = compare(held, theirs)
        print("  same, rigcap with caliscope's intrinsics held (mm): "
              + ", ".join(f"{n} {d:.1f}" for n, d in zip(held.names, cmp_["centres_mm"]))
              + f"; rotation max {cmp_['rot_max']:.3f} deg; scale rigcap/caliscope {100 + cmp_['scale_pct']:.3f} %")
    for name, rig in (("rigcap", mine), ("caliscope", theirs)):
        if rig is not None:
            cover = []
            for c in range(det.n_cameras):
                xy = det.corners[c].reshape(-1, 2)
                xy = xy[np.isfinite(xy[:, 0])]
                w, h = det.sizes[c]
                cover.append(f"{det.names[c]} x {xy[:, 0].min():.0f}-{xy[:, 0].max():.0f} / {w}, "
                             f"y {xy[:, 1].min():.0f}-{xy[:, 1].max():.0f} / {h}")
            print("  detected corners span (why the extrinsic recording alone cannot pin lens distortion): "
                  + "; ".join(cover))
            break


def bench_coverage(n_seeds: int = 20, n_frames: int = 40, noise_px: float = 0.25) -> None:
    """Are the reported sigmas honest? Over ``n_seeds`` studio rigs (4 cameras, ``n_frames`` board poses,
    exact corners + Gaussian noise, rigcap's coverage-chosen lens models): how often the true error of
    each non-reference camera lies within 2 sigma, along each principal axis of its covariance."""
    from scipy.spatial.transform import Rotation

    from calibration.pipeline import calibrate_from_detections
    from calibration.uncertainty import within_two_sigma
    from rigcap.studio.board_motion import board_trajectory
    from rigcap.studio.board_video import STUDIO_BOARD, true_board_corners_2d
    from rigcap.studio.studio_rig import make_studio_rig

    t0 = time.perf_counter()
    hits: dict[str, list] = {"position": [], "orientation": [], "focal": []}
    sig = {"position": [], "orientation": [], "focal": []}
    failed = 0
    for seed in range(n_seeds):
        truth = make_studio_rig(4, seed=100 + seed)
        rvecs, tvecs = board_trajectory(n_frames, seed=200 + seed)
        corners = true_board_corners_2d(truth, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
        corners = corners + np.random.default_rng(seed).normal(0, noise_px, corners.shape)
        res = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in truth], truth.names)
        est = res.bundle.cameras  # the covariance's gauge: camera 0 held, the bundle adjustment's frame
        r0e, t0e, r0t, t0t = est[0].R, est[0].tvec, truth[0].R, truth[0].tvec
        for c in range(1, len(truth)):
            s_c = res.sigmas[c]
            if not np.isfinite(s_c.position_mm):
                failed += 1
                continue
            centre = r0e.T @ (r0t @ truth[c].center + t0t - t0e)
            rot = truth[c].R @ r0t.T @ r0e
            hits["position"] += list(within_two_sigma(est[c].center - centre, s_c.position_cov_m2))
            hits["orientation"] += list(within_two_sigma(Rotation.from_matrix(est[c].R @ rot.T).as_rotvec(),
                                                         s_c.orientation_cov_rad2))
            if np.isfinite(s_c.focal_pct):
                f_err = (np.abs(est[c].focal).mean() / truth[c].focal.mean() - 1) * 100
                hits["focal"].append(abs(f_err) <= 2 * s_c.focal_pct)
            sig["position"].append(s_c.position_mm)
            sig["orientation"].append(s_c.orientation_deg)
            sig["focal"].append(s_c.focal_pct)
    print(f"\n[uncertainty] {n_seeds} seeds x 3 cameras, {n_frames} board poses, {noise_px} px corner noise, "
          f"coverage-chosen lens models ({time.perf_counter() - t0:.0f} s; {failed} camera(s) without sigma)")
    print(f"  {'quantity':<12}{'within 2 sigma':>16}{'of':>6}{'median sigma':>16}   (ideal: 95.4 %)")
    for k, unit in (("position", "mm"), ("orientation", "deg"), ("focal", "%")):
        v = hits[k]
        print(f"  {k:<12}{100 * np.mean(v) if v else float('nan'):>15.1f}%{len(v):>6}"
              f"{np.nanmedian(sig[k]) if sig[k] else float('nan'):>13.3f} {unit}")
    print("  position and orientation: each principal axis of the camera's covariance (relative to camera 0).\n"
          "  As mrcal's documentation warns, these sigmas only propagate the corner noise through the model fitted:\n"
          "  a lens model simpler than the lens, or correlated corner errors (blur, a board that is not flat),\n"
          "  make them too small. Here the corners are exact + Gaussian noise: real recordings under-report more.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer frames (48 / 64) for a first look")
    p.add_argument("--frames4", type=int, default=120, help="frames of the 4-camera recording")
    p.add_argument("--frames8", type=int, default=160, help="frames of the 8-camera hard recording")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("/tmp/rigcap_bench_calibration"),
                   help="where rendered detections are cached (default: %(default)s)")
    p.add_argument("--only", choices=("4", "8", "real", "coverage"), action="append", help="run only these parts")
    p.add_argument("--coverage-seeds", type=int, default=20, help="seeds of the sigma coverage check (default: %(default)s)")
    p.add_argument("--real-step", type=int, default=1, help="use every k-th instant of the real recording")
    p.add_argument("--no-fixed-k", action="store_true", help="skip the aniposelib-with-OpenCV-intrinsics row")
    p.add_argument("--closeups", type=int, default=24,
                   help="close-up frames per camera for the 'rigcap + close-ups' row (0: skip; default: %(default)s)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    check_alignment()
    only = set(args.only or ("4", "8", "real", "coverage"))
    f4, f8 = (48, 64) if args.quick else (args.frames4, args.frames8)
    if "4" in only:
        bench_synthetic("4-camera studio", 4, False, f4, args.seed, args.cache, not args.no_fixed_k, args.closeups)
    if "8" in only:
        bench_synthetic("8-camera hard studio", 8, True, f8, args.seed, args.cache, not args.no_fixed_k, args.closeups)
    if "coverage" in only:
        bench_coverage(args.coverage_seeds)
    if "real" in only:
        root = SHARED / "caliscope-charuco-4cam"
        if root.is_dir():
            bench_real(root, args.real_step)
        else:
            print(f"\n[real] skipped: {root} not found (the shared recordings live beside the checkout)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
