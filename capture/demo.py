"""``rigcap demo``: the synthetic studio end to end, scored against its ground truth.

Camera processes (one per synthetic camera) publish their detections over
ZeroMQ, the fusion node process triangulates them live, and this module
subscribes to ``kp3d`` like any viewer would.  Because the studio knows where
every joint really was at every capture time, the run ends with honest
numbers: live MPJPE, the MPJPE of the offline engine on the very same
detections (what live fusion gives up for causality), latency, rates, drops.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from capture.config import CameraConfig
from capture.live_session import FusionOptions, LiveSession
from capture.protocol import Subscriber, free_tcp_endpoint
from capture.synthetic.studio import SyntheticStudio
from triangulate.engine import TriangulationConfig, triangulate


@dataclass
class DemoOptions:
    n_cameras: int = 4
    fps: float = 30.0
    seconds: float = 10.0
    seed: int = 0
    kill_camera: str | None = None  # SIGKILL this camera's process ...
    kill_after_s: float = 4.0  # ... this long into the scored run
    record_dir: str | None = None
    start_timeout_s: float = 90.0


@dataclass
class DemoResult:
    rig: object
    skeleton: object
    points: np.ndarray  # (N, J, 3) live 3D as published (filtered)
    raw_error_mm: np.ndarray  # (N, J) distance of published points to the truth at their capture time
    n_views: np.ndarray  # (N, J)
    cameras_per_instant: np.ndarray  # (N,)
    times_ns: np.ndarray  # (N,) capture time relative to the studio's start
    fusion: dict = field(default_factory=dict)
    cameras: list = field(default_factory=list)
    offline_mpjpe_mm: float = float("nan")
    kill_time_s: float | None = None

    @property
    def mpjpe_mm(self) -> float:
        return float(np.nanmean(self.raw_error_mm))

    def mpjpe_after_kill_mm(self) -> float:
        if self.kill_time_s is None:
            return float("nan")
        after = self.times_ns / 1e9 > self.kill_time_s + 1.0
        return float(np.nanmean(self.raw_error_mm[after])) if after.any() else float("nan")


def make_studio(options: DemoOptions) -> SyntheticStudio:
    """The studio every process builds identically (same parameters, same seed)."""
    return SyntheticStudio(n_cameras=options.n_cameras, fps=options.fps, duration_s=studio_duration(options),
                           seed=options.seed)


def studio_duration(options: DemoOptions) -> float:
    # Long enough that the motion does not wrap during start-up plus the scored run.
    return options.seconds + options.start_timeout_s + 5.0


def run_demo(options: DemoOptions, on_progress=None) -> DemoResult:
    studio = make_studio(options)
    cameras = [CameraConfig(name, "synthetic", camera_index=i, n_cameras=options.n_cameras, seed=options.seed,
                            fps=options.fps, duration_s=studio_duration(options))
               for i, name in enumerate(studio.rig.names)]
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    session = LiveSession(studio.rig, cameras, pub, sub, detector="synthetic", record_dir=options.record_dir, fusion=FusionOptions(fps=options.fps),
                          max_restarts=0, start_delay_s=1.0,
                          session_info={"demo": True, "seed": options.seed})
    listener = Subscriber(sub, topics="kp3d")
    received = []
    kill_time_s = None
    session.start()
    try:
        _wait_for_full_instant(listener, session, options)
        start = time.monotonic()
        killed = False
        while (elapsed := time.monotonic() - start) < options.seconds:
            msg = listener.recv(50)
            if msg is not None:
                received.append(msg)
            if options.kill_camera and not killed and elapsed >= options.kill_after_s:
                pid = session.supervisor.pid(options.kill_camera)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    kill_time_s = (time.time_ns() - session.epoch_ns) / 1e9
                killed = True
            if on_progress is not None:
                on_progress(elapsed, options.seconds, session.drain_stats(), len(received))
    finally:
        fusion, statuses = session.stop()
        listener.close()
    if not received:
        raise RuntimeError("the fusion node published nothing: see the camera statuses "
                           + str([(s.name, s.state, s.message) for s in statuses]))
    return _score(studio, session.epoch_ns, received, fusion, statuses, kill_time_s)


def _wait_for_full_instant(listener, session, options) -> None:
    deadline = time.monotonic() + options.start_timeout_s
    while time.monotonic() < deadline:
        msg = listener.recv(100)
        if msg is not None and len(msg.header["cameras"]) == options.n_cameras:
            return
        if not session.fusion_alive():
            raise RuntimeError("the fusion node process exited during start-up")
    raise RuntimeError(f"no instant with all {options.n_cameras} cameras within {options.start_timeout_s:.0f} s; "
                       f"cameras: {[(s.name, s.state, s.message) for s in session.supervisor.status()]}")


def _score(studio, epoch_ns, msgs, fusion, statuses, kill_time_s) -> DemoResult:
    times = np.array([m.header["t_capture_ns"] - epoch_ns for m in msgs], dtype=np.int64)
    points = np.stack([m.arrays["points"] for m in msgs]).astype(np.float64)
    n_views = np.stack([m.arrays["n_views"] for m in msgs])
    truth = np.stack([studio.truth_at(t) for t in times])
    err = 1000 * np.linalg.norm(points - truth, axis=-1)
    frames = np.array(sorted({f for m in msgs for f in m.header["frames"].values()}))
    frames = frames[frames < studio.n_frames]
    offline = triangulate(studio.rig, studio.keypoints2d().keypoints[:, frames],
                          TriangulationConfig(), joint_names=list(studio.skeleton.joint_names),
                          skeleton=studio.skeleton, fps=studio.fps)
    off_err = 1000 * np.linalg.norm(offline.points3d.points - studio.points3d[frames], axis=-1)
    return DemoResult(studio.rig, studio.skeleton, points, err, n_views,
                      np.array([len(m.header["cameras"]) for m in msgs]), times, fusion,
                      [s.__dict__ for s in statuses], float(np.nanmean(off_err)), kill_time_s)
