"""``rigcap synth board|person``: write synthetic studio data with exact ground truth."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write synthetic studio data (board recordings, a moving person) with exact ground truth",
        description="The synthetic studio: a virtual rig (cameras around a 4 m x 4 m floor, realistic focal "
        "lengths and lens distortion) with exact ground truth. 'board' writes ChArUco board videos for "
        "calibration; 'person' writes a moving person's 3D truth and the 2D keypoints a real detector would "
        "report (noise, occlusion, swaps, outliers, time offsets, dropped frames). A seed makes it reproducible.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    b = sub.add_parser("board", help="ChArUco board videos per camera + the true rig",
                       description="Write cam_*.mp4 (or PNG folders), rig_true.toml, board.toml and "
                       "board_poses_true.npz (true board poses and corner pixels).")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder")
    b.add_argument("--cameras", type=int, default=None, help="number of cameras (default 4, 8 with --hard)")
    b.add_argument("--frames", type=int, default=120, help="frames per camera (default: %(default)s)")
    b.add_argument("--fps", type=float, default=30.0, help="video frame rate (default: %(default)s)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    b.add_argument("--hard", action="store_true",
                   help="board faces one side of the ring at a time: no frame shows it to every camera")
    b.add_argument("--format", choices=("mp4", "png"), default="mp4",
                   help="mp4 (mp4v codec) or lossless PNG image folders (default: %(default)s)")
    b.add_argument("--size", type=int, nargs=2, default=(1280, 720), metavar=("W", "H"), help="image size")
    b.set_defaults(func=run_board)

    q = sub.add_parser("person", help="a moving person: 3D truth and realistic 2D keypoints",
                       description="Write rig_true.toml, keypoints2d.npz (2D keypoint format, with "
                       "timestamps_ns), points3d_true.npz (3D points format), keypoints_truth.npz (inlier, "
                       "outlier, missing, swapped, dropped, occluded masks and exact pixels) and, with "
                       "--videos, cam_*.mp4 of the rendered person.")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder")
    q.add_argument("--cameras", type=int, default=4, help="number of cameras (default: %(default)s)")
    q.add_argument("--seconds", type=float, default=10.0, help="duration (default: %(default)s)")
    q.add_argument("--fps", type=float, default=30.0, help="frame rate (default: %(default)s)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    q.add_argument("--noise", choices=("gaussian", "real"), default="gaussian",
                   help="detector error model: gaussian (--noise-px pixel noise, --outliers gross outliers) or real "
                   "(the errors measured on rigcap's MediaPipe detector on a real recording: proportional to the "
                   "person's size, per joint, larger at low confidence, correlated in time, heavy tails, a constant "
                   "per camera-joint bias; see benchmarks/fit_detector_noise.py) (default: %(default)s)")
    q.add_argument("--noise-px", type=float, default=2.0, help="gaussian model: 2D pixel noise sigma (default: %(default)s)")
    q.add_argument("--missing", type=float, default=None,
                   help="fraction of joints missing (default: 0.10 gaussian, 0 real: it reports every joint)")
    q.add_argument("--outliers", type=float, default=None,
                   help="fraction of gross outliers (default: 0.03 gaussian, 0 real: its tails are the outliers)")
    q.add_argument("--swaps", type=float, default=None,
                   help="fraction of left/right swapped camera-frames (default: 0.02 gaussian, the measured 0.09 real)")
    q.add_argument("--drop-rate", type=float, default=0.0, help="fraction of dropped camera-frames (default: %(default)s)")
    q.add_argument("--time-offset-ms", type=float, default=4.0,
                   help="per-camera clock offsets drawn within +- this many ms (default: %(default)s)")
    q.add_argument("--clean", action="store_true", help="a perfect detector: no noise, no misses, no offsets")
    q.add_argument("--program", choices=("mixed", "workout"), default="mixed",
                   help="the motion: mixed (walking, turning, a squat, arm raises) or workout (sets of squats, "
                   "lunges and lateral arm raises; the true repetitions go to reps_true.json) (default: %(default)s)")
    q.add_argument("--videos", action="store_true", help="also write cam_*.mp4 of the rendered person")
    q.add_argument("--size", type=int, nargs=2, default=(1280, 720), metavar=("W", "H"), help="image size")
    q.add_argument("--persons", type=int, default=1,
                   help="people in the studio, 1-6: with 2 or more, different heights, crossing paths, occluding "
                   "each other, the last one leaving and coming back; keypoints2d.npz is then the multi-person "
                   "form (cameras, frames, persons, joints, 3) in detection order and points3d_true.npz "
                   "(persons, frames, joints, 3) (default: %(default)s)")
    q.set_defaults(func=run_person)

    m = sub.add_parser("sessions", help="many small sessions (rig.toml + keypoints2d.npz + truth) for rigcap batch",
                       description="Write COUNT folders session-000 ... under --out, each with its own seed: rig.toml "
                       "(the true rig), keypoints2d.npz (realistic detector errors) and points3d_true.npz.")
    m.add_argument("--out", required=True, metavar="DIR", help="output folder")
    m.add_argument("--count", type=int, default=20, help="number of sessions (default: %(default)s)")
    m.add_argument("--cameras", type=int, default=4, help="cameras per session (default: %(default)s)")
    m.add_argument("--seconds", type=float, default=10.0, help="duration of each (default: %(default)s)")
    m.add_argument("--fps", type=float, default=30.0, help="frame rate (default: %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="seed of the first session (default: %(default)s)")
    m.set_defaults(func=run_sessions)


def _check_counts(**values) -> None:
    from rigcap.errors import RigcapError

    for name, (value, low, high) in values.items():
        if value is not None and not low <= value <= high:
            raise RigcapError(f"--{name.replace('_', '-')} must be between {low} and {high}, got {value}")


def run_board(args) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    import numpy as np

    from rigcap.studio.board_video import STUDIO_BOARD, write_board_recording
    from rigcap.studio.studio_rig import make_studio_rig

    n_cams = args.cameras or (8 if args.hard else 4)
    _check_counts(cameras=(n_cams, 1, 64), frames=(args.frames, 1, 100000))
    rig = make_studio_rig(n_cams, size=tuple(args.size), seed=args.seed)
    console = Console()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"rendering {n_cams} cameras", total=args.frames)
        paths = write_board_recording(args.out, rig=rig, board=STUDIO_BOARD, n_frames=args.frames, fps=args.fps,
                                      seed=args.seed, hard=args.hard, video_format=args.format,
                                      progress=lambda done, total: progress.update(task, completed=done))
    poses = np.load(paths["poses"])
    corners = poses["corners_2d"]
    seen = np.isfinite(corners[..., 0]).sum(-1) >= 6  # (C, F)
    table = Table(title=f"synthetic board recording: {paths['out_dir']}  ({args.frames} frames, "
                  f"{'hard' if args.hard else 'normal'} motion, seed {args.seed})")
    for col in ("camera", "focal px", "k1", "centre (m)", "board seen", "file"):
        table.add_column(col, justify="left" if col in ("camera", "file") else "right")
    for ci, cam in enumerate(rig.cameras):
        c = cam.center
        table.add_row(cam.name, f"{cam.matrix[0, 0]:.0f}", f"{cam.dist[0]:+.3f}",
                      f"{c[0]:+.2f} {c[1]:+.2f} {c[2]:.2f}", f"{int(seen[ci].sum())}",
                      Path(paths["videos"][ci]).name)
    console.print(table)
    all_cams = int(seen.all(0).sum())
    console.print(f"board: {STUDIO_BOARD.squares_x}x{STUDIO_BOARD.squares_y} squares of "
                  f"{STUDIO_BOARD.square_length * 100:.0f} cm, {STUDIO_BOARD.dictionary}; frames seen by every "
                  f"camera: {all_cams}; on the floor: {int(poses['floor'].sum())}")
    console.print(f"truth: {paths['rig'].name}, {paths['board'].name}, {paths['poses'].name}")
    return 0


def run_person(args) -> int:
    from rich.console import Console
    from rich.table import Table

    import numpy as np

    from calibration.rigfile import save_rig
    from rigcap.studio.keypoints import DetectorNoise
    from rigcap.studio.studio import SyntheticStudio

    _check_counts(cameras=(args.cameras, 1, 64), seconds=(args.seconds, 0.04, 3600.0), fps=(args.fps, 1.0, 1000.0),
                  noise_px=(args.noise_px, 0.0, 1000.0), missing=(args.missing, 0.0, 1.0),
                  outliers=(args.outliers, 0.0, 1.0), swaps=(args.swaps, 0.0, 1.0), drop_rate=(args.drop_rate, 0.0, 1.0))
    _check_counts(persons=(args.persons, 1, 6))
    if args.clean:
        noise, offsets = DetectorNoise.none(), None
    else:
        given = {k: v for k, v in (("missing_rate", args.missing), ("outlier_rate", args.outliers),
                                   ("swap_rate", args.swaps)) if v is not None}
        if args.noise == "gaussian":
            noise = DetectorNoise(pixel_sigma=args.noise_px, **{"missing_rate": 0.10, "outlier_rate": 0.03,
                                                                "swap_rate": 0.02, **given})
        else:
            noise = DetectorNoise.real_detector(**given)
        offsets = args.time_offset_ms
    if args.persons > 1:
        return run_crowd(args, noise, offsets)
    studio = SyntheticStudio(n_cameras=args.cameras, fps=args.fps, duration_s=args.seconds, seed=args.seed,
                             noise=noise, size=tuple(args.size), time_offsets_ms=offsets,
                             drop_rate=0.0 if args.clean else args.drop_rate, program=args.program)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_rig(studio.rig, out / "rig_true.toml")
    studio.keypoints2d().save(out / "keypoints2d.npz")
    studio.points3d_true().save(out / "points3d_true.npz")
    studio.detections.save_truth(out / "keypoints_truth.npz")
    if args.program == "workout":
        import json

        (out / "reps_true.json").write_text(json.dumps(studio.exercise_reps(), indent=1) + "\n")
    console = Console()
    videos = []
    if args.videos:
        import cv2
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("rendering videos", total=studio.n_frames * studio.n_cameras)
            for ci, cam in enumerate(studio.rig.cameras):
                path = out / f"{cam.name}.mp4"
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), studio.fps, tuple(cam.size))
                try:
                    for fi in range(studio.n_frames):
                        writer.write(studio.image(ci, fi))
                        progress.advance(task)
                finally:
                    writer.release()
                videos.append(path.name)

    d = studio.detections
    table = Table(title=f"synthetic person: {out}  ({studio.n_frames} frames at {studio.fps:g} fps, "
                  f"{studio.n_cameras} cameras, seed {args.seed})")
    for col in ("camera", "offset ms", "in img %", "occl %", "miss %", "outl %", "swaps", "drops", "conf"):
        table.add_column(col, justify="left" if col == "camera" else "right")
    for ci, name in enumerate(studio.rig.names):
        inimg = max(int(d.in_image[ci].sum()), 1)
        reported = max(int(np.isfinite(d.pixels[ci, ..., 0]).sum()), 1)
        conf = d.keypoints.confidence[ci]
        table.add_row(name, f"{d.time_offsets_ms[ci]:+.2f}", f"{100 * d.in_image[ci].mean():.1f}",
                      f"{100 * d.occluded[ci].sum() / inimg:.1f}", f"{100 * d.missing[ci].sum() / inimg:.1f}",
                      f"{100 * d.outlier[ci].sum() / reported:.1f}", str(int(d.swapped[ci].sum())),
                      str(int(d.dropped[ci].sum())),
                      f"{np.nanmedian(conf):.2f}" if np.isfinite(conf).any() else "-")
    console.print(table)
    files = ["rig_true.toml", "keypoints2d.npz", "points3d_true.npz", "keypoints_truth.npz"] + videos
    files += ["reps_true.json"] if args.program == "workout" else []
    what = (f"pixel noise sigma {noise.pixel_sigma:g} px" if noise.model == "gaussian" else
            f"real detector errors (t scale {100 * noise.real.sigma_rel:.2f} % of the body size, nu {noise.real.tail_nu:g}, "
            f"bias {100 * noise.real.bias_rel:.2f} %, {noise.real.tau_ms:.0f} ms)")
    console.print(f"wrote {', '.join(files)}; {what}")
    return 0


def run_crowd(args, noise, offsets) -> int:
    """``--persons N`` (N >= 2): the crowd studio's files and a table per person."""
    from rich.console import Console
    from rich.table import Table

    import numpy as np

    from calibration.rigfile import save_rig
    from rigcap.errors import RigcapError
    from rigcap.studio.crowd import CrowdStudio

    if args.videos:
        raise RigcapError("--videos renders one person; it is not available with --persons > 1 yet")
    studio = CrowdStudio(n_persons=args.persons, n_cameras=args.cameras, fps=args.fps, duration_s=args.seconds,
                         seed=args.seed, noise=noise, size=tuple(args.size), time_offsets_ms=offsets,
                         drop_rate=0.0 if args.clean else args.drop_rate)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_rig(studio.rig, out / "rig_true.toml")
    studio.keypoints2d().save(out / "keypoints2d.npz")
    studio.points3d_true().save(out / "points3d_true.npz")
    studio.save_truth(out / "keypoints_truth.npz")
    table = Table(title=f"synthetic people: {out}  ({studio.n_frames} frames at {studio.fps:g} fps, "
                  f"{studio.n_cameras} cameras, {studio.n_persons} people, seed {args.seed})")
    for col in ("person", "height m", "away s", "detected in camera-frames %", "occluded %", "closest m"):
        table.add_column(col, justify="right")
    t = studio.frame_times_s
    for p in range(studio.n_persons):
        d = studio.per_person[p]
        away = studio.crowd.absences[p]
        others = [q for q in range(studio.n_persons) if q != p]
        hip = studio.points3d[:, :, studio.skeleton.index("hip"), :2]
        closest = min(np.nanmin(np.linalg.norm(hip[p] - hip[q], axis=-1)) for q in others)
        table.add_row(f"P{p + 1}", f"{studio.crowd.heights[p]:.2f}",
                      f"{away[0]:.1f}-{away[1]:.1f}" if away else "-", f"{100 * studio.found[..., p].mean():.1f}",
                      f"{100 * d.occluded.sum() / max(d.in_image.sum(), 1):.1f}", f"{closest:.2f}")
    console = Console()
    console.print(table)
    console.print("wrote rig_true.toml, keypoints2d.npz, points3d_true.npz, keypoints_truth.npz "
                  f"(detection_person: who each detection slot is); pixel noise sigma {noise.pixel_sigma:g} px; "
                  f"{len(t)} frames")
    return 0


def run_sessions(args) -> int:
    from rigcap.studio.sessions import write_synthetic_sessions

    _check_counts(count=(args.count, 1, 100000), cameras=(args.cameras, 2, 64), seconds=(args.seconds, 0.04, 3600.0),
                  fps=(args.fps, 1.0, 1000.0))
    paths = write_synthetic_sessions(args.out, args.count, seconds=args.seconds, cameras=args.cameras, fps=args.fps,
                                     seed=args.seed)
    print(f"wrote {len(paths)} sessions under {args.out} ({args.cameras} cameras, {args.seconds:g} s each): "
          f"{paths[0].name} ... {paths[-1].name}")
    return 0
