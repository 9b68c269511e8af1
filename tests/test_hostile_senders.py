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
