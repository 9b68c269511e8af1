"""Reprocess many recorded sessions in parallel on Dask distributed (``rigcap batch``).

A *session* is a rigcap session folder (``session.toml``, README "Session folder") or any folder
holding ``keypoints2d.npz`` and a rig (``rig.toml`` beside it, or ``--rig``).  Each session is one
Dask task that runs the requested steps in order, each step exactly what the matching command
does one session at a time (``rigcap triangulate``, ``rigcap angles``: the same helpers and the
same defaults, the same flags through
``rigcap.commands.triangulate.add_engine_arguments``), so a batch result is byte-for-byte the one-by-one result.

Why it can be rerun safely
    Every step writes into a staging folder beside its outputs and moves each file into place
    with ``os.replace`` (atomic on one file system); only then does it write its marker
    ``<step>.done.json`` (also temp file + ``os.replace``), holding a fingerprint of its
    settings and of its inputs (path, size, modification time).  A rerun skips a step whose
    marker matches; a session killed half-way has no marker and is redone; a changed setting
    or input (a new rig, retriangulated points under the angles) redoes what depends on it.

Why a failure stays one session's
    A step's exception is caught inside the task and comes back as that session's report
    (one line; the traceback goes to ``batch-error.txt`` in its output folder); a worker that
    dies is reported the same way.  The other sessions go on.

Steps are a small registry (:func:`register_step`): name, what it needs, what it depends on,
and a function writing its files into the staging folder.  Workers look steps up by name, so a
step must be registered when this module is imported (the built-ins below) on every worker.

This is the top floor: it may import every package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from rigcap.errors import InputFileError, RigcapError

SESSION_FILE = "session.toml"
KEYPOINTS_FILE = "keypoints2d.npz"
RIG_FILE = "rig.toml"
OUT_FOLDER = "batch"  # a session's results, unless --out puts them elsewhere
ERROR_FILE = "batch-error.txt"
POINTS_FILE = "points3d.npz"
ANGLES_FILE = "points3d.angles.csv"


# ------------------------------------------------------------------ what a batch works on
@dataclass(frozen=True)
class SessionInput:
    """One session: ``name`` its path below the sessions folder ("." when that folder is the session)."""

    name: str
    folder: Path
    recorded: bool  # a rigcap session folder (session.toml)


@dataclass(frozen=True)
class BatchOptions:
    """Everything a step reads besides the session; sent to every worker (so: plain, picklable data)."""

    config: object  # triangulate.engine.TriangulationConfig
    formats: tuple[str, ...] = ("trc", "csv", "c3d")
    trc_units: str = "m"
    trc_up: str = "y"
    persons: int | None = 1
    up: str = "auto"  # angles' vertical (rigcap angles --up)
    plot: bool = True  # angles' PNG
    rig: Path | None = None  # one rig for every session (else each session's own)
    out_root: Path | None = None  # results in out_root/<session name>/ (else <session>/batch/)
    force: bool = False  # redo steps already done

    def out_dir(self, session: SessionInput) -> Path:
        if self.out_root is None:
            return session.folder / OUT_FOLDER
        return Path(self.out_root) / session.name


def is_session(folder: Path, rig_given: bool = False) -> bool:
    if (folder / SESSION_FILE).is_file():
        return True
    return (folder / KEYPOINTS_FILE).is_file() and (rig_given or (folder / RIG_FILE).is_file())


def find_sessions(root: str | Path, rig_given: bool = False) -> list[SessionInput]:
    """The sessions in ``root`` (or ``root`` itself when it is one), sorted by name; a session's own
    sub-folders are not searched, nor hidden folders or batch output folders."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, "not a folder (give the folder that holds the sessions)")
    if is_session(root, rig_given):
        return [SessionInput(".", root, (root / SESSION_FILE).is_file())]
    found = []
    for here, dirs, _files in os.walk(root):
        here_path = Path(here)
        keep = []
        for d in sorted(dirs):
            if d.startswith(".") or d == OUT_FOLDER:
                continue
            sub = here_path / d
            if is_session(sub, rig_given):
                found.append(SessionInput(sub.relative_to(root).as_posix(), sub, (sub / SESSION_FILE).is_file()))
            else:
                keep.append(d)
        dirs[:] = keep
    if not found:
        raise InputFileError(root, f"no sessions found (a session is a folder with {SESSION_FILE}, or with "
                             f"{KEYPOINTS_FILE} and {RIG_FILE}; --rig stands in for the rig)")
    return sorted(found, key=lambda s: s.name)


def session_rig(session: SessionInput, rig: Path | None) -> Path:
    """The rig file: ``--rig``, else ``rig.toml`` in the session, else the rig the recording named."""
    if rig is not None:
        return Path(rig)
    if (session.folder / RIG_FILE).is_file():
        return session.folder / RIG_FILE
    if session.recorded:
        import tomllib

        path = session.folder / SESSION_FILE
        try:
            named = tomllib.loads(path.read_text(encoding="utf-8")).get("session", {}).get("rig_file")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputFileError(path, f"not a valid TOML file ({exc})") from None
        if named:
            for candidate in (Path(named), session.folder / named):
                if candidate.is_file():
                    return candidate
            raise InputFileError(path, f"the rig it names ({named}) is not there: put {RIG_FILE} in the "
                                 "session or pass --rig")
    raise InputFileError(session.folder, f"no rig: put {RIG_FILE} in the session or pass --rig")


def session_keypoints_inputs(session: SessionInput) -> list[Path]:
    """The files the session's 2D keypoints come from (its npz, else the recorded segments)."""
    npz = session.folder / KEYPOINTS_FILE
    if npz.is_file() or not session.recorded:
        return [npz]
    return sorted(p for p in session.folder.glob("*/segment-*") if p.suffix in (".json", ".bin", ".csv"))


def load_session_keypoints(session: SessionInput):
    """The session's 2D keypoints: ``keypoints2d.npz``, or rebuilt from the segments of a recording
    that was never finalised (without writing into the session)."""
    from triangulate.formats import Keypoints2D

    npz = session.folder / KEYPOINTS_FILE
    if npz.is_file():
        return Keypoints2D.load(npz)
    if session.recorded:
        from capture.recording import open_session

        return open_session(session.folder, write_keypoints=False).keypoints2d()
    raise InputFileError(npz, "not found")


# ------------------------------------------------------------------ steps
@dataclass(frozen=True)
class StepContext:
    session: SessionInput
    options: BatchOptions
    out_dir: Path  # where the results live (earlier steps' files included)
    staging: Path  # where this step writes; its files are moved into out_dir on success


@dataclass(frozen=True)
class Step:
    """``run(ctx) -> summary dict`` writes the step's files into ``ctx.staging``; ``inputs(ctx)`` the
    files its result depends on; ``settings(options)`` the options it reads (both fingerprinted)."""

    name: str
    help: str
    run: Callable[[StepContext], dict]
    inputs: Callable[[StepContext], list[Path]]
    settings: Callable[[BatchOptions], dict]
    after: tuple[str, ...] = ()  # steps whose outputs it reads (they run first when asked for together)


STEPS: dict[str, Step] = {}


def register_step(step: Step) -> Step:
    STEPS[step.name] = step
    return step


def parse_steps(text: str) -> tuple[str, ...]:
    """'triangulate,angles' -> the names, checked and put in dependency order."""
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown or not names:
        raise RigcapError(f"--steps: unknown step(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(STEPS)}")
    ordered: list[str] = []

    def add(name):
        for dep in STEPS[name].after:
            if dep in names:
                add(dep)
        if name not in ordered:
            ordered.append(name)

    for n in names:
        add(n)
    return tuple(ordered)


def _triangulate_run(ctx: StepContext) -> dict:
    from dataclasses import replace

    import numpy as np

    from calibration.rigfile import load_rig
    from triangulate.engine import match_cameras, triangulate
    from triangulate.exports import export_all
    from triangulate.people import people_points3d

    opts = ctx.options
    rig_path = session_rig(ctx.session, opts.rig)
    rig = load_rig(rig_path)
    kp = load_session_keypoints(ctx.session)
    if opts.config.filter_hz and not kp.fps:
        raise InputFileError(ctx.session.folder, "the Butterworth filter needs the frame rate and the keypoints carry none")
    if opts.formats and not kp.fps and kp.timestamps_ns is None:
        raise InputFileError(ctx.session.folder, f"the exports ({', '.join(opts.formats)}) need the frame rate and "
                             "the keypoints carry none (or --exports none)")
    try:
        match_cameras(rig, kp.camera_names)
    except RigcapError as exc:
        raise InputFileError(ctx.session.folder, f"keypoints vs {rig_path}: {exc}") from None
    config, notes = opts.config, []
    if config.optimize and not kp.fps:  # one session without a frame rate does not stop the batch
        config = replace(config, optimize=False)
        notes.append("the keypoints carry no frame rate: the spatio-temporal solve is skipped")
    if opts.persons != 1 or kp.multi_person:
        result, p3d = people_points3d(rig, kp, config, opts.persons)
    else:
        result = triangulate(rig, kp, config)
        p3d = result.points3d
    out = ctx.staging / POINTS_FILE
    p3d.save(out)
    export_all(p3d, out, list(opts.formats), trc_units=opts.trc_units, trc_up=opts.trc_up)
    ok = np.isfinite(p3d.points).all(-1)
    return {"rig": str(rig_path), "cameras": list(result.camera_names), "frames": int(p3d.n_frames),
            "triangulated_pct": round(100.0 * float(ok.mean()), 3) if ok.size else 0.0,
            "mean_error_px": round(float(np.nanmean(p3d.reprojection_error)), 4) if ok.any() else None,
            "warnings": notes + list(result.warnings)}


register_step(Step(
    "triangulate", "2D keypoints -> points3d.npz (+ exports), as rigcap triangulate",
    run=_triangulate_run,
    inputs=lambda ctx: [session_rig(ctx.session, ctx.options.rig)] + session_keypoints_inputs(ctx.session),
    settings=lambda o: {"config": asdict(o.config), "formats": list(o.formats), "trc_units": o.trc_units,
                        "trc_up": o.trc_up, "persons": o.persons}))


def _angles_run(ctx: StepContext) -> dict:
    import numpy as np

    from rigcap.analysis.angles import parse_up
    from rigcap.analysis.angles_io import write_angle_files

    points = ctx.out_dir / POINTS_FILE
    if not points.is_file():
        raise InputFileError(points, "not found: run the triangulate step first (--steps triangulate,angles)")
    _, angles, _ = write_angle_files(points, ctx.staging / ANGLES_FILE, parse_up(ctx.options.up), ctx.options.plot)
    valid = np.isfinite(angles.values)
    return {"angles": len(angles.names), "valid_pct": round(100.0 * float(valid.mean()), 3) if valid.size else 0.0}


register_step(Step(
    "angles", "points3d.npz -> points3d.angles.csv (+ PNG), as rigcap angles",
    run=_angles_run,
    inputs=lambda ctx: [ctx.out_dir / POINTS_FILE],
    settings=lambda o: {"up": o.up, "plot": o.plot},
    after=("triangulate",)))


# ------------------------------------------------------------------ one session (runs on a worker)
@dataclass
class SessionReport:
    name: str
    out_dir: str
    status: str = "done"  # done | skipped (every step already done) | failed
    steps: dict = field(default_factory=dict)  # step -> done | skipped
    summaries: dict = field(default_factory=dict)  # step -> its summary
    error: str | None = None  # one line
    seconds: float = 0.0  # wall time of the task, in the worker
    cpu_seconds: float = 0.0  # CPU time of the worker process meanwhile (wall >> CPU: the machine is busy)
    task_cpu_seconds: float = 0.0  # of which the task's own thread (the rest: the worker's event loop, its monitors)
    worker: str = ""


def _stat(path: Path) -> list:
    try:
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]


def fingerprint(step: Step, ctx: StepContext) -> str:
    doc = {"step": step.name, "settings": step.settings(ctx.options), "inputs": [_stat(p) for p in step.inputs(ctx)]}
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _marker(out_dir: Path, step: str) -> Path:
    return out_dir / f"{step}.done.json"


def _is_done(out_dir: Path, step: str, fp: str) -> dict | None:
    try:
        doc = json.loads(_marker(out_dir, step).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if doc.get("fingerprint") != fp or not all((out_dir / f).is_file() for f in doc.get("files", [])):
        return None
    return doc


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, RigcapError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def process_session(session: SessionInput, steps: tuple[str, ...], options: BatchOptions) -> SessionReport:
    """Run ``steps`` on one session; never raises for the session's own problems (see the module)."""
    t0, c0, tc0 = time.perf_counter(), time.process_time(), time.thread_time()
    out_dir = options.out_dir(session)
    report = SessionReport(session.name, str(out_dir), worker=f"{os.uname().nodename}:{os.getpid()}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in steps:
            step = STEPS[name]
            ctx = StepContext(session, options, out_dir, out_dir / f".staging-{name}-{uuid.uuid4().hex[:8]}")
            fp = fingerprint(step, ctx)
            done = None if options.force else _is_done(out_dir, name, fp)
            if done is not None:
                report.steps[name] = "skipped"
                report.summaries[name] = done.get("summary", {})
                continue
            ts = time.perf_counter()
            ctx.staging.mkdir()
            try:
                summary = step.run(ctx)
                files = sorted(p.name for p in ctx.staging.iterdir() if p.is_file())
                for f in files:
                    os.replace(ctx.staging / f, out_dir / f)
            finally:
                shutil.rmtree(ctx.staging, ignore_errors=True)
            fp = fingerprint(step, ctx)  # the inputs as they are now (an earlier step may have rewritten them)
            summary["seconds"] = round(time.perf_counter() - ts, 4)
            write_atomic(_marker(out_dir, name), json.dumps(
                {"step": name, "fingerprint": fp, "files": files, "summary": summary,
                 "session": str(session.folder)}, indent=1, default=str))
            report.steps[name] = "done"
            report.summaries[name] = summary
        (out_dir / ERROR_FILE).unlink(missing_ok=True)
        report.status = "skipped" if report.steps and all(v == "skipped" for v in report.steps.values()) else "done"
    except Exception as exc:  # a session's failure is its report, never the batch's end
        report.status = "failed"
        report.error = _one_line(exc)
        try:
            write_atomic(out_dir / ERROR_FILE, f"{session.folder}\n{traceback.format_exc()}")
        except OSError:
            pass
    report.seconds = time.perf_counter() - t0
    report.cpu_seconds = time.process_time() - c0
    report.task_cpu_seconds = time.thread_time() - tc0
    return report


# ------------------------------------------------------------------ many sessions (the client)
@dataclass
class BatchResult:
    reports: list[SessionReport]
    seconds: float  # submitting the first session -> the last report (cluster start excluded)
    start_seconds: float  # starting or connecting to the cluster, warming the steps up on every worker
    workers: int
    worker_env: dict = field(default_factory=dict)  # worker -> its WORKER_ENV variables and MALLOC_TRIM_THRESHOLD_
    worker_timers: dict = field(default_factory=dict)  # worker -> its periodic callbacks (name -> ms)
    client_cpu_seconds: float = 0.0  # CPU of this process meanwhile (with a local cluster: its scheduler, nannies)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.reports)


def default_workers() -> int:
    """Workers of the local cluster: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def preload() -> None:
    """Import the modules the steps import at their top (see :func:`warm_up`)."""
    import calibration.rigfile  # noqa: F401
    import rigcap.analysis.angles  # noqa: F401
    import rigcap.analysis.angles_io  # noqa: F401
    import rigcap.analysis.points  # noqa: F401
    import triangulate.engine  # noqa: F401
    import triangulate.exports  # noqa: F401
    import triangulate.people  # noqa: F401


# The environment of the local cluster's worker processes, set before each starts (Dask's
# ``distributed.nanny.pre-spawn-environ``).  One BLAS/OpenMP thread per worker: the workers are the
# parallelism, and a second BLAS thread per process only spins against the other worker (measured
# on one 20 s session here: CPU 0.88 s with OpenBLAS's default threads, 0.54 s with one).  And NOT
# Dask's default MALLOC_TRIM_THRESHOLD_=65536: setting it switches off glibc's dynamic mmap
# threshold, so every numpy array over 128 KiB is mmapped and unmapped afresh; the same session
# cost 1.10 s CPU with it (the "+300 ms per session inside a worker" of the first benchmark).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# Dask's own settings for the local cluster (``dask.config``, set while it starts; its worker
# processes get them from their nanny).  MEASURED CPU (see README "Batch"): a task cost ~+430 ms
# CPU (2.6 s -> 3.0 s) in a worker, not in the engine -- the task's own thread took the same CPU
# as in-process -- but in the worker's event loop thread, which ran beside the task:
#   * the statistical profiler: every 10 ms it takes the GIL, walks every thread's stack and
#     merges it into a call tree (~250 ms a task), for a dashboard a batch never opens;
#   * the event-loop health tick every 20 ms (~70 ms a task);
#   * the system monitor (psutil every 0.5 s) and the memory monitor (every 0.1 s) (~40 ms).
# With 2 workers on 2 cores that CPU is taken from the other worker.  The memory monitor still
# pauses/spills/restarts a worker over its limit, checked once a second; the tick still warns
# of a blocked loop.  ``worker-saturation`` 1.0: a worker holds one session at a time (Dask's
# 1.1 rounds up to 2 for a one-thread worker), so the last sessions go to whichever worker is free.
CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.worker-saturation": 1.0,
}


def worker_env() -> dict:
    """The variables of :data:`WORKER_ENV` (and Dask's MALLOC_TRIM_THRESHOLD_) as a worker has them."""
    return {k: os.environ.get(k) for k in (*WORKER_ENV, "MALLOC_TRIM_THRESHOLD_")}


def worker_timers(dask_worker) -> dict:
    """The periodic callbacks of a worker (name -> interval ms): what runs beside the tasks."""
    return {name: pc.callback_time for name, pc in sorted(dask_worker.periodic_callbacks.items())}


def warm_up(steps: tuple[str, ...], options: BatchOptions) -> SessionReport:
    """Run ``steps`` once on a tiny synthetic session (3 cameras, 1 s) in a temporary folder: the
    imports the steps make on first use (the C3D writer, the importers: 0.2 s CPU of the first
    session in a fresh worker, measured) and first-call caches are paid here, not by a session."""
    import tempfile
    from dataclasses import replace

    from rigcap.studio.sessions import write_synthetic_session

    preload()
    with tempfile.TemporaryDirectory(prefix="rigcap-batch-warm-up-") as tmp:
        folder = write_synthetic_session(Path(tmp) / "warm-up", seed=0, seconds=1.0, cameras=3)
        return process_session(SessionInput("warm-up", folder, False), steps,
                               replace(options, rig=None, out_root=Path(tmp) / "out", force=True))


def _worker_plugin(steps: tuple[str, ...], options: BatchOptions):
    from distributed import WorkerPlugin

    class WarmUpSteps(WorkerPlugin):
        """:func:`warm_up` when a worker starts, also one that joins or restarts later (a
        ``--scheduler`` cluster, a worker that died): no session pays for imports."""

        name = "rigcap-batch-warm-up"

        def setup(self, worker):
            warm_up(steps, options)

    return WarmUpSteps()


def run_batch(sessions: list[SessionInput], steps: tuple[str, ...], options: BatchOptions, scheduler: str | None = None,
              workers: int | None = None, on_report: Callable[[SessionReport], None] | None = None) -> BatchResult:
    """Every session as one Dask task on a local cluster (``workers`` processes of one thread each,
    default :func:`default_workers`) or on the cluster at ``scheduler`` (tcp://host:8786; its
    workers must import rigcap and see the same paths).  ``on_report`` is called as each ends."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise RigcapError("rigcap batch needs Dask distributed: pip install 'rigcap[batch]'") from None

    t0 = time.perf_counter()
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise RigcapError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({_one_line(exc)})") from None
    else:
        n = workers or default_workers()
        import dask

        # One thread per worker process: the engine is numpy, which holds the GIL between calls.
        with dask.config.set({**CLUSTER_CONFIG, "distributed.nanny.pre-spawn-environ": dict(WORKER_ENV)}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL)
        client = Client(cluster)
    try:
        client.register_plugin(_worker_plugin(steps, options))
        env = client.run(worker_env)
        timers = client.run(worker_timers)
        n_workers = len(client.nthreads())
        start_s = time.perf_counter() - t0
        t1, c1 = time.perf_counter(), time.process_time()
        futures = {client.submit(process_session, s, steps, options, pure=False,
                                 key=f"rigcap-batch-{i:05d}-{uuid.uuid4().hex[:6]}"): s for i, s in enumerate(sessions)}
        reports = []
        for fut in as_completed(futures):
            session = futures[fut]
            try:
                rep = fut.result()
            except Exception as exc:  # the worker itself died (crash, memory): that session failed
                rep = SessionReport(session.name, str(options.out_dir(session)), status="failed",
                                    error=f"worker lost: {_one_line(exc)}")
            reports.append(rep)
            if on_report:
                on_report(rep)
        order = {s.name: i for i, s in enumerate(sessions)}
        reports.sort(key=lambda r: order[r.name])
        return BatchResult(reports, time.perf_counter() - t1, start_s, n_workers, env, timers,
                           time.process_time() - c1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
