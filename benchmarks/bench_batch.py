"""rigcap batch on Dask: 1 vs 2 worker processes, and what each session costs beyond the engine.

    .venv/bin/python benchmarks/bench_batch.py                       # 20 sessions of 30 s, 4 cameras
    .venv/bin/python benchmarks/bench_batch.py --sessions 8 --seconds 10 --workers 1,2,4

Sessions come from the synthetic studio (``rigcap.studio.sessions``, one seed each). Steps
``triangulate,angles`` with the defaults of ``rigcap triangulate`` (auto threshold, swap repair,
TRC/CSV/C3D exports) and of ``rigcap angles`` without the PNG.

Rows:
* ``in-process``: :func:`rigcap.batch.process_session` for each session one after the other in
  this process (modules already imported): what the work costs without Dask.
* ``engine only``: :func:`triangulate.engine.triangulate` on the loaded keypoints, nothing else.
* ``Dask, N workers``: :func:`rigcap.batch.run_batch` on a local cluster of N processes; "start"
  is starting the cluster and importing the steps' modules on every worker, "wall" the sessions.

Per-session overhead of the batch = (wall with 1 worker - in-process total) / sessions: the Dask
scheduling, pickling of options and reports, and the marker files.  Every session is redone
(``force``) into its own output folder per run.  The machine is shared: the load average before
each run is printed with it; read the speed-up against it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from calibration.rigfile import load_rig  # noqa: E402
from rigcap import batch  # noqa: E402
from rigcap.cli import build_parser  # noqa: E402
from rigcap.commands.triangulate import engine_settings  # noqa: E402
from rigcap.studio.sessions import write_synthetic_sessions  # noqa: E402
from triangulate.engine import triangulate  # noqa: E402

STEPS = ("triangulate", "angles")


def options(out_root: Path) -> batch.BatchOptions:
    config, formats, persons = engine_settings(build_parser().parse_args(["batch", "x"]))
    return batch.BatchOptions(config=config, formats=tuple(formats), persons=persons, plot=False, out_root=out_root,
                              force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each session")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        write_synthetic_sessions(tmp / "sessions", args.sessions, seconds=args.seconds, cameras=args.cameras)
        print(f"{args.sessions} synthetic sessions of {args.seconds:g} s ({args.cameras} cameras, 30 fps) written "
              f"in {time.perf_counter() - t:.1f} s; {batch.default_workers()} cores here")
        sessions = batch.find_sessions(tmp / "sessions")

        # in-process, and the engine alone
        opts = options(tmp / "out-inproc")
        batch.process_session(sessions[0], STEPS, opts)  # warm the imports
        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        per = [batch.process_session(s, STEPS, opts) for s in sessions]
        inproc = time.perf_counter() - t
        failed = [r for r in per if r.status != "done"]
        if failed:
            print(f"FAILED: {failed[0].name}: {failed[0].error}")
            return 1
        engine = []
        for s in sessions:
            rig, kp = load_rig(s.folder / "rig.toml"), batch.load_session_keypoints(s)
            t = time.perf_counter()
            triangulate(rig, kp, opts.config)
            engine.append(time.perf_counter() - t)
        step_s = {k: float(np.mean([r.summaries[k]["seconds"] for r in per])) for k in STEPS}

        rows = [("in-process, one after another", "-", inproc, load0)]
        walls = {}
        for n in workers:
            load = os.getloadavg()[0]
            res = batch.run_batch(sessions, STEPS, options(tmp / f"out-{n}"), workers=n)
            if res.count("done") != len(sessions):
                bad = next(r for r in res.reports if r.status != "done")
                print(f"FAILED with {n} workers: {bad.name}: {bad.error}")
                return 1
            walls[n] = res.seconds
            rows.append((f"Dask local cluster, {n} worker process(es)", f"{res.start_seconds:.1f}", res.seconds, load))

        print()
        print(f"| run | start s | wall s | sessions/s | speed-up vs 1 worker | load avg before |")
        print("|---|---|---|---|---|---|")
        for name, start, wall, load in rows:
            n = int(name.split(", ")[1].split()[0]) if name.startswith("Dask") else None
            speed = f"{walls[1] / wall:.2f}x" if n and 1 in walls else "-"
            print(f"| {name} | {start} | {wall:.2f} | {len(sessions) / wall:.2f} | {speed} | {load:.1f} |")
        print()
        n_frames = int(per[0].summaries["triangulate"]["frames"])
        print(f"per session ({n_frames} frames): engine only {1000 * np.mean(engine):.0f} ms; "
              f"triangulate step {1000 * step_s['triangulate']:.0f} ms (engine + load + save + TRC/CSV/C3D); "
              f"angles step {1000 * step_s['angles']:.0f} ms; whole task in-process {1000 * inproc / len(sessions):.0f} ms")
        if 1 in walls:
            print(f"batch overhead per session (1 worker wall - in-process) / sessions: "
                  f"{1000 * (walls[1] - inproc) / len(sessions):+.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
