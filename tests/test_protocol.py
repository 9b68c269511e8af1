"""The wire protocol: round trips, and a receiver that drops and counts bad messages."""

import json
import time

import numpy as np
import pytest
import zmq

from rigcap.wire import (
    MAX_HEADER_BYTES, Backbone, ClockServer, ProtocolError, Publisher, Subscriber, decode, encode, encode_kp2d, encode_kp3d,
    free_tcp_endpoint, joints_sha1, measure_clock_offset,
)
from triangulate.skeletons import HALPE26, MEDIAPIPE33, Skeleton


def kp(persons=1, joints=33, seed=0):
    arr = np.random.default_rng(seed).uniform(0, 1000, (persons, joints, 3)).astype(np.float32)
    arr[..., 2] /= 1000  # confidence in [0, 1], as the validator requires
    return arr


def test_kp2d_round_trip_keeps_every_field_and_value():
    arr = kp(2)
    frames = encode_kp2d("cam_1", 42, 7, 1_700_000_000_123_456_789, arr, "mediapipe33", MEDIAPIPE33.joint_names)
    assert len(frames) == 3 and bytes(frames[0]) == b"kp2d.cam_1"
    msg = decode([bytes(f) for f in frames])
    assert (msg.topic, msg.kind, msg.camera, msg.frame_index, msg.seq) == ("kp2d.cam_1", "kp2d", "cam_1", 42, 7)
    assert msg.capture_time_ns == 1_700_000_000_123_456_789
    assert msg.skeleton == "mediapipe33" and msg.header["joints_sha1"] == joints_sha1(MEDIAPIPE33.joint_names)
    assert msg.keypoints.dtype == np.dtype("<f4") and msg.keypoints.shape == (2, 33, 3)
    np.testing.assert_array_equal(msg.keypoints, arr)
    head = json.loads(bytes(frames[1]))
    assert head["v"] == 1 and head["arrays"] == [{"name": "keypoints", "dtype": "<f4", "shape": [2, 33, 3]}]


def test_zero_persons_and_custom_skeleton_carry_joint_names():
    custom = Skeleton("marker3", ("a", "b", "c"))
    frames = encode_kp2d("c0", 0, 0, 1, np.zeros((0, 3, 3), np.float32), custom.name, custom.joint_names,
                         builtin_skeleton=False)
    msg = decode(frames)
    assert msg.keypoints.shape == (0, 3, 3) and msg.header["joint_names"] == ["a", "b", "c"]


def test_kp3d_round_trips_through_its_encoder_and_validator():
    pts = np.random.default_rng(1).normal(size=(26, 3)).astype(np.float32)
    err = np.arange(26, dtype=np.float32)
    views = np.full(26, 4, np.int16)
    frames = encode_kp3d(3, 5, pts, cameras=["a", "b"], frames={"a": 7, "b": 8}, skeleton_name="halpe26",
                         joints_sha1_hex="0" * 8, error_px=err, n_views=views, spread_ns=12)
    msg = decode(frames)
    np.testing.assert_array_equal(msg.points, pts)
    np.testing.assert_array_equal(msg.arrays["n_views"], views)
    assert msg.header["cameras"] == ["a", "b"] and msg.kind == "kp3d" and msg.header["frames"] == {"a": 7, "b": 8}


@pytest.mark.parametrize("header, arrays, why", [
    ({}, {}, "t_capture_ns"),
    ({"t_capture_ns": 5, "cameras": "a", "skeleton": "halpe26"}, {}, "cameras"),
    ({"t_capture_ns": 5, "cameras": ["a"]}, {}, "skeleton"),
    ({"t_capture_ns": 5, "cameras": ["a"], "skeleton": "halpe26"}, {"points": np.zeros((26, 2), "<f4")}, "points"),
    ({"t_capture_ns": 5, "cameras": ["a"], "skeleton": "halpe26"}, {"points": np.full((26, 3), np.inf, "<f4")}, "infinite"),
    ({"t_capture_ns": 5, "cameras": ["a"], "skeleton": "halpe26"},
     {"points": np.zeros((26, 3), "<f4"), "n_views": np.zeros(25, "<i2")}, "n_views"),
])
def test_kp3d_validator_refuses_what_consumers_would_trip_on(header, arrays, why):
    frames = encode("kp3d", {"kind": "kp3d", "seq": 0, **header}, arrays)
    with pytest.raises(ProtocolError, match=why):
        decode(frames)


def _good():
    return [bytes(f) for f in encode_kp2d("cam_0", 1, 1, 1, kp(), "mediapipe33", MEDIAPIPE33.joint_names)]


def _with_header(**changes):
    frames = _good()
    head = json.loads(frames[1])
    head.update(changes)
    frames[1] = json.dumps(head).encode()
    return frames


MALFORMED = {
    "one frame": [b"kp2d.cam_0"],
    "header not json": [b"kp2d.cam_0", b"\xff{not json", b""],
    "header not object": [b"kp2d.cam_0", b"[1, 2]", b""],
    "unknown version": _with_header(v=99),
    "kind vs topic": _with_header(kind="kp3d"),
    "camera vs topic": _with_header(camera="cam_9"),
    "seq not int": _with_header(seq="7"),
    "payload too short": _good()[:2] + [_good()[2][:-4]],
    "missing payload": _good()[:2],
    "bad dtype": _with_header(arrays=[{"name": "keypoints", "dtype": "object", "shape": [1, 33, 3]}]),
    "negative shape": _with_header(arrays=[{"name": "keypoints", "dtype": "<f4", "shape": [-1, 33, 3]}]),
    "wrong kp shape": _with_header(arrays=[{"name": "keypoints", "dtype": "<f4", "shape": [33, 3, 1]}]),
    "huge header": [b"kp2d.cam_0", b" " * (MAX_HEADER_BYTES + 1), b""],
    "shape overflows int64": _with_header(arrays=[{"name": "keypoints", "dtype": "<f4", "shape": [2**62, 2**62, 4]}])[:2] + [b""],
    "bool in shape": _with_header(arrays=[{"name": "keypoints", "dtype": "<f4", "shape": [True, 33, 3]}]),
    "capture time beyond int64": _with_header(t_capture_ns=10**30),
    "frame beyond int64": _with_header(frame=-(2**70)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_decode_rejects_malformed_messages_with_protocol_error(name):
    with pytest.raises(ProtocolError):
        decode(MALFORMED[name])


def test_decode_rejects_oversized_payload():
    big = np.zeros((100, 33, 3), np.float32)
    frames = encode_kp2d("cam_0", 0, 0, 0, big, "mediapipe33", MEDIAPIPE33.joint_names)
    assert decode(frames, max_payload_bytes=big.nbytes)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(frames, max_payload_bytes=big.nbytes - 1)


@pytest.fixture
def backbone():
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub) as bb:
        yield bb


def _wait_connected(publisher, subscriber, topic="kp2d.probe"):
    """Publish probes until one arrives (the subscription has propagated)."""
    for _ in range(200):
        publisher.publish_kp2d("probe", 0, 0, np.zeros((0, 26, 3), np.float32), HALPE26)
        if subscriber.recv(20) is not None:
            while subscriber.recv(20) is not None:
                pass
            return
    raise AssertionError("subscription never propagated")


def test_publisher_to_subscriber_through_backbone_counts_and_drops_malformed(backbone):
    sub = Subscriber(backbone.sub_endpoint, topics="kp2d.")
    pub = Publisher(backbone.pub_endpoint)
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(backbone.pub_endpoint)
    def sentinel(frame):
        return encode_kp2d("sentinel", frame, 0, 0, np.zeros((0, 26, 3), np.float32), "halpe26", HALPE26.joint_names)

    def drain_until_sentinel(frame, into=None, timeout_s=5.0):
        """Receive until the raw socket's sentinel ``frame`` arrives: everything it sent before is in."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = sub.recv(50)
            if msg is None:
                continue
            if msg.camera == "sentinel":
                if msg.frame_index == frame:
                    return
            elif into is not None:
                into.append(msg)
        raise AssertionError(f"sentinel {frame} never arrived")

    try:
        _wait_connected(pub, sub)
        for _ in range(200):  # the raw socket's own subscription may take a moment
            raw.send_multipart(sentinel(0))
            msg = sub.recv(20)
            if msg is not None and msg.camera == "sentinel":
                break
        raw.send_multipart(sentinel(1))
        drain_until_sentinel(1)  # per-socket order: nothing from the warm-up is still in flight
        sub.malformed = 0
        sub.max_payload_bytes = 100_000
        sent, got = [], []
        for i in range(50):
            arr = kp(1, 26, seed=i)
            pub.publish_kp2d("cam_0", i, time.time_ns(), arr, HALPE26)
            sent.append(arr)
            if i % 10 == 0:
                for bad in MALFORMED.values():
                    raw.send_multipart(bad)
                big = np.zeros((500, 26, 3), np.float32)  # 156 kB: over this subscriber's limit, under the wire's
                raw.send_multipart(encode_kp2d("cam_0", 0, 0, 0, big, "halpe26", HALPE26.joint_names))
        raw.send_multipart(sentinel(2))
        drain_until_sentinel(2, into=got)
        deadline = time.monotonic() + 5
        while len(got) < 50 and time.monotonic() < deadline:
            msg = sub.recv(100)
            if msg is not None:
                got.append(msg)
        assert [m.seq for m in got] == list(range(50))  # sequence numbers are per topic
    finally:
        raw.close()
        pub.close()
        sub.close()
    assert [m.frame_index for m in got] == list(range(50))
    for m, arr in zip(got, sent):
        np.testing.assert_array_equal(m.keypoints, arr)
    assert sub.malformed == 5 * (len(MALFORMED) + 1)
    assert sub.received >= 50


def test_latest_only_subscriber_returns_the_newest(backbone):
    sub = Subscriber(backbone.sub_endpoint, topics="kp2d.", latest_only=True)
    pub = Publisher(backbone.pub_endpoint)
    try:
        _wait_connected(pub, sub)
        for i in range(30):
            pub.publish_kp2d("cam_0", i, 0, np.zeros((1, 26, 3), np.float32), HALPE26)
        time.sleep(0.2)
        msg = sub.recv(500)
        assert msg is not None and msg.frame_index == 29
        assert sub.recv(50) is None
    finally:
        pub.close()
        sub.close()


def test_slow_subscriber_never_blocks_the_publisher(backbone):
    sub = Subscriber(backbone.sub_endpoint, topics="kp2d.", rcvhwm=5)  # never reads
    pub = Publisher(backbone.pub_endpoint, sndhwm=10)
    try:
        _wait_connected(pub, sub)
        big = np.zeros((50, 26, 3), np.float32)
        t0 = time.perf_counter()
        for i in range(20000):
            pub.publish_kp2d("cam_0", i, 0, big, HALPE26)
        assert time.perf_counter() - t0 < 10  # would hang forever if send blocked
    finally:
        pub.close()
        sub.close()


def test_clock_offset_measures_a_known_offset():
    endpoint = free_tcp_endpoint()
    offset = 123_456_789
    with ClockServer(endpoint, clock=lambda: time.time_ns() + offset):
        est = measure_clock_offset(endpoint, n=10)
    assert abs(est.offset_ns - offset) <= est.round_trip_ns / 2 + 1000
    assert est.round_trip_ns < 50_000_000


def test_bad_endpoint_is_one_line_naming_it():
    from rigcap.wire import EndpointError
    from rigcap.errors import RigcapError

    with pytest.raises(EndpointError, match="subscriber: cannot connect 'notanendpoint'") as info:
        Subscriber("notanendpoint")
    assert isinstance(info.value, RigcapError)
    with pytest.raises(EndpointError, match="publisher: cannot bind 'tcp://nohost.invalid:1'"):
        Publisher("tcp://nohost.invalid:1", bind=True)
