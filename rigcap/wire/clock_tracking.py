"""Following a remote host's clock while running: re-measured offsets and a robust drift line.

A host's clock offset (its wall clock minus ours) measured once at start goes
stale: two quartz clocks drift apart by tens of ppm (a few ms per minute), and
NTP on either host slews its clock by up to 500 ppm while it corrects.  A
:class:`ClockTracker` re-measures the offset every ``interval_s`` in a
background thread (one round: ``exchanges`` NTP-style exchanges with the host's
:class:`~rigcap.wire.clock.ClockServer`, the one with the smallest round trip
kept, :func:`~rigcap.wire.clock.measure_clock_offset`) and fits a straight
line, offset against our clock, over the rounds of the last ``window_s``
seconds.  The fit is robust: rounds whose residual from a Theil-Sen line (median
of pairwise slopes) is beyond 3 robust sigmas (median absolute deviation) are
dropped and the line refitted by least squares over the rest,
so one round delayed by a busy network does not bend it.  Between rounds the
line is extrapolated, so a steady drift is followed without steps.

Readers (the fusion node's loop, in another thread) call :meth:`offset_ns`;
the fit is one immutable tuple replaced whole, so a read never sees half of an
update and takes no lock.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np

from rigcap.wire.clock import ClockOffset, measure_clock_offset


class ClockFit(NamedTuple):
    """offset(t) = offset_ns + slope * (t - t_ref_ns); all on our clock."""

    t_ref_ns: int
    offset_ns: float
    slope: float  # ns of offset per ns of our clock (1e-6 = 1 ppm = 1 us/s)
    uncertainty_ns: float
    rounds_used: int


def fit_offsets(local_ns: np.ndarray, offsets_ns: np.ndarray, round_trips_ns: np.ndarray) -> ClockFit:
    """Robust line through (our time, offset) samples; uncertainty = RMS residual (+) median half round trip.

    One sample: a constant (no drift known yet).  The half round trip bounds
    the error of each sample (the asymmetry of the two legs is unknown); the
    residual RMS is the scatter the line does not explain.
    """
    local_ns = np.asarray(local_ns, dtype=np.int64)
    y = np.asarray(offsets_ns, dtype=np.float64)
    rtt = np.asarray(round_trips_ns, dtype=np.float64)
    t_ref = int(local_ns[-1])
    x = (local_ns - t_ref).astype(np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return ClockFit(t_ref, float(np.median(y)), 0.0, float(np.median(rtt) / 2), len(x))
    keep = np.ones(len(x), bool)
    slope, icpt = np.polyfit(x, y, 1)
    if len(x) >= 4:
        # Theil-Sen first (median of pairwise slopes): an outlier cannot pull it, so its residuals find the outlier
        i, j = np.triu_indices(len(x), 1)
        dx = x[j] - x[i]
        ok = dx != 0
        ts_slope = float(np.median((y[j] - y[i])[ok] / dx[ok]))
        resid = y - ts_slope * x
        resid -= np.median(resid)
        sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
        keep = np.abs(resid) <= max(3 * sigma, float(np.median(rtt)) / 2)
        if keep.sum() >= 2 and np.ptp(x[keep]) > 0:
            slope, icpt = np.polyfit(x[keep], y[keep], 1)
        else:
            keep[:] = True
    resid = y[keep] - (slope * x[keep] + icpt)
    rms = float(np.sqrt(np.mean(resid ** 2)))
    half_rtt = float(np.median(rtt[keep]) / 2)
    return ClockFit(t_ref, float(icpt), float(slope), float(np.hypot(rms, half_rtt)), int(keep.sum()))


class ClockTracker:
    """Re-measures one host's clock offset in a thread and extrapolates a robust drift line.

    ``initial`` (a :class:`ClockOffset` measured already, e.g. by ``rigcap live``
    at start) seeds the fit so :meth:`offset_ns` answers at once; without it
    :meth:`start` measures one round before returning (``TimeoutError`` when the
    host does not answer).  A round that times out later is counted in
    ``failures`` and the line goes on being extrapolated.
    """

    def __init__(self, endpoint: str, interval_s: float = 2.0, exchanges: int = 8, window_s: float = 60.0,
                 timeout_ms: int = 500, initial: ClockOffset | None = None, clock=time.time_ns, keys=None):
        self.endpoint = endpoint
        self.keys = keys  # rigcap.wire.security.ServerKeys: each round's query is CURVE (see measure_clock_offset)
        self.interval_s = float(interval_s)
        self.exchanges = int(exchanges)
        self.window_s = float(window_s)
        self.timeout_ms = int(timeout_ms)
        self.clock = clock
        self.rounds = 0
        self.failures = 0
        self._samples: list[tuple[int, int, int]] = []  # (our time, offset, round trip) of each round kept
        self._fit: ClockFit | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if initial is not None:
            self._add(initial)

    # ------------------------------------------------------------ measuring (the tracker's thread)
    def _add(self, off: ClockOffset) -> None:
        t = off.local_time_ns or self.clock()
        self._samples.append((int(t), int(off.offset_ns), int(off.round_trip_ns)))
        horizon = t - int(self.window_s * 1e9)
        self._samples = [s for s in self._samples if s[0] >= horizon]
        a = np.array(self._samples, dtype=np.int64)
        self._fit = fit_offsets(a[:, 0], a[:, 1], a[:, 2])  # replaced whole: readers need no lock
        self.rounds += 1

    def measure_once(self) -> ClockOffset:
        """One round now (``exchanges`` exchanges, min round trip kept); folded into the fit."""
        off = measure_clock_offset(self.endpoint, n=self.exchanges, timeout_ms=self.timeout_ms, clock=self.clock,
                                   keys=self.keys)
        self._add(off)
        return off

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.measure_once()
            except TimeoutError:
                self.failures += 1

    def start(self) -> "ClockTracker":
        if self._fit is None:
            self.measure_once()
        self._thread = threading.Thread(target=self._run, name=f"rigcap-clock-tracker {self.endpoint}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_ms / 1000 * (self.exchanges + 1) + self.interval_s + 1)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ reading (any thread)
    @property
    def fit(self) -> ClockFit:
        fit = self._fit
        if fit is None:
            raise RuntimeError(f"clock tracker for {self.endpoint}: no offset measured yet (call start())")
        return fit

    def offset_ns(self, now_ns: int | None = None) -> int:
        """The host's clock minus ours at our time ``now_ns`` (default: now), from the latest fit."""
        fit = self.fit
        now_ns = self.clock() if now_ns is None else now_ns
        return int(round(fit.offset_ns + fit.slope * (now_ns - fit.t_ref_ns)))

    @property
    def uncertainty_ns(self) -> float:
        return self.fit.uncertainty_ns

    @property
    def drift_ppm(self) -> float:
        """How fast the host's clock gains on ours: 1000 ppm = 1 ms per second."""
        return self.fit.slope * 1e6

    def snapshot(self, now_ns: int | None = None) -> dict:
        """For stats: offset (ms, now), uncertainty (ms), drift (ppm), rounds, failures, age of the last round (s)."""
        fit = self.fit
        now_ns = self.clock() if now_ns is None else now_ns
        return {"offset_ms": self.offset_ns(now_ns) / 1e6, "uncertainty_ms": fit.uncertainty_ns / 1e6,
                "drift_ppm": fit.slope * 1e6, "rounds": self.rounds, "failures": self.failures,
                "age_s": (now_ns - fit.t_ref_ns) / 1e9}
