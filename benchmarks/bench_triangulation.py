"""Triangulation benchmark: accuracy against 3D truth and raw engine throughput, beside aniposelib.

    .venv/bin/python benchmarks/bench_triangulation.py                 # (a) + (b) + (d) when data exist
    .venv/bin/python benchmarks/bench_triangulation.py --only accuracy --anipose-frames 30
    .venv/bin/python benchmarks/bench_triangulation.py --only dlt      # batched DLT solver alone

(a) **Accuracy** on the synthetic studio (4 cameras, 2 px noise, 10 % missing
    joints, 3 % gross outliers, 2 % left/right swapped camera-frames; cameras
    synchronous so every method sees the same instants).  MPJPE against the
    3D truth for: the *oracle* (plain DLT given the true inlier views only),
    rigcap (default settings; and every frame on its own), aniposelib
    ``CameraGroup.triangulate_ransac`` (rig loaded from our saved rig TOML with
    ``CameraGroup.load``; one Python iteration per point, so it runs on every
    k-th frame and all methods are also scored on those frames) and plain
    ``CameraGroup.triangulate``.  Issue targets: rigcap within 1.15x of the
    oracle and below aniposelib's RANSAC.
(b) **Throughput** of the raw engine (undistortion + DLT + view selection, no
    filtering) for 26 joints x 4 and x 8 cameras, then with swap repair and
    with everything, beside aniposelib's ``triangulate``.  frames/s by CPU time
    of this single-threaded process (BLAS/XLA pinned to one thread; CPU time
    rather than wall time because the benchmark machine is shared) and wall
    time.  Target >= 10 000 frames/s with 4 cameras.
(d) **Real data** (Pose2Sim single-person demo, Qualisys calibration), when a
    2D keypoint file for its videos exists (``--real-keypoints``, or
    ``--real-detect`` to run the project's MediaPipe detector on the videos,
    cached under ``out/``): per-joint reprojection error, views, and the
    frame-to-frame spread (std) of bone lengths (a real femur keeps its
    length), and how the settings trade views against that spread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.rigfile import load_rig, save_rig  # noqa: E402
from rigcap.studio.keypoints import DetectorNoise  # noqa: E402
from rigcap.studio.studio import SyntheticStudio  # noqa: E402
from triangulate.dlt import dlt_svd, triangulate_dlt  # noqa: E402
from triangulate.engine import TriangulationConfig, Triangulator, triangulate  # noqa: E402

console = Console(width=170)
ISSUE_NOISE = DetectorNoise(pixel_sigma=2.0, missing_rate=0.10, outlier_rate=0.03, swap_rate=0.02, time_jitter_ms=0.0)
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim-demo-single"


def anipose_group(rig, folder: Path):
    """aniposelib CameraGroup of our rig, through our saved rig TOML (the interchange path a user takes)."""
    from aniposelib.cameras import CameraGroup

    path = save_rig(rig, folder / "rig.toml")
    return CameraGroup.load(str(path))


def extrinsics(rig) -> np.ndarray:
    return np.array([np.hstack([c.R, c.tvec[:, None]]) for c in rig.cameras])


def oracle(studio) -> np.ndarray:
    """Plain (unweighted, algebraic) DLT on the views the simulator knows are inliers."""
    det = studio.detections
    xn = np.stack([c.undistort(p) for c, p in zip(studio.rig.cameras, det.pixels)])
    return triangulate_dlt(np.where(det.inlier[..., None], xn, np.nan), extrinsics(studio.rig))


def errors_mm(points, truth) -> np.ndarray:
    return 1000.0 * np.linalg.norm(points - truth, axis=-1)


# --------------------------------------------------------------------------- (a) accuracy
def bench_accuracy(args) -> dict:
    studio = SyntheticStudio(n_cameras=4, duration_s=args.seconds, seed=args.seed, noise=ISSUE_NOISE,
                             time_offsets_ms=None)
    truth = studio.points3d
    kp = studio.keypoints2d()
    det = studio.detections
    n_f = studio.n_frames
    console.print(f"[bold](a) accuracy[/]: synthetic studio, 4 cameras, {n_f} frames x 26 joints, seed {args.seed}: "
                  f"{100 * det.outlier.sum() / max(1, np.isfinite(det.pixels[..., 0]).sum()):.1f} % outliers, "
                  f"{100 * det.swapped.mean():.1f} % swapped camera-frames, "
                  f"{100 * np.isnan(det.pixels[..., 0]).mean():.1f} % of views empty (missed or outside the image)")

    runs: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    t0 = time.process_time()
    runs["oracle: DLT on true inlier views"] = oracle(studio)
    timing["oracle: DLT on true inlier views"] = time.process_time() - t0
    for name, cfg in (("rigcap (default)", TriangulationConfig()),
                      ("rigcap + Gauss-Newton refinement", TriangulationConfig(refine=True)),
                      ("rigcap, every frame alone (live setting)", TriangulationConfig(temporal_window=0)),
                      ("rigcap, raw engine (no swap/refine/temporal)",
                       TriangulationConfig(temporal_window=0, refine=False, swap_repair=False))):
        t0 = time.process_time()
        res = triangulate(studio.rig, kp, cfg)
        timing[name] = time.process_time() - t0
        runs[name] = res.points3d.points
        if name == "rigcap (default)":
            swaps_found = res.swapped
    sub = np.arange(0, n_f, max(1, n_f // args.anipose_frames))[: args.anipose_frames] if args.anipose_frames else None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            group = anipose_group(studio.rig, Path(tmp))
        except ImportError:
            group = None
            console.print("[yellow]aniposelib not installed: its rows are skipped[/]")
        if group is not None:
            pix = kp.keypoints[..., :2].astype(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.process_time()
                plain = group.triangulate(pix.reshape(4, -1, 2))
                timing["aniposelib triangulate (all views)"] = time.process_time() - t0
                runs["aniposelib triangulate (all views)"] = plain.reshape(n_f, -1, 3)
                if sub is not None and sub.size:
                    # aniposelib's RANSAC crashes on a point no camera sees; points seen by fewer than
                    # two cameras cannot be triangulated by anyone, so only the others go in.
                    flat = pix[:, sub].reshape(4, -1, 2)
                    seen = np.isfinite(flat[..., 0]).sum(axis=0) >= 2
                    t0 = time.process_time()
                    out = group.triangulate_ransac(flat[:, seen], min_cams=2)
                    timing["aniposelib triangulate_ransac"] = time.process_time() - t0
                    got = np.full((flat.shape[1], 3), np.nan)
                    got[seen] = out[0]
                    full = np.full(truth.shape, np.nan)
                    full[sub] = got.reshape(len(sub), -1, 3)
                    runs["aniposelib triangulate_ransac"] = full

    def table(frames, title, skip=()):
        t = Table(title=title)
        for col in ("method", "MPJPE mm", "median mm", "p95 mm", "max mm", "joints %", "MPJPE on common mm",
                    "x oracle", "CPU s"):
            t.add_column(col, justify="left" if col == "method" else "right")
        sel = {k: v[frames] for k, v in runs.items() if k not in skip}
        common = np.logical_and.reduce([np.isfinite(v).all(-1) for v in sel.values()])
        e_or = errors_mm(sel["oracle: DLT on true inlier views"], truth[frames])
        out = {}
        for name, pts in sel.items():
            e = errors_mm(pts, truth[frames])
            ok = np.isfinite(e)
            mp = float(e[ok].mean())
            out[name] = mp
            t.add_row(name, f"{mp:.2f}", f"{np.median(e[ok]):.2f}", f"{np.percentile(e[ok], 95):.1f}",
                      f"{e[ok].max():.0f}", f"{100 * ok.mean():.1f}", f"{e[common].mean():.2f}",
                      f"{mp / np.nanmean(e_or):.3f}", f"{timing.get(name, float('nan')):.2f}")
        console.print(t)
        return out

    all_frames = table(np.arange(n_f), f"MPJPE vs 3D truth, all {n_f} frames", skip=("aniposelib triangulate_ransac",))
    result = {"all": all_frames}
    if "aniposelib triangulate_ransac" in runs:
        result["sub"] = table(sub, f"MPJPE vs 3D truth, the {len(sub)} frames aniposelib's RANSAC ran on "
                                   f"(every {sub[1] - sub[0] if len(sub) > 1 else 1}th)")
    found = swaps_found & det.swapped
    console.print(f"swap repair: {int(det.swapped.sum())} swapped camera-frames planted, {int(found.sum())} repaired, "
                  f"{int((swaps_found & ~det.swapped).sum())} false repairs")
    ratio = all_frames["rigcap (default)"] / all_frames["oracle: DLT on true inlier views"]
    verdict = f"rigcap / oracle = {ratio:.3f} (target <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})"
    if "sub" in result:
        r = result["sub"]
        better = r["rigcap (default)"] < r["aniposelib triangulate_ransac"]
        verdict += (f"; rigcap {r['rigcap (default)']:.2f} mm vs aniposelib RANSAC "
                    f"{r['aniposelib triangulate_ransac']:.2f} mm on the same frames "
                    f"(target lower: {'met' if better else 'NOT met'})")
    console.print(verdict)
    return result


# --------------------------------------------------------------------------- (b) throughput
def _time(fn, repeats: int) -> tuple[float, float]:
    """Best CPU and best wall seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    cpu, wall = np.inf, np.inf
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall


def bench_throughput(args) -> dict:
    table = Table(title=f"Throughput, 26 joints, {args.throughput_frames} frames per call, one thread "
                        f"(best of {args.repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for col in ("method", "cameras", "frames/s (CPU)", "frames/s (wall)", "µs / frame (CPU)"):
        table.add_column(col, justify="left" if col == "method" else "right")
    out = {}
    for n_cams in args.cameras:
        studio = SyntheticStudio(n_cameras=n_cams, duration_s=args.throughput_frames / 30.0, seed=args.seed,
                                 noise=ISSUE_NOISE, time_offsets_ms=None)
        kp = studio.keypoints2d().keypoints
        n_f = kp.shape[1]
        cases = {
            "rigcap raw engine: undistort + DLT + view selection": TriangulationConfig(
                temporal_window=0, refine=False, swap_repair=False),
            "rigcap raw + swap repair": TriangulationConfig(temporal_window=0, refine=False),
            "rigcap default (+ swap repair, temporal prior)": TriangulationConfig(),
            "rigcap default + refinement": TriangulationConfig(refine=True),
        }
        for name, cfg in cases.items():
            tri = Triangulator(studio.rig, cfg, studio.skeleton)
            cpu, wall = _time(lambda: tri.run(kp), args.repeats)
            out[(name, n_cams)] = n_f / cpu
            table.add_row(name, str(n_cams), f"{n_f / cpu:,.0f}", f"{n_f / wall:,.0f}", f"{1e6 * cpu / n_f:.0f}")
        xn = np.stack([c.undistort(p) for c, p in zip(studio.rig.cameras, kp[..., :2].astype(np.float64))])
        ext = extrinsics(studio.rig)
        cpu, wall = _time(lambda: triangulate_dlt(xn, ext), args.repeats)
        table.add_row("rigcap triangulate_dlt (all views, undistorted input)", str(n_cams), f"{n_f / cpu:,.0f}",
                      f"{n_f / wall:,.0f}", f"{1e6 * cpu / n_f:.0f}")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                group = anipose_group(studio.rig, Path(tmp))
            except ImportError:
                group = None
            if group is not None:
                pix = kp[..., :2].astype(np.float64).reshape(n_cams, -1, 2)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cpu, wall = _time(lambda: group.triangulate(pix), args.repeats)
                out[("aniposelib triangulate", n_cams)] = n_f / cpu
                table.add_row("aniposelib triangulate (undistort + SVD DLT, all views)", str(n_cams),
                              f"{n_f / cpu:,.0f}", f"{n_f / wall:,.0f}", f"{1e6 * cpu / n_f:.0f}")
        table.add_section()
    console.print(table)
    raw4 = out.get(("rigcap raw engine: undistort + DLT + view selection", 4))
    if raw4 is not None:
        console.print(f"raw engine, 4 cameras: {raw4:,.0f} frames/s (target >= 10,000: {'met' if raw4 >= 1e4 else 'NOT met'})")
    return out


# --------------------------------------------------------------------------- DLT solver alone
def bench_dlt(args) -> None:
    studio = SyntheticStudio(n_cameras=4, duration_s=10.0, seed=args.seed, noise=ISSUE_NOISE, time_offsets_ms=None)
    xn = np.stack([c.undistort(p) for c, p in zip(studio.rig.cameras, studio.detections.pixels)])
    ext = extrinsics(studio.rig)
    n = xn.shape[1] * xn.shape[2]
    table = Table(title=f"Batched DLT solvers, {n} points x 4 cameras, one thread")
    for col in ("solver", "points/s (CPU)"):
        table.add_column(col, justify="left" if col == "solver" else "right")
    for name, fn in (("closed-form normal equations (triangulate_dlt)", lambda: triangulate_dlt(xn, ext)),
                     ("stacked np.linalg.svd (dlt_svd)", lambda: dlt_svd(xn, ext))):
        cpu, _ = _time(fn, args.repeats)
        table.add_row(name, f"{n / cpu:,.0f}")
    console.print(table)


# --------------------------------------------------------------------------- (d) real data
REPO = Path(__file__).resolve().parents[1]
DETECTED = REPO / "out" / "bench_triangulation" / "pose2sim_demo_mediapipe_kp2d.npz"


def detect_real_keypoints(detector: str = "mediapipe") -> Path:
    """The project's detector over the demo's four videos (video mode, best person per frame), as a 2D
    keypoints file: the detection the tests share (:func:`tests.real_keypoints.pose2sim_keypoints`).
    About a minute of CPU for 4 x 100 frames of 1080x1920 the first time.
    """
    from tests.real_keypoints import pose2sim_keypoints

    if DETECTED.exists():
        return DETECTED
    names = [v.stem for v in sorted((REAL / "videos").glob("*.mp4"))]
    kp = pose2sim_keypoints(REAL, names, detector)
    console.print(f"  detected {', '.join(names)}: {kp.keypoints.shape[1]} frames")
    return kp.save(DETECTED)


def find_real_keypoints(given: str | None) -> Path | None:
    if given:
        return Path(given)
    for cand in (REAL / "keypoints2d.npz", REAL / "pose", DETECTED):
        if cand.exists():
            return cand
    return None


def bench_real(args) -> None:
    from rigcap.commands.triangulate import load_keypoints
    from triangulate.formats import Keypoints2D
    from triangulate.skeletons import skeleton_for_joints

    kp_path = find_real_keypoints(args.real_keypoints)
    if kp_path is None and args.real_detect and (REAL / "videos").is_dir():
        kp_path = detect_real_keypoints()
    calib = Path(args.real_rig) if args.real_rig else REAL / "calibration" / "Calib.qca.txt"
    if kp_path is None or not kp_path.exists():
        console.print(f"(d) real data: no 2D keypoints for {REAL.name} (pass --real-keypoints, or --real-detect "
                      "to run the project's MediaPipe detector on its videos): skipped")
        return
    if not calib.exists():
        console.print(f"(d) real data: no calibration at {calib}: skipped")
        return
    rig = load_rig(calib)
    kp = load_keypoints(str(kp_path), args.real_fps)
    if not set(kp.camera_names) <= set(rig.names) and kp.n_cameras == len(rig):
        kp = Keypoints2D(kp.keypoints, rig.names, kp.joint_names, kp.timestamps_ns, kp.fps)
    res = triangulate(rig, kp, TriangulationConfig(auto_threshold=True))  # rigcap triangulate's defaults
    p = res.points3d
    s = res.summary()
    console.print(f"[bold](d) real data[/] (rigcap triangulate defaults: auto threshold {res.threshold_px:.0f} px, "
                  f"detector noise {res.noise_px:.1f} px): {kp_path} on {calib.name}: {s['frames']} frames, cameras "
                  f"{', '.join(res.camera_names)}; joints triangulated {s['triangulated_pct']:.1f} %, mean reprojection "
                  f"error {s['mean_error_px']:.2f} px, {s['mean_views']:.2f} views per joint, "
                  f"{s['swapped_frames']} swapped camera-frames repaired")
    for w in res.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    t = Table(title="Per joint (raw triangulation, no filtering)")
    for col in ("joint", "triangulated %", "reproj. error px", "p90 px", "views"):
        t.add_column(col, justify="left" if col == "joint" else "right")
    ok = np.isfinite(res.raw_points).all(-1)
    for j, name in enumerate(p.joint_names):
        e = p.reprojection_error[ok[:, j], j]
        t.add_row(name, f"{s['per_joint_pct'][j]:.1f}", f"{e.mean():.2f}" if e.size else "-",
                  f"{np.percentile(e, 90):.2f}" if e.size else "-",
                  f"{s['per_joint_views'][j]:.2f}" if e.size else "-")
    console.print(t)
    skel = skeleton_for_joints(p.joint_names)
    if not skel.bone_names:
        return
    bt = Table(title="Bone length across frames (a real bone keeps its length): raw, and after gap filling "
                     "(10 frames) + zero-phase Butterworth 6 Hz")
    for col in ("bone", "frames", "mean mm", "std mm raw", "std % raw", "std mm filtered"):
        bt.add_column(col, justify="left" if col == "bone" else "right")
    fps = kp.fps or args.real_fps or 60.0
    from triangulate.filters import smooth_points

    smooth = smooth_points(res.raw_points, fps, 6.0, max_gap=10)
    for a, b in skel.bone_names:
        ia, ib = skel.index(a), skel.index(b)
        raw = 1000 * np.linalg.norm(res.raw_points[:, ia] - res.raw_points[:, ib], axis=-1)
        filt = 1000 * np.linalg.norm(smooth[:, ia] - smooth[:, ib], axis=-1)
        good = np.isfinite(raw) & np.isfinite(filt)
        if good.sum() < 3:
            continue
        bt.add_row(f"{a}-{b}", str(int(good.sum())), f"{raw[good].mean():.0f}", f"{raw[good].std():.1f}",
                   f"{100 * raw[good].std() / raw[good].mean():.1f}", f"{filt[good].std():.1f}")
    console.print(bt)

    # How the settings trade views against steadiness on this detector's keypoints.
    bone_names = {("hip", "knee"): "femur", ("knee", "ankle"): "tibia", ("shoulder", "elbow"): "humerus",
                  ("elbow", "wrist"): "forearm"}
    limbs = [(f"{side}_{a}", f"{side}_{b}", f"{name} {side[0].upper()}")
             for (a, b), name in bone_names.items() for side in ("left", "right")]
    limbs = [(a, b, n) for a, b, n in limbs if a in p.joint_names and b in p.joint_names]
    st = Table(title="Settings sweep on the real keypoints: frame-to-frame std of bone length (mm), raw triangulation")
    for col in ("settings", "views", "reproj. px", "triang. %") + tuple(n for _, _, n in limbs) + ("mean",):
        st.add_column(col, justify="left" if col == "settings" else "right")
    sweep = [("auto threshold (command default)", TriangulationConfig(auto_threshold=True)),
             ("threshold 15 px (engine default)", TriangulationConfig()),
             ("threshold 25 px", TriangulationConfig(threshold_px=25.0)),
             ("threshold 40 px", TriangulationConfig(threshold_px=40.0)),
             ("no swap repair", TriangulationConfig(swap_repair=False)),
             ("every frame alone", TriangulationConfig(temporal_window=0)),
             ("all views, no selection",
              TriangulationConfig(threshold_px=1e9, swap_repair=False, temporal_window=0))]
    for label, cfg in sweep:
        r = triangulate(rig, kp, cfg)
        q = r.raw_points
        sm = r.summary()
        stds = [np.nanstd(1000 * np.linalg.norm(q[:, p.joint_names.index(a)] - q[:, p.joint_names.index(b)], axis=-1))
                for a, b, _ in limbs]
        if cfg.auto_threshold:
            label += f": {r.threshold_px:.0f} px (noise {r.noise_px:.1f} px)"
        st.add_row(label, f"{sm['mean_views']:.2f}", f"{sm['mean_error_px']:.1f}", f"{sm['triangulated_pct']:.1f}",
                   *[f"{v:.1f}" for v in stds], f"{np.mean(stds):.1f}")
    console.print(st)


# --------------------------------------------------------------------------- (e) spatio-temporal solve
def bench_optimize(args) -> None:
    """rigcap triangulate's engine alone vs with the spatio-temporal solve (its default when fps is known):
    synthetic MPJPE against the truth, bone-length spread, reprojection, CPU frames/s; on the real demo the
    spread of the 8 limbs, coverage, and the error in a held-out camera (triangulate with three, project
    into the fourth, compare with its own detections: the one truth-free accuracy check real data allows)."""
    studio = SyntheticStudio(n_cameras=4, duration_s=args.seconds, seed=args.seed, noise=ISSUE_NOISE,
                             time_offsets_ms=None)
    kp = studio.keypoints2d()
    bones = np.asarray(studio.skeleton.bones)
    t = Table(title=f"(e) spatio-temporal solve, synthetic 4 cameras, {studio.n_frames} frames (rigcap triangulate "
                    "defaults: auto threshold)")
    for col in ("method", "MPJPE mm", "p95 mm", "bone std mm", "reproj. px", "frames/s (CPU)"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for label, opt in (("engine (--no-optimize)", False), ("engine + solve (--optimize)", True)):
        t0 = time.process_time()
        res = triangulate(studio.rig, kp, TriangulationConfig(auto_threshold=True, optimize=opt))
        dt = time.process_time() - t0
        p = res.points3d.points
        e = errors_mm(p, studio.points3d)
        lengths = np.linalg.norm(p[:, bones[:, 0]] - p[:, bones[:, 1]], axis=-1)
        t.add_row(label, f"{np.nanmean(e):.2f}", f"{np.nanpercentile(e, 95):.1f}",
                  f"{1000 * np.nanmean(np.nanstd(lengths, axis=0)):.1f}",
                  f"{np.nanmean(res.points3d.reprojection_error):.2f}", f"{studio.n_frames / dt:.0f}")
    console.print(t)
    kp_path = find_real_keypoints(args.real_keypoints)
    calib = Path(args.real_rig) if args.real_rig else REAL / "calibration" / "Calib.qca.txt"
    if kp_path is None or not kp_path.exists() or not calib.exists():
        console.print("(e) real data: no keypoints or calibration for the demo (see (d)): skipped")
        return
    from rigcap.commands.triangulate import load_keypoints
    from triangulate.engine import match_cameras
    from triangulate.formats import Keypoints2D

    rig = load_rig(calib)
    real = load_keypoints(str(kp_path), args.real_fps)
    if not set(real.camera_names) <= set(rig.names) and real.n_cameras == len(rig):
        real = Keypoints2D(real.keypoints, rig.names, real.joint_names, real.timestamps_ns, real.fps)
    real.fps = real.fps or args.real_fps
    cams = match_cameras(rig, real.camera_names)
    names = real.joint_names
    limbs = [(names.index(f"{s}_{a}"), names.index(f"{s}_{b}")) for a, b in
             (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist")) for s in ("left", "right")]
    t = Table(title=f"(e) spatio-temporal solve, real demo ({real.n_frames} frames, {real.n_cameras} cameras)")
    for col in ("method", "8-limb std mm", "triang. %", "reproj. px", "held-out camera px median", "p90"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for label, opt in (("engine (--no-optimize)", False), ("engine + solve (--optimize)", True)):
        cfg = TriangulationConfig(auto_threshold=True, optimize=opt)
        res = triangulate(rig, real, cfg)
        q = res.raw_points
        std = np.mean([np.nanstd(1000 * np.linalg.norm(q[:, a] - q[:, b], axis=-1)) for a, b in limbs])
        held = []
        for h in range(real.n_cameras):
            keep = [c for c in range(real.n_cameras) if c != h]
            sub = Keypoints2D(real.keypoints[keep], [real.camera_names[c] for c in keep], names, None, real.fps)
            pts = triangulate(rig, sub, cfg).raw_points
            obs = real.keypoints[h]
            proj = cams[h].project(pts.reshape(-1, 3)).reshape(pts.shape[:2] + (2,))
            ok = np.isfinite(proj).all(-1) & np.isfinite(obs[..., :2]).all(-1) & (obs[..., 2] >= 0.5)
            held.append(np.linalg.norm(proj - obs[..., :2], axis=-1)[ok])
        held = np.concatenate(held)
        t.add_row(label, f"{std:.1f}", f"{100 * np.isfinite(q).all(-1).mean():.1f}",
                  f"{np.nanmean(res.points3d.reprojection_error):.2f}", f"{np.median(held):.1f}",
                  f"{np.percentile(held, 90):.1f}")
    console.print(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("accuracy", "throughput", "dlt", "real", "optimize"), help="run one part")
    ap.add_argument("--seconds", type=float, default=10.0, help="synthetic recording length for (a) (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--anipose-frames", type=int, default=30,
                    help="frames for aniposelib's triangulate_ransac (~1 s CPU per frame; 0: skip)")
    ap.add_argument("--throughput-frames", type=int, default=600, help="frames per timed call in (b)")
    ap.add_argument("--cameras", type=int, nargs="+", default=[4, 8], help="camera counts for (b)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats, best kept")
    ap.add_argument("--real-keypoints", help="2D keypoints (.npz or OpenPose JSON folders) of the Pose2Sim demo videos")
    ap.add_argument("--real-detect", action="store_true",
                    help="no keypoints given: run the project's MediaPipe detector on the demo videos (cached in out/)")
    ap.add_argument("--real-rig", help="rig for those (default: the demo's Qualisys Calib.qca.txt)")
    ap.add_argument("--real-fps", type=float, default=60.0, help="frame rate of the demo videos (default 60)")
    args = ap.parse_args(argv)
    parts = [args.only] if args.only else ["accuracy", "throughput", "real", "optimize"]
    for part in parts:
        {"accuracy": bench_accuracy, "throughput": bench_throughput, "dlt": bench_dlt, "real": bench_real,
         "optimize": bench_optimize}[part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
