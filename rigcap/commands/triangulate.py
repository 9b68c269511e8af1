"""``rigcap triangulate``: 2D keypoints of a calibrated rig -> 3D joints (npz) + TRC, CSV, C3D."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

from rigcap.argtypes import positive_float


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "triangulate",
        help="triangulate 2D keypoints into 3D joints (npz, TRC for OpenSim, CSV, C3D)",
        description="Robust multi-view triangulation: undistort, repair left/right swaps, choose the views "
        "that agree, fit, optionally fill short gaps and low-pass. Reads a rig TOML (rigcap, aniposelib or "
        "Pose2Sim Calib.toml) and 2D keypoints as a rigcap .npz or a folder of OpenPose-style JSON folders "
        "(one per camera, Pose2Sim's layout). Writes the 3D points .npz and, next to it, .trc, .csv and .c3d.",
    )
    p.add_argument("--rig", required=True, metavar="FILE",
                   help="rig: rigcap/aniposelib TOML, Pose2Sim Calib.toml, caliscope camera_array.toml or "
                   "Qualisys .qca.txt")
    p.add_argument("--keypoints", required=True, metavar="NPZ|DIR",
                   help="2D keypoints .npz, or a folder of <camera>_json folders (OpenPose JSON)")
    p.add_argument("--out", required=True, metavar="NPZ", help="3D points file to write (.npz)")
    p.add_argument("--fps", type=positive_float, help="frame rate (needed for JSON input; default: the keypoints')")
    add_engine_arguments(p)
    p.add_argument("--camera-order", choices=("name", "rig"), default="name",
                   help="match keypoint cameras to rig cameras by name, or by order like Pose2Sim (default: %(default)s)")
    p.add_argument("--sync", action="store_true",
                   help="first find each camera's time offset from the motion (as rigcap sync does) and resample every "
                   "camera at camera 0's instants")
    p.set_defaults(func=run)


def add_engine_arguments(p) -> None:
    """The engine's settings and the export flags: shared by ``rigcap triangulate`` and ``rigcap batch``
    (so a batch run and a run one by one read the same defaults)."""
    p.add_argument("--threshold-px", default="auto",
                   help="reprojection error above which a view is an outlier, px, or 'auto': three times the "
                   "detector noise estimated from the data, at least 15 px (a coarse detector on large images "
                   "keeps its agreeing views) (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=0.3,
                   help="detector confidence below which a keypoint is ignored (default: %(default)s)")
    p.add_argument("--min-views", type=int, default=2, help="fewest agreeing views per joint (default: %(default)s)")
    p.add_argument("--no-swap-repair", action="store_true", help="do not repair left/right label swaps")
    p.add_argument("--refine", action="store_true",
                   help="polish every point by Gauss-Newton on the distorted-pixel error (slower; rarely changes much)")
    p.add_argument("--filter", choices=("none", "butterworth"), default="none",
                   help="temporal filter (default: %(default)s)")
    p.add_argument("--cutoff-hz", type=float, default=6.0,
                   help="Butterworth cutoff, zero-phase (default: %(default)s)")
    p.add_argument("--max-gap", type=int, default=0,
                   help="interpolate interior gaps up to this many frames (default: %(default)s)")
    p.add_argument("--exports", default="trc,csv,c3d",
                   help="comma-separated formats to write next to the 3D points file: trc, csv, c3d, or 'none' (default: %(default)s)")
    p.add_argument("--trc-units", choices=("m", "mm"), default="m", help="TRC units (default: %(default)s)")
    p.add_argument("--trc-up", choices=("y", "z"), default="y",
                   help="TRC up axis: y turns the rig's Z-up frame the way OpenSim wants (default: %(default)s)")
    from triangulate.optimize import OptimizeConfig

    d = OptimizeConfig()
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None,
                   help="after the engine, solve every frame at once: reprojection + smooth motion + one length per "
                   "bone (estimated from the data), robust loss; steadier bones and points (synthetic studio MPJPE "
                   "-25 to -55 %%), 4-6x the CPU time; per person with --persons. Default: on when the frame rate "
                   "is known (--no-optimize: the engine alone)")
    p.add_argument("--optimize-accel", type=positive_float, default=d.smooth_mps2, metavar="M/S2",
                   help="--optimize: acceleration a joint may have at one sigma (default: %(default)s)")
    p.add_argument("--optimize-bone-mm", type=positive_float, default=1000 * d.length_m, metavar="MM",
                   help="--optimize: how far a bone may stray from its length at one sigma (default: %(default)s)")
    p.add_argument("--persons", default="1", metavar="auto|N",
                   help="people to follow: 1 (default) triangulates one person as always; N or 'auto' associates "
                   "the people across cameras, tracks them with stable ids and writes the multi-person 3D form "
                   "(points (persons, frames, joints, 3), person_ids) and <stem>_P<id>.trc/.csv/.c3d per person "
                   "(default: %(default)s)")


def engine_settings(args):
    """``(TriangulationConfig, export formats, persons)`` from :func:`add_engine_arguments`' flags."""
    from rigcap.errors import RigcapError
    from triangulate.engine import TriangulationConfig
    from triangulate.exports import EXPORTERS
    from triangulate.optimize import OptimizeConfig
    from triangulate.people import check_persons

    formats = [] if args.exports.strip().lower() == "none" else [f.strip().lower() for f in args.exports.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown:
        raise RigcapError(f"--exports: unknown format(s) {', '.join(unknown)}; known: {', '.join(EXPORTERS)} or none")
    auto = str(args.threshold_px).strip().lower() == "auto"
    try:
        threshold = 15.0 if auto else float(args.threshold_px)
    except ValueError:
        raise RigcapError(f"--threshold-px must be a number of pixels or 'auto', got {args.threshold_px!r}") from None
    try:
        config = TriangulationConfig(
            threshold_px=threshold, auto_threshold=auto, min_confidence=args.min_confidence, min_views=args.min_views,
            swap_repair=not args.no_swap_repair, refine=args.refine,
            filter_hz=args.cutoff_hz if args.filter == "butterworth" else None, max_gap=args.max_gap,
            optimize=args.optimize is not False,
            optimize_config=OptimizeConfig(smooth_mps2=args.optimize_accel, length_m=args.optimize_bone_mm / 1000.0))
    except ValueError as exc:
        raise RigcapError(str(exc)) from None
    return config, formats, check_persons(args.persons)


def load_keypoints(path: str, fps: float | None, multi_person: bool = False):
    """A rigcap 2D keypoint .npz or an OpenPose-style JSON folder tree (``multi_person``: every person in the JSON)."""
    from rigcap.errors import InputFileError
    from triangulate.formats import Keypoints2D
    from triangulate.openpose_json import load_openpose_json

    p = Path(path)
    if p.is_dir():
        kp = load_openpose_json(p, fps=fps, multi_person=multi_person)
    elif p.is_file():
        kp = Keypoints2D.load(p)
        if fps:
            kp.fps = fps
    else:
        raise InputFileError(p, "not found (give a 2D keypoints .npz or a folder of OpenPose JSON folders)")
    return kp


def summary_table(result, title: str):
    """The rich table: one row per joint, then the totals."""
    from rich.table import Table

    import numpy as np

    s = result.summary()
    table = Table(title=title)
    for col in ("joint", "triangulated %", "reproj. error px", "views"):
        table.add_column(col, justify="left" if col == "joint" else "right")

    def fmt(v, spec):
        return format(v, spec) if np.isfinite(v) else "-"

    for name, pct, err, views in zip(result.points3d.joint_names, s["per_joint_pct"], s["per_joint_error_px"],
                                     s["per_joint_views"]):
        table.add_row(name, f"{pct:.1f}", fmt(err, ".2f"), fmt(views, ".2f"))
    table.add_section()
    table.add_row(f"all ({s['frames']} frames)", f"{s['triangulated_pct']:.1f}", fmt(s["mean_error_px"], ".2f"),
                  fmt(s["mean_views"], ".2f"), style="bold")
    return table


def run(args) -> int:
    from dataclasses import replace

    import numpy as np
    from rich.console import Console

    from calibration.rigfile import load_rig
    from rigcap.errors import RigcapError
    from triangulate.engine import match_cameras, triangulate
    from triangulate.exports import export_all
    from triangulate.formats import Keypoints2D

    console = Console()
    out = Path(args.out)
    if out.suffix != ".npz":
        raise RigcapError(f"--out must name a .npz file, got {out}")
    config, formats, persons = engine_settings(args)
    rig = load_rig(args.rig)
    kp = load_keypoints(args.keypoints, args.fps, multi_person=persons != 1)
    if config.filter_hz and not kp.fps:
        raise RigcapError("--filter butterworth needs the frame rate: pass --fps")
    if config.optimize and not kp.fps:
        if args.optimize:
            raise RigcapError(f"--optimize needs the frame rate: {args.keypoints} carries none, pass --fps")
        console.print(f"[yellow]warning:[/] {args.keypoints} carries no frame rate: the spatio-temporal solve is "
                      "skipped (pass --fps to have it)")
        config = replace(config, optimize=False)
    if formats and not kp.fps and kp.timestamps_ns is None:
        raise RigcapError(f"the exports ({', '.join(formats)}) need the frame rate: pass --fps (or --exports none)")
    if args.camera_order == "rig":
        if kp.n_cameras != len(rig):
            raise RigcapError(f"--camera-order rig: the keypoints have {kp.n_cameras} cameras, the rig {len(rig)}")
        kp = Keypoints2D(kp.keypoints, rig.names, kp.joint_names, kp.timestamps_ns, kp.fps)
    else:
        try:
            match_cameras(rig, kp.camera_names)  # a clear error before any work
        except RigcapError as exc:
            raise RigcapError(f"{args.keypoints} vs {args.rig}: {exc} (or --camera-order rig to match by order)") from None

    from calibration.rig import keypoint_extent_warnings

    for line in keypoint_extent_warnings(rig, kp.keypoints, kp.camera_names):
        console.print(f"[yellow]warning:[/] {line}")
    if args.sync:
        from calibration.rig import Rig
        from triangulate.motion_sync import print_sync, sync_keypoints

        kp, sync = sync_keypoints(Rig(match_cameras(rig, kp.camera_names)), kp)
        print_sync(sync, console)
    if persons != 1 or kp.multi_person:
        return run_people(args, console, rig, kp, config, persons, out, formats)
    with solve_progress(console, config.optimize) as progress:
        result = triangulate(rig, kp, config, progress=progress)
    for line in result.warnings:
        console.print(f"[yellow]warning:[/] {line}")
    result.points3d.save(out)
    written = [out] + export_all(result.points3d, out, formats, trc_units=args.trc_units, trc_up=args.trc_up)
    noise = f", detector noise ~{result.noise_px:.1f} px" if np.isfinite(result.noise_px) else ""
    console.print(summary_table(result, f"rigcap triangulate  {len(result.camera_names)} cameras "
                                        f"({', '.join(result.camera_names)}), outlier threshold "
                                        f"{result.threshold_px:.1f} px{noise}"))
    if result.swapped.any():
        console.print(f"left/right swaps repaired in {int(result.swapped.sum())} camera-frames")
    print_solve(console, result.optimized, kp.n_frames)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


@contextmanager
def solve_progress(console, on: bool):
    """``with solve_progress(console, on) as progress``: a rich bar over the spatio-temporal solve's frames
    (``progress(done, total)``), or None when the solve is off."""
    if not on:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("spatio-temporal solve"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("solve", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_solve(console, opt, n_frames: int) -> None:
    """One line on the spatio-temporal solve, when there was one."""
    if opt is None:
        return
    console.print(f"spatio-temporal solve: {n_frames} frames, {opt.n_chunks} chunk(s), {opt.n_iterations} "
                  f"iterations, robust cost {opt.cost_start:.4g} -> {opt.cost_end:.4g}")


def run_people(args, console, rig, kp, config, persons, out, formats) -> int:
    """Several people: association + tracking + the engine per person (``triangulate.people``)."""
    import numpy as np
    from rich.table import Table

    from triangulate.exports import export_all
    from triangulate.people import people_points3d

    with solve_progress(console, config.optimize) as progress:
        result, p3d = people_points3d(rig, kp, config, persons, progress)
    p3d.save(out)
    written = [out] + export_all(p3d, out, formats, trc_units=args.trc_units, trc_up=args.trc_up)
    n_f = kp.n_frames
    table = Table(title=f"rigcap triangulate --persons {args.persons}  {len(result.camera_names)} cameras, "
                        f"{n_f} frames; association + tracking {n_f / max(result.association_s, 1e-9):.0f} frames/s")
    for col in ("person", "frames seen", "triangulated %", "reproj. error px", "views"):
        table.add_column(col, justify="right")
    full = result.points3d
    for i, pid in enumerate(full.person_ids):
        ok = np.isfinite(full.points[i]).all(-1)
        seen = ok.any(-1)
        table.add_row(f"P{pid}", str(int(seen.sum())), f"{100 * ok[seen].mean() if seen.any() else 0:.1f}",
                      f"{np.nanmean(full.reprojection_error[i]) if ok.any() else float('nan'):.2f}",
                      f"{full.n_views[i][ok].mean() if ok.any() else 0:.2f}")
    console.print(table)
    if config.optimize:
        console.print(f"spatio-temporal solve per person: {result.points3d.n_persons} person(s), {n_f} frames each")
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0

