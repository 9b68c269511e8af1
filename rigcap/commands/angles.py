"""``rigcap angles``: joint angles of every frame of a 3D points file -> CSV + PNG of the curves."""

from __future__ import annotations

from pathlib import Path

from rigcap.argtypes import up_axis


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "angles",
        help="joint angles (knee, hip, ankle, shoulder, elbow, trunk, valgus) from 3D joints -> CSV + PNG",
        description="Joint angles in degrees for every frame of a 3D points .npz (one person, or several with a "
        "persons axis): hip flexion/abduction, knee flexion, knee valgus (frontal-plane projection angle), ankle "
        "dorsiflexion, shoulder flexion/abduction/elevation, elbow flexion, trunk lean and rotation, pelvis "
        "rotation. Any skeleton rigcap reads (COCO-17, Halpe-26, MediaPipe-33, BODY-25); NaN where a joint is "
        "missing. --list prints each angle's definition (zero, sign, plane).",
    )
    p.add_argument("--points", metavar="NPZ", help="3D points file (rigcap triangulate / fuse --record)")
    p.add_argument("--out", metavar="CSV", help="angles CSV to write (default: <points>.angles.csv); a PNG of "
                   "the curves is written beside it (one per person for multi-person files)")
    p.add_argument("--up", type=up_axis, default="auto",
                   help="the world's vertical: x, y, z, -x, -y, -z, or auto (from the body; snapped to an axis "
                   "within 25 deg) (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="write the CSV only")
    p.add_argument("--list", action="store_true", help="print the definition of every angle and exit")
    p.set_defaults(func=run)


def print_definitions(console) -> None:
    from rich.table import Table

    from rigcap.analysis.angles import DEFINITIONS

    table = Table(title="rigcap angles: definitions (degrees; left and right share one sign convention)")
    for col in ("angle", "zero", "positive", "plane / joints", "ISB"):
        table.add_column(col, overflow="fold")
    for d in DEFINITIONS:
        table.add_row(d.name + ("_left/_right" if d.sided else ""), d.zero, d.positive, d.plane, d.isb or "-")
    console.print(table)


def run(args) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from rigcap.analysis.angles import parse_up
    from rigcap.analysis.angles_io import write_angle_files
    from rigcap.errors import RigcapError

    console = Console()
    if args.list:
        print_definitions(console)
        return 0
    if not args.points:
        raise RigcapError("--points is required (or --list)")
    up = parse_up(args.up)
    out = Path(args.out) if args.out else Path(args.points).with_suffix(".angles.csv")
    if out.suffix.lower() != ".csv":
        raise RigcapError(f"--out must name a .csv file, got {out}")
    data, angles, written = write_angle_files(args.points, out, up, plot=not args.no_plot)

    table = Table(title=f"rigcap angles  {data.n_frames} frames, {data.n_persons} person(s), "
                        f"up = {np.array2string(angles.up, precision=2, suppress_small=True)}")
    for col in ("angle", "valid %", "min", "median", "max"):
        table.add_column(col, justify="left" if col == "angle" else "right")
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v = angles.values.reshape(-1, len(angles.names))
            valid = np.isfinite(v).mean(0) * 100
            lo, med, hi = np.nanmin(v, 0), np.nanmedian(v, 0), np.nanmax(v, 0)
    for i, name in enumerate(angles.names):
        fmt = (lambda x: f"{x:.1f}" if np.isfinite(x) else "-")
        table.add_row(name, f"{valid[i]:.0f}", fmt(lo[i]), fmt(med[i]), fmt(hi[i]))
    console.print(table)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0

