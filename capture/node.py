"""One camera process: source -> 2D pose model -> publish kp2d -> record.

:func:`run_camera` is the loop (usable in-process for tests and tools);
:func:`camera_process_main` is what the supervisor starts in a fresh process.
Exit codes: 0 stopped or the video ended, 3 the source failed (no device,
unplugged), 4 any other error -- the supervisor restarts on non-zero.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from capture.config import CameraConfig
from rigcap.wire import DEFAULT_PUB_ENDPOINT, Publisher
from capture.sources import SourceError, make_source
from capture.stats import CameraStats

EXIT_OK = 0
EXIT_SOURCE = 3
EXIT_ERROR = 4


@dataclass
class NodeOptions:
    """What every camera process of one run shares."""

    pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    detector: str = "mediapipe"
    detector_options: dict = field(default_factory=dict)
    record_dir: str | None = None
    record_video: bool = True
    epoch_ns: int | None = None
    stats_interval_s: float = 1.0
    max_frames: int | None = None  # stop after this many frames (tests, benchmarks)


class PipeReporter:
    """Sends event dicts to the supervisor over this process's own pipe, never blocking.

    One pipe per process (no lock shared with other cameras, which a SIGKILL
    could leave held) and non-blocking writes: a message (< 4 KiB, written
    atomically) is dropped rather than wait for a busy supervisor.
    """

    def __init__(self, conn):
        import os

        self.conn = conn
        os.set_blocking(conn.fileno(), False)

    def __call__(self, event: dict) -> None:
        try:
            self.conn.send(event)
        except (BlockingIOError, BrokenPipeError, OSError, ValueError):
            pass


def _report(report, event: dict) -> None:
    if report is not None:
        report(event)


def run_camera(camera: CameraConfig, options: NodeOptions, stop_event=None, report=None) -> int:
    """Capture until ``stop_event.is_set()``, the source ends, or ``max_frames``; returns an exit code.

    ``report``: optional callable receiving event dicts (started, stats, error, ended).
    """
    from capture.pose import create_detector

    stop_event = stop_event or threading.Event()
    detector_name = camera.detector or options.detector
    detector = create_detector(detector_name, **(options.detector_options if not camera.detector else {}))
    if camera.source == "synthetic":
        recording_video = options.record_dir is not None and options.record_video
        camera = dataclasses.replace(camera, render=camera.render or detector.needs_image or recording_video,
                                     keypoints=camera.keypoints or not detector.needs_image)
    source = make_source(camera, options.epoch_ns)
    try:
        source.open()
    except SourceError as exc:
        _report(report, {"camera": camera.name, "event": "error", "message": str(exc)})
        print(f"rigcap capture: {exc}", file=sys.stderr, flush=True)
        return EXIT_SOURCE
    info = source.info()
    skeleton = detector.skeleton
    if detector_name == "synthetic" and hasattr(source, "skeleton"):
        skeleton = detector.skeleton = source.skeleton
    publisher = Publisher(options.pub_endpoint)
    recorder = None

    def recording_stopped(exc: OSError) -> None:
        """Recording failed (a full disk): say so once, keep the segment readable, keep publishing."""
        nonlocal recorder
        why = "disk full" if exc.errno == errno.ENOSPC else str(exc)
        message = f"recording stopped: {why} (live stream goes on)"
        _report(report, {"camera": camera.name, "event": "warning", "message": message})
        print(f"rigcap capture: {camera.name}: {message}", file=sys.stderr, flush=True)
        if recorder is not None:
            try:
                recorder.close()
            except OSError:  # no room for end.json either: the segment reads as cut, up to its last flush
                pass
        recorder = None

    if options.record_dir is not None:
        from capture.recording import CameraRecorder, low_space_warning

        try:
            recorder = CameraRecorder(options.record_dir, camera.name, skeleton, source.fps,
                                      dataclasses.asdict(info), video=options.record_video)
        except OSError as exc:
            recording_stopped(exc)
        if recorder is not None and (warning := low_space_warning(options.record_dir, recorder.bytes_per_s)):
            _report(report, {"camera": camera.name, "event": "warning", "message": warning})
            print(f"rigcap capture: {camera.name}: {warning}", file=sys.stderr, flush=True)
    stats = CameraStats(camera.name, source.fps)
    _report(report, {"camera": camera.name, "event": "started", "source": dataclasses.asdict(info),
                          "skeleton": skeleton.name})
    next_stats = time.monotonic() + options.stats_interval_s
    code = EXIT_OK
    try:
        while not stop_event.is_set():
            try:
                frame = source.read()
            except SourceError as exc:
                _report(report, {"camera": camera.name, "event": "error", "message": str(exc)})
                print(f"rigcap capture: {exc}", file=sys.stderr, flush=True)
                code = EXIT_SOURCE
                break
            if frame is None:
                _report(report, {"camera": camera.name, "event": "ended"})
                break
            t0 = time.perf_counter()
            people = detector.detect_frame(frame)
            detect_ms = (time.perf_counter() - t0) * 1e3
            t_pub = time.time_ns()
            publisher.publish_kp2d(camera.name, frame.index, frame.capture_time_ns, people, skeleton,
                                   t_publish_ns=t_pub)
            if recorder is not None:
                try:
                    recorder.write(frame, people)
                except OSError as exc:
                    recording_stopped(exc)
            stats.update(frame.index, frame.capture_time_ns, people.shape[0], detect_ms, t_pub)
            now = time.monotonic()
            if now >= next_stats:
                snap = stats.snapshot()
                publisher.publish(f"stats.{camera.name}", snap)
                _report(report, {"event": "stats", **snap})
                next_stats = now + options.stats_interval_s
            if options.max_frames is not None and stats.frames >= options.max_frames:
                break
    finally:
        snap = stats.snapshot()
        _report(report, {"event": "stats", **snap})
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:
                recording_stopped(exc)
        source.close()
        detector.close()
        publisher.close()
    return code


def _stop_with_parent() -> int:
    """Ask Linux to send us SIGTERM when our parent dies (``PR_SET_PDEATHSIG``); returns the parent's pid.

    The fallback everywhere (and for a parent thread that ends before the
    process): the capture loop checks that ``os.getppid()`` is still that pid.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the watchdog below still works
            pass
    return parent


def camera_process_main(camera: CameraConfig, options: NodeOptions, stop_flag=None, conn=None) -> None:
    """Entry point of a camera process (``multiprocessing`` spawn target).

    ``stop_flag``: a lock-free shared value (``ctx.RawValue("b")``) the
    supervisor sets to stop every camera -- lock-free because a lock held by a
    process killed with SIGKILL would hang the others.  ``conn``: the write end
    of this process's event pipe.
    """
    local_stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: local_stop.set())  # before PR_SET_PDEATHSIG can send it
    parent = _stop_with_parent()

    class _Either:
        """Stop when asked (flag, SIGTERM) or when the supervisor is gone (SIGKILLed: no one would stop us)."""

        def is_set(self) -> bool:
            return (local_stop.is_set() or (stop_flag is not None and bool(stop_flag.value))
                    or os.getppid() != parent)

    report = PipeReporter(conn) if conn is not None else None

    # Ctrl-C reaches the whole process group: the supervisor decides, we wait for its stop event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = run_camera(camera, options, _Either(), report)
    except Exception as exc:  # reported, then the supervisor restarts us
        _report(report, {"camera": camera.name, "event": "error", "message": f"{type(exc).__name__}: {exc}"})
        traceback.print_exc()
        code = EXIT_ERROR
    sys.exit(code)
