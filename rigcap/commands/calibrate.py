"""``rigcap calibrate``: board recordings (one per camera) -> rig.toml, a report table and a PNG."""

from __future__ import annotations

from rigcap.argtypes import shipped_config

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="calibrate a rig from ChArUco board recordings (one video or image folder per camera)",
        description="Detect the ChArUco board in every input (camera name = file or folder stem), calibrate "
        "each camera's lens, chain camera poses through shared board sightings, bundle-adjust everything "
        "and write the rig file with its report (per-camera reprojection RMSE, board rigidity in mm) in "
        "[metadata], a table on the terminal and a PNG beside the rig file. When the board is not found, "
        "rigcap tries other board definitions and says which one matches the print.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="one video file or image folder per camera (or a camera folder "
                   "of a rigcap recording); with --keypoints: board videos of the same session, for metric scale and "
                   "the world origin (the board on the floor: --floor-frame, or found)")
    k = p.add_argument_group("from keypoints instead of a board (no board: a person, a wand, an animal)")
    k.add_argument("--keypoints", metavar="NPZ",
                   help="2D keypoints .npz of anything several cameras see at once: bundle-adjust --start-rig on them")
    k.add_argument("--start-rig", metavar="RIG",
                   help="rough rig to start from (a previous calibration, a tape-measured layout); any rig file rigcap "
                   "reads, cameras matched by name")
    k.add_argument("--scale-from", default="rig", metavar="SOURCE",
                   help="what makes the keypoint rig metric: 'rig' (the start rig's size), "
                   "'distance:JOINT_A,JOINT_B,METRES', 'baseline:CAMERA_A,CAMERA_B,METRES' (two camera centres) or "
                   "'height:METRES' (a person's stature) (default: %(default)s)")
    k.add_argument("--lens-model", default="auto",
                   help="intrinsics refined from keypoints: auto (held when the start rig's lenses come from a "
                   "calibration, else focal lengths only), focal, held, radial-centred, radial, no-k3, full "
                   "(default: %(default)s)")
    k.add_argument("--joint-bias", type=float, metavar="PX",
                   help="also solve a 2D offset per camera and joint (a detector's joint at another anatomical point "
                   "in each view), prior sigma PX pixels; helps when that bias is constant, not with MediaPipe on "
                   "walking (see README); slower")
    k.add_argument("--min-confidence", type=float, default=0.3,
                   help="detector confidence below which a keypoint is not used (default: %(default)s)")
    k.add_argument("--sync", action="store_true",
                   help="first find each camera's time offset from the motion (rigcap sync) and regroup the frames")
    p.add_argument("--board", default=shipped_config("board.toml"), help="board definition TOML (default: %(default)s)")
    p.add_argument("--out", default="rig.toml", help="rig file to write (default: %(default)s)")
    p.add_argument("--timestamps", metavar="FILE",
                   help="group frames by time: caliscope's timestamps.csv, a folder of rigcap per-camera "
                   "frame_index,time_ns CSVs, or a rigcap recording session folder (default: frame i of every "
                   "input is the same instant)")
    p.add_argument("--floor-frame", type=int, metavar="K",
                   help="instant at which the board lay face up on the floor: world origin at its corner, z up "
                   "(default: camera 0's frame; with --keypoints and board videos: the board found lying still "
                   "face up, else the start rig's frame)")
    p.add_argument("--fixed-intrinsics", "--fix-intrinsics", dest="fixed_intrinsics", action="store_true",
                   help="keep each camera's intrinsics fixed in bundle adjustment (board: the single-camera ones; "
                   "--keypoints: the start rig's)")
    p.add_argument("--intrinsics", metavar="RIG",
                   help="hold these lens parameters (matrix, distortion) instead of calibrating them: any rig file "
                   "rigcap reads (rigcap/anipose TOML, caliscope camera_array.toml, Qualisys .qca.txt), cameras "
                   "matched by name; use when the board recording covers too little of the images")
    p.add_argument("--intrinsics-only", action="store_true",
                   help="calibrate each input's lens on its own (no shared instants needed; a checkerboard or a "
                   "ChArUco board) and write a rig file of lenses with [metadata] intrinsics_only = true, for "
                   "--intrinsics later; lists every image where the board was not found")
    p.add_argument("--max-sightings", type=int, default=400,
                   help="board sightings used by bundle adjustment, evenly thinned (default: %(default)s)")
    p.add_argument("--workers", type=int, help="parallel detection threads (default: one per camera, up to the cores)")
    p.add_argument("--png", metavar="FILE", help="report image (default: the rig file's name with .png)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.keypoints or args.start_rig:
        return run_keypoints(args)
    from rich.console import Console
    from rigcap.errors import RigcapError

    if not args.inputs:
        raise RigcapError("give one board video or image folder per camera, or --keypoints NPZ --start-rig RIG")

    from calibration.board import BoardDefinition
    from calibration.pipeline import calibrate
    from calibration.report import print_table, save_png
    from calibration.rigfile import load_rig, save_rig

    console = Console()
    board = BoardDefinition.from_toml(args.board)
    if args.intrinsics_only:
        return _lenses_only(args, board, console)
    held = load_rig(args.intrinsics) if args.intrinsics else None
    result = calibrate(
        args.inputs, board, args.timestamps,
        origin="camera0" if args.floor_frame is None else args.floor_frame,
        refine_intrinsics=not (args.fixed_intrinsics or held is not None), intrinsics=held, workers=args.workers, progress=not args.no_progress,
        max_instants=args.max_sightings, board_path=args.board,
    )
    out = save_rig(result.rig, args.out)
    png = Path(args.png) if args.png else Path(out).with_suffix(".png")
    save_png(png, result.rig, result.cameras, result.rigidity_rmse_mm, result.board_points_world(board),
             title=f"rigcap calibration: {out.name}", z_up=args.floor_frame is not None)
    print_table(result.cameras, result.rigidity_rmse_mm, console)
    for w in result.warnings:
        if not any(w in c.warnings for c in result.cameras):
            console.print(f"[yellow]warning:[/yellow] {w}")
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(f"wrote {out} and {png}  ({secs})")
    return 0


def run_keypoints(args) -> int:
    """``--keypoints KP --start-rig RIG``: bundle adjustment on keypoint correspondences."""
    from rich.console import Console

    from rich.table import Table

    from calibration.keypoint_calibration import calibrate_from_keypoints, parse_scale_from
    from calibration.rig import Rig
    from calibration.rigfile import load_rig, save_rig
    from rigcap.errors import RigcapError
    from triangulate.engine import match_cameras
    from triangulate.formats import Keypoints2D

    console = Console()
    if not (args.keypoints and args.start_rig):
        raise RigcapError("--keypoints and --start-rig go together (keypoints to adjust on, the rig to start from)")
    parse_scale_from(args.scale_from)  # a clear error before any work
    if args.inputs and args.scale_from != "rig":
        raise RigcapError(f"board inputs and --scale-from {args.scale_from} both fix the scale: give one")
    if args.joint_bias is not None and not args.joint_bias > 0:
        raise RigcapError(f"--joint-bias {args.joint_bias:g}: give the prior sigma in pixels, above 0")
    start = load_rig(args.start_rig)
    kp = Keypoints2D.load(args.keypoints)
    try:
        rig = Rig([c.copy() for c in match_cameras(start, kp.camera_names)], dict(start.metadata))
    except RigcapError as exc:
        raise RigcapError(f"{args.keypoints} vs {args.start_rig}: {exc}") from None
    if args.sync:
        from triangulate.motion_sync import print_sync, sync_keypoints

        from triangulate.motion_sync import LOW_CONFIDENCE

        kp, sync = sync_keypoints(rig, kp)
        print_sync(sync, console)
        doubtful = [n for n, c in zip(sync.camera_names, sync.confidence) if c < LOW_CONFIDENCE]
        if doubtful:
            raise RigcapError(f"--sync: the offsets of {', '.join(doubtful)} are in doubt (see above); a rig calibrated on "
                              "wrongly paired frames would be wrong too. Sync with a rig close to the truth "
                              "(rigcap sync --rig), or give synchronised keypoints")
    with console.status("bundle adjustment") as status:
        def progress(name, it, cost):
            status.update(f"bundle adjustment: {name}, iteration {it}, cost {cost:.4g}")
        result = calibrate_from_keypoints(rig, kp.keypoints, kp.joint_names, scale_from=args.scale_from,
                                          lens_model=args.lens_model, min_confidence=args.min_confidence,
                                          refine_intrinsics=not args.fixed_intrinsics, joint_bias_px=args.joint_bias,
                                          progress=progress)
    if args.inputs:
        result = _board_scale_and_origin(args, rig, result, console)
    out = save_rig(result.rig, args.out)
    table = Table(title="calibration from keypoints")
    for col in ("camera", "RMSE px", "frames", "keypoints used", "outliers", "coverage", "lens model"):
        table.add_column(col, justify="left" if col in ("camera", "lens model") else "right")
    for c in result.cameras:
        table.add_row(c.name, f"{c.rmse_px:.2f}", str(c.views), str(c.corners), str(c.outliers), f"{c.coverage:.0%}",
                      c.lens_model)
    console.print(table)
    for c in result.cameras[:1]:
        console.print(f"lens: {c.lens_reason}")
    console.print(f"{result.n_observations} observations of {result.n_points} points; "
                  f"{result.outlier_fraction:.1%} rejected as outliers; noise ~{result.sigma_px:.2f} px per axis")
    console.print(f"scale from {result.scale_source}")
    console.print(f"wrote {out}  ({result.seconds['total']:.1f} s)")
    return 0


def _board_scale_and_origin(args, rig, result, console):
    """Board videos given with --keypoints: the board's corners, detected as the board calibration
    does, fix the keypoint rig's metric scale and world origin (calibration.keypoint_board)."""
    import numpy as np

    from calibration.board import BoardDefinition
    from calibration.keypoint_board import board_gauge, with_board
    from calibration.pipeline import detect_inputs
    from rigcap.errors import RigcapError

    board = BoardDefinition.from_toml(args.board)
    det = detect_inputs(args.inputs, board, args.timestamps, workers=args.workers, progress=not args.no_progress,
                        board_path=args.board)
    unknown = [n for n in det.names if n not in rig.names]
    if unknown:
        raise RigcapError(f"board input(s) {', '.join(unknown)}: no such camera in the keypoints "
                          f"({', '.join(rig.names)}); name each board video after its camera")
    corners = np.full((len(rig),) + det.corners.shape[1:], np.nan)
    for i, name in enumerate(det.names):
        corners[rig.names.index(name)] = det.corners[i]
    gauge = board_gauge(result.rig, corners, board, args.floor_frame)
    console.print(f"board: scale {gauge.scale:.5f} m per start-rig unit from {gauge.sightings} sightings "
                  f"(votes within {gauge.scale_spread:.2%}, corners {gauge.corner_rms_mm:.2f} mm RMS); {gauge.note}")
    return with_board(result, gauge)


def _lenses_only(args, board, console) -> int:
    from rich.table import Table

    from calibration.lens_only import calibrate_lenses
    from calibration.rigfile import save_rig

    result = calibrate_lenses(args.inputs, board, workers=args.workers, progress=not args.no_progress)
    out = save_rig(result.rig, args.out)
    table = Table(title="lens calibration (intrinsics only)")
    for col in ("camera", "size", "RMS px", "views used", "board not found", "fx", "fy", "cx", "cy"):
        table.add_column(col, justify="left" if col == "camera" else "right")
    meta = result.rig.metadata["calibration"]["cameras"]
    for cam in result.rig:
        m = meta[cam.name]
        table.add_row(cam.name, f"{cam.size[0]}x{cam.size[1]}", f"{m['rms_px']:.3f}", str(m["views"]),
                      f"{m['board_not_found']} of {m['images']}", f"{cam.matrix[0, 0]:.1f}", f"{cam.matrix[1, 1]:.1f}",
                      f"{cam.matrix[0, 2]:.1f}", f"{cam.matrix[1, 2]:.1f}")
    console.print(table)
    for name, missing in result.not_found.items():
        if missing:
            console.print(f"{name}: board not found in {len(missing)} image(s): {', '.join(missing)}")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"wrote {out} (intrinsics only: hold them with --intrinsics {out})")
    return 0
