"""``rigcap demo``: the synthetic studio end to end, scored against its ground truth.

Camera processes (one per synthetic camera) publish their detections over
ZeroMQ, the fusion node process triangulates them live, and this module
subscribes to ``kp3d`` like any viewer would.  Because the studio knows where
every joint really was at every capture time, the run ends with honest
numbers: live MPJPE, the MPJPE of the offline engine on the very same
detections (same instants, same cameras: what live fusion gives up for
causality and speed), latency, rates, drops.

Only the scored window counts: start-up (spawning processes, building the
studio in each, the first instant with every camera) is excluded from every
number, so they describe the steady state.

Several people (``persons`` >= 2): every camera films the crowd studio
(:class:`rigcap.studio.crowd.CrowdStudio`, its detections listed in random
order as a detector lists them), the fusion node associates and tracks
everybody (``FusionOptions.persons`` auto), and the score says who is who: each
published id matched to a true person per instant
(:func:`rigcap.studio.crowd_score.score_crowd`), identity switches, people
missed and invented, MPJPE per person, against the offline association +
tracking + engine (:func:`triangulate.people.triangulate_people`) on the same
instants' detections.

Timeline and truth: every camera process builds the same studio from the same
seed; frame ``i`` of camera ``c`` is grabbed at ``epoch + cycle * length +
capture_time(c, i mod n_frames)`` (the motion repeats past the studio's
length), so an instant's truth is :meth:`SyntheticStudio.truth_at` of its
capture time within its cycle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capture.config import CameraConfig
from rigcap.live_session import LiveSession, run_live
from triangulate.fusion_options import FusionOptions
from rigcap.wire import free_tcp_endpoint
from rigcap.studio.studio import SyntheticStudio, make_studio as build_studio, motion_cycle_ns
from triangulate.engine import TriangulationConfig, triangulate
from rigcap.errors import RigcapError
from triangulate.formats import Keypoints2D, Points3D

# Studio length beyond the scored run.  Every camera process builds the studio
# (seconds of CPU for long ones), so it is kept short: when start-up takes longer
# the motion repeats during the run, which scoring follows (see ``score``).
STARTUP_MARGIN_S = 5.0
# Instants this soon after the motion jumps back to its start are not scored:
# the jump is the synthetic loop's, and the causal filter needs a few frames to follow it.
REPEAT_SETTLE_S = 0.25


@dataclass
class DemoOptions:
    n_cameras: int = 4
    fps: float = 30.0
    seconds: float = 10.0  # scored run, after every camera has been seen in one instant
    seed: int = 0
    persons: int = 1  # people in the studio (2-6: the crowd studio, fused and scored as several people)
    kill_camera: str | None = None  # SIGKILL this camera's process ...
    kill_after_s: float | None = None  # ... this long into the scored run (default: 40 % of it)
    out_dir: str | None = None  # points3d.npz, rig.toml, summary.json (the command adds snapshot.png [, demo.mp4])
    video_seconds: float = 0.0  # > 0: the command also renders the last this-many seconds to out_dir/demo.mp4
    start_timeout_s: float = 90.0
    fusion: FusionOptions | None = None  # None: the defaults at ``fps``

    def fusion_options(self) -> FusionOptions:
        """The fusion settings; with several people in the studio the node tracks everybody (persons auto)."""
        options = self.fusion if self.fusion is not None else FusionOptions(fps=self.fps)
        if self.persons > 1 and options.persons == 1:
            options = dataclasses.replace(options, persons=0)
        return options

    def kill_time_s(self) -> float:
        return self.kill_after_s if self.kill_after_s is not None else 0.4 * self.seconds


@dataclass
class DemoResult:
    """The scored run.  One person: arrays per instant (N, ...).  Several people (``person_ids`` set):
    ``points``, ``n_views``, ``error_px``, ``error_mm`` per track id first (T, N, ...), as the
    multi-person 3D file; ``error_mm`` is each track's distance to the true person it is matched
    to at that instant (NaN: matched to nobody); ``crowd`` the identity score."""

    rig: object
    skeleton: object
    points: np.ndarray  # (N, J, 3) live 3D as published (filtered); several people (T, N, J, 3)
    error_mm: np.ndarray  # (N, J) distance of published points to the truth at their capture time; (T, N, J)
    offline_error_mm: np.ndarray  # (N, J) the offline engine on the same instants' detections; (T', N, J)
    n_views: np.ndarray  # (N, J); (T, N, J)
    error_px: np.ndarray  # (N, J) reprojection error the fusion node reported; (T, N, J)
    cameras_per_instant: np.ndarray  # (N,)
    instant_cameras: list  # (N,) names per instant
    times_s: np.ndarray  # (N,) capture time relative to the start of the scored run
    studio_time_ns: np.ndarray  # (N,) the same instant on the studio's motion clock (SyntheticStudio.truth_at)
    added_latency_ms: np.ndarray  # (N,) last camera message received -> 3D published
    total_latency_ms: np.ndarray  # (N,) capture -> 3D published
    receive_latency_ms: np.ndarray  # (N,) capture -> 3D received here (a subscriber)
    spread_ms: np.ndarray  # (N,) capture-time spread of the instant's cameras
    seconds: float  # length of the scored window
    fps_in: float  # camera messages per second into the fusion node
    missed_kp3d: int  # kp3d messages published but not received here (sequence gaps)
    unscorable_kp3d: int = 0  # valid kp3d left out: fields the scorer needs missing, cameras or times not the studio's
    malformed_kp3d: int = 0  # kp3d the validator refused (the listener's count)
    fusion: dict = field(default_factory=dict)  # the fusion node's own final summary
    cameras: list = field(default_factory=list)  # camera statuses (dicts)
    kill_camera: str | None = None
    kill_time_s: float | None = None  # relative to the start of the scored run
    events: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # what was written to out_dir
    person_ids: np.ndarray | None = None  # (T,) the published track ids (several people)
    crowd: dict = field(default_factory=dict)  # several people: the identity score (see score_people)

    @property
    def multi_person(self) -> bool:
        return self.person_ids is not None

    def per_instant(self, a: np.ndarray) -> np.ndarray:
        """An array of this result with the instants first: (N, ...) ((N, T, ...) for several people)."""
        return np.moveaxis(a, 1, 0) if self.multi_person else a

    @property
    def mpjpe_mm(self) -> float:
        return float(np.nanmean(self.error_mm))

    @property
    def offline_mpjpe_mm(self) -> float:
        return float(np.nanmean(self.offline_error_mm))

    @property
    def fps_out(self) -> float:
        """3D instants per second of capture time (instants queued before the window do not inflate it)."""
        if len(self.times_s) < 2:
            return 0.0
        span = float(self.times_s.max() - self.times_s.min())
        return (len(self.times_s) - 1) / span if span > 0 else 0.0

    def after_kill(self) -> np.ndarray:
        """(N,) instants at least one second after the kill (the dead camera has dropped out)."""
        if self.kill_time_s is None:
            return np.zeros(len(self.times_s), bool)
        return self.times_s > self.kill_time_s + 1.0

    def mpjpe_after_kill_mm(self) -> float:
        after = self.after_kill()
        return float(np.nanmean(self.per_instant(self.error_mm)[after])) if after.any() else float("nan")

    def summary(self) -> dict:
        def pct(a, q):
            return float(np.percentile(a, q)) if len(a) else float("nan")

        out = {
            "cameras": len(self.rig), "seconds": self.seconds, "instants": int(len(self.times_s)),
            "mpjpe_mm": self.mpjpe_mm, "offline_mpjpe_mm": self.offline_mpjpe_mm,
            "live_over_offline": self.mpjpe_mm / self.offline_mpjpe_mm,
            "triangulated_pct": (100.0 * self.crowd["coverage"] if self.multi_person else
                                 100.0 * float(np.isfinite(self.error_mm).mean()) if self.error_mm.size else 0.0),
            "added_latency_ms_p50": pct(self.added_latency_ms, 50), "added_latency_ms_p99": pct(self.added_latency_ms, 99),
            "latency_ms_p50": pct(self.total_latency_ms, 50), "latency_ms_p99": pct(self.total_latency_ms, 99),
            "receive_latency_ms_p50": pct(self.receive_latency_ms, 50),
            "receive_latency_ms_p99": pct(self.receive_latency_ms, 99),
            "spread_ms_p50": pct(self.spread_ms, 50), "spread_ms_max": float(np.max(self.spread_ms)) if len(self.spread_ms) else float("nan"),
            "fps_in": self.fps_in, "fps_out": self.fps_out,
            "cameras_per_instant": float(np.mean(self.cameras_per_instant)) if len(self.points) else float("nan"),
            "missed_kp3d": self.missed_kp3d,
            "unscorable_kp3d": self.unscorable_kp3d,
            "malformed_kp3d": self.malformed_kp3d,
            "camera_frames_dropped": int(sum(c.get("stats", {}).get("dropped", 0) for c in self.cameras)),
            "late_dropped": int(self.fusion.get("late_dropped", 0)),
            "malformed": int(self.fusion.get("malformed", 0)),
        }
        if self.multi_person:
            out.update({"persons": self.crowd["persons"], "person_ids": [int(i) for i in self.person_ids],
                        **{k: v for k, v in self.crowd.items() if k != "persons"}})
        if self.kill_camera is not None:
            after = self.after_kill()
            out.update({"killed": self.kill_camera, "kill_time_s": self.kill_time_s,
                        "mpjpe_after_kill_mm": self.mpjpe_after_kill_mm(),
                        "cameras_per_instant_after_kill": float(np.mean(self.cameras_per_instant[after])) if after.any() else float("nan"),
                        "killed_camera_in_instants_after_kill": int(sum(self.kill_camera in self.instant_cameras[i]
                                                                        for i in np.nonzero(after)[0]))})
        return out


def make_studio(options: DemoOptions, rig=None):
    """The studio every process builds identically (same parameters, same seed): the one-person
    :class:`SyntheticStudio`, or the crowd studio with ``options.persons`` people."""
    return build_studio(options.persons, n_cameras=options.n_cameras, fps=options.fps,
                        duration_s=studio_duration(options), seed=options.seed, rig=rig)


def make_rig(options: DemoOptions):
    """The studio's rig alone (cheap), so the processes can start before the studio is built here."""
    from rigcap.studio.studio_rig import make_studio_rig

    return make_studio_rig(options.n_cameras, size=(1280, 720), seed=options.seed)


def studio_duration(options: DemoOptions) -> float:
    return options.seconds + STARTUP_MARGIN_S


def demo_cameras(options: DemoOptions, names: list[str]) -> list[CameraConfig]:
    return [CameraConfig(name, "synthetic", camera_index=i, n_cameras=options.n_cameras, seed=options.seed,
                         fps=options.fps, duration_s=studio_duration(options), persons=options.persons)
            for i, name in enumerate(names)]


def run_demo(options: DemoOptions, on_progress=None, viewer=None) -> DemoResult:
    """Run the whole rig, score it, write ``out_dir``; ``on_progress(elapsed, total, fusion_stats, n_received)``.

    ``viewer(rig, endpoint)``: starts a live view process (see
    :func:`rigcap.live_session.run_live`); the command layer passes it, so this
    module never imports ``viewer``.  Images and video are the command's too.
    """
    if options.n_cameras < 2:
        raise RigcapError("the demo needs at least 2 cameras")
    from rigcap.studio.crowd import MAX_PERSONS

    if not 1 <= options.persons <= MAX_PERSONS:
        raise RigcapError(f"--persons must be between 1 and {MAX_PERSONS} (the studio's people), got {options.persons}")
    rig = make_rig(options)
    if options.kill_camera is not None and options.kill_camera not in rig.names:
        raise RigcapError(f"--kill-camera {options.kill_camera}: the studio's cameras are {', '.join(rig.names)}")
    cameras = demo_cameras(options, rig.names)
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    session = LiveSession(rig, cameras, pub, sub, detector="synthetic", fusion=options.fusion_options(),
                          max_restarts=0, start_delay_s=1.0, session_info={"demo": True, "seed": options.seed})
    received = []
    state = {"kill_time_s": None, "killed": False}

    def build_studio():  # while the processes start
        state["studio"] = make_studio(options, rig)

    def scored_window_starts(msg):
        state["base"] = _fusion_counters(session)
        state["start_wall_ns"] = time.time_ns()

    def keep(msg):
        if msg.header["t_capture_ns"] >= state["start_wall_ns"]:  # not queued from before
            received.append(msg)

    def tick(elapsed):
        if options.kill_camera and not state["killed"] and elapsed >= options.kill_time_s():
            pid = session.supervisor.pid(options.kill_camera)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                state["kill_time_s"] = (time.time_ns() - state["start_wall_ns"]) / 1e9
            state["killed"] = True
        if on_progress is not None:
            on_progress(elapsed, options.seconds, session.drain_stats(), len(received))

    def window_ends():
        state["end"] = _fusion_counters(session)

    run = run_live(session, seconds=options.seconds, start_timeout_s=options.start_timeout_s, latest_only=False,
                   viewer=viewer, is_first=lambda msg: len(msg.header["cameras"]) == options.n_cameras,
                   on_start=build_studio, on_first=scored_window_starts, on_message=keep, on_tick=tick,
                   before_stop=window_ends)
    if run.interrupted:
        raise KeyboardInterrupt
    fusion, statuses = run.final, run.statuses
    if not received:
        raise RuntimeError("the fusion node published nothing: see the camera statuses "
                           + str([(s.name, s.state, s.message) for s in statuses]))
    base, end = state["base"], state.get("end", state["base"])
    dt = end[1] - base[1]
    fps_in = (end[0] - base[0]) / dt if dt > 0 else float("nan")
    kill_time_s = state["kill_time_s"]
    result = score(state["studio"], session.epoch_ns, state["start_wall_ns"], received, fusion, statuses, run.elapsed_s,
                   fps_in, options.kill_camera if kill_time_s is not None else None, kill_time_s)
    result.malformed_kp3d = run.malformed
    result.events = [e for e in session.supervisor.events if e.get("event") != "stats"]
    if options.out_dir:
        result.files = write_outputs(result, options)
    return result


def _fusion_counters(session: LiveSession, wait_s: float = 1.5) -> tuple[int, float]:
    """(messages_in, elapsed_s) of the fusion node's newest stats (it reports once a second)."""
    stats = session.drain_stats()
    deadline = time.monotonic() + wait_s
    first = stats.get("elapsed_s")
    while time.monotonic() < deadline and stats.get("elapsed_s") == first:
        time.sleep(0.05)
        stats = session.drain_stats()
    return int(stats.get("messages_in", 0)), float(stats.get("elapsed_s", 0.0))


def score(studio: SyntheticStudio, epoch_ns: int, start_wall_ns: int, msgs, fusion: dict, statuses, seconds: float,
          fps_in: float, kill_camera: str | None, kill_time_s: float | None) -> DemoResult:
    """Score received ``kp3d`` messages against the studio's truth, and the offline engine on the same detections."""
    n_f = studio.n_frames
    names = studio.rig.names
    people = getattr(studio, "n_persons", 1) > 1
    seqs = np.array([m.seq for m in msgs])  # all received, before any is left out of the scoring
    missed = int(np.sum(np.maximum(np.diff(seqs) - 1, 0))) if len(seqs) > 1 else 0
    msgs, t_rel, dropped = scorable(msgs, names, studio.skeleton.n_joints, n_f, studio.fps, epoch_ns, people)
    truth = studio.truth_at(t_rel)
    multi = {}
    if people:
        multi = score_people(studio, msgs, t_rel, truth)
        points, n_views, error_px, err, off_err = (multi.pop(k) for k in ("points", "n_views", "error_px",
                                                                          "error_mm", "offline_error_mm"))
    else:
        points = np.stack([m.arrays["points"] for m in msgs]).astype(np.float64)
        err = 1000 * np.linalg.norm(points - truth, axis=-1)
        n_views = np.stack([m.arrays["n_views"] for m in msgs])
        error_px = np.stack([m.arrays["error_px"] for m in msgs]).astype(np.float64)
        # Offline: the same cameras' detections of the same frames, through the offline engine.
        kp = instant_keypoints(studio, msgs)
        offline = triangulate(studio.rig, kp, TriangulationConfig(), joint_names=list(studio.skeleton.joint_names),
                              skeleton=studio.skeleton, fps=studio.fps)
        off_err = 1000 * np.linalg.norm(offline.points3d.points - truth, axis=-1)

    h = [m.header for m in msgs]
    t_recv = np.array([m.t_receive_ns for m in msgs], dtype=np.int64)
    t_cap = np.array([x["t_capture_ns"] for x in h], dtype=np.int64)
    t_pub = np.array([x["t_publish_ns"] for x in h], dtype=np.int64)
    t_last = np.array([x["t_last_arrival_ns"] for x in h], dtype=np.int64)
    return DemoResult(
        rig=studio.rig, skeleton=studio.skeleton, points=points, error_mm=err, offline_error_mm=off_err,
        n_views=n_views, error_px=error_px, person_ids=multi.pop("person_ids", None), crowd=multi,
        cameras_per_instant=np.array([len(x["cameras"]) for x in h]), instant_cameras=[x["cameras"] for x in h],
        times_s=(t_cap - start_wall_ns) / 1e9, studio_time_ns=t_rel, added_latency_ms=(t_pub - t_last) / 1e6,
        total_latency_ms=(t_pub - t_cap) / 1e6, receive_latency_ms=(t_recv - t_cap) / 1e6,
        spread_ms=np.array([x["spread_ns"] for x in h]) / 1e6, seconds=seconds, fps_in=fps_in, missed_kp3d=missed,
        unscorable_kp3d=dropped,
        fusion=fusion, cameras=[_status_dict(s) for s in statuses], kill_camera=kill_camera, kill_time_s=kill_time_s)


def instant_keypoints(studio, msgs) -> np.ndarray:
    """(C, N, J, 3) -- or with several people (C, N, P, J, 3), detection order -- the studio's detections
    of the frames each instant's cameras took part with (what the fusion node was sent)."""
    names, n_f = studio.rig.names, studio.n_frames
    n_p = getattr(studio, "n_persons", 1)
    shape = (len(names), len(msgs)) + ((n_p,) if n_p > 1 else ()) + (studio.skeleton.n_joints, 3)
    kp = np.full(shape, np.nan)
    for i, m in enumerate(msgs):
        for cam, frame in m.header["frames"].items():
            c = names.index(cam)
            found = studio.keypoints(c, int(frame) % n_f)
            if n_p > 1:
                kp[c, i, : len(found)] = found
            else:
                kp[c, i] = found
    return kp


def score_people(studio, msgs, t_rel: np.ndarray, truth: np.ndarray) -> dict:
    """Several people: the published tracks by id (T, N, J, 3), matched to the true people per instant,
    and the offline association + tracking + engine on the same instants' detections, scored alike
    (:func:`rigcap.studio.crowd_score.score_by_cycle`).  A true person counts at an instant where >= 2 of the instant's cameras
    detected them."""
    from rigcap.studio.crowd_score import score_by_cycle
    from triangulate.people import triangulate_people

    names, n_f, n_j = studio.rig.names, studio.n_frames, studio.skeleton.n_joints
    ids = np.array(sorted({int(i) for m in msgs for i in m.arrays["person_ids"]}), dtype=np.int64)
    n, n_t = len(msgs), len(ids)
    points = np.full((n_t, n, n_j, 3), np.nan)
    n_views = np.zeros((n_t, n, n_j), np.int16)
    error_px = np.full((n_t, n, n_j), np.nan)
    seen = np.zeros((studio.n_persons, n), int)
    cycle = np.zeros(n, np.int64)
    for i, m in enumerate(msgs):
        rows = np.searchsorted(ids, np.asarray(m.arrays["person_ids"], np.int64))
        points[rows, i] = m.arrays["points"]
        n_views[rows, i] = m.arrays["n_views"]
        error_px[rows, i] = m.arrays["error_px"]
        for cam, frame in m.header["frames"].items():
            seen[:, i] += studio.found[names.index(cam), int(frame) % n_f]
        cycle[i] = min(m.header["frames"].values()) // n_f
    seen = seen >= 2
    live = score_by_cycle(points, ids, truth, seen, cycle)

    kp = instant_keypoints(studio, msgs)
    times = np.broadcast_to(t_rel + cycle * motion_cycle_ns(n_f, studio.fps), kp.shape[:2]).astype(np.int64)
    offline = triangulate_people(studio.rig, Keypoints2D(kp.astype(np.float32), list(names),
                                                         list(studio.skeleton.joint_names), times, studio.fps))
    off = offline.points3d
    off_score = score_by_cycle(off.points, np.asarray(off.person_ids), truth, seen, cycle)
    return {
        "points": points, "n_views": n_views, "error_px": error_px, "person_ids": ids,
        "error_mm": live.pop("error_mm"), "offline_error_mm": off_score.pop("error_mm"),
        "persons": int(studio.n_persons), "tracks": int(n_t), "motion_cycles": int(len(np.unique(cycle))),
        **live, "offline_mpjpe_mm_per_person": off_score["mpjpe_mm_per_person"],
        "offline_switches": off_score["switches"], "offline_missed": off_score["missed"],
        "offline_invented": off_score["invented"], "offline_tracks": int(off.n_persons),
    }


_SCORED_INTS = ("spread_ns", "t_last_arrival_ns")


def scorable(msgs, names, n_joints: int, n_frames: int, fps: float, epoch_ns: int,
             people: bool = False) -> tuple[list, np.ndarray, int]:
    """The validated kp3d messages the scorer can use, their studio times (ns), and how many were left out.

    The validator (:func:`rigcap.wire.decode`) already bounds times and frame
    indices; this also needs the optional fields the scorer reads, cameras of
    the studio, and a studio time inside the motion's cycle (so no int64 can
    overflow and no truth is looked up outside the studio).  ``people``: the
    messages carry several people (points (persons, joints, 3) and ``person_ids``).
    """
    cycle_ns = motion_cycle_ns(n_frames, fps)
    known = set(names)
    keep, t_rel, dropped = [], [], 0
    for m in msgs:
        h = m.header
        if (not all(type(h.get(k)) is int for k in _SCORED_INTS) or "n_views" not in m.arrays
                or "error_px" not in m.arrays or not h["frames"] or not set(h["frames"]) <= known
                or (m.points.shape != (n_joints, 3) if not people else
                    m.points.ndim != 3 or m.points.shape[1:] != (n_joints, 3) or "person_ids" not in m.arrays)):
            dropped += 1
            continue
        frames = np.array(list(h["frames"].values()), dtype=np.int64)
        cycles = frames // n_frames
        if cycles.min() != cycles.max():  # straddles the point where the motion repeats
            continue
        if cycles[0] > 0 and np.min(frames % n_frames) < REPEAT_SETTLE_S * fps:
            continue
        t = h["t_capture_ns"] - epoch_ns - int(cycles[0]) * cycle_ns  # Python ints: cannot overflow
        if not -cycle_ns <= t <= 2 * cycle_ns:  # not the studio's timeline
            dropped += 1
            continue
        keep.append(m)
        t_rel.append(t)
    return keep, np.array(t_rel, dtype=np.int64), dropped


def _status_dict(status) -> dict:
    return {k: v for k, v in vars(status).items() if k != "source"}


def best_frame(result: DemoResult) -> int:
    """An instant near the middle of the run with every joint (of everybody) triangulated, if any (for the snapshot)."""
    return snapshot_frame(result.per_instant(result.points))


def snapshot_frame(points: np.ndarray) -> int:
    """:func:`best_frame` of points with the instants first: (N, J, 3) or (N, persons, J, 3)."""
    ok = np.isfinite(points).all(-1).reshape(len(points), -1).sum(axis=1)
    order = np.argsort(np.abs(np.arange(len(ok)) - len(ok) // 2))
    return int(order[np.argmax(ok[order])])


def write_outputs(result: DemoResult, options: DemoOptions) -> dict:
    """points3d.npz (live 3D; ``timestamps_ns`` on the studio's motion clock), rig.toml, summary.json in
    ``out_dir`` (images: ``rigcap demo`` renders them)."""
    from calibration import save_rig

    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    # Timestamps on the studio's motion clock, so anyone can score the file
    # against SyntheticStudio.truth_at without trusting summary.json.
    t_ns = np.asarray(result.studio_time_ns, dtype=np.int64)
    p3d = Points3D(result.points, list(result.skeleton.joint_names), result.error_px, result.n_views, t_ns, options.fps,
                   person_ids=result.person_ids)
    files["points"] = str(p3d.save(out / "points3d.npz"))
    files["rig"] = str(save_rig(result.rig, out / "rig.toml"))
    summary = {**result.summary(), "cameras_status": [{k: c[k] for k in ("name", "state", "restarts", "exitcode")}
                                                      | {"stats": c.get("stats", {})} for c in result.cameras],
               "events": result.events, "fusion_node": result.fusion}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    files["summary"] = str(out / "summary.json")
    return files
