"""A live rig in one object: camera processes, the backbone, a fusion node process.

``rigcap live`` (USB cameras from a config) and ``rigcap demo`` (the synthetic
studio) both run this; what differs is only where the camera configs and the
rig come from.  Every stage is its own OS process talking ZeroMQ, exactly as
on a studio floor: the supervisor owns the backbone and the camera processes,
the fusion node is spawned next to them, and anyone (the viewer, the demo's
scorer, a user's script) subscribes to ``kp3d`` on the backbone.

:func:`run_live` is the loop both commands share: start the session (and,
through a callback, a viewer process), follow ``kp3d`` until a run length
after the first 3D instant, Ctrl-C or the end of the cameras, then tear
everything down.  The viewer is passed in as a callable so that ``capture``
never imports ``viewer`` (the command layer wires the two together).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from calibration import Rig
from capture.config import CameraConfig
from capture.pose import declared_skeleton
from triangulate.fusion_node import FusionNode
from triangulate.fusion_options import FusionOptions
from rigcap.wire import Subscriber
from capture.supervisor import Supervisor
from rigcap.errors import RigcapError


@dataclass
class RemoteHosts:
    """Camera hosts on other machines: their backbones' subscriber endpoints and clock offsets (theirs - ours).

    With ``clock_endpoints`` (their clock servers) the fusion process follows each
    offset while running (:class:`rigcap.wire.ClockTracker`, re-measured every
    ``clock_interval_s``), ``initial`` (the :class:`rigcap.wire.ClockOffset`
    measured at start) seeding it; without, ``offsets_ns`` stay fixed.
    """

    endpoints: list = field(default_factory=list)
    offsets_ns: list = field(default_factory=list)
    clock_endpoints: list = field(default_factory=list)
    initial: list = field(default_factory=list)
    clock_interval_s: float = 2.0

    def trackers(self, keys=None) -> list:
        """One started ClockTracker per host (none without ``clock_endpoints``); the caller stops them.
        ``keys`` (ServerKeys): the clock queries to non-loopback hosts are CURVE, as their kp2d links."""
        from rigcap.wire import ClockTracker
        from rigcap.wire.security import is_loopback

        initial = self.initial or [None] * len(self.clock_endpoints)
        return [ClockTracker(e, interval_s=self.clock_interval_s, initial=i,
                             keys=None if is_loopback(e) else keys).start()
                for e, i in zip(self.clock_endpoints, initial)]


def fusion_process_main(rig: Rig, sub_endpoint: str, pub_endpoint: str, options: FusionOptions,
                        remote: RemoteHosts, record_dir: str | None, stop_event, results, skeleton=None,
                        instant_hooks=(), keys=None) -> None:
    """Spawn target: run a :class:`FusionNode` until ``stop_event``; put its summary on ``results``.

    Stats go onto ``results`` once a second as ``("stats", summary)`` and at the
    end as ``("final", summary)``.
    """
    import signal

    # Ctrl-C reaches the whole process group: the parent decides and sets stop_event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    trackers = remote.trackers(keys)
    try:
        node = FusionNode(rig, [sub_endpoint, *remote.endpoints], pub_endpoint, options, record_dir=record_dir,
                          clock_offsets_ns=[0, *(trackers or remote.offsets_ns)], skeleton=skeleton,
                          instant_hooks=instant_hooks, keys=keys)
        # Periodic stats: percentiles over the last few seconds; the final summary covers the whole run.
        summary = node.run(stop_event, on_stats=lambda s: results.put(("stats", s)), recent=int(5 * options.fps))
    finally:
        for tracker in trackers:
            tracker.stop()
    results.put(("final", summary))


class LiveSession:
    """Start: backbone + camera processes + fusion process.  Stop: all of them, cleanly.

    ``latest_fusion_stats`` is refreshed once a second; ``stop()`` returns the
    fusion node's final summary and the cameras' statuses.  ``readers_endpoint``
    and ``reader_keys``: the supervisor's readers relay (other machines read the
    stream there; :class:`capture.supervisor.Supervisor`).
    """

    def __init__(self, rig: Rig, cameras: list[CameraConfig], pub_endpoint: str, sub_endpoint: str,
                 detector: str = "synthetic", detector_options: dict | None = None, record_dir=None,
                 fusion: FusionOptions | None = None, max_restarts: int = 3, start_delay_s: float = 2.0,
                 record_video: bool = True, session_info: dict | None = None, clock_endpoint: str | None = None,
                 restart_delay_s: float = 1.0, remote: RemoteHosts | None = None, instant_hooks=(), keys=None,
                 readers_endpoint: str | None = None, reader_keys=None):
        missing = [c.name for c in cameras if c.name not in rig.names]
        if missing:
            raise RigcapError(f"camera(s) {', '.join(missing)} are not in the rig ({', '.join(rig.names)})")
        self.rig = rig
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.fusion_options = fusion or FusionOptions()
        self.remote = remote or RemoteHosts()
        self.supervisor = Supervisor(cameras, pub_endpoint, sub_endpoint, record_dir=record_dir, detector=detector,
                                     detector_options=detector_options, max_restarts=max_restarts,
                                     start_delay_s=start_delay_s, record_video=record_video,
                                     session_info=session_info, clock_endpoint=clock_endpoint,
                                     restart_delay_s=restart_delay_s, readers_endpoint=readers_endpoint,
                                     reader_keys=reader_keys)
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint
        # The skeleton is known from the detector when every camera here uses it and no remote host
        # (with a config of its own) sends: the fusion node is given it instead of voting.
        self.skeleton = None
        if not self.remote.endpoints and all(c.detector in (None, detector) for c in cameras):
            self.skeleton = declared_skeleton(detector, detector_options)
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._results = ctx.Queue()
        self._fusion = ctx.Process(target=fusion_process_main, name="rigcap-fusion",
                                   args=(rig, sub_endpoint, pub_endpoint, self.fusion_options, self.remote,
                                         None if record_dir is None else str(record_dir), self._stop, self._results,
                                         self.skeleton, list(instant_hooks), keys),
                                   daemon=True)
        self.latest_fusion_stats: dict = {}
        self.final_fusion_stats: dict = {}

    def start(self) -> "LiveSession":
        self.supervisor.start()
        self._fusion.start()
        return self

    @property
    def epoch_ns(self) -> int | None:
        return self.supervisor.epoch_ns

    def drain_stats(self) -> dict:
        """Fusion stats received so far (non-blocking); the newest summary."""
        while True:
            try:
                kind, summary = self._results.get_nowait()
            except queue.Empty:
                break
            if kind == "final":
                self.final_fusion_stats = summary
            self.latest_fusion_stats = summary
        return self.latest_fusion_stats

    def fusion_alive(self) -> bool:
        return self._fusion.is_alive()

    def stop(self, timeout_s: float = 10.0) -> tuple[dict, list]:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        while not self.final_fusion_stats and time.monotonic() < deadline and (self._fusion.is_alive() or not self._results.empty()):
            try:
                kind, summary = self._results.get(timeout=0.2)
            except queue.Empty:
                continue
            self.latest_fusion_stats = summary
            if kind == "final":
                self.final_fusion_stats = summary
        self._fusion.join(max(0.1, deadline - time.monotonic()))
        if self._fusion.is_alive():
            self._fusion.terminate()
        statuses = self.supervisor.stop()
        return self.final_fusion_stats or self.latest_fusion_stats, statuses

    def __enter__(self) -> "LiveSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.stop()


@dataclass
class LiveRun:
    """What :func:`run_live` saw: the fusion node's final summary, the cameras' statuses, the kp3d received."""

    final: dict = field(default_factory=dict)
    statuses: list = field(default_factory=list)
    received: int = 0  # kp3d messages from the first instant on
    malformed: int = 0  # kp3d messages the validator refused (dropped, never raised)
    last: object = None  # the newest kp3d message (rigcap.wire.Message)
    first_after_s: float | None = None  # start -> first instant (start-up)
    elapsed_s: float = 0.0  # first instant -> end of the loop
    interrupted: bool = False  # Ctrl-C (KeyboardInterrupt) ended it
    stop_reason: str | None = None  # set when the loop ended by itself before ``seconds``


def run_live(session: LiveSession, *, seconds: float | None = None, start_timeout_s: float = 120.0,
             latest_only: bool = True, viewer: Callable | None = None, is_first: Callable | None = None,
             on_start: Callable | None = None, on_first: Callable | None = None, on_message: Callable | None = None,
             on_tick: Callable | None = None, on_status: Callable | None = None, status_interval_s: float = 2.0,
             before_stop: Callable | None = None, stop_without_cameras: bool = True) -> LiveRun:
    """Start ``session``, follow its ``kp3d`` until done, stop everything (also on errors); returns a :class:`LiveRun`.

    The run lasts ``seconds`` from the first instant that ``is_first(msg)``
    accepts (default: any), so start-up never eats into it; ``None`` runs until
    Ctrl-C.  No first instant within ``start_timeout_s``, or the fusion process
    exiting, is a :class:`RigcapError` naming the cameras' states.

    Callbacks: ``viewer(rig, endpoint)`` starts a process (anything with
    ``terminate``/``join``) once the session runs; ``on_start()`` right after;
    ``on_first(msg)`` at the first instant; ``on_message(msg)`` for it and every
    later kp3d; ``on_tick(elapsed_s)`` each loop turn after the first instant;
    ``on_status(fusion_stats, camera_statuses)`` every ``status_interval_s``;
    ``before_stop()`` when the loop ends normally, while everything still runs.
    ``stop_without_cameras``: end when no local camera process is left.
    """
    run = LiveRun()
    listener = Subscriber(session.sub_endpoint, topics="kp3d", latest_only=latest_only)
    viewer_process = None
    t0 = time.monotonic()
    try:
        session.start()
        if viewer is not None:
            viewer_process = viewer(session.rig, session.sub_endpoint)
        if on_start is not None:
            on_start()
        next_status = time.monotonic() + status_interval_s
        first = None
        while seconds is None or first is None or time.monotonic() - first < seconds:
            msg = listener.recv(20)
            if msg is not None and first is None and (is_first is None or is_first(msg)):
                run.first_after_s = time.monotonic() - t0
                if on_first is not None:
                    on_first(msg)
                first = time.monotonic()
            if msg is not None and first is not None:
                run.received += 1
                run.last = msg
                if on_message is not None:
                    on_message(msg)
            now = time.monotonic()
            if first is None and now - t0 > start_timeout_s:
                raise RigcapError(f"no 3D instant within {start_timeout_s:g} s; cameras: " + ", ".join(
                    f"{s.name} {s.state}" + (f" ({s.message})" if s.message else "") for s in session.supervisor.status()))
            if first is not None and on_tick is not None:
                on_tick(now - first)
            if on_status is not None and now >= next_status:
                on_status(session.drain_stats(), session.supervisor.status())
                next_status += status_interval_s
            if not session.fusion_alive():
                raise RigcapError("the fusion process exited; see the messages above")
            if stop_without_cameras and not session.supervisor.alive and now - t0 > 2.0:
                run.stop_reason = "no local camera left running"
                break
        run.elapsed_s = time.monotonic() - first if first is not None else 0.0
        if before_stop is not None:
            before_stop()
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        run.final, run.statuses = session.stop()
        run.malformed = listener.malformed
        listener.close()
        if viewer_process is not None:
            viewer_process.terminate()
            viewer_process.join(2)
    return run
