"""``rigcap sync``: per-camera time offsets from the keypoints' motion -> the same 2D file with corrected timestamps."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sync",
        help="synchronise cameras from the motion they see (no sync cable): per-camera time offsets from 2D keypoints",
        description="Find each camera's time offset to camera 0 (and its clock drift) from the keypoints themselves: "
        "every whole-frame lag within +-MAX s is scored by the epipolar distance between the views, then the offset "
        "is refined to a fraction of a frame by interpolating the 2D trajectories in time. Writes the same keypoint "
        "file with corrected timestamps_ns plus time_offsets_s, sync_confidence and clock_drift (one per camera), "
        "and prints a row per camera beside what Pose2Sim-style speed correlation finds.",
    )
    p.add_argument("--rig", required=True, metavar="FILE", help="the rig (any rig file rigcap reads)")
    p.add_argument("--keypoints", required=True, metavar="NPZ", help="2D keypoints .npz (timestamps_ns or fps)")
    p.add_argument("--out", required=True, metavar="NPZ", help="synchronised keypoints .npz to write")
    p.add_argument("--fps", type=float, help="frame rate when the file has neither timestamps nor fps")
    p.add_argument("--max-offset-s", type=float, default=5.0, help="largest offset searched, s (default: %(default)s)")
    p.add_argument("--no-drift", action="store_true", help="offsets only, no clock drift")
    p.add_argument("--min-confidence", type=float, default=0.3,
                   help="detector confidence below which a keypoint is ignored (default: %(default)s)")
    p.add_argument("--camera-order", choices=("name", "rig"), default="name",
                   help="match keypoint cameras to rig cameras by name, or by order (default: %(default)s)")
    p.set_defaults(func=run)


def keypoints_and_rig(args):
    """The keypoints (rigcap .npz or OpenPose JSON folders) and the rig cameras in their order."""
    from calibration.rig import Rig
    from calibration.rigfile import load_rig
    from rigcap.commands.triangulate import load_keypoints
    from rigcap.errors import RigcapError
    from triangulate.engine import match_cameras

    rig = load_rig(args.rig)
    kp = load_keypoints(args.keypoints, args.fps)
    if args.camera_order == "rig":
        if kp.n_cameras != len(rig):
            raise RigcapError(f"--camera-order rig: the keypoints have {kp.n_cameras} cameras, the rig {len(rig)}")
        return kp, Rig([c.copy() for c in rig.cameras])
    try:
        return kp, Rig([c.copy() for c in match_cameras(rig, kp.camera_names)])
    except RigcapError as exc:
        raise RigcapError(f"{args.keypoints} vs {args.rig}: {exc} (or --camera-order rig to match by order)") from None


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from rigcap.errors import RigcapError
    from triangulate.motion_sync import apply_sync, print_sync, sync_from_motion

    console = Console()
    if Path(args.out).suffix != ".npz":
        raise RigcapError(f"--out must name a .npz file, got {args.out}")
    if not args.max_offset_s > 0:
        raise RigcapError(f"--max-offset-s must be > 0, got {args.max_offset_s}")
    kp, rig = keypoints_and_rig(args)
    with console.status("synchronising from motion"):
        sync = sync_from_motion(rig, kp, max_offset_s=args.max_offset_s, min_confidence=args.min_confidence,
                                drift=not args.no_drift)
    print_sync(sync, console)
    out = apply_sync(kp, sync).save(args.out)
    console.print(f"wrote {out}")
    return 0
