"""The fusion node: ``kp2d.*`` in, ``kp3d`` out, over the ZeroMQ backbone.

It lives in ``capture`` because it speaks the wire protocol; its logic (grouping,
triangulation, filtering) is :class:`triangulate.fusion.FusionEngine`.

``kp3d`` message (same framing as ``kp2d``, see :mod:`rigcap.wire`)
    topic ``kp3d``; header adds ``t_capture_ns`` (the instant's median capture
    time), ``cameras`` (names that took part), ``frames`` ({camera: frame
    index}), ``spread_ns`` (capture-time spread of those cameras),
    ``t_last_arrival_ns`` (when the instant's last camera message arrived),
    ``skeleton``, ``joints_sha1``, ``filtered`` (bool: One-Euro applied);
    arrays ``points`` ``<f4 [joints, 3]`` metres (NaN where not triangulated),
    ``error_px`` ``<f4 [joints]``, ``n_views`` ``<i2 [joints]``.

The loop drains every queued message before triangulating, so under load the
instants that became ready together are triangulated in one batch; with a
light load each instant is published the moment its last camera arrives.

Several backbones (``sub_endpoint`` a list): one subscriber each, e.g. this
host's and every remote camera host's; ``clock_offsets_ns`` gives each host's
wall clock minus ours, fixed (:func:`rigcap.wire.measure_clock_offset`) or
followed while running (a :class:`rigcap.wire.ClockTracker`, its drift line read
on every loop turn and shown in the stats' ``clocks``), which is subtracted from
its capture times before grouping.

Recording (``record_dir``, format and readers in :mod:`triangulate.fused_recording`): ``<session>/fusion/points3d.bin`` holds fixed-size
records appended and flushed every second (SIGKILL loses at most that), plus
``fusion/meta.json``; a clean stop writes ``<session>/points3d.npz``
(:class:`triangulate.formats.Points3D`).  :func:`read_fused_recording` reads
either.  With several people (``options.persons`` != 1) every published person
is recorded (one record each) and both read as the multi-person 3D form.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from calibration import Rig
from rigcap.wire import DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT, Publisher, Subscriber, joints_sha1
from rigcap.errors import InputFileError
from triangulate.formats import Points3D
from triangulate.fused_recording import (FUSION_DIR, NOBODY, PER_PERSON, POINTS_FILE, RECORD_FILE,
                                         fused_people_record_dtype, fused_record_dtype, read_fused_recording)
from triangulate.fusion import FusedInstant, FusionEngine
from triangulate.fusion_options import FusionOptions
from triangulate.skeletons import SKELETONS, Skeleton

class FusedRecorder:
    """Append-only, once-a-second-flushed record of the 3D stream (see module docstring).

    ``multi_person``: every person of every instant, one record each (the layout
    :mod:`triangulate.fused_recording` reads back as the multi-person 3D form)."""

    def __init__(self, session_dir: str | Path, skeleton: Skeleton, fps: float, flush_interval_s: float = 1.0,
                 multi_person: bool = False):
        self.session_dir = Path(session_dir)
        self.dir = self.session_dir / FUSION_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.skeleton = skeleton
        self.fps = fps
        self.multi_person = multi_person
        n_j = skeleton.n_joints
        self.dtype = fused_people_record_dtype(n_j) if multi_person else fused_record_dtype(n_j)
        meta = {"skeleton": skeleton.name, "joint_names": list(skeleton.joint_names), "fps": fps,
                "start_time_ns": time.time_ns()}
        if multi_person:
            meta["record_layout"] = PER_PERSON
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        self._file = open(self.dir / RECORD_FILE, "ab")
        self._record = np.zeros((), self.dtype)
        self._last_flush = time.monotonic()
        self.flush_interval_s = flush_interval_s
        self.count = 0  # instants written

    def write(self, inst: FusedInstant) -> None:
        if self.multi_person:
            ids = np.zeros(0, np.int32) if inst.person_ids is None else np.asarray(inst.person_ids)
            pts = np.asarray(inst.points).reshape(len(ids), -1, 3) if len(ids) else None
            recs = np.zeros(max(len(ids), 1), self.dtype)
            recs["instant"], recs["time_ns"], recs["spread_ns"] = self.count, inst.time_ns, inst.spread_ns
            if len(ids):
                recs["person_id"], recs["points"] = ids, pts
                recs["error_px"], recs["n_views"] = inst.error_px, inst.n_views
            else:
                recs["person_id"], recs["points"], recs["error_px"] = NOBODY, np.nan, np.nan
            self._file.write(recs.tobytes())
        else:
            rec = self._record
            rec["time_ns"], rec["spread_ns"] = inst.time_ns, inst.spread_ns
            rec["points"], rec["error_px"], rec["n_views"] = inst.points, inst.error_px, inst.n_views
            self._file.write(rec.tobytes())
        self.count += 1
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self._file.flush()
            self._last_flush = time.monotonic()

    def close(self) -> Points3D:
        self._file.close()
        points = read_fused_recording(self.session_dir)
        points.save(self.session_dir / POINTS_FILE)
        return points


@dataclass
class FusionStats:
    """Counters the node reports once a second (and returns at the end)."""

    messages_in: int = 0
    instants_out: int = 0
    malformed: int = 0
    wrong_skeleton: int = 0
    unknown_camera: int = 0
    late_dropped: int = 0
    clock_outlier: int = 0  # capture time (offset-corrected) too far from arrival: a wrong clock
    skeleton_revotes: int = 0  # an adopted skeleton replaced because most rig cameras sent another
    clock_jumps: dict = field(default_factory=dict)  # camera -> messages whose stamps jumped from its history
    quarantined: list = field(default_factory=list)  # cameras with a clock jump in the last seconds
    fusion_stalls: int = 0  # times this node's own loop did not run for STALL_S (SIGSTOP, swapping, a debugger)
    fusion_stalled_s: float = 0.0  # their total length
    recording_stopped: str | None = None  # why --record stopped early (a full disk); the stream went on
    auth_refused: int = 0  # clients refused: a CURVE key not in the allow-list, or a plain (unauthenticated) one
    cameras_seen: dict = field(default_factory=dict)  # camera -> messages
    clocks: dict = field(default_factory=dict)  # followed host endpoint -> ClockTracker.snapshot() (offset, uncertainty, drift)
    motion_sync: dict = field(default_factory=dict)  # triangulate.live_sync.LiveMotionSync.snapshot() (--motion-sync)
    last_seen_ns: dict = field(default_factory=dict)  # camera -> wall clock of its last message
    # Recent instants only, so a long session keeps a bounded memory.
    added_latency_ns: deque = field(default_factory=lambda: deque(maxlen=100_000))  # last arrival -> published
    total_latency_ns: deque = field(default_factory=lambda: deque(maxlen=100_000))  # capture -> published
    spread_ns: deque = field(default_factory=lambda: deque(maxlen=100_000))
    views: deque = field(default_factory=lambda: deque(maxlen=100_000))  # cameras per instant

    def summary(self, elapsed_s: float, recent: int | None = None) -> dict:
        """Counters since the start; percentiles over the last ``recent`` instants (default: all kept)."""
        def tail(values):
            return list(values)[-recent:] if recent else values

        def pct(values, q):
            values = tail(values)
            return float(np.percentile(values, q) / 1e6) if len(values) else float("nan")

        now_ns = time.time_ns()

        return {
            "elapsed_s": elapsed_s,
            "fps_in": self.messages_in / elapsed_s if elapsed_s > 0 else 0.0,
            "fps_out": self.instants_out / elapsed_s if elapsed_s > 0 else 0.0,
            "messages_in": self.messages_in,
            "instants_out": self.instants_out,
            "malformed": self.malformed,
            "wrong_skeleton": self.wrong_skeleton,
            "unknown_camera": self.unknown_camera,
            "late_dropped": self.late_dropped,
            "clock_outlier": self.clock_outlier,
            "skeleton_revotes": self.skeleton_revotes,
            "clock_jumps": dict(self.clock_jumps),
            "quarantined": list(self.quarantined),
            "fusion_stalls": self.fusion_stalls,
            "fusion_stalled_s": self.fusion_stalled_s,
            "recording_stopped": self.recording_stopped,
            "auth_refused": self.auth_refused,
            "cameras_seen": dict(self.cameras_seen),
            "clocks": {k: dict(v) for k, v in self.clocks.items()},
            "motion_sync": dict(self.motion_sync),
            "cameras_present": sorted(c for c, t in self.last_seen_ns.items() if now_ns - t < 1_000_000_000),
            "added_latency_ms_p50": pct(self.added_latency_ns, 50),
            "added_latency_ms_p99": pct(self.added_latency_ns, 99),
            "latency_ms_p50": pct(self.total_latency_ns, 50),
            "latency_ms_p99": pct(self.total_latency_ns, 99),
            "spread_ms_p50": pct(self.spread_ns, 50),
            "spread_ms_max": float(np.max(tail(self.spread_ns)) / 1e6) if self.spread_ns else float("nan"),
            "cameras_per_instant": float(np.mean(tail(self.views))) if self.views else float("nan"),
        }


class FusionNode:
    """Subscribe, fuse, publish (and optionally record).  ``run()`` blocks until stopped.

    The skeleton is given, or adopted from the messages: only from cameras of
    the rig (any other sender is counted as ``unknown_camera`` before its
    skeleton is looked at), and only once two rig cameras (the one camera of a
    one-camera rig) sent the same joint list, so no single sender can lock the
    node onto its skeleton.  Messages that arrived before adoption are fused
    then (up to ``ADOPTION_BACKLOG``).  Later messages with another joint list
    are counted as ``wrong_skeleton`` and dropped; but an adopted skeleton never
    stays locked against the rig: once more than half of the rig's cameras
    last sent one same other skeleton, it is adopted instead
    (``skeleton_revotes``; a recording so far is closed and kept as
    ``fusion-<old skeleton>-<n>/``).  A skeleton given by the caller (the
    capture config's detector, ``rigcap fuse --skeleton``) is never re-voted.
    """

    ADOPTION_BACKLOG = 256
    STALL_S = 0.5  # a gap this long between loop turns is the node's own stall, not the cameras' clocks

    def __init__(self, rig: Rig, sub_endpoint: str | list[str] = DEFAULT_SUB_ENDPOINT,
                 pub_endpoint: str = DEFAULT_PUB_ENDPOINT, options: FusionOptions | None = None,
                 skeleton: Skeleton | None = None, record_dir: str | Path | None = None,
                 clock_offsets_ns: list | None = None, instant_hooks=(), keys=None):
        self.options = options = options or FusionOptions()
        # called as hook(instant, node) after each kp3d is published (the node has .pub and
        # .skeleton): e.g. the angles topic, rigcap.analysis.live.LiveAngles, wired in by the
        # commands, which import every layer

        self.instant_hooks = list(instant_hooks)
        self.rig = rig
        self._rig_names = frozenset(rig.names)
        self.fps = options.fps
        endpoints = [sub_endpoint] if isinstance(sub_endpoint, str) else list(sub_endpoint)
        # One subscriber per backbone (this host's and each remote host's), each with that host's
        # clock offset (its wall clock minus ours): capture times are moved onto our clock.
        # keys (rigcap.wire.security.ServerKeys): the links that leave this machine are CURVE with the
        # allow-list; a loopback backbone (this host's own) stays plain.
        from rigcap.wire.security import is_loopback

        self.keys = keys
        self.subs = [Subscriber(e, topics=("kp2d.",), keys=None if is_loopback(e) else keys) for e in endpoints]
        # An entry is a fixed offset (int) or a followed one (rigcap.wire.ClockTracker, anything with
        # .offset_ns(now)), read afresh on every turn of the loop.
        self.clock_offsets_ns = [o if hasattr(o, "offset_ns") else int(o)
                                 for o in (clock_offsets_ns or [0] * len(endpoints))]
        self._endpoints = endpoints
        self._clock_stats_ns = 0
        if len(self.clock_offsets_ns) != len(self.subs):
            raise ValueError("one clock offset per subscribed endpoint")
        self.sub = self.subs[0]
        self._poller = zmq.Poller()
        for sub in self.subs:
            self._poller.register(sub.socket, zmq.POLLIN)
        self.pub = Publisher(pub_endpoint)
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.smoothing = options.smoothing
        self.batch_limit = options.batch_limit
        self.stats = FusionStats()
        self.interrupted = False
        self.engine: FusionEngine | None = None
        self.recorder: FusedRecorder | None = None
        self._votes: dict[tuple, set] = {}  # (skeleton name, joints sha1, joints) -> rig cameras that sent it
        self._backlog: list = []  # (message, clock offset) received before the skeleton was adopted
        self._dissent: dict[str, tuple] = {}  # rig camera -> the other skeleton it sent last
        self._adopted = skeleton is None  # adopted from the messages (so re-votable), not given
        self._last_turn_ns: int | None = None  # wall clock of the previous step()
        self._stall_start_ns: int | None = None  # set while catching up after a stall of this node
        self._drained_all = True
        if skeleton is not None:
            self._setup(skeleton)

    def _setup(self, skeleton: Skeleton) -> None:
        self.skeleton = skeleton
        self.sha1 = joints_sha1(tuple(skeleton.joint_names))
        self.engine = FusionEngine(self.rig, skeleton, self.options)
        if self.record_dir is not None:
            try:
                self.recorder = FusedRecorder(self.record_dir, skeleton, self.fps,
                                              multi_person=self.options.persons != 1)
            except OSError as exc:
                self.recorder = None
                self._recording_stopped(exc)

    def _accept(self, msg) -> bool:
        if msg.header.get("joints_sha1") != self.sha1 or msg.keypoints.shape[1] != self.skeleton.n_joints:
            self.stats.wrong_skeleton += 1
            if self._adopted:
                self._revote(msg)
            return False
        self._dissent.pop(msg.camera, None)
        return True

    def _revote(self, msg) -> None:
        """Adopt the skeleton more than half of the rig's cameras last sent, when it is not ours."""
        skeleton = self._skeleton_from(msg)
        if skeleton is None:
            return
        key = (skeleton.name, tuple(skeleton.joint_names))
        self._dissent[msg.camera] = key
        if sum(k == key for k in self._dissent.values()) * 2 <= len(self.rig):
            return
        if self.recorder is not None:  # keep what was recorded under the old skeleton beside the new one
            self.recorder.close()
            self.recorder = None
            old = self.record_dir / FUSION_DIR
            old.rename(self.record_dir / f"{FUSION_DIR}-{self.skeleton.name}-{self.stats.skeleton_revotes}")
        self.stats.skeleton_revotes += 1
        self._dissent = {}
        self._setup(skeleton)

    def _skeleton_from(self, msg) -> Skeleton | None:
        """The skeleton a message declares, if it is consistent (joint count and checksum)."""
        if msg.skeleton in SKELETONS:
            skeleton = SKELETONS[msg.skeleton]
        else:
            names = msg.header.get("joint_names")
            if not (isinstance(names, list) and names):
                return None
            skeleton = Skeleton(msg.skeleton, tuple(map(str, names)), ())
        if msg.keypoints.shape[1] != skeleton.n_joints or msg.header.get("joints_sha1") != joints_sha1(
                tuple(skeleton.joint_names)):
            return None
        return skeleton

    def _vote(self, msg, offset_ns: int) -> list:
        """Before a skeleton is known: hold the message and adopt a skeleton two rig cameras agree on."""
        skeleton = self._skeleton_from(msg)
        if skeleton is None:
            self.stats.wrong_skeleton += 1
            return []
        if len(self._backlog) < self.ADOPTION_BACKLOG:
            self._backlog.append((msg, offset_ns))
        key = (skeleton.name, tuple(skeleton.joint_names))
        voters = self._votes.setdefault(key, set())
        voters.add(msg.camera)
        if len(voters) < min(2, len(self.rig)):
            return []
        self._setup(skeleton)
        backlog, self._backlog, self._votes = self._backlog, [], {}
        ready = []
        for held, offset in backlog:
            ready += self._fuse_message(held, offset)
        return ready

    def _fuse_message(self, msg, offset_ns: int) -> list:
        if not self._accept(msg):
            return []
        self.stats.cameras_seen[msg.camera] = self.stats.cameras_seen.get(msg.camera, 0) + 1
        self.stats.last_seen_ns[msg.camera] = msg.t_receive_ns
        capture_ns = msg.capture_time_ns - offset_ns
        arrival_ns = msg.t_receive_ns
        if self._stall_start_ns is not None:  # backlog of our own stall: it arrived when captured, at the latest
            arrival_ns = min(arrival_ns, max(capture_ns, self._stall_start_ns))
        return self.engine.collect(msg.camera, msg.frame_index, capture_ns, msg.keypoints, arrival_ns)

    def step(self, timeout_ms: int = 5) -> list[FusedInstant]:
        """Receive what is queued (waiting at most ``timeout_ms``), fuse, publish; returns what was published.

        Instants completed by the drained messages are triangulated together
        in one vectorised batch (under light load that is one instant, published
        as soon as its last camera arrived).
        """
        ready = []
        now_ns = time.time_ns()
        if self._last_turn_ns is not None and now_ns - self._last_turn_ns > self.STALL_S * 1e9:
            # This node did not run (stopped, swapped out): what queued meanwhile arrived "late" only
            # because we did not read it.  Judge it by when we stopped reading, not as clock faults.
            self.stats.fusion_stalls += 1
            self.stats.fusion_stalled_s += (now_ns - self._last_turn_ns) / 1e9
            self._stall_start_ns = self._last_turn_ns
        self._last_turn_ns = now_ns
        self._drained_all = True  # until a subscriber hands over a full batch
        if len(self.subs) == 1 or self._poller.poll(timeout_ms):
            for sub, offset in zip(self.subs, self._current_offsets(now_ns)):
                ready += self._drain(sub, offset, timeout_ms if len(self.subs) == 1 else 0)
        if self.engine is not None:
            if self.engine.motion_sync is not None:
                self.engine.motion_sync.poll(now_ns)  # starts a background estimate when one is due
            ready += self.engine.grouper.poll(time.time_ns())
            self.stats.late_dropped = self.engine.grouper.late_dropped
            self.stats.clock_outlier = self.engine.grouper.clock_outlier
            self.stats.clock_jumps = self.engine.grouper.clock_jumps
            self.stats.quarantined = self.engine.grouper.quarantined(time.time_ns())
        self.stats.malformed = sum(sub.malformed for sub in self.subs)
        if self._stall_start_ns is not None and self._drained_all:
            self._stall_start_ns = None  # caught up: the queue is empty again
        fused = self.engine.fuse(ready) if ready else []
        for inst in fused:
            self._publish(inst)
        return fused

    def _current_offsets(self, now_ns: int) -> list[int]:
        """Each subscriber's clock offset now: fixed ones as given, followed ones from their latest fit."""
        offsets = [o if isinstance(o, int) else o.offset_ns(now_ns) for o in self.clock_offsets_ns]
        if now_ns - self._clock_stats_ns > 500_000_000:  # stats twice a second: the loop turns much faster
            self._clock_stats_ns = now_ns
            self.stats.clocks = {e: o.snapshot(now_ns) for e, o in zip(self._endpoints, self.clock_offsets_ns)
                                 if not isinstance(o, int)}
            if self.engine is not None and self.engine.motion_sync is not None:
                self.stats.motion_sync = self.engine.motion_sync.snapshot()
        return offsets

    def _drain(self, sub: Subscriber, offset_ns: int, timeout_ms: int) -> list:
        """Take up to ``batch_limit`` queued messages off one subscriber; returns the instants they complete."""
        ready = []
        msg = sub.recv(timeout_ms)
        n = 0
        while msg is not None:
            self.stats.messages_in += 1
            if msg.camera not in self._rig_names:  # before anything in it is believed
                self.stats.unknown_camera += 1
            elif self.engine is None:
                ready += self._vote(msg, offset_ns)
            else:
                ready += self._fuse_message(msg, offset_ns)
            n += 1
            msg = sub.recv(0) if n < self.batch_limit else None
        if n >= self.batch_limit:
            self._drained_all = False
        return ready

    def _publish(self, inst: FusedInstant) -> None:
        now = time.time_ns()
        self.pub.publish_kp3d(inst.time_ns, inst.points, cameras=inst.cameras, frames=inst.frames,
                              skeleton_name=self.skeleton.name, joints_sha1_hex=self.sha1, error_px=inst.error_px,
                              n_views=inst.n_views, person_ids=inst.person_ids, spread_ns=int(inst.spread_ns),
                              t_last_arrival_ns=int(inst.last_arrival_ns), filtered=self.smoothing, t_publish_ns=now)
        s = self.stats
        s.instants_out += 1
        s.added_latency_ns.append(now - inst.last_arrival_ns)
        s.total_latency_ns.append(now - inst.time_ns)
        s.spread_ns.append(inst.spread_ns)
        s.views.append(len(inst.cameras))
        if self.recorder is not None:
            try:
                self.recorder.write(inst)
            except OSError as exc:
                self._recording_stopped(exc)
        for hook in self.instant_hooks:
            hook(inst, self)

    def _recording_stopped(self, exc: OSError) -> None:
        """Recording failed (a full disk): say so once, keep what was flushed, go on publishing."""
        import errno
        import sys

        why = "disk full" if exc.errno == errno.ENOSPC else str(exc)
        self.stats.recording_stopped = f"recording stopped: {why} (the live stream goes on)"
        print(f"rigcap fuse: {self.stats.recording_stopped}", file=sys.stderr, flush=True)
        recorder, self.recorder = self.recorder, None
        try:
            if recorder is not None:
                recorder.close()
        except OSError:  # no room for points3d.npz: fusion/points3d.bin is read instead (triangulate.fused_recording)
            pass

    def run(self, stop_event=None, duration_s: float | None = None, on_stats=None, stats_interval_s: float = 1.0,
            recent: int | None = None) -> dict:
        """Loop until ``stop_event`` is set or ``duration_s`` passes; returns the final summary.

        ``on_stats`` gets a summary every ``stats_interval_s`` (percentiles over the
        last ``recent`` instants when given); the final one covers the whole run.
        """
        start = time.monotonic()
        next_report = start + stats_interval_s
        try:
            while not (stop_event is not None and stop_event.is_set()):
                now = time.monotonic()
                if duration_s is not None and now - start >= duration_s:
                    break
                self.step()
                if on_stats is not None and now >= next_report:
                    self._count_refusals()
                    on_stats(self.stats.summary(now - start, recent))
                    next_report = now + stats_interval_s
        except KeyboardInterrupt:  # Ctrl-C is a stop like any other: close cleanly, report
            self.interrupted = True
        finally:
            self._count_refusals()
            summary = self.stats.summary(time.monotonic() - start)
            self.close()
        return summary

    def _count_refusals(self) -> None:
        """The allow-list's refusals (ZAP, counted in its own thread) into the stats."""
        if self.keys is not None:
            self.stats.auth_refused = self.keys.refused

    def close(self) -> None:
        if self.recorder is not None:
            try:
                self.recorder.close()
            except OSError as exc:
                self._recording_stopped(exc)
            self.recorder = None
        for sub in self.subs:
            sub.close()
        if self.keys is not None:
            self.keys.stop()
        self.pub.close()
