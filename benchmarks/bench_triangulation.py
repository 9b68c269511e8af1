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
(b) **Throughput** of the raw engine (undistortion + DLT + view selection +
    soft refit, no filtering) for 26 joints x 4, 8 and 16 cameras, then with
    swap repair and with everything (the default engine), beside aniposelib's
    ``triangulate``, each with its MPJPE against the 3D truth (and the
    oracle's) on the same frames.  frames/s by CPU time of this
    single-threaded process (BLAS/XLA pinned to one thread; CPU time rather
    than wall time because the benchmark machine is shared) and wall time.
    Issue 11's goals for the default engine: >= 10 000 frames/s with 4
    cameras, >= 5 000 with 8, >= 2 000 with 16.
(d) **Real data** (Pose2Sim single-person demo, Qualisys calibration), when a
    2D keypoint file for its videos exists (``--real-keypoints``, or
    ``--real-detect`` to run the project's MediaPipe detector on the videos,
    cached under ``out/``): per-joint reprojection error, views, and the
    frame-to-frame spread (std) of bone lengths (a real femur keeps its
    length), and how the settings trade views against that spread.
(m) **Issue 11's measures**, side by side (``--only measures``; ``--quick``: no aniposelib, no
    leave-one-out, one seed): on the real demo (rigcap's MediaPipe keypoints, cached by
    ``tests/real_keypoints.py``) the frame-to-frame std of the limb lengths, raw, coverage and the
    median reprojection error over every confident view, for rigcap's default, plain
    confidence-weighted DLT of all views (with and without rigcap's swap repair), live fusion's
    per-instant triangulation (``LiveTriangulator``, the node's defaults), a Pose2Sim-like
    camera dropping (reprojection threshold 15 px) and aniposelib's ``triangulate_optim``, with
    all four cameras and every three of them; on the studio, MPJPE against the oracle with the
    ``gaussian`` and the ``real`` detector model (``rigcap.studio.detector_error``), offline and
    live (every instant on its own); its real table
    has a row for ``rigcap triangulate``'s default, the engine + the spatio-temporal solve.
(e) **Spatio-temporal solve** (``--only optimize``): the engine alone vs engine + solve, studio
    MPJPE, p95, bone-length std, reprojection, CPU frames/s; real demo limb std, coverage,
    reprojection and the error in a held-out camera (triangulated from the other three).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import resource  # noqa: E402
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
    return _time_faults(fn, repeats)[:2]


def _time_faults(fn, repeats: int) -> tuple[float, float, int]:
    """:func:`_time` and the fewest minor page faults of one call (memory the kernel had to hand out afresh,
    which ``triangulate.heap`` avoids)."""
    fn()
    cpu, wall, faults = np.inf, np.inf, None
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
        f = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
        faults = f if faults is None else min(faults, f)
    return cpu, wall, faults


# Issue 11's throughput goals for the default engine (one thread, 26 joints), frames/s by camera count.
THROUGHPUT_GOALS = {4: 10_000, 8: 5_000, 16: 2_000}


def bench_throughput(args) -> dict:
    load = os.getloadavg()[0]
    table = Table(title=f"Throughput, 26 joints, {args.throughput_frames} frames per call, one thread "
                        f"(best of {args.repeats}), with the accuracy of the same call")
    for col in ("method", "cameras", "frames/s (CPU)", "frames/s (wall)", "µs / frame (CPU)", "page faults / call",
                "MPJPE mm", "x oracle"):
        table.add_column(col, justify="left" if col == "method" else "right")
    out = {}
    for n_cams in args.cameras:
        studio = SyntheticStudio(n_cameras=n_cams, duration_s=args.throughput_frames / 30.0, seed=args.seed,
                                 noise=ISSUE_NOISE, time_offsets_ms=None)
        kp = studio.keypoints2d().keypoints
        n_f = kp.shape[1]
        truth = studio.points3d
        mp_oracle = float(np.nanmean(errors_mm(oracle(studio), truth)))

        def row(name, cpu, wall, points, faults=None):
            mp = float(np.nanmean(errors_mm(points, truth)))
            table.add_row(name, str(n_cams), f"{n_f / cpu:,.0f}", f"{n_f / wall:,.0f}", f"{1e6 * cpu / n_f:.0f}",
                          "" if faults is None else f"{faults:,}", f"{mp:.2f}", f"{mp / mp_oracle:.3f}")
            return mp

        table.add_row("oracle: DLT on true inlier views", str(n_cams), "", "", "", "", f"{mp_oracle:.2f}", "1.000")
        cases = {
            "rigcap raw engine: undistort + DLT + view selection": TriangulationConfig(
                temporal_window=0, refine=False, swap_repair=False),
            "rigcap raw + swap repair": TriangulationConfig(temporal_window=0, refine=False),
            "rigcap default (+ swap repair, temporal prior, soft refit)": TriangulationConfig(),
            "rigcap default + refinement": TriangulationConfig(refine=True),
        }
        for name, cfg in cases.items():
            if cfg.refine and n_cams not in args.refine_cameras:
                continue
            tri = Triangulator(studio.rig, cfg, studio.skeleton)
            cpu, wall, faults = _time_faults(lambda: tri.run(kp), args.repeats)
            out[(name, n_cams)] = n_f / cpu
            out[(name, n_cams, "mpjpe")] = row(name, cpu, wall, tri.run(kp).points, faults)
        xn = np.stack([c.undistort(p) for c, p in zip(studio.rig.cameras, kp[..., :2].astype(np.float64))])
        ext = extrinsics(studio.rig)
        cpu, wall = _time(lambda: triangulate_dlt(xn, ext), args.repeats)
        row("rigcap triangulate_dlt (all views, undistorted input)", cpu, wall, triangulate_dlt(xn, ext))
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
                    plain = group.triangulate(pix).reshape(n_f, -1, 3)
                out[("aniposelib triangulate", n_cams)] = n_f / cpu
                row("aniposelib triangulate (undistort + SVD DLT, all views)", cpu, wall, plain)
        table.add_section()
    table.caption = (f"load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
                     f"{os.cpu_count()} cores (CPU time counts only this process, but a busy machine still "
                     f"slows it: compare rows of one run)")
    console.print(table)
    default = "rigcap default (+ swap repair, temporal prior, soft refit)"
    for n_cams, goal in THROUGHPUT_GOALS.items():
        fps = out.get((default, n_cams))
        if fps is not None:
            console.print(f"default engine, {n_cams} cameras: {fps:,.0f} frames/s, MPJPE "
                          f"{out[(default, n_cams, 'mpjpe')]:.2f} mm (goal >= {goal:,}: "
                          f"{'met' if fps >= goal else 'NOT met'})")
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


# --------------------------------------------------------------------------- (m) issue 11's measures, side by side
LIMBS = [(f"{side}_{a}", f"{side}_{b}", f"{name} {side[0].upper()}")
         for name, a, b in (("femur", "hip", "knee"), ("tibia", "knee", "ankle"), ("humerus", "shoulder", "elbow"),
                            ("forearm", "elbow", "wrist")) for side in ("left", "right")]
SIX = ("femur", "tibia", "humerus")  # the six limbs of the issue's measure: both sides' thigh, shank, upper arm


def limb_stds(points: np.ndarray, joint_names) -> dict[str, float]:
    """Frame-to-frame std (mm) of each limb's length, raw points (F, J, 3)."""
    out = {}
    for a, b, label in LIMBS:
        if a in joint_names and b in joint_names:
            d = 1000 * np.linalg.norm(points[:, joint_names.index(a)] - points[:, joint_names.index(b)], axis=-1)
            out[label] = float(np.nanstd(d)) if np.isfinite(d).sum() > 2 else float("nan")
    return out


def plain_dlt(tri: Triangulator, kp: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """Confidence-weighted DLT of every confident view, least squares in pixels (the issue's "plain DLT")."""
    n_c, n_f, n_j = kp.shape[:3]
    xn = tri.lens.undistort(kp[..., :2].astype(np.float64))
    with np.errstate(invalid="ignore"):
        w = np.where(np.isfinite(xn[..., 0]) & (kp[..., 2] >= min_confidence), kp[..., 2], 0.0)
    xn_p = np.moveaxis(np.nan_to_num(xn), 0, 2).reshape(-1, n_c, 2)
    w_p = np.moveaxis(w, 0, 2).reshape(-1, n_c)
    q = tri.lin.terms(xn_p)
    p = tri.lin.solve(q, w_p)
    p = tri.lin.solve(q, tri.lin.pixel_weights(p, w_p))
    p[(w_p > 0).sum(axis=1) < 2] = np.nan
    return p.reshape(n_f, n_j, 3)


def pose2sim_like(tri: Triangulator, kp: np.ndarray, threshold_px: float = 15.0, min_cameras: int = 2,
                  min_confidence: float = 0.3) -> np.ndarray:
    """Pose2Sim's triangulation rule (``triangulation_from_best_cameras``), vectorised: a likelihood-weighted
    DLT of all cameras; while its mean reprojection error exceeds ``threshold_px`` (Pose2Sim's default
    15 px), leave out one more camera, choosing among the subsets of that size the one with the lowest
    error; NaN when no subset of ``min_cameras`` gets below the threshold.  No left/right swap handling
    (Pose2Sim's ``handle_LR_swap`` is off by default)."""
    from itertools import combinations

    n_c, n_f, n_j = kp.shape[:3]
    pix = kp[..., :2].astype(np.float64)
    xn = tri.lens.undistort(pix)
    with np.errstate(invalid="ignore"):
        w = np.where(np.isfinite(xn[..., 0]) & (kp[..., 2] >= min_confidence), kp[..., 2], 0.0)
    xn_p = np.moveaxis(np.nan_to_num(xn), 0, 2).reshape(-1, n_c, 2)
    w_p = np.moveaxis(w, 0, 2).reshape(-1, n_c)
    px_p = np.moveaxis(pix, 0, 2).reshape(-1, n_c, 2)
    q = tri.lin.terms(xn_p)
    best = np.full((len(w_p), 3), np.nan)
    done = np.zeros(len(w_p), bool)
    for size in range(n_c, min_cameras - 1, -1):
        cand_p, cand_e = [], []
        for sub in combinations(range(n_c), size):
            m = np.zeros(n_c)
            m[list(sub)] = 1.0
            ws = w_p * m
            p = tri.lin.solve(q, ws)
            d = tri.lens.project(p) - px_p
            e = np.hypot(d[..., 0], d[..., 1])
            use = ws > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                err = np.where(use, e, 0.0).sum(axis=1) / use.sum(axis=1)
            err[(use.sum(axis=1) < size) | ~np.isfinite(p).all(-1)] = np.inf
            cand_p.append(p)
            cand_e.append(err)
        cand_e = np.array(cand_e)
        k = np.argmin(cand_e, axis=0)
        e_best = cand_e[k, np.arange(len(k))]
        take = ~done & (e_best < threshold_px)
        best[take] = np.array(cand_p)[k[take], np.flatnonzero(take)]
        done |= take
    return best.reshape(n_f, n_j, 3)


def anipose_optim(rig, kp: np.ndarray, bones, min_confidence: float = 0.3):
    """aniposelib ``CameraGroup.triangulate_optim`` (rig through our saved TOML), the skeleton's bones as its
    constant-length constraints, confidences as scores, its defaults otherwise."""
    pix = kp[..., :2].astype(np.float64).copy()
    with np.errstate(invalid="ignore"):
        pix[~(kp[..., 2] >= min_confidence)] = np.nan
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group = anipose_group(rig, Path(tmp))
        return group.triangulate_optim(pix, constraints=np.asarray(bones).tolist(), scores=np.nan_to_num(kp[..., 2]))


def real_keypoints(args):
    from rigcap.commands.triangulate import load_keypoints
    from tests.real_keypoints import pose2sim_keypoints

    if args.real_keypoints:
        return load_keypoints(args.real_keypoints, args.real_fps)
    names = [v.stem for v in sorted((REAL / "videos").glob("*.mp4"))]
    return pose2sim_keypoints(REAL, names)  # cached in the temp folder after the first detection (~1 min)


def real_methods(rig, kp, quick: bool) -> dict[str, tuple[np.ndarray, object]]:
    """Each method's raw points (F, J, 3) on these keypoints (a Keypoints2D), and its extra note."""
    from triangulate.engine import match_cameras
    from triangulate.skeletons import skeleton_for_joints
    from triangulate.swap import permute_joints

    skel = skeleton_for_joints(kp.joint_names)
    cams = match_cameras(rig, kp.camera_names)
    arr = np.asarray(kp.keypoints, np.float64)
    tri = Triangulator(cams, TriangulationConfig(auto_threshold=True), skel)
    res = tri.run(arr)
    out = {"rigcap default": (res.points, f"auto threshold {res.threshold_px:.0f} px")}
    if kp.fps:  # rigcap triangulate's default: the engine, then the spatio-temporal solve
        out["rigcap + spatio-temporal solve"] = (
            triangulate(rig, kp, TriangulationConfig(auto_threshold=True, optimize=True)).raw_points, "command default")
    out["rigcap live fusion, per instant"] = (live_points(cams, arr, skel), "fusion defaults (auto threshold, recent instants)")
    out["plain DLT, all views"] = (plain_dlt(tri, arr), "")
    fixed = arr.copy()
    fixed[..., :2] = permute_joints(arr[..., :2], res.swap_state)
    fixed[..., 2] = permute_joints(arr[..., 2], res.swap_state)
    out["plain DLT after swap repair"] = (plain_dlt(tri, fixed), "")
    out["Pose2Sim-like (15 px)"] = (pose2sim_like(tri, arr), "")
    if not quick:
        try:
            import aniposelib  # noqa: F401

            sub = Rig_of(cams)
            t0 = time.process_time()
            p = anipose_optim(sub, arr, skel.bones)
            out["aniposelib triangulate_optim"] = (p, f"{time.process_time() - t0:.0f} s CPU")
        except ImportError as exc:
            out["aniposelib triangulate_optim"] = (None, f"not run: {exc}")
    return out


def live_points(cameras, kp: np.ndarray, skeleton) -> np.ndarray:
    """Live fusion's triangulation (:class:`triangulate.fusion.LiveTriangulator`, the fusion node's default
    settings, left/right repair per instant), every frame on its own as the node solves it: (F, J, 3)."""
    from triangulate.fusion import LiveTriangulator, live_config
    from triangulate.fusion_options import FusionOptions

    return LiveTriangulator(Rig_of(cameras), live_config(FusionOptions()), skeleton).solve_each_instant(kp)


def Rig_of(cameras):
    from calibration.rig import Rig

    return Rig(list(cameras))


def reprojection_px(rig, kp, points: np.ndarray) -> float:
    """Median reprojection error (px, full lens model) over every confident view (the same views for every method)."""
    from triangulate.engine import match_cameras

    cams = match_cameras(rig, kp.camera_names)
    lens = Triangulator(cams).lens
    arr = np.asarray(kp.keypoints, np.float64)
    proj = np.moveaxis(lens.project(points.reshape(-1, 3)).reshape(points.shape[:2] + (len(cams), 2)), 2, 0)
    with np.errstate(invalid="ignore"):
        use = arr[..., 2] >= 0.3
    e = np.hypot(*(arr[..., :2] - proj).transpose(3, 0, 1, 2))[use & np.isfinite(points).all(-1)[None]]
    return float(np.nanmedian(e)) if e.size else float("nan")


def bench_measures_real(args) -> dict:
    """Issue 11, real: every method's limb-length steadiness, coverage, reprojection, all 4 cameras and each 3."""
    if not (REAL / "videos").is_dir() and not args.real_keypoints:
        console.print(f"(m) real: no recording at {REAL}: skipped")
        return {}
    kp = real_keypoints(args)
    rig = load_rig(Path(args.real_rig) if args.real_rig else REAL / "calibration" / "Calib.qca.txt")
    from triangulate.formats import Keypoints2D

    t = Table(title=f"Real demo ({REAL.name}: rigcap MediaPipe keypoints, {kp.n_cameras} cameras, "
                    f"{kp.keypoints.shape[1]} frames at {kp.fps or args.real_fps:g} fps, Qualisys rig): frame-to-frame std "
                    "of limb lengths, raw (no filter), mm")
    cols = ["method", "cameras"] + [label for _, _, label in LIMBS] + ["mean 6", "mean 8", "triang. %",
                                                                       "reproj. px (median)", "note"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("method", "note") else "right")
    summary: dict = {}
    subsets = [tuple(range(kp.n_cameras))]
    if args.leave_out and kp.n_cameras > 3:
        from itertools import combinations

        subsets += list(combinations(range(kp.n_cameras), kp.n_cameras - 1))
    for sub in subsets:
        sk = Keypoints2D(kp.keypoints[list(sub)], [kp.camera_names[i] for i in sub], kp.joint_names, None, kp.fps)
        label = "all" if len(sub) == kp.n_cameras else "+".join(str(i + 1) for i in sub)
        for name, (pts, note) in real_methods(rig, sk, args.quick or len(sub) < kp.n_cameras).items():
            if pts is None:
                t.add_row(name, label, *[""] * (len(LIMBS) + 4), note)
                continue
            st = limb_stds(pts, kp.joint_names)
            six = float(np.mean([v for k, v in st.items() if k.split()[0] in SIX]))
            eight = float(np.mean(list(st.values())))
            cov = 100.0 * np.isfinite(pts).all(-1).mean()
            summary[(name, label)] = {"six": six, "eight": eight, "coverage": cov}
            t.add_row(name, label, *[f"{st.get(lbl, float('nan')):.1f}" for _, _, lbl in LIMBS], f"{six:.1f}",
                      f"{eight:.1f}", f"{cov:.1f}", f"{reprojection_px(rig, sk, pts):.1f}", note)
        t.add_section()
    Console(width=max(console.width, 200)).print(t)
    console.print("plain DLT: confidence-weighted, least squares in pixels, every view of confidence >= 0.3; "
                  "after swap repair: the same on rigcap's left/right-repaired labels; Pose2Sim-like: a likelihood-"
                  "weighted DLT dropping cameras (best subset of each size) until the mean reprojection error is "
                  "< 15 px, Pose2Sim's default; aniposelib: triangulate_optim with the skeleton's bones as constraints. "
                  "mean 6: femur, tibia, humerus of both sides; mean 8: + forearms")
    if subsets[1:]:
        lo = {}
        for (name, label), v in summary.items():
            if label != "all":
                lo.setdefault(name, []).append(v["six"])
        console.print("leave one camera out (3 of 4), mean 6 over the four subsets: " +
                      "; ".join(f"{n}: {np.mean(v):.1f} mm" for n, v in lo.items()))
    return summary


def bench_measures_synthetic(args) -> dict:
    """Issue 11, synthetic: MPJPE against the oracle with each detector model."""
    t = Table(title=f"Synthetic studio (4 cameras, {args.seconds:g} s at 30 fps, seeds {args.seeds}): MPJPE vs 3D truth, mm")
    for c in ("noise model", "seed", "oracle (DLT on true inlier views)", "rigcap default", "x oracle",
              "rigcap live, per instant", "live x oracle", "plain DLT all views", "Pose2Sim-like", "rigcap joints %"):
        t.add_column(c, justify="left" if c == "noise model" else "right")
    out, live = {}, {}
    for model in args.noise_models:
        noise = ISSUE_NOISE if model == "gaussian" else DetectorNoise.real_detector(time_jitter_ms=0.0)
        ratios, live_ratios = [], []
        for seed in args.seeds:
            studio = SyntheticStudio(n_cameras=4, duration_s=args.seconds, seed=seed, noise=noise, time_offsets_ms=None)
            truth = studio.points3d
            kp = studio.keypoints2d()
            tri = Triangulator(studio.rig, TriangulationConfig(), studio.skeleton)
            arr = np.asarray(kp.keypoints, np.float64)
            ora = errors_mm(oracle(studio), truth)
            rc = errors_mm(triangulate(studio.rig, kp, TriangulationConfig()).points3d.points, truth)
            pl = errors_mm(plain_dlt(tri, arr), truth)
            p2 = errors_mm(pose2sim_like(tri, arr), truth)
            lv = errors_mm(live_points(studio.rig.cameras, arr, studio.skeleton), truth)
            r = np.nanmean(rc) / np.nanmean(ora)
            ratios.append(r)
            live_ratios.append(np.nanmean(lv) / np.nanmean(ora))
            t.add_row(model, str(seed), f"{np.nanmean(ora):.2f}", f"{np.nanmean(rc):.2f}", f"{r:.3f}",
                      f"{np.nanmean(lv):.2f}", f"{live_ratios[-1]:.3f}",
                      f"{np.nanmean(pl):.2f}", f"{np.nanmean(p2):.2f}", f"{100 * np.isfinite(rc).mean():.1f}")
        out[model] = float(np.mean(ratios))
        live[model] = (min(live_ratios), max(live_ratios))
        t.add_section()
    console.print(t)
    console.print("rigcap / oracle (mean over seeds): " + ", ".join(f"{m} {v:.3f}" for m, v in out.items()) +
                  f" (target <= 1.15: {'met' if all(v <= 1.15 for v in out.values()) else 'NOT met'}); live / oracle "
                  "(each seed): " + ", ".join(f"{m} {a:.3f}-{b:.3f}" for m, (a, b) in live.items()) +
                  f" (target <= 1.15: {'met' if all(b <= 1.15 for _, b in live.values()) else 'NOT met'})")
    return out


def bench_measures(args) -> None:
    real = bench_measures_real(args)
    bench_measures_synthetic(args)
    key = ("rigcap default", "all")
    plain = ("plain DLT, all views", "all")
    if key in real and plain in real:
        r, p = real[key]["six"], real[plain]["six"]
        console.print(f"real demo, mean 6 limbs: rigcap {r:.1f} mm vs plain DLT {p:.1f} mm "
                      f"({100 * (1 - r / p):+.0f} %); target <= 11 mm: {'met' if r <= 11 else 'NOT met'}")


# --------------------------------------------------------------------------- (e) spatio-temporal solve
def bench_optimize(args) -> None:
    """rigcap triangulate's engine alone vs with the spatio-temporal solve (the command's default when the
    frame rate is known): synthetic MPJPE against the truth, bone-length spread, reprojection, CPU frames/s;
    on the real demo the spread of the 8 limbs, coverage, and the error in a held-out camera (triangulate
    with three, project into the fourth, compare with its own detections: a truth-free accuracy check)."""
    from triangulate.engine import match_cameras
    from triangulate.formats import Keypoints2D

    modes = (("engine (--no-optimize)", False), ("engine + solve (default)", True))
    t = Table(title=f"(e) spatio-temporal solve, synthetic 4 cameras, {args.seconds:g} s at 30 fps, seed {args.seed} "
                    "(rigcap triangulate's auto threshold)")
    for col in ("noise model", "method", "MPJPE mm", "p95 mm", "bone std mm", "reproj. px", "frames/s (CPU)"):
        t.add_column(col, justify="left" if col in ("noise model", "method") else "right")
    for model in args.noise_models:
        noise = ISSUE_NOISE if model == "gaussian" else DetectorNoise.real_detector(time_jitter_ms=0.0)
        studio = SyntheticStudio(n_cameras=4, duration_s=args.seconds, seed=args.seed, noise=noise,
                                 time_offsets_ms=None)
        kp = studio.keypoints2d()
        bones = np.asarray(studio.skeleton.bones)
        for label, opt in modes:
            t0 = time.process_time()
            res = triangulate(studio.rig, kp, TriangulationConfig(auto_threshold=True, optimize=opt))
            dt = time.process_time() - t0
            p = res.points3d.points
            e = errors_mm(p, studio.points3d)
            lengths = np.linalg.norm(p[:, bones[:, 0]] - p[:, bones[:, 1]], axis=-1)
            t.add_row(model, label, f"{np.nanmean(e):.2f}", f"{np.nanpercentile(e, 95):.1f}",
                      f"{1000 * np.nanmean(np.nanstd(lengths, axis=0)):.1f}",
                      f"{np.nanmean(res.points3d.reprojection_error):.2f}", f"{studio.n_frames / dt:.0f}")
        t.add_section()
    console.print(t)
    if not (REAL / "videos").is_dir() and not args.real_keypoints:
        console.print(f"(e) real: no recording at {REAL}: skipped")
        return
    real = real_keypoints(args)
    real.fps = real.fps or args.real_fps
    rig = load_rig(Path(args.real_rig) if args.real_rig else REAL / "calibration" / "Calib.qca.txt")
    cams = match_cameras(rig, real.camera_names)
    t = Table(title=f"(e) spatio-temporal solve, real demo ({real.n_frames} frames, {real.n_cameras} cameras)")
    for col in ("method", "8-limb std mm", "triang. %", "reproj. px", "held-out camera px median", "p90"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for label, opt in modes:
        cfg = TriangulationConfig(auto_threshold=True, optimize=opt)
        res = triangulate(rig, real, cfg)
        held = []
        for h in range(real.n_cameras):
            keep = [c for c in range(real.n_cameras) if c != h]
            sub = Keypoints2D(real.keypoints[keep], [real.camera_names[c] for c in keep], real.joint_names, None,
                              real.fps)
            pts = triangulate(rig, sub, cfg).raw_points
            obs = real.keypoints[h]
            proj = cams[h].project(pts.reshape(-1, 3)).reshape(pts.shape[:2] + (2,))
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(proj).all(-1) & np.isfinite(obs[..., :2]).all(-1) & (obs[..., 2] >= 0.5)
            held.append(np.linalg.norm(proj - obs[..., :2], axis=-1)[ok])
        held = np.concatenate(held)
        t.add_row(label, f"{np.mean(list(limb_stds(res.raw_points, real.joint_names).values())):.1f}",
                  f"{100 * np.isfinite(res.raw_points).all(-1).mean():.1f}",
                  f"{np.nanmean(res.points3d.reprojection_error):.2f}", f"{np.median(held):.1f}",
                  f"{np.percentile(held, 90):.1f}")
    console.print(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("accuracy", "throughput", "dlt", "real", "measures", "optimize"), help="run one part")
    ap.add_argument("--quick", action="store_true",
                    help="measures: skip aniposelib's triangulate_optim (about a minute) and the leave-one-out runs; one seed")
    ap.add_argument("--leave-out", action=argparse.BooleanOptionalAction, default=True,
                    help="measures: also every 3 of the 4 real cameras (default on)")
    ap.add_argument("--noise-models", nargs="+", choices=("gaussian", "real"), default=["gaussian", "real"],
                    help="measures: the studio's detector models (default both)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="measures: studio seeds (default 0 1 2)")
    ap.add_argument("--seconds", type=float, default=10.0, help="synthetic recording length for (a) (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--anipose-frames", type=int, default=30,
                    help="frames for aniposelib's triangulate_ransac (~1 s CPU per frame; 0: skip)")
    ap.add_argument("--throughput-frames", type=int, default=600, help="frames per timed call in (b)")
    ap.add_argument("--cameras", type=int, nargs="+", default=[4, 8, 16], help="camera counts for (b)")
    ap.add_argument("--refine-cameras", type=int, nargs="*", default=[4, 8],
                    help="camera counts for (b)'s refinement row (slow with many cameras)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats, best kept")
    ap.add_argument("--real-keypoints", help="2D keypoints (.npz or OpenPose JSON folders) of the Pose2Sim demo videos")
    ap.add_argument("--real-detect", action="store_true",
                    help="no keypoints given: run the project's MediaPipe detector on the demo videos (cached in out/)")
    ap.add_argument("--real-rig", help="rig for those (default: the demo's Qualisys Calib.qca.txt)")
    ap.add_argument("--real-fps", type=float, default=60.0, help="frame rate of the demo videos (default 60)")
    args = ap.parse_args(argv)
    if args.quick:
        args.leave_out, args.seeds = False, args.seeds[:1]
    parts = [args.only] if args.only else ["accuracy", "throughput", "real", "measures", "optimize"]
    for part in parts:
        {"accuracy": bench_accuracy, "throughput": bench_throughput, "dlt": bench_dlt, "real": bench_real,
         "measures": bench_measures, "optimize": bench_optimize}[part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
