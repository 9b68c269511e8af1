"""A live rig in one object: camera processes, the backbone, a fusion node process.

``rigcap live`` (USB cameras from a config) and ``rigcap demo`` (the synthetic
studio) both run this; what differs is only where the camera configs and the
rig come from.  Every stage is its own OS process talking ZeroMQ, exactly as
on a studio floor: the supervisor owns the backbone and the camera processes,
the fusion node is spawned next to them, and anyone (the viewer, the demo's
scorer, a user's script) subscribes to ``kp3d`` on the backbone.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path

from calibration import Rig
from capture.config import CameraConfig
from capture.fusion_node import FusionNode
from capture.supervisor import Supervisor


@dataclass
class FusionOptions:
    fps: float = 30.0
    record_dir: str | None = None
    smoothing: bool = True
    tolerance_ms: float | None = None
    deadline_ms: float | None = None
    alive_window_s: float = 0.5
    # Remote camera hosts: their backbones' subscriber endpoints and clock offsets (theirs minus ours).
    remote_endpoints: list = field(default_factory=list)
    remote_offsets_ns: list = field(default_factory=list)


def fusion_process_main(rig: Rig, sub_endpoint: str, pub_endpoint: str, options: FusionOptions, stop_event,
                        results) -> None:
    """Spawn target: run a :class:`FusionNode` until ``stop_event``; put its summary on ``results``.

    Stats go onto ``results`` once a second as ``("stats", summary)`` and at the
    end as ``("final", summary)``.
    """
    import signal

    # Ctrl-C reaches the whole process group: the parent decides and sets stop_event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    node = FusionNode(rig, [sub_endpoint, *options.remote_endpoints], pub_endpoint, fps=options.fps,
                      record_dir=options.record_dir, smoothing=options.smoothing, tolerance_ms=options.tolerance_ms,
                      deadline_ms=options.deadline_ms, alive_window_s=options.alive_window_s,
                      clock_offsets_ns=[0, *options.remote_offsets_ns])
    # Periodic stats: percentiles over the last few seconds; the final summary covers the whole run.
    summary = node.run(stop_event, on_stats=lambda s: results.put(("stats", s)), recent=int(5 * options.fps))
    results.put(("final", summary))


class LiveSession:
    """Start: backbone + camera processes + fusion process.  Stop: all of them, cleanly.

    ``latest_fusion_stats`` is refreshed once a second; ``stop()`` returns the
    fusion node's final summary and the cameras' statuses.
    """

    def __init__(self, rig: Rig, cameras: list[CameraConfig], pub_endpoint: str, sub_endpoint: str,
                 detector: str = "synthetic", detector_options: dict | None = None, record_dir=None,
                 fusion: FusionOptions | None = None, max_restarts: int = 3, start_delay_s: float = 2.0,
                 record_video: bool = True, session_info: dict | None = None, clock_endpoint: str | None = None,
                 restart_delay_s: float = 1.0):
        missing = [c.name for c in cameras if c.name not in rig.names]
        if missing:
            from rigcap.errors import RigcapError

            raise RigcapError(f"camera(s) {', '.join(missing)} are not in the rig ({', '.join(rig.names)})")
        self.rig = rig
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.fusion_options = fusion or FusionOptions()
        if self.record_dir is not None:
            self.fusion_options.record_dir = str(self.record_dir)
        self.supervisor = Supervisor(cameras, pub_endpoint, sub_endpoint, record_dir=record_dir, detector=detector,
                                     detector_options=detector_options, max_restarts=max_restarts,
                                     start_delay_s=start_delay_s, record_video=record_video,
                                     session_info=session_info, clock_endpoint=clock_endpoint,
                                     restart_delay_s=restart_delay_s)
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._results = ctx.Queue()
        self._fusion = ctx.Process(target=fusion_process_main, name="rigcap-fusion",
                                   args=(rig, sub_endpoint, pub_endpoint, self.fusion_options, self._stop,
                                         self._results), daemon=True)
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
