"""ClockTracker against a ClockServer whose clock drifts: the offset, its drift and uncertainty are followed."""

from __future__ import annotations

import time

import numpy as np

from rigcap.wire import ClockServer, ClockTracker, fit_offsets, free_tcp_endpoint


def drifting_clock(drift: float, skew_ns: int = 0):
    """A wall clock that gains ``drift`` s per s on ours (1e-3 = 1 ms/s) from now, plus a fixed skew."""
    t0 = time.time_ns()
    return lambda: time.time_ns() + skew_ns + int((time.time_ns() - t0) * drift)


def test_tracker_follows_a_clock_drifting_1ms_per_s():
    endpoint = free_tcp_endpoint()
    clock = drifting_clock(1e-3, skew_ns=30_000_000)
    errors = []
    with ClockServer(endpoint, clock=clock), ClockTracker(endpoint, interval_s=0.1, exchanges=8) as tracker:
        time.sleep(0.5)  # a few rounds so the line has a slope
        for _ in range(25):  # 2.5 s: compare the extrapolated offset to the truth between rounds
            now = time.time_ns()
            truth = clock() - time.time_ns()
            errors.append(tracker.offset_ns(now) - truth)
            time.sleep(0.1)
        drift_ppm, unc = tracker.drift_ppm, tracker.uncertainty_ns
        rounds = tracker.rounds
    errors = np.abs(np.array(errors)) / 1e6
    print(f"tracker vs truth: max {errors.max():.3f} ms, median {np.median(errors):.3f} ms, "
          f"drift {drift_ppm:.0f} ppm (truth 1000), uncertainty {unc / 1e6:.3f} ms, {rounds} rounds")
    assert rounds >= 20
    assert errors.max() < 0.3  # within a few tenths of a ms all along
    assert abs(drift_ppm - 1000) < 150
    assert unc < 1e6


def test_fixed_offset_would_be_off_by_the_drift():
    """The baseline the tracker replaces: one measurement at start is off by drift x time afterwards."""
    from rigcap.wire import measure_clock_offset

    endpoint = free_tcp_endpoint()
    clock = drifting_clock(20e-3)
    with ClockServer(endpoint, clock=clock):
        once = measure_clock_offset(endpoint, n=8).offset_ns
        time.sleep(1.0)
        truth = clock() - time.time_ns()
    assert abs(truth - once) > 15e6  # 20 ms/s for 1 s


def test_fit_drops_an_outlier_round():
    t = np.arange(10, dtype=np.int64) * 1_000_000_000
    off = 5_000_000 + t // 1000  # 1000 ppm
    off[4] += 8_000_000  # one round delayed on one leg
    fit = fit_offsets(t, off, np.full(10, 100_000))
    assert abs(fit.slope * 1e6 - 1000) < 1
    assert fit.rounds_used == 9
    assert abs(fit.offset_ns - off[-1]) < 1000
    assert fit.uncertainty_ns < 100_000


def test_unreachable_host_counts_failures_and_keeps_the_line():
    from rigcap.wire import ClockOffset

    endpoint = free_tcp_endpoint()  # nobody answers
    now = time.time_ns()
    tracker = ClockTracker(endpoint, interval_s=0.05, exchanges=2, timeout_ms=50,
                           initial=ClockOffset(7_000_000, 100_000, 2, now))
    with tracker:
        time.sleep(0.4)
    assert tracker.failures >= 2
    assert abs(tracker.offset_ns(now) - 7_000_000) < 1


def test_live_remote_hosts_start_trackers_and_stats_show_them():
    """rigcap live's path: RemoteHosts (pickled into the fusion process) -> one tracker per host -> stats line."""
    import pickle

    from rigcap.commands.fuse import clocks_text
    from rigcap.live_session import RemoteHosts
    from rigcap.wire import measure_clock_offset

    endpoint = free_tcp_endpoint()
    clock = drifting_clock(5e-3, skew_ns=-12_000_000)
    with ClockServer(endpoint, clock=clock):
        initial = measure_clock_offset(endpoint, n=20)
        remote = pickle.loads(pickle.dumps(RemoteHosts(["tcp://127.0.0.1:1"], [initial.offset_ns], [endpoint],
                                                       [initial], clock_interval_s=0.1)))
        (tracker,) = remote.trackers()
        try:
            time.sleep(1.0)
            truth = clock() - time.time_ns()
            err_ms = abs(tracker.offset_ns() - truth) / 1e6
            line = clocks_text({"tcp://host-b:5556": tracker.snapshot()})
        finally:
            tracker.stop()
    assert err_ms < 0.3
    assert abs(tracker.drift_ppm - 5000) < 500
    assert line.startswith("  clock tcp://host-b:5556 -") and "ppm" in line
    shown_uncertainty_ms = float(line.split("+-")[1].split()[0])  # the line shows the tracker's own figure
    assert 0 <= shown_uncertainty_ms < 1.0  # a loopback exchange: well under a millisecond, even on a loaded machine
    assert RemoteHosts(["tcp://127.0.0.1:1"], [5]).trackers() == []  # no clock endpoints: fixed offsets
