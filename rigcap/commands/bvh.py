"""``rigcap bvh``: a 3D points file -> BVH (skeleton from median bone lengths + per-frame rotations)."""

from __future__ import annotations

from pathlib import Path

from rigcap.argtypes import add_points_arguments, load_points_arguments


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bvh",
        help="export 3D joints as a BVH animation (Blender, MotionBuilder, game engines)",
        description="Fits a skeleton (Mixamo-style bone names; offsets from the median bone lengths, standing "
        "rest pose, Y up) to a 3D points .npz and writes its per-frame rotations as BVH. Any skeleton rigcap "
        "reads; a multi-person file gives one BVH per person. Joints missing in some frames are interpolated.",
    )
    add_points_arguments(p, vertical="rig")
    p.add_argument("--out", metavar="BVH", help="file to write (default: <points>.bvh; <out>.person<N>.bvh per person)")
    p.add_argument("--units", choices=("cm", "m"), default="cm", help="BVH units (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from rich.console import Console

    from rigcap.analysis.bvh import forward_kinematics, skeleton_motion, write_bvh
    from rigcap.errors import RigcapError

    data, up, fps = load_points_arguments(args)
    if not fps:
        raise RigcapError(f"{args.points}: no frame rate in the file: pass --fps")
    out = Path(args.out) if args.out else Path(args.points).with_suffix(".bvh")
    console = Console()
    for p in range(data.n_persons):
        if not np.isfinite(data.points[p]).any():
            console.print(f"person {p}: no joints seen, skipped")
            continue
        motion = skeleton_motion(data.points[p], data.joint_names, fps=fps, up=up, units=args.units)
        path = write_bvh(out.with_suffix(f".person{p}.bvh") if data.multi else out, motion)
        err = np.linalg.norm(forward_kinematics(motion) - motion.points, axis=-1)
        console.print(f"wrote {path}: {motion.n_frames} frames at {fps:g} fps, 18 joints; the file puts the joints "
                      f"within {np.nanmedian(err):.2f} {args.units} (median, p95 {np.nanpercentile(err, 95):.2f}) of "
                      f"where they were seen (bone lengths fixed to their medians)")
    return 0
