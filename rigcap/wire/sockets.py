"""Sockets every process uses the same way: Publisher, Subscriber, the Backbone forwarder.

Thread contract: a :class:`Publisher` or :class:`Subscriber` belongs to the
thread that made it (ZeroMQ sockets are not thread-safe); the :class:`Backbone`
runs its own thread.  Delivery: PUB/SUB, at most once, per-subscriber drops at
the high-water marks, never a blocked sender (see :mod:`rigcap.wire`).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import zmq

from rigcap.errors import RigcapError
from rigcap.wire.messages import (DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT, MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES,
                                  Message, ProtocolError, decode, encode, encode_angles, encode_kp2d, encode_kp3d)

# Queues bounded in bytes: ZeroMQ counts high-water marks in messages, so each queue's worst case is
# its HWM times the biggest message a receiver accepts (ZMQ_MAXMSGSIZE = MAX_MESSAGE_BYTES, 320 KiB).
# 128 MiB per queue gives 409 messages: 3.4 s of 4 cameras at 30 fps (a stalled reader catches up),
# and a stalled subscriber costs at most 2 queues (the backbone's XPUB pipe and its own) = 256 MiB.
QUEUE_BUDGET_BYTES = 128 * 1024 * 1024
DEFAULT_HWM = QUEUE_BUDGET_BYTES // MAX_MESSAGE_BYTES

class EndpointError(RigcapError, OSError):
    """A ZeroMQ endpoint that cannot be bound or connected (bad address, port in use)."""


def attach(sock: zmq.Socket, endpoint: str, bind: bool, role: str) -> None:
    """Bind or connect ``sock``, turning ZeroMQ's error into one line naming the endpoint."""
    try:
        (sock.bind if bind else sock.connect)(endpoint)
    except zmq.ZMQError as exc:
        sock.close(0)
        what = "bind" if bind else "connect"
        raise EndpointError(f"{role}: cannot {what} {endpoint!r} ({exc}); expected tcp://HOST:PORT") from None


# ---------------------------------------------------------------- sockets
_CTX_LOCK = threading.Lock()


def free_tcp_endpoint(host: str = "127.0.0.1") -> str:
    """``tcp://host:port`` with a port the OS says is free now (tests, several rigs on one machine)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return f"tcp://{host}:{s.getsockname()[1]}"


def context() -> zmq.Context:
    """The process's shared ZeroMQ context."""
    with _CTX_LOCK:
        return zmq.Context.instance()


class _OwnsSocket:
    """``close()`` and ``with`` for the classes that own one ZeroMQ socket."""

    socket: zmq.Socket

    def close(self) -> None:
        self.socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Publisher(_OwnsSocket):
    """A PUB socket that never blocks its caller.

    ``bind=False`` (default) connects to a :class:`Backbone`'s pub endpoint;
    ``bind=True`` binds the endpoint itself (one publisher, subscribers connect
    straight to it).  Sequence numbers are kept per topic.
    """

    def __init__(self, endpoint: str = DEFAULT_PUB_ENDPOINT, bind: bool = False, sndhwm: int = DEFAULT_HWM,
                 linger_ms: int = 500):
        self.endpoint = endpoint
        self.socket = context().socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, sndhwm)
        self.socket.setsockopt(zmq.LINGER, linger_ms)
        attach(self.socket, endpoint, bind, "publisher")
        self._seq: dict[str, int] = {}
        self.sent = 0

    def next_seq(self, topic: str) -> int:
        seq = self._seq.get(topic, -1) + 1
        self._seq[topic] = seq
        return seq

    def send(self, frames: list) -> None:
        """Send encoded frames; a message over :data:`MAX_MESSAGE_BYTES` is this sender's bug (ProtocolError):
        every receiver would drop it and disconnect us, and our own queue would hold it."""
        size = sum(memoryview(f).nbytes if not isinstance(f, zmq.Frame) else len(f.bytes) for f in frames)
        if size > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message of {size} bytes exceeds the protocol's limit of {MAX_MESSAGE_BYTES}")
        # zmq.NOBLOCK: at the high-water mark a PUB drops anyway; never wait.
        try:
            self.socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # pragma: no cover - PUB drops instead of raising
            return
        self.sent += 1

    def publish(self, topic: str, header: dict, arrays: dict | None = None) -> int:
        """Encode and send; fills ``kind`` (from the topic) and ``seq``.  Returns seq."""
        seq = self.next_seq(topic)
        self.send(encode(topic, {"kind": topic.split(".", 1)[0], "seq": seq, **header}, arrays))
        return seq

    def publish_kp2d(self, camera: str, frame_index: int, capture_time_ns: int, keypoints: np.ndarray,
                     skeleton, **extra) -> int:
        """Send one camera frame's keypoints; ``skeleton`` has ``name``, ``joint_names`` and ``builtin``
        (a :class:`triangulate.skeletons.Skeleton`; the wire imports no package above it)."""
        topic = f"kp2d.{camera}"
        seq = self.next_seq(topic)
        self.send(encode_kp2d(camera, frame_index, seq, capture_time_ns, keypoints, skeleton.name,
                              skeleton.joint_names, getattr(skeleton, "builtin", False), **extra))
        return seq

    def publish_angles(self, capture_time_ns: int, names, values: np.ndarray, **fields) -> int:
        """Send one instant's joint angles (see :func:`rigcap.wire.messages.encode_angles`)."""
        seq = self.next_seq("angles")
        self.send(encode_angles(seq, capture_time_ns, names, values, **fields))
        return seq

    def publish_kp3d(self, capture_time_ns: int, points: np.ndarray, **fields) -> int:
        """Send one fused instant (see :func:`rigcap.wire.messages.encode_kp3d` for the fields)."""
        seq = self.next_seq("kp3d")
        self.send(encode_kp3d(seq, capture_time_ns, points, **fields))
        return seq


class Subscriber(_OwnsSocket):
    """A SUB socket that yields decoded messages and counts (never raises on) bad ones.

    ``topics``: prefixes to subscribe to (``"kp2d."`` for all cameras, ``"kp3d"``).
    ``latest_only=True`` is the viewer's and the demo scorer's mode: :meth:`recv`
    takes everything queued off the socket (for at most ``drain_budget_s``, so a
    sender faster than the reader cannot keep it draining forever) and decodes
    only the newest message; ``skipped`` counts the ones drained unread.
    (ZeroMQ's ``CONFLATE`` cannot be used: it does not support multipart
    messages; and a small receive high-water mark would not help either: a full
    queue drops the *newest* messages, keeping stale ones.)
    ``bind=True`` binds instead of connecting (a publisher that binds is the
    usual pairing the other way round).

    Thread contract: one thread owns a Subscriber.  Delivery: every valid
    message once, in order per sender (``latest_only``: the newest of each
    drain); malformed ones are counted in ``malformed`` (``last_error`` says
    why) and never raised.
    """

    def __init__(self, endpoint: str = DEFAULT_SUB_ENDPOINT, topics=("",), latest_only: bool = False,
                 rcvhwm: int | None = None, bind: bool = False, max_payload_bytes: int = MAX_PAYLOAD_BYTES,
                 drain_budget_s: float = 0.002, keys=None):
        self.endpoint = endpoint
        self.latest_only = latest_only
        self.drain_budget_s = drain_budget_s
        self.max_payload_bytes = max_payload_bytes
        self.socket = context().socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm if rcvhwm is not None else DEFAULT_HWM)
        # ZeroMQ drops (and disconnects) a frame over this before it is buffered: no 512 MiB allocation
        self.socket.setsockopt(zmq.MAXMSGSIZE, max(max_payload_bytes, MAX_MESSAGE_BYTES))
        self.socket.setsockopt(zmq.LINGER, 0)
        for t in ([topics] if isinstance(topics, str) else topics):
            self.socket.setsockopt(zmq.SUBSCRIBE, t.encode("ascii"))
        if keys is not None:  # rigcap.wire.security.ServerKeys: CURVE server with an allow-list
            keys.apply(self.socket)
        attach(self.socket, endpoint, bind, "subscriber")
        self.received = 0
        self.malformed = 0
        self.skipped = 0
        self.last_error: str | None = None

    def _decode(self, frames) -> Message | None:
        try:
            msg = decode(frames, self.max_payload_bytes)
        except ProtocolError as exc:
            self.malformed += 1
            self.last_error = str(exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a receiver must never die of what a sender sent
            self.malformed += 1
            self.last_error = f"undecodable message ({type(exc).__name__}: {exc})"
            return None
        self.received += 1
        return msg

    def _newest_queued(self):
        """Raw frames of the newest queued message (older ones drained unread), or None."""
        newest, taken = None, 0
        deadline = time.perf_counter() + self.drain_budget_s
        while True:
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            newest, taken = frames, taken + 1
            if time.perf_counter() >= deadline:
                break
        self.skipped += max(0, taken - 1)
        return newest

    def recv(self, timeout_ms: int | None = 100) -> Message | None:
        """The next valid message (the newest in ``latest_only`` mode) or None on timeout."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            remaining = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(remaining):
                return None
            if self.latest_only:
                frames = self._newest_queued()
                msg = None if frames is None else self._decode(frames)
                if msg is not None:
                    return msg
            else:
                try:
                    frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    frames = None
                if frames is not None:
                    msg = self._decode(frames)
                    if msg is not None:
                        return msg
                    continue  # a malformed one: try the next without waiting
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def __iter__(self):
        """Messages forever (blocking)."""
        while True:
            msg = self.recv(None)
            if msg is not None:
                yield msg



class _BindsInAThread:
    """``start()`` runs ``_run`` in a daemon thread and waits until it has bound its sockets (or raises the
    bind error it met there); ``with`` starts and stops.  Subclasses set ``thread_name`` and define
    ``_run`` (which sets ``_error`` or not, then ``_ready``) and ``stop``."""

    thread_name = "rigcap-thread"

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Backbone(_BindsInAThread):
    """The forwarder every publisher and subscriber meets at (XSUB -> XPUB, in a thread).

    ``Backbone().start()`` binds ``pub_endpoint`` (publishers connect) and
    ``sub_endpoint`` (subscribers connect).  Per-subscriber drops happen at the
    XPUB's high-water mark, so one slow subscriber never holds up the others or
    the cameras.
    """

    thread_name = "rigcap-backbone"
    what = "ZeroMQ backbone"

    def __init__(self, pub_endpoint: str = DEFAULT_PUB_ENDPOINT, sub_endpoint: str = DEFAULT_SUB_ENDPOINT,
                 hwm: int = DEFAULT_HWM, keys=None):
        self.pub_endpoint = pub_endpoint
        self.keys = keys  # rigcap.wire.security.ClientKeys: the XPUB (what leaves the host) as CURVE client
        self.sub_endpoint = sub_endpoint
        self.hwm = hwm
        super().__init__()
        self._control_endpoint = f"inproc://rigcap-backbone-{id(self)}"

    def _run(self) -> None:
        ctx = context()
        xsub = ctx.socket(zmq.XSUB)
        xpub = ctx.socket(zmq.XPUB)
        ctrl = ctx.socket(zmq.PAIR)
        try:
            xsub.setsockopt(zmq.RCVHWM, self.hwm)
            xsub.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # a bigger frame never enters the backbone
            xpub.setsockopt(zmq.SNDHWM, self.hwm)
            for s in (xsub, xpub, ctrl):
                s.setsockopt(zmq.LINGER, 0)
            if self.keys is not None:
                self.keys.apply(xpub)
            self._attach_xsub(xsub)
            xpub.bind(self.sub_endpoint)
            ctrl.bind(self._control_endpoint)
        except zmq.ZMQError as exc:
            self._error = EndpointError(f"cannot bind the {self.what} on {self.pub_endpoint} / {self.sub_endpoint}: {exc}")
            for s in (xsub, xpub, ctrl):
                s.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, ctrl)
        except zmq.ContextTerminated:  # pragma: no cover
            pass
        finally:
            for s in (xsub, xpub, ctrl):
                s.close()

    def _attach_xsub(self, xsub: zmq.Socket) -> None:
        xsub.bind(self.pub_endpoint)  # publishers connect here

    def stop(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        ctrl = context().socket(zmq.PAIR)
        ctrl.setsockopt(zmq.LINGER, 1000)
        ctrl.connect(self._control_endpoint)
        ctrl.send(b"TERMINATE")
        self._thread.join(5)
        ctrl.close()
        self._thread = None


class Relay(Backbone):
    """A backbone's stream offered at a second endpoint: an XSUB *connected* to ``upstream`` (a
    backbone's subscriber endpoint) forwarding to an XPUB bound at ``endpoint``.

    The fusion machine's readers relay (``[endpoints] readers``): its backbone stays on loopback and
    plain for the processes of the machine (the fusion node, the viewer, scripts), and readers on
    other machines subscribe here, where ``keys`` (:class:`rigcap.wire.security.ReaderKeys`) make
    the XPUB a CURVE server checking the readers' allow-list.  Subscriptions travel up (a reader
    gets only the topics it asked for); drops happen per reader at the XPUB's high-water mark, as
    on the backbone.
    """

    thread_name = "rigcap-relay"
    what = "readers relay"

    def __init__(self, upstream: str, endpoint: str, hwm: int = DEFAULT_HWM, keys=None):
        super().__init__(upstream, endpoint, hwm=hwm, keys=keys)
        self.upstream, self.endpoint = upstream, endpoint

    def _attach_xsub(self, xsub: zmq.Socket) -> None:
        xsub.connect(self.upstream)
