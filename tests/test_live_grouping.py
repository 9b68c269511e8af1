"""Instant grouping: right frames together, dropped frames tolerated, dead cameras never block."""

import numpy as np

from triangulate.fusion_options import FusionOptions
from triangulate.live_grouping import InstantGrouper, Observation

PERIOD = 33_333_333  # 30 fps in ns
CAMS = ["cam_0", "cam_1", "cam_2", "cam_3"]



def grouper_with(**kw) -> InstantGrouper:
    """An InstantGrouper with FusionOptions' defaults for what ``kw`` does not set."""
    defaults = FusionOptions()
    args = {"alive_window_ns": defaults.alive_window_ns, "max_skew_ns": defaults.max_clock_skew_ns, **kw}
    return InstantGrouper(CAMS, **args)

def stream(n_frames, offsets_ms, drop=None, dead_after=None, seed=0, transit_ms=(0.5, 3.0)):
    """Messages of all cameras in arrival order: (arrival, Observation)."""
    rng = np.random.default_rng(seed)
    msgs = []
    for c, cam in enumerate(CAMS):
        for f in range(n_frames):
            if drop is not None and drop[c, f]:
                continue
            if dead_after and cam in dead_after and f >= dead_after[cam]:
                continue
            t = f * PERIOD + int(offsets_ms[c] * 1e6) + int(rng.normal(0, 0.3e6))
            arrival = t + int(rng.uniform(*transit_ms) * 1e6)
            msgs.append(Observation(cam, f, t, np.full((3, 3), f, np.float32), arrival))
    msgs.sort(key=lambda m: m.arrival_ns)
    return msgs


def run(grouper, msgs):
    out = []
    for m in msgs:
        out += grouper.push(m)
    out += grouper.poll(msgs[-1].arrival_ns + 10**10)
    return out


def test_groups_each_frame_once_with_all_cameras():
    msgs = stream(60, offsets_ms=[0, 4, -3, 7])
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD)
    instants = run(grouper, msgs)
    full = [i for i in instants if len(i.observations) == 4]
    assert len(full) == 60 == len(instants)
    for inst in full:
        frames = {o.frame_index for o in inst.observations.values()}
        assert len(frames) == 1, frames
        assert inst.spread_ns < 12e6
    times = [i.time_ns for i in instants]
    assert times == sorted(times)


def test_complete_instant_is_emitted_on_last_arrival_without_waiting():
    msgs = stream(30, offsets_ms=[0, 2, 4, 6])
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD)
    waits = []
    for m in msgs:
        for inst in grouper.push(m):
            if len(inst.observations) == 4:
                waits.append(m.arrival_ns - inst.last_arrival_ns)
    assert len(waits) > 20 and max(waits) == 0


def test_dropped_frames_leave_partial_instants_by_deadline():
    rng = np.random.default_rng(3)
    drop = rng.random((4, 90)) < 0.1
    msgs = stream(90, offsets_ms=[0, 3, 1, 5], drop=drop)
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD // 2)
    instants = run(grouper, msgs)
    for inst in instants:
        assert len({o.frame_index for o in inst.observations.values()}) == 1
    delivered = sum(len(i.observations) for i in instants)
    assert delivered == (~drop).sum()


def test_dead_camera_stops_being_waited_for():
    msgs = stream(120, offsets_ms=[0, 3, 1, 5], dead_after={"cam_2": 30})
    deadline = PERIOD // 2
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=deadline, alive_window_ns=200_000_000)
    late = []
    for m in msgs:
        for inst in grouper.push(m):
            late.append((inst.observations[next(iter(inst.observations))].frame_index, m.arrival_ns - inst.last_arrival_ns))
    after = [lag for f, lag in late if f > 40]
    assert after and max(after) == 0  # three-camera instants complete at once again
    assert all(lag <= deadline + PERIOD for _, lag in late)


def test_messages_from_unknown_cameras_and_late_messages_are_counted():
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD)
    kp = np.zeros((3, 3), np.float32)
    assert grouper.push(Observation("ghost", 0, 0, kp, 0)) == []
    assert grouper.unknown_camera == 1
    for cam in CAMS:
        grouper.push(Observation(cam, 10, 10 * PERIOD, kp, 10 * PERIOD))
    grouper.push(Observation("cam_0", 2, 2 * PERIOD, kp, 11 * PERIOD))
    assert grouper.late_dropped == 1


def with_one_bogus_message(msgs, at_frame, ahead_ns):
    """``msgs`` plus one cam_1 message sent with frame ``at_frame``'s but stamped ``ahead_ns`` in the future."""
    real = next(m for m in msgs if m.camera == "cam_1" and m.frame_index == at_frame)
    bogus = Observation("cam_1", 999_999, real.capture_time_ns + ahead_ns, real.keypoints, real.arrival_ns + 1)
    out = msgs + [bogus]
    out.sort(key=lambda m: m.arrival_ns)
    return out


def frames_delivered(instants, camera="cam_0"):
    return sorted(i.observations[camera].frame_index for i in instants if camera in i.observations)


def test_a_message_stamped_an_hour_ahead_is_rejected_and_silences_nothing():
    """A remote host with a wrong clock: its message must not move the late watermark an hour ahead."""
    msgs = with_one_bogus_message(stream(60, offsets_ms=[0, 4, -3, 7]), at_frame=10, ahead_ns=3600 * 10**9)
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD)
    instants = run(grouper, msgs)
    assert grouper.late_dropped == 0
    assert sum(len(i.observations) == 4 for i in instants) == 60
    assert grouper.clock_outlier == 1
    assert all(o.frame_index != 999_999 for i in instants for o in i.observations.values())


def test_a_message_stamped_ahead_within_the_bound_cannot_silence_the_rig_either():
    """1.5 s ahead passes the clock bound; its instant waits for its time instead of flushing at its deadline."""
    msgs = with_one_bogus_message(stream(120, offsets_ms=[0, 4, -3, 7]), at_frame=10, ahead_ns=1_500_000_000)
    grouper = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD)
    instants = run(grouper, msgs)
    assert grouper.late_dropped == 0
    for cam in CAMS:
        assert frames_delivered(instants, cam) == list(range(120)) + ([999_999] if cam == "cam_1" else [])
    times = [i.time_ns for i in instants]
    assert times == sorted(times)


def test_clock_bound_is_configurable_and_can_be_switched_off():
    kp = np.zeros((3, 3), np.float32)
    tight = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD, max_skew_ns=100_000_000)
    tight.push(Observation("cam_0", 0, 0, kp, 200_000_000))  # 200 ms in transit: beyond a 100 ms bound
    assert tight.clock_outlier == 1 and tight.pending == 0
    # Unrelated clocks (e.g. synthetic capture times, wall-clock arrivals): no bound, no waiting for "the future".
    off = grouper_with(tolerance_ns=PERIOD // 2, deadline_ns=PERIOD, max_skew_ns=None)
    off.push(Observation("cam_0", 0, 10**12, kp, 0))
    assert off.clock_outlier == 0
    assert len(off.poll(PERIOD)) == 1
