"""``rigcap analyze``: count an exercise's reps in a 3D points file, their depth and range of motion,
and the form rules each rep broke (with frame numbers); a report PNG."""

from __future__ import annotations

from pathlib import Path

from rigcap.argtypes import add_points_arguments, load_points_arguments


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="exercise reps, depth/range of motion per rep and form-rule hits from 3D joints (+ report PNG)",
        description="Counts repetitions of an exercise (hysteresis on its driving angle), prints the depth and "
        "range of motion of each rep and the form rules it broke, with frame numbers, and writes a report PNG. "
        "Exercises are small TOML files: configs/exercises/squat.toml, lunge.toml, arm_raise.toml, or your own.",
    )
    add_points_arguments(p)
    p.add_argument("--exercise", required=True, metavar="NAME|TOML",
                   help="an exercise name (squat, lunge, arm_raise: configs/exercises/) or a TOML file")
    p.add_argument("--out", metavar="PNG", help="report PNG (default: <points>.<exercise>.png)")
    p.add_argument("--json", metavar="FILE", help="also write the reps and hits as JSON")
    p.add_argument("--person", type=int, default=None,
                   help="analyse this person of a multi-person file (default: every person)")
    p.add_argument("--no-plot", action="store_true", help="print only")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from rich.console import Console

    from rigcap.analysis.angles import JointAngles, joint_angles
    from rigcap.analysis.exercise_report import plot_report, reps_table
    from rigcap.analysis.exercises import analyze_exercise, load_exercise, result_summary
    from rigcap.errors import RigcapError

    console = Console()
    exercise = load_exercise(args.exercise)  # a bad exercise file fails before the points are read
    data, up, fps = load_points_arguments(args)
    persons = range(data.n_persons)
    if args.person is not None:
        if not 0 <= args.person < data.n_persons:
            raise RigcapError(f"--person {args.person}: {args.points} has {data.n_persons} person(s) (0..{data.n_persons - 1})")
        persons = [args.person]
    angles = joint_angles(data.points, data.joint_names, up=up)
    out = Path(args.out) if args.out else Path(args.points).with_suffix(f".{exercise.name}.png")
    summaries, written = [], []
    for p in persons:
        one = JointAngles(angles.values[p], angles.names, angles.up)
        result = analyze_exercise(one, exercise, fps)
        who = f" person {p}" if data.multi else ""
        console.print(reps_table(result, f"rigcap analyze  {exercise.name}{who}: {len(result.reps)} reps  "
                                         f"(driving angle {exercise.driving.label}, enter {exercise.enter:g}, "
                                         f"exit {exercise.exit:g} deg)"))
        hits = result.hits
        for h in hits:
            console.print(f"  rep {h.rep}: {h.rule} ({h.text or h.bound}): {h.angle} = {h.value:.1f} deg at frame {h.frame}",
                          soft_wrap=True, highlight=False)
        if result.not_this_exercise:
            console.print(f"  {len(result.not_this_exercise)} movement(s) past the thresholds were not a {exercise.name} "
                          f"(e.g. frame {result.not_this_exercise[0][0]}: not {result.not_this_exercise[0][1]})")
        if result.in_progress:
            console.print("  a rep was still in progress when the recording ended (not counted)")
        if not fps:
            console.print("  [yellow]no frame rate in the file: times are frames (pass --fps)[/]")
        summary = result_summary(result)
        summary["person"] = p
        summaries.append(summary)
        if not args.no_plot:
            png = out.with_suffix(f".person{p}.png") if data.multi else out
            written.append(plot_report(png, one, result, f"{Path(args.points).name}{who}  {exercise.name}"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summaries if data.multi else summaries[0], indent=1) + "\n")
        written.append(Path(args.json))
    if written:
        console.print("wrote " + ", ".join(str(w) for w in written))
    return 0
