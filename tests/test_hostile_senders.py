"""Misbehaving senders on real loopback ZeroMQ sockets (issue 17): each test reproduces one probe finding.

Every loop is bounded in count and time; the whole module runs in seconds.
"""

import json
import time

import numpy as np
import pytest
import zmq

from rigcap.wire import (ClockServer, ProtocolError, Publisher, Subscriber, context, decode, encode,
                         encode_kp2d, encode_kp3d, free_tcp_endpoint, measure_clock_offset)
from triangulate.skeletons import MEDIAPIPE33


# ---------------------------------------------------------------- 1. clock server
def test_clock_server_survives_a_dealer_sending_three_frames():
    endpoint = free_tcp_endpoint()
    with ClockServer(endpoint) as server:
        probe = context().socket(zmq.DEALER)
        probe.setsockopt(zmq.LINGER, 0)
        probe.connect(endpoint)
        try:
            probe.send_multipart([b"", b"a", b"b"])  # a 2-frame body after the delimiter: killed the REP thread
            probe.send_multipart([b"a", b"b", b"c"])  # no delimiter at all
            probe.send_multipart([b"", b"x" * 3])  # a REQ-shaped request of the wrong size
            probe.send(b"")
            time.sleep(0.2)
        finally:
            probe.close()
        offset = measure_clock_offset(endpoint, n=5, timeout_ms=1000)
        assert abs(offset.offset_ns) < 50_000_000 and offset.round_trip_ns >= 0
        assert server.dropped == 4


# ---------------------------------------------------------------- 5. values outside physical ranges
def _kp2d_frames(kp=None, frame=7, t_capture_ns=1_700_000_000_000_000_000, **header_changes):
    kp = np.full((1, 33, 3), 0.5, np.float32) if kp is None else kp
    frames = encode_kp2d("cam_1", frame, 0, t_capture_ns, kp, "mediapipe33", MEDIAPIPE33.joint_names)
    if header_changes:
        head = json.loads(bytes(frames[1]))
        head.update(header_changes)
        frames[1] = json.dumps(head).encode()
    return [bytes(f) for f in frames]


def _with(value, index):
    kp = np.full((1, 33, 3), 0.5, np.float32)
    kp[(0, 3) + index] = value
    return kp


@pytest.mark.parametrize("frames, why", [
    (lambda: _kp2d_frames(_with(1e6, (2,))), "confidence"),
    (lambda: _kp2d_frames(_with(-0.1, (2,))), "confidence"),
    (lambda: _kp2d_frames(_with(np.inf, (0,))), "coordinates"),
    (lambda: _kp2d_frames(_with(-np.inf, (1,))), "coordinates"),
    (lambda: _kp2d_frames(_with(3e7, (0,))), "coordinates"),
    (lambda: _kp2d_frames(frame=2**63 - 1), "frame"),
    (lambda: _kp2d_frames(frame=-1), "frame"),
    (lambda: _kp2d_frames(v=True), "version"),
    (lambda: _kp2d_frames(t_capture_ns=2**63 - 1), "t_capture_ns"),
    (lambda: _kp2d_frames(t_capture_ns=-5), "t_capture_ns"),
    (lambda: _kp2d_frames(seq=True), "seq"),
])
def test_kp2d_values_outside_physical_ranges_are_refused(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode(frames())


def test_kp2d_nan_marks_a_missing_joint_and_passes():
    kp = _with(np.nan, (0,))
    kp[0, 4] = np.nan
    msg = decode(_kp2d_frames(kp))
    assert np.isnan(msg.keypoints[0, 3, 0]) and np.isnan(msg.keypoints[0, 4]).all()
    assert decode(_kp2d_frames(_with(1.0, (2,)))).keypoints[0, 3, 2] == 1.0


def test_subscriber_counts_out_of_range_kp2d_and_keeps_the_good():
    endpoint = free_tcp_endpoint()
    with Subscriber(endpoint, topics="kp2d.", bind=True) as sub, Publisher(endpoint) as pub:
        good = _kp2d_frames()
        deadline = time.monotonic() + 5
        while sub.recv(50) is None and time.monotonic() < deadline:  # slow joiner: until the first arrives
            pub.send(good)
        sub.malformed = 0
        for frames in (_kp2d_frames(_with(1e6, (2,))), _kp2d_frames(_with(np.inf, (0,))), _kp2d_frames(v=True), good):
            pub.send(frames)
        got = sub.recv(2000)
        assert got is not None and got.frame_index == 7 and sub.malformed == 3


# ---------------------------------------------------------------- 2. kp3d consumers
def _kp3d_frames(t_capture_ns=1_700_000_000_000_000_000, drop=(), **extra):
    frames = encode_kp3d(0, 1_700_000_000_000_000_000, np.zeros((33, 3), np.float32), cameras=["cam_1"],
                         frames={"cam_1": 3}, skeleton_name="mediapipe33", joints_sha1_hex="x", **extra)
    head = json.loads(bytes(frames[1]))
    head["t_capture_ns"] = t_capture_ns
    for key in drop:
        head.pop(key)
    frames[1] = json.dumps(head).encode()
    return [bytes(f) for f in frames]


@pytest.mark.parametrize("frames, why", [
    (lambda: _kp3d_frames(2**63 - 1), "t_capture_ns"),
    (lambda: _kp3d_frames(-(2**63)), "t_capture_ns"),
    (lambda: _kp3d_frames(drop=("t_capture_ns",)), "t_capture_ns"),
])
def test_kp3d_with_extreme_or_missing_capture_time_is_refused(frames, why):
    with pytest.raises(ProtocolError, match=why):
        decode(frames())


def test_demo_scorer_leaves_out_and_counts_what_it_cannot_score():
    from rigcap.demo import scorable

    epoch = 1_700_000_000_000_000_000
    n_frames, fps = 90, 30.0
    extra = dict(error_px=np.zeros(33, np.float32), n_views=np.full(33, 2, np.int16), spread_ns=0,
                 t_last_arrival_ns=epoch)
    good = decode(_kp3d_frames(epoch + 100_000_000, **extra))
    hostile = [
        decode(_kp3d_frames(2**62 - 1, **extra)),  # the far future: was OverflowError in np.array(int64)
        decode(_kp3d_frames(epoch, drop=("t_last_arrival_ns",), **extra)),  # optional field the scorer needs
        decode(_kp3d_frames(epoch, error_px=extra["error_px"], spread_ns=0, t_last_arrival_ns=epoch)),  # no n_views
    ]
    big_frame = encode_kp3d(0, epoch, np.zeros((33, 3), np.float32), cameras=["cam_1"], frames={"cam_1": 2**40 - 1},
                            skeleton_name="mediapipe33", joints_sha1_hex="x", **extra)
    hostile.append(decode(big_frame))  # cycles * cycle_ns beyond int64
    kept, t_rel, dropped = scorable([good, *hostile], ["cam_1", "cam_2"], 33, n_frames, fps, epoch)
    assert kept == [good] and t_rel.tolist() == [100_000_000] and dropped == 4


# ---------------------------------------------------------------- 6. memory bounded in bytes
def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096  # resident pages (psutil-free)


HOSTILE_BIG_SENDER = """
import sys, time, zmq
sock = zmq.Context.instance().socket(zmq.PUB)
sock.connect(sys.argv[1])
time.sleep(0.3)
header = b'{"v":1,"kind":"stats","seq":0,"t_publish_ns":1,"arrays":[{"name":"b","dtype":"|u1","shape":[8388608]}]}'
blob = bytes(8 * 1024 * 1024)
for _ in range(60):  # 480 MiB in 8 MiB messages, over the protocol's limit
    sock.send_multipart([b"stats.big", header, blob])
time.sleep(1.0)
"""


def test_stalled_subscriber_and_big_messages_keep_memory_bounded():
    import subprocess
    import sys

    from rigcap.wire import Backbone
    from rigcap.wire.sockets import QUEUE_BUDGET_BYTES

    pub_ep, sub_ep = free_tcp_endpoint(), free_tcp_endpoint()
    fits = np.zeros(250_000, np.uint8)  # just under the limit
    with Backbone(pub_ep, sub_ep):
        stalled = Subscriber(sub_ep, topics="")  # subscribes, never reads while we measure
        pub = Publisher(pub_ep)
        try:
            time.sleep(0.3)
            before = _rss_bytes()
            hostile = subprocess.run([sys.executable, "-c", HOSTILE_BIG_SENDER, pub_ep], timeout=20)
            assert hostile.returncode == 0
            for i in range(2000):  # 500 MB inside the limit: bounded by the high-water marks
                pub.send(encode("stats.x", {"kind": "stats", "seq": i}, {"blob": fits}))
            time.sleep(1.0)
            grown = _rss_bytes() - before
            first = stalled.recv(500)
            assert first is not None and first.topic == "stats.x"  # the honest ones flowed; no big one got in
        finally:
            pub.close()
            stalled.close()
    # the backbone's queue for the stalled subscriber + the subscriber's own + slack for the TCP buffers
    assert grown < 2 * QUEUE_BUDGET_BYTES + 48 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_publisher_refuses_a_message_over_the_protocol_limit():
    from rigcap.wire.messages import MAX_MESSAGE_BYTES

    with Publisher(free_tcp_endpoint(), bind=True) as pub:
        with pytest.raises(ProtocolError, match="limit"):
            pub.send(encode("stats.x", {"kind": "stats", "seq": 0}, {"blob": np.zeros(MAX_MESSAGE_BYTES, np.uint8)}))
        assert pub.sent == 0


# ---------------------------------------------------------------- 3. skeleton lock
def _node_and_cameras(skeleton=None, n=4):
    from rigcap.studio.studio import SyntheticStudio
    from triangulate.fusion_node import FusionNode
    from triangulate.fusion_options import FusionOptions

    studio = SyntheticStudio(n_cameras=n, fps=30.0, duration_s=2.0, seed=3)
    sub_ep = free_tcp_endpoint()
    cams = Publisher(sub_ep, bind=True)  # the node's subscriber connects straight to it
    node = FusionNode(studio.rig, sub_ep, free_tcp_endpoint(), FusionOptions(fps=30.0, smoothing=False),
                      skeleton=skeleton)
    return studio, cams, node


def _send_frame(studio, cams, frame, names=None, skeleton=None, t0=None):
    from triangulate.skeletons import Skeleton

    now = time.time_ns() if t0 is None else t0
    for i, name in enumerate(names or studio.rig.names):
        kp = studio.keypoints(i % len(studio.rig), frame % studio.n_frames)[None].astype(np.float32)
        sk = skeleton or studio.skeleton
        if skeleton is not None:
            kp = np.full((1, sk.n_joints, 3), 0.5, np.float32)
        cams.publish_kp2d(name, frame, now, kp, sk)


def test_skeleton_adopted_from_two_hostile_names_is_re_voted_by_the_majority():
    from triangulate.skeletons import COCO17

    studio, cams, node = _node_and_cameras()
    try:
        deadline = time.monotonic() + 5
        while node.engine is None and time.monotonic() < deadline:  # hostile: two rig names, another skeleton
            _send_frame(studio, cams, 0, names=studio.rig.names[:2], skeleton=COCO17)
            node.step(20)
        assert node.skeleton.name == "coco17"
        out = []
        for frame in range(1, 40):  # the four honest cameras
            _send_frame(studio, cams, frame)
            time.sleep(0.01)
            out += node.step(5)
        assert node.skeleton.name == studio.skeleton.name
        assert len(out) >= 20 and node.stats.skeleton_revotes == 1
    finally:
        node.close()
        cams.close()


# ---------------------------------------------------------------- 4. clock games (grouper, virtual clock)
def _run_grouper(hostile, seconds=12.0, fps=30.0, cameras=("cam_0", "cam_1", "cam_2", "cam_3"), **kw):
    """4 honest cameras with 2-6 ms latency; ``hostile(t_ns) -> [(camera, capture_ns)]`` adds messages.
    Returns (grouper, emitted instants)."""
    from triangulate.fusion_options import FusionOptions
    from triangulate.live_grouping import InstantGrouper, Observation

    o = FusionOptions(fps=fps, **kw)
    g = InstantGrouper(list(cameras), o.tolerance_ns, o.deadline_ns, o.alive_window_ns, o.max_clock_skew_ns,
                       max_jump_ns=o.max_clock_jump_ns)
    rng = np.random.default_rng(0)
    period = int(1e9 / fps)
    t0 = 1_700_000_000_000_000_000
    out = []
    kp = np.zeros((26, 3), np.float32)
    for i in range(int(seconds * fps)):
        t = t0 + i * period
        events = [(t + int(rng.uniform(2e6, 6e6)), c, t + int(rng.uniform(0, 2e6))) for c in cameras]
        events += [(t + 3_000_000, c, cap) for c, cap in hostile(i, t)]
        for arrival, cam, cap in sorted(events):
            out += g.push(Observation(cam, i, cap, kp, arrival))
        out += g.poll(t + period - 1)
    return g, out


def test_messages_stamped_ahead_do_not_make_honest_messages_late():
    every = int(1.5 * 30)
    honest_g, honest = _run_grouper(lambda i, t: [])
    g, out = _run_grouper(lambda i, t: [("cam_0", t + 1_900_000_000)] if i % every == 10 else [])
    full = sum(len(inst.observations) == 4 and abs(inst.time_ns - inst.first_arrival_ns) < 50e6 for inst in out)
    assert len(honest) >= 355 and honest_g.late_dropped == 0
    assert full >= len(honest) - 20, f"{full} full honest instants of {len(honest)}"
    assert g.late_dropped <= 10
    assert "cam_0" in g.quarantined_ever and g.clock_jumps["cam_0"] >= 7


def test_four_names_stamped_200ms_ahead_do_not_replace_the_real_instants():
    cams = ("cam_0", "cam_1", "cam_2", "cam_3")
    g, out = _run_grouper(lambda i, t: [(c, t + 200_000_000) for c in cams] if i >= 30 else [])
    honest = [inst for inst in out if abs(inst.time_ns - inst.first_arrival_ns) < 50e6]
    ahead = [inst for inst in out if inst.time_ns - inst.first_arrival_ns > 100e6]
    assert len(honest) >= 340 and len(ahead) <= 4, (len(honest), len(ahead))
    assert all(g.clock_jumps[c] > 0 for c in cams)


# ---------------------------------------------------------------- 9. a stalled fusion node
def test_fusion_node_stalled_3s_reports_a_stall_and_catches_up():
    import threading

    from triangulate.skeletons import HALPE26

    studio, cams, node = _node_and_cameras(skeleton=HALPE26)
    stop = threading.Event()
    sent = {"frames": 0}

    def cameras():  # 4 cameras at 30 fps, on the wall clock, in their own thread (the node's is stopped)
        frame, t0 = 0, time.monotonic()
        while not stop.is_set() and frame < 300:
            _send_frame(studio, cams, frame)
            frame += 1
            sent["frames"] = frame
            time.sleep(max(0.0, t0 + frame / 30 - time.monotonic()))

    try:
        deadline = time.monotonic() + 3
        while not node.stats.messages_in and time.monotonic() < deadline:  # slow joiner
            _send_frame(studio, cams, 0)
            node.step(20)
        thread = threading.Thread(target=cameras, daemon=True)
        thread.start()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            node.step(5)
        before, frame_at_stop = node.stats.instants_out, sent["frames"]
        time.sleep(3.0)  # the node's loop does not run (as under SIGSTOP); the cameras go on
        frame_at_resume = sent["frames"]
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            node.step(5)
        stop.set()
        thread.join(2)
        s = node.stats.summary(1.0)
        stalled_frames = frame_at_resume - frame_at_stop
        assert stalled_frames >= 80
        assert s["clock_outlier"] == 0 and not s["clock_jumps"], s
        assert s["fusion_stalls"] == 1 and 2.8 <= s["fusion_stalled_s"] <= 3.6
        assert node.stats.instants_out - before >= stalled_frames + 30 - 10  # the backlog and after, caught up
    finally:
        stop.set()
        node.close()
        cams.close()


def test_skeleton_known_from_the_detector_is_given_not_voted():
    from capture.pose import declared_skeleton

    assert declared_skeleton("mediapipe", {}).name == "mediapipe33"
    assert declared_skeleton("torchscript", {"skeleton": "coco17"}).name == "coco17"
    assert declared_skeleton("synthetic", {}) is None  # the studio's: voted


def test_a_given_skeleton_is_never_re_voted():
    from triangulate.skeletons import COCO17, HALPE26

    studio, cams, node = _node_and_cameras(skeleton=HALPE26)
    try:
        for frame in range(20):  # every rig camera sends another skeleton
            _send_frame(studio, cams, frame, skeleton=COCO17)
            node.step(10)
        assert node.skeleton.name == "halpe26" and node.stats.wrong_skeleton > 0 and node.stats.skeleton_revotes == 0
    finally:
        node.close()
        cams.close()
