"""rigcap batch on Dask: N worker processes vs 1, against the same work in plain processes.

    .venv/bin/python benchmarks/bench_batch.py                          # 20 sessions of 30 s, 4 cameras
    .venv/bin/python benchmarks/bench_batch.py --sessions 8 --seconds 10 --workers 1,2,4
    .venv/bin/python benchmarks/bench_batch.py --keep /tmp/bench_sessions   # reuse the sessions next time
    .venv/bin/python benchmarks/bench_batch.py --dask-defaults          # + each Dask row on Dask's default config

Sessions come from the synthetic studio (``rigcap.studio.sessions``, one seed each). Steps
``triangulate,angles`` with the defaults of ``rigcap triangulate`` (auto threshold, swap repair,
TRC/CSV/C3D exports) and of ``rigcap angles`` without the PNG.  A task gets paths (the session
folder, the options) and returns a small report: no arrays travel through Dask.

Rows (every one runs :func:`rigcap.batch.process_session` on every session, ``force``, into its own
output folder):

* ``in-process``: one after the other in this process (modules imported): the work without Dask.
* ``multiprocessing, N``: a ``multiprocessing`` pool of N spawned processes (steps imported at
  start, one BLAS thread): the CPU-bound reference.  Its speed-up over in-process is what this
  machine gives N processes *right now*; a shared machine gives less than N.
* ``Dask, N workers``: :func:`rigcap.batch.run_batch` on a local cluster of N worker processes
  (``rigcap.batch.CLUSTER_CONFIG``; with ``--dask-defaults`` again on Dask's own defaults).
  "start" is starting the cluster and importing the steps on every worker, "wall" the sessions.

Per row: the mean wall and CPU time of one session inside its process (wall well above CPU: the
process waited for a core) and, in brackets, the CPU of the task's own thread (the rest is the
worker's event loop beside it: Dask's profiler, ticks, monitors); for Dask the CPU of this
process per session (the local scheduler, the nannies, the client); and the load average (1 min)
before and after.  CPU time is what to compare on a shared machine; wall time moves with the load.  Then the overhead of
the batch per session, (Dask 1 worker wall - in-process wall) / sessions, split into "the task ran
slower in the worker" and "between the tasks" (scheduling, pickling, reports).  Every process runs
one BLAS thread (``rigcap.batch.WORKER_ENV``; set here before numpy is imported, for the in-process
row too).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # = rigcap.batch.WORKER_ENV (checked)
    os.environ[_var] = "1"

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

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


def _pool_start(started) -> None:
    batch.preload()
    started.wait()  # every process has imported the steps: the clock starts


def _pool_task(args):
    session, opts = args
    return batch.process_session(session, STEPS, opts)


class Row:
    def __init__(self, name: str, procs: int, start_s: float | None, wall_s: float, reports, load: tuple,
                 client_cpu_s: float | None = None):
        self.name, self.procs, self.start_s, self.wall_s, self.reports, self.load = name, procs, start_s, wall_s, reports, load
        self.client_cpu_s = client_cpu_s  # Dask: this process (scheduler, nannies, client) during the sessions
        failed = [r for r in reports if r.status != "done"]
        if failed:
            raise SystemExit(f"FAILED ({name}): {failed[0].name}: {failed[0].error}")

    @property
    def task_s(self) -> float:
        return float(np.mean([r.seconds for r in self.reports]))

    @property
    def cpu_s(self) -> float:
        return float(np.mean([r.cpu_seconds for r in self.reports]))

    @property
    def task_cpu_s(self) -> float:
        return float(np.mean([r.task_cpu_seconds for r in self.reports]))


def run_in_process(sessions, out: Path) -> Row:
    opts = options(out)
    batch.process_session(sessions[0], STEPS, opts)  # warm: imports, first-call caches
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    reports = [batch.process_session(s, STEPS, opts) for s in sessions]
    return Row("in-process, one after another", 1, None, time.perf_counter() - t, reports, (load0, os.getloadavg()[0]))


def run_pool(sessions, out: Path, n: int) -> Row:
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    ctx = mp.get_context("spawn")  # as Dask's workers
    started = ctx.Barrier(n + 1)
    with ctx.Pool(n, initializer=_pool_start, initargs=(started,)) as pool:
        started.wait()
        start = time.perf_counter() - t
        t1 = time.perf_counter()
        opts = options(out)
        reports = list(pool.imap_unordered(_pool_task, [(s, opts) for s in sessions], chunksize=1))
        wall = time.perf_counter() - t1
    return Row(f"multiprocessing pool, {n} processes (reference)", n, start, wall, reports, (load0, os.getloadavg()[0]))


def run_dask(sessions, out: Path, n: int, dask_defaults: bool = False) -> tuple[Row, dict]:
    load0 = os.getloadavg()[0]
    kept = batch.CLUSTER_CONFIG
    if dask_defaults:
        batch.CLUSTER_CONFIG = {}  # Dask's own defaults (profiler, 20 ms tick, ...): the comparison row
    try:
        res = batch.run_batch(sessions, STEPS, options(out), workers=n)
    finally:
        batch.CLUSTER_CONFIG = kept
    name = f"Dask local cluster, {n} worker process(es){', Dask default config' if dask_defaults else ''}"
    return Row(name, n, res.start_seconds, res.seconds, res.reports, (load0, os.getloadavg()[0]),
               res.client_cpu_seconds), {"env": res.worker_env, "timers": res.worker_timers}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each session")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (1 is always run)")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the sessions here (or reuse them when there)")
    ap.add_argument("--dask-defaults", action="store_true",
                    help="also run each Dask row with Dask's default config instead of rigcap.batch.CLUSTER_CONFIG")
    args = ap.parse_args()
    workers = sorted({1, *(int(w) for w in args.workers.split(","))})
    assert all(os.environ[k] == v for k, v in batch.WORKER_ENV.items()), "keep this script's env = WORKER_ENV"

    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        tmp = Path(tmp)
        root = args.keep or tmp / "sessions"
        t = time.perf_counter()
        if not (root / f"session-{args.sessions - 1:03d}").is_dir():
            write_synthetic_sessions(root, args.sessions, seconds=args.seconds, cameras=args.cameras)
        sessions = batch.find_sessions(root)[: args.sessions]
        print(f"{len(sessions)} synthetic sessions of {args.seconds:g} s ({args.cameras} cameras, 30 fps) ready "
              f"in {time.perf_counter() - t:.1f} s; {batch.default_workers()} cores here; "
              f"load average now {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)

        rows = [run_in_process(sessions, tmp / "out-inproc")]
        print(f"  {rows[-1].name}: {rows[-1].wall_s:.1f} s", flush=True)
        envs = {}
        for n in workers:
            if n > 1:
                rows.append(run_pool(sessions, tmp / f"out-pool-{n}", n))
                print(f"  {rows[-1].name}: {rows[-1].wall_s:.1f} s", flush=True)
            for defaults in (False, True) if args.dask_defaults else (False,):
                row, info = run_dask(sessions, tmp / f"out-dask-{n}", n, defaults)
                envs.setdefault(n, info)
                rows.append(row)
                print(f"  {rows[-1].name}: {rows[-1].wall_s:.1f} s", flush=True)

        inproc = rows[0]
        dask_rows = [r for r in rows if r.name.startswith("Dask")]
        dask1 = next(r for r in dask_rows if r.procs == 1)  # rigcap's config (the first Dask row of each size)
        print()
        print("| run | start s | wall s | per session in its process: wall / CPU (task's thread) ms "
              "| client process CPU ms per session | speed-up vs in-process | Dask speed-up vs 1 worker "
              "| load avg before → after |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            start = "-" if r.start_s is None else f"{r.start_s:.1f}"
            same = next((d for d in dask_rows if d.procs == 1 and d.name.endswith("config") == r.name.endswith("config")),
                        dask1)
            vs1 = f"{same.wall_s / r.wall_s:.2f}×" if r in dask_rows else "-"
            client = "-" if r.client_cpu_s is None else f"{1000 * r.client_cpu_s / len(r.reports):.0f}"
            print(f"| {r.name} | {start} | {r.wall_s:.1f} | {1000 * r.task_s:.0f} / {1000 * r.cpu_s:.0f} "
                  f"({1000 * r.task_cpu_s:.0f}) | {client} | {inproc.wall_s / r.wall_s:.2f}× | {vs1} | "
                  f"{r.load[0]:.1f} → {r.load[1]:.1f} |")
        print()
        for n in workers:
            if n > 1:
                pool = next(r for r in rows if r.name.startswith("multiprocessing") and r.procs == n)
                dn = next(r for r in dask_rows if r.procs == n)
                print(f"{n} processes: the machine gave the reference {inproc.wall_s / pool.wall_s:.2f}× now; Dask "
                      f"{inproc.wall_s / dn.wall_s:.2f}× over in-process ({dask1.wall_s / dn.wall_s:.2f}× over 1 worker): "
                      f"{100 * pool.wall_s / dn.wall_s:.0f} % of the reference")
        n_s = len(sessions)
        slower = dask1.task_s - inproc.task_s
        between = (dask1.wall_s - sum(r.seconds for r in dask1.reports)) / n_s
        print(f"batch overhead per session, (Dask 1 worker - in-process) / sessions: "
              f"{1000 * (dask1.wall_s - inproc.wall_s) / n_s:+.0f} ms = task slower in the worker {1000 * slower:+.0f} ms "
              f"(CPU {1000 * (dask1.cpu_s - inproc.cpu_s):+.0f} ms: the task's thread "
              f"{1000 * (dask1.task_cpu_s - inproc.task_cpu_s):+.0f} ms, the worker's other threads "
              f"{1000 * (dask1.cpu_s - dask1.task_cpu_s):+.0f} ms) + between tasks {1000 * between:+.0f} ms")
        for d in dask_rows:
            print(f"  {d.name}: the worker's other threads (event loop: profiler, tick, monitors) "
                  f"{1000 * (d.cpu_s - d.task_cpu_s):.0f} ms CPU per session")
        engine = []
        opts = options(tmp / "out-engine")
        for s in sessions[:3]:
            rig, kp = load_rig(s.folder / "rig.toml"), batch.load_session_keypoints(s)
            t = time.perf_counter()
            triangulate(rig, kp, opts.config)
            engine.append(time.perf_counter() - t)
        per = inproc.reports
        print(f"per session ({int(per[0].summaries['triangulate']['frames'])} frames, in-process): "
              f"engine only {1000 * np.mean(engine):.0f} ms (3 sessions); triangulate step "
              f"{1000 * np.mean([r.summaries['triangulate']['seconds'] for r in per]):.0f} ms "
              f"(engine + load + save + TRC/CSV/C3D); angles step "
              f"{1000 * np.mean([r.summaries['angles']['seconds'] for r in per]):.0f} ms; whole task "
              f"{1000 * inproc.task_s:.0f} ms")
        info = envs[max(workers)]
        print(f"worker environment (Dask, {max(workers)} workers): {next(iter(info['env'].values()))}; "
              f"periodic callbacks (ms): {next(iter(info['timers'].values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
