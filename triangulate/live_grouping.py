"""Group live per-camera messages into instants.

Cameras are never in step: each grabs on its own clock, a few milliseconds
apart, and some frames never arrive.  The grouper matches messages by capture
time (within ``tolerance_ns``), emits an instant as soon as every camera that is
alive has contributed (so a healthy rig adds no waiting), and otherwise emits it
once ``deadline_ns`` has passed since its first message arrived — a dead or
slow camera delays an instant by at most the deadline, never blocks it.

A camera counts as alive while its last message arrived less than
``alive_window_ns`` ago; a camera that stops sending drops out of the expected
set and instants complete without it.

No single message may steer the grouper.  Messages older than the last emitted
instant are dropped as late, so a capture time stamped in the future (a remote
host with a wrong clock) would otherwise move that watermark ahead and make
every honest message "late" from then on.  Two guards, both relying on capture
and arrival times being on one clock (offsets already corrected):

* a message whose capture time is more than ``max_skew_ns`` from its arrival
  time is rejected and counted (``clock_outlier``); it does not make its camera
  alive either;
* an instant whose time is still ahead of the arrival clock (by more than the
  tolerance) is not flushed by its deadline: it waits until its time has come,
  so a message stamped ahead within the bound cannot push the watermark past
  the honest instants.

* a camera whose lead (capture minus arrival time) jumps ahead, past the
  tolerance and by more than ``max_jump_ns`` above the median of its own
  recent leads, is *quarantined*:
  the message is dropped and counted per camera (``clock_jumps``), and the
  camera is listed by :meth:`InstantGrouper.quarantined` for a while.  So a
  sender stamping ahead under a rig camera's name (within the skew bound)
  never forms or moves an instant; if a camera's clock really moved, its new
  lead is accepted after ``JUMP_ACCEPT`` consecutive messages agree.

``max_skew_ns=None`` switches these off, for callers whose capture and arrival
times are on unrelated clocks.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Observation:
    camera: str
    frame_index: int
    capture_time_ns: int
    keypoints: np.ndarray  # (J, 3) x, y, confidence
    arrival_ns: int
    prepared: np.ndarray | None = None  # what the consumer computed from it on arrival (e.g. undistorted)


class Instant:
    """The observations of one moment, at most one per camera.

    Its time (the median capture time) is kept up to date as observations are
    added (:meth:`add`), because the grouper compares it for every message.
    """

    __slots__ = ("observations", "first_arrival_ns", "time_ns", "_times")

    def __init__(self, observations: dict | None = None, first_arrival_ns: int = 0):
        self.observations: dict[str, Observation] = {}
        self.first_arrival_ns = int(first_arrival_ns)
        self._times: list[int] = []
        self.time_ns = 0  # median capture time: robust to one camera stamping late
        for obs in (observations or {}).values():
            self.add(obs)

    def add(self, obs: Observation) -> None:
        old = self.observations.get(obs.camera)
        if old is not None:
            self._times.remove(old.capture_time_ns)
        self.observations[obs.camera] = obs
        bisect.insort(self._times, obs.capture_time_ns)
        n = len(self._times)
        mid = n // 2
        self.time_ns = self._times[mid] if n % 2 else (self._times[mid - 1] + self._times[mid]) // 2

    @property
    def spread_ns(self) -> int:
        """Largest minus smallest capture time among the cameras: how far apart they grabbed."""
        return int(self._times[-1] - self._times[0]) if self._times else 0

    @property
    def last_arrival_ns(self) -> int:
        return max(o.arrival_ns for o in self.observations.values())

    @property
    def cameras(self) -> list[str]:
        return sorted(self.observations)


def _instant_time(inst: Instant) -> int:
    return inst.time_ns


class InstantGrouper:
    LEAD_HISTORY = 15  # recent accepted leads per camera whose median is the camera's baseline
    JUMP_ACCEPT = 15  # consecutive jumped messages that agree: the camera's clock really moved
    QUARANTINE_NS = 5_000_000_000  # a camera is listed as quarantined this long after its last jump

    def __init__(
        self,
        cameras: list[str],
        tolerance_ns: int,
        deadline_ns: int,
        alive_window_ns: int,
        max_skew_ns: int | None,
        *,
        max_jump_ns: int | None = None,
    ):
        """Times in ns; the defaults live in :class:`triangulate.fusion_options.FusionOptions`
        (``max_jump_ns`` None: no clock-jump quarantine)."""
        self.cameras = list(cameras)
        self.tolerance_ns = int(tolerance_ns)
        self.deadline_ns = int(deadline_ns)
        self.alive_window_ns = int(alive_window_ns)
        self.max_skew_ns = None if max_skew_ns is None else int(max_skew_ns)
        self._open: list[Instant] = []
        self._last_arrival: dict[str, int] = {}
        self._last_emitted_time_ns: int | None = None
        self._started_ns: int | None = None
        self.late_dropped = 0  # messages older than an instant already emitted
        self.unknown_camera = 0
        self.clock_outlier = 0  # capture time further than max_skew_ns from arrival
        self.max_jump_ns = None if max_jump_ns is None or max_skew_ns is None else int(max_jump_ns)
        self._leads: dict[str, deque] = {}  # camera -> recent accepted (capture - arrival)
        self._jumped: dict[str, list] = {}  # camera -> leads of the consecutive jumped messages
        self._last_jump_ns: dict[str, int] = {}
        self.clock_jumps: dict[str, int] = {}  # camera -> messages dropped as a clock jump
        self.quarantined_ever: set[str] = set()

    def quarantined(self, now_ns: int) -> list[str]:
        """Cameras whose stamps jumped against their own history within the last ``QUARANTINE_NS``."""
        return sorted(c for c, t in self._last_jump_ns.items() if now_ns - t <= self.QUARANTINE_NS)

    def _jumps(self, obs: Observation) -> bool:
        """Whether this message's lead jumps from its camera's history (and keep that history)."""
        lead = obs.capture_time_ns - obs.arrival_ns
        history = self._leads.setdefault(obs.camera, deque(maxlen=self.LEAD_HISTORY))
        # Only a jump ahead counts: honest leads are <= 0 (captured before arrival; a burst catching up
        # after a stall rises towards 0), so a lead past the tolerance *and* far above the camera's own
        # history is a stamp from the future (a later arrival is judged by the late-message rule).
        if (len(history) >= 3 and lead > self.tolerance_ns
                and lead - sorted(history)[len(history) // 2] > self.max_jump_ns):
            run = self._jumped.setdefault(obs.camera, [])
            run.append(lead)
            if len(run) >= self.JUMP_ACCEPT and max(run) - min(run) <= self.max_jump_ns:
                history.clear()  # the camera's clock moved for good: its new lead is the baseline
                history.extend(run[-self.LEAD_HISTORY:])
                self._jumped[obs.camera] = []
                return False
            self.clock_jumps[obs.camera] = self.clock_jumps.get(obs.camera, 0) + 1
            self._last_jump_ns[obs.camera] = obs.arrival_ns
            self.quarantined_ever.add(obs.camera)
            return True
        self._jumped[obs.camera] = []
        history.append(lead)
        return False

    def alive(self, now_ns: int) -> list[str]:
        return [c for c, t in self._last_arrival.items() if now_ns - t <= self.alive_window_ns]

    def expected(self, now_ns: int) -> set[str]:
        """Cameras an instant waits for: the alive ones, and during start-up the ones not heard from yet."""
        expected = set(self.alive(now_ns))
        if self._started_ns is not None and now_ns - self._started_ns <= self.alive_window_ns:
            expected |= set(self.cameras) - set(self._last_arrival)
        return expected

    def push(self, obs: Observation) -> list[Instant]:
        """Add one message; return the instants it completes (oldest first)."""
        if obs.camera not in self.cameras:
            self.unknown_camera += 1
            return []
        if self.max_skew_ns is not None and abs(obs.capture_time_ns - obs.arrival_ns) > self.max_skew_ns:
            self.clock_outlier += 1
            return self.poll(obs.arrival_ns)
        if self.max_jump_ns is not None and self._jumps(obs):
            return self.poll(obs.arrival_ns)
        if self._started_ns is None:
            self._started_ns = obs.arrival_ns
        self._last_arrival[obs.camera] = obs.arrival_ns
        if self._last_emitted_time_ns is not None and obs.capture_time_ns < self._last_emitted_time_ns - self.tolerance_ns:
            self.late_dropped += 1
            return self.poll(obs.arrival_ns)
        target = self._match(obs)
        if target is None:
            target = Instant(first_arrival_ns=obs.arrival_ns)
            self._open.append(target)
        target.add(obs)
        self._open.sort(key=_instant_time)
        return self.poll(obs.arrival_ns)

    def _match(self, obs: Observation) -> Instant | None:
        best, best_dt = None, None
        for inst in self._open:
            if obs.camera in inst.observations:
                continue
            dt = abs(inst.time_ns - obs.capture_time_ns)
            if dt <= self.tolerance_ns and (best_dt is None or dt < best_dt):
                best, best_dt = inst, dt
        return best

    def poll(self, now_ns: int) -> list[Instant]:
        """Emit complete instants and those past their deadline, in time order.

        An instant is complete when every expected camera is in it.  Emitting a
        complete instant also flushes any older open instant: its missing
        cameras have already moved on, so waiting longer gains nothing.
        An instant stamped ahead of ``now_ns`` is not overdue before its time
        (see the module docstring).
        """
        expected = self.expected(now_ns)
        ready_upto = -1
        future_from = None if self.max_skew_ns is None else now_ns + self.tolerance_ns
        for i, inst in enumerate(self._open):
            complete = expected.issubset(inst.observations)
            overdue = now_ns - inst.first_arrival_ns >= self.deadline_ns and (
                future_from is None or inst.time_ns <= future_from)
            if complete or overdue:
                ready_upto = i
        if ready_upto < 0:
            return []
        out, self._open = self._open[: ready_upto + 1], self._open[ready_upto + 1 :]
        self._last_emitted_time_ns = out[-1].time_ns
        return out

    @property
    def pending(self) -> int:
        return len(self._open)
