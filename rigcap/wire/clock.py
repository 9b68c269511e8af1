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

    ``keys`` (:class:`rigcap.wire.security.ClientKeys`, a camera host's): the socket is a CURVE
    client holding the fusion machine's public key, as the host's backbone, so only the fusion
    machine gets answers; the fusion machine's query checks this host's key against its allow-list.
    """

    thread_name = "rigcap-clock-server"

    def __init__(self, endpoint: str = DEFAULT_CLOCK_ENDPOINT, clock=time.time_ns, keys=None):
        self.endpoint = endpoint
        self.clock = clock
        self.keys = keys
        super().__init__()
        self._stop = threading.Event()
        self.dropped = 0  # requests not shaped like measure_clock_offset's, or answers that could not go

    def _run(self) -> None:
        sock = context().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, 1024)  # a request is 8 bytes; refuse big frames before they are read
        sock.setsockopt(zmq.SNDHWM, 1000)
        if self.keys is not None:
            self.keys.apply(sock)
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



CURVE_QUERY_RECONNECT_MS = 1000  # a keyed clock query retries a connection this seldom (see measure_clock_offset)


@dataclass
class ClockOffset:
    offset_ns: int  # server clock - client clock
    round_trip_ns: int  # of the sample used; the offset is uncertain by half of it
    samples: int
    local_time_ns: int = 0  # our clock at the middle of that sample's exchange: when the offset held


def measure_clock_offset(endpoint: str = DEFAULT_CLOCK_ENDPOINT, n: int = 20, timeout_ms: int = 1000,
                         clock=time.time_ns, keys=None) -> ClockOffset:
    """NTP-style offset of the clock server's wall clock relative to ours (min round trip of ``n``).

    The query is a DEALER sending what a REQ would (``[b"", t0]``), not a REQ: a REQ that is a CURVE
    server with a ZAP handler never receives its reply (libzmq 4.3.5, measured), and a DEALER also
    lets a late answer to an earlier exchange be told apart (it echoes that exchange's ``t0``) and
    skipped instead of being taken for the current one.

    ``keys`` (:class:`rigcap.wire.security.ServerKeys`, the fusion machine's): the query is a CURVE
    server checking the clock server's key against the camera hosts' allow-list; a host not on it
    (or a plain one) gets no query through, so no answer comes (``TimeoutError``) and the refusal is
    counted in ``keys.refused``."""
    sock = context().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, 1024)  # an answer is 24 bytes
    if keys is not None:
        # A refused host is refused again at every reconnect, and libzmq 4.3.5 aborts the process in a
        # race of those repeated refusals when the refusing side connects, as this query does ("Transport
        # endpoint is not connected (src/zap_client.cpp:50)": 3 of 9 runs of tests/test_wire_security.py
        # at the default 100 ms, 0 of 12 at 1 s).  A host that answers needs one connect, not a retry.
        sock.setsockopt(zmq.RECONNECT_IVL, CURVE_QUERY_RECONNECT_MS)
        keys.apply(sock)
    try:
        attach(sock, endpoint, False, "clock")
    except BaseException:
        if keys is not None:
            keys.release(sock)
        raise
    best = None
    try:
        for _ in range(n):
            t0 = clock()
            sock.send_multipart([b"", _CLOCK_REQ.pack(t0)])
            deadline = time.monotonic() + timeout_ms / 1000
            while True:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0 or not sock.poll(left_ms):
                    raise TimeoutError(f"no answer from the clock server at {endpoint} within {timeout_ms} ms")
                frames = sock.recv_multipart()
                t3 = clock()
                if len(frames) == 2 and frames[0] == b"" and len(frames[1]) == _CLOCK_REP.size:
                    echoed, t1, t2 = _CLOCK_REP.unpack(frames[1])
                    if echoed == t0:
                        break  # else: a late answer to an earlier exchange
            rtt = (t3 - t0) - (t2 - t1)
            offset = ((t1 - t0) + (t2 - t3)) // 2
            if best is None or rtt < best[0]:
                best = (rtt, offset, (t0 + t3) // 2)
    finally:
        if keys is not None:
            keys.release(sock)
        sock.close()
    return ClockOffset(offset_ns=best[1], round_trip_ns=best[0], samples=n, local_time_ns=best[2])
