"""``rigcap batch``: reprocess many recorded sessions in parallel on Dask distributed."""

from __future__ import annotations

from pathlib import Path

from rigcap.argtypes import up_axis


def register(subparsers) -> None:
    from rigcap.commands.triangulate import add_engine_arguments

    p = subparsers.add_parser(
        "batch",
        help="reprocess many recorded sessions in parallel (Dask): triangulate, angles",
        description="Finds the sessions under SESSIONS_DIR (rigcap session folders, or folders with keypoints2d.npz "
        "and rig.toml) and runs the steps on each, one Dask task per session: on a local cluster of one process "
        "per core by default, or on a running cluster with --scheduler. Each step gives exactly what its command "
        "gives run one session at a time (same settings, same defaults). Results go to <session>/batch/ (or "
        "--out DIR/<session>/), written atomically; a rerun skips the steps already done with the same settings "
        "and inputs. A failing session is reported with its error and does not stop the others (exit status 1 "
        "when any failed).",
    )
    p.add_argument("sessions", metavar="SESSIONS_DIR", help="folder holding the sessions (searched recursively)")
    p.add_argument("--steps", default="triangulate",
                   help="comma-separated steps: triangulate (as rigcap triangulate), angles (as rigcap angles, on the "
                   "triangulated points) (default: %(default)s)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="a running Dask scheduler (its workers must have rigcap installed and see the same paths); "
                   "default: a local cluster")
    p.add_argument("--workers", type=int, help="local cluster: worker processes (default: the number of cores)")
    p.add_argument("--out", metavar="DIR", help="write the results to DIR/<session>/ instead of <session>/batch/ "
                   "(for sessions on a read-only disk)")
    p.add_argument("--rig", metavar="FILE", help="one rig for every session (default: each session's rig.toml, or "
                   "the rig its session.toml names)")
    p.add_argument("--force", action="store_true", help="redo steps already done")
    add_engine_arguments(p)
    p.add_argument("--up", type=up_axis, default="auto", help="angles: the world's vertical, as rigcap angles --up (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="angles: write the CSV only, no PNG")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from rigcap.batch import BatchOptions, find_sessions, parse_steps, run_batch
    from rigcap.commands.triangulate import engine_settings
    from rigcap.errors import InputFileError, RigcapError

    console = Console()
    steps = parse_steps(args.steps)
    config, formats, persons = engine_settings(args)
    if args.workers is not None and args.workers < 1:
        raise RigcapError(f"--workers must be >= 1, got {args.workers}")
    if args.scheduler and args.workers:
        raise RigcapError("--workers sizes the local cluster; a --scheduler's cluster has its own workers")
    rig = Path(args.rig).resolve() if args.rig else None
    if rig is not None and not rig.is_file():
        raise InputFileError(rig, "not found")
    sessions = find_sessions(Path(args.sessions).resolve(), rig_given=rig is not None)
    options = BatchOptions(config=config, formats=tuple(formats), trc_units=args.trc_units, trc_up=args.trc_up,
                           persons=persons, up=args.up, plot=not args.no_plot, rig=rig,
                           out_root=Path(args.out).resolve() if args.out else None, force=args.force)
    where = args.scheduler or f"local cluster, {args.workers or 'one worker per core'}"
    console.print(f"rigcap batch: {len(sessions)} session(s), steps {', '.join(steps)}, on {where}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[last]}"), console=console,
                  refresh_per_second=2) as progress:  # rich's 10 Hz took 2 % of a core beside the workers (0.5 % at 2 Hz)
        task = progress.add_task("sessions", total=len(sessions), last="")

        def on_report(rep):
            mark = {"done": "[green]done[/]", "skipped": "[dim]skipped[/]", "failed": "[red]FAILED[/]"}[rep.status]
            progress.update(task, advance=1, last=f"{rep.name}: {mark}")

        result = run_batch(sessions, steps, options, scheduler=args.scheduler, workers=args.workers,
                           on_report=on_report)

    table = Table(title=f"rigcap batch  {len(sessions)} sessions in {result.seconds:.1f} s on {result.workers} "
                        f"worker(s) (cluster start {result.start_seconds:.1f} s)")
    for col in ("session", "status", "frames", "triangulated %", "reproj. error px", "s"):
        table.add_column(col, justify="left" if col in ("session", "status") else "right")
    for rep in result.reports:
        tri = rep.summaries.get("triangulate", {})
        err = tri.get("mean_error_px")
        table.add_row(rep.name, rep.status, str(tri.get("frames", "-")),
                      f"{tri['triangulated_pct']:.1f}" if "triangulated_pct" in tri else "-",
                      f"{err:.2f}" if isinstance(err, float) else "-", f"{rep.seconds:.2f}")
    console.print(table)
    for rep in result.reports:
        if rep.error:
            console.print(f"[red]{rep.name}[/]: {rep.error}", soft_wrap=True)
    failed = result.count("failed")
    console.print(f"{result.count('done')} done, {result.count('skipped')} already done (skipped), {failed} failed; "
                  f"results in {'<session>/batch/' if options.out_root is None else options.out_root}")
    return 1 if failed else 0
