"""``rigcap opensim``: scale OpenSim's generic model to the subject and run inverse kinematics on a TRC."""

from __future__ import annotations

from pathlib import Path

from rigcap.argtypes import positive_float


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "opensim",
        help="OpenSim scaling + inverse kinematics on a TRC -> .mot joint angles (needs rigcap[opensim])",
        description="Scales the generic full-body model (Pose2Sim's Halpe-26 model, shipped with rigcap) to the "
        "subject's height and mass from the TRC's marker distances, then runs OpenSim's inverse kinematics on "
        "every frame, writing <name>.mot (joint angles, degrees), <name>_scaled.osim and the IK marker errors. "
        "Reads the TRC rigcap triangulate writes (any skeleton, m or mm, Y or Z up). Needs the opensim package: "
        "pip install 'rigcap[opensim]'.",
    )
    p.add_argument("--trc", required=True, metavar="TRC", help="marker file (rigcap triangulate's .trc)")
    p.add_argument("--height", type=positive_float, required=True, metavar="M", help="subject height in metres")
    p.add_argument("--mass", type=positive_float, required=True, metavar="KG", help="subject mass in kg")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <trc folder>/opensim)")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from rigcap.analysis.opensim_ik import run_opensim

    out = Path(args.out) if args.out else Path(args.trc).resolve().parent / "opensim"
    result = run_opensim(args.trc, out, args.height, args.mass)
    console = Console()
    table = Table(title=f"rigcap opensim  {len(result.times)} frames, IK marker error RMS "
                        f"{100 * result.marker_rms_m:.1f} cm (worst {100 * result.marker_max_m:.1f} cm)")
    for col in ("coordinate", "min", "median", "max"):
        table.add_column(col, justify="left" if col == "coordinate" else "right")
    for name in ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l", "ankle_angle_r", "ankle_angle_l",
                 "arm_flex_r", "arm_flex_l", "elbow_flex_r", "elbow_flex_l"):
        if name in result.coordinates:
            v = result[name]
            table.add_row(name, f"{np.min(v):.1f}", f"{np.median(v):.1f}", f"{np.max(v):.1f}")
    console.print(table)
    console.print(f"wrote {result.motion}, {result.scaled_model}, {result.markers_trc}")
    return 0
