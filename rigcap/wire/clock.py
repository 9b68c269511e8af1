"""Clock offsets between hosts: a REP server and an NTP-style client (see :mod:`rigcap.wire`)."""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass

import zmq

from rigcap.wire.messages import DEFAULT_CLOCK_ENDPOINT
from rigcap.wire.sockets import EndpointError, _BindsInAThread, attach, context

# ---------------------------------------------------------------- clock
_CLOCK_REQ = struct.Struct("<q")
_CLOCK_REP = struct.Struct("<qqq")


class ClockServer(_BindsInAThread):
    """Answers time queries in a thread, for :func:`measure_clock_offset`.

    A ROUTER socket rather than REP: REP has a state machine that one odd
    request (a DEALER sending a multi-frame body) leaves unable to send, which
    ended the thread.  The ROUTER reads each request whole, answers the ones
    shaped like a REQ's (``[identity, b"", 8 bytes]``) and drops anything else.
    """

    def __init__(self, endpoint: str = DEFAULT_CLOCK_ENDPOINT, clock=time.time_ns):
        self.endpoint = endpoint
        self.clock = clock
        super().__init__()
        self._stop = threading.Event()
        self.dropped = 0  # requests not shaped like measure_clock_offset's, or answers that could not go

    def _run(self) -> None:
        sock = context().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 1024)  # a request is 8 bytes; refuse big frames before they are read
        sock.setsockopt(zmq.SNDHWM, 1000)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._error = EndpointError(f"cannot bind the clock server on {self.endpoint}: {exc}")
            sock.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart()
                t1 = self.clock()
                if len(frames) != 3 or frames[1] != b"" or len(frames[2]) != _CLOCK_REQ.size:
                    self.dropped += 1  # not a REQ's request: answering would confuse the sender
                    continue
                t0 = _CLOCK_REQ.unpack(frames[2])[0]
                try:
                    sock.send_multipart([frames[0], b"", _CLOCK_REP.pack(t0, t1, self.clock())], flags=zmq.NOBLOCK)
                except zmq.ZMQError:  # the peer went away or does not read: never block the server
                    self.dropped += 1
        finally:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)



@dataclass
class ClockOffset:
    offset_ns: int  # server clock - client clock
    round_trip_ns: int  # of the sample used; the offset is uncertain by half of it
    samples: int
    local_time_ns: int = 0  # our clock at the middle of that sample's exchange: when the offset held


def measure_clock_offset(endpoint: str = DEFAULT_CLOCK_ENDPOINT, n: int = 20, timeout_ms: int = 1000,
                         clock=time.time_ns) -> ClockOffset:
    """NTP-style offset of the clock server's wall clock relative to ours (min round trip of ``n``)."""
    sock = context().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    attach(sock, endpoint, False, "clock")
    best = None
    try:
        for _ in range(n):
            t0 = clock()
            sock.send(_CLOCK_REQ.pack(t0))
            try:
                rep = sock.recv()
            except zmq.Again:
                raise TimeoutError(f"no answer from the clock server at {endpoint} within {timeout_ms} ms") from None
            t3 = clock()
            _, t1, t2 = _CLOCK_REP.unpack(rep)
            rtt = (t3 - t0) - (t2 - t1)
            offset = ((t1 - t0) + (t2 - t3)) // 2
            if best is None or rtt < best[0]:
                best = (rtt, offset, (t0 + t3) // 2)
    finally:
        sock.close()
    return ClockOffset(offset_ns=best[1], round_trip_ns=best[0], samples=n, local_time_ns=best[2])
