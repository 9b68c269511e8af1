"""rigcap's ZeroMQ wire protocol: one format for every stream, any language can read it.

Transport
---------
PUB/SUB through a small forwarder (the *backbone*, :class:`Backbone`): every
publisher (camera processes, the fusion node) *connects* its PUB socket to the
backbone's ``pub`` endpoint; every subscriber (fusion node, viewer, your own
tool) *connects* its SUB socket to the backbone's ``sub`` endpoint and
subscribes by topic prefix.  Start order does not matter; ZeroMQ reconnects.

Default endpoints are TCP on loopback: ``tcp://127.0.0.1:5555`` (publishers)
and ``tcp://127.0.0.1:5556`` (subscribers).  TCP rather than ``ipc://``
because the same address form goes across machines (``tcp://192.168.1.10:5555``)
and works on every OS; on loopback it costs a few tens of microseconds.

A publisher never blocks: its send high-water mark (``SNDHWM``, default 1000
messages) makes ZeroMQ drop messages for a subscriber that does not keep up,
and the backbone drops per subscriber the same way.  A subscriber misses what
was published before its subscription reached the publisher (ZeroMQ's "slow
joiner"): count losses from the first sequence number you see.

Message
-------
Multipart: ``[topic, header, payload_0, payload_1, ...]``

``topic``
    ASCII: ``kp2d.<camera>`` (2D keypoints of one camera frame), ``kp3d``
    (3D joints of one instant, published by the fusion node), ``stats.<camera>``
    (once a second: a camera process's counters, no payload).
``header``
    UTF-8 JSON object.  Always present::

        v            protocol version, 1
        kind         "kp2d" | "kp3d" | "stats"   (matches the topic's first part)
        seq          per-publisher sequence number, +1 per message of this topic
        t_publish_ns sender's wall clock (Unix epoch, ns) when sent
        arrays       [{"name": str, "dtype": str, "shape": [int, ...]}, ...]
                     one entry per payload frame, same order

    ``kp2d`` adds ``camera`` (str), ``frame`` (int, the camera's frame index),
    ``t_capture_ns`` (int, wall clock when the frame was grabbed),
    ``skeleton`` (str, e.g. ``"mediapipe33"``, ``"halpe26"``) and
    ``joints_sha1`` (first 8 hex digits of the SHA-1 of the joint names joined
    by ``"\\n"``, so a receiver can check it has the same joint list); an
    optional ``joint_names`` list is sent for a skeleton that is not built in.
    Its one array is ``keypoints``: dtype ``"<f4"``, shape ``[persons, joints, 3]``
    = x pixels, y pixels (OpenCV convention, origin at the top-left pixel's
    centre), confidence in [0, 1]; ``persons`` may be 0.
    Other kinds add their own fields (``kp3d`` is documented where the fusion
    node builds it and is encoded with the same :func:`encode`).
``payload``
    Each array's raw bytes, C order, the byte order in its dtype string
    (rigcap always sends little-endian: ``"<f4"``, ``"<f8"``, ``"<i4"``,
    ``"<i8"``, ``"|u1"`` ...).  ``len(payload) == prod(shape) * itemsize``.

Limits a receiver enforces (:func:`decode`): header at most 64 KiB, total
payload at most :data:`MAX_PAYLOAD_BYTES`, version known, every array's size
matching its shape.  Anything else raises :class:`ProtocolError`;
:class:`Subscriber` counts such messages and drops them, it never raises.

Clock offsets between hosts
---------------------------
:class:`ClockServer` answers time queries on a REP socket (default
``tcp://127.0.0.1:5557``); :func:`measure_clock_offset` sends ``n`` queries and
keeps the one with the smallest round trip.  Request: 8 bytes, little-endian
int64 ``t0`` (client clock at send).  Reply: 24 bytes, ``t0, t1, t2``
(``t1`` server clock at receive, ``t2`` at reply).  With ``t3`` the client
clock at receive, NTP's estimate is ``offset = ((t1 - t0) + (t2 - t3)) / 2``
(server clock minus client clock) with uncertainty half the round trip
``(t3 - t0) - (t2 - t1)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import zmq

from rigcap.errors import RigcapError

VERSION = 1
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:5555"  # publishers connect here
DEFAULT_SUB_ENDPOINT = "tcp://127.0.0.1:5556"  # subscribers connect here
DEFAULT_CLOCK_ENDPOINT = "tcp://127.0.0.1:5557"
MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
KINDS = ("kp2d", "kp3d", "stats")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
MAX_DIMS = 8
_DTYPES = {"<f4", "<f8", "<f2", "<i1", "<i2", "<i4", "<i8", "|i1", "|u1", "<u1", "<u2", "<u4", "<u8", "|b1"}


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


class ProtocolError(ValueError):
    """A message that does not follow the wire protocol (the text says what is wrong)."""


@lru_cache(maxsize=64)
def joints_sha1(joint_names: tuple[str, ...]) -> str:
    """First 8 hex digits of SHA-1 over the joint names joined by newlines."""
    return hashlib.sha1("\n".join(joint_names).encode("utf-8")).hexdigest()[:8]


@dataclass
class Message:
    """One decoded message: its topic, header fields and arrays (read-only views)."""

    topic: str
    header: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    t_receive_ns: int = 0

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def seq(self) -> int:
        return self.header["seq"]

    @property
    def camera(self) -> str | None:
        return self.header.get("camera")

    @property
    def frame_index(self) -> int | None:
        return self.header.get("frame")

    @property
    def capture_time_ns(self) -> int | None:
        return self.header.get("t_capture_ns")

    @property
    def publish_time_ns(self) -> int:
        return self.header["t_publish_ns"]

    @property
    def skeleton(self) -> str | None:
        return self.header.get("skeleton")

    @property
    def keypoints(self) -> np.ndarray | None:
        """kp2d: (persons, joints, 3) float32 x px, y px, confidence."""
        return self.arrays.get("keypoints")


# ---------------------------------------------------------------- encoding
def encode(topic: str, header: dict, arrays: dict[str, np.ndarray] | None = None) -> list[bytes]:
    """Frames ``[topic, header, payload...]`` for any kind.

    ``header`` holds the kind-specific fields plus ``kind``/``seq``; ``v``,
    ``arrays`` and (if absent) ``t_publish_ns`` are filled in here.  Arrays are
    sent little-endian in C order.
    """
    specs, payloads = [], []
    for name, arr in (arrays or {}).items():
        arr = np.asarray(arr)
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        specs.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
        payloads.append(arr.reshape(-1).view(np.uint8))  # zero-copy, flat bytes
    head = {"v": VERSION, **header, "arrays": specs}
    head.setdefault("t_publish_ns", time.time_ns())
    return [topic.encode("ascii"), json.dumps(head, separators=(",", ":")).encode("utf-8"), *payloads]


def encode_kp2d(camera: str, frame_index: int, seq: int, capture_time_ns: int, keypoints: np.ndarray,
                skeleton_name: str, joint_names, builtin_skeleton: bool = True, **extra) -> list[bytes]:
    """kp2d frames for one camera frame; ``keypoints`` (persons, joints, 3) float32."""
    kp = np.asarray(keypoints, dtype="<f4")
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(f"keypoints must have shape (persons, joints, 3), got {kp.shape}")
    names = tuple(joint_names)
    if kp.shape[1] != len(names):
        raise ValueError(f"keypoints have {kp.shape[1]} joints but the skeleton names {len(names)}")
    header = {"kind": "kp2d", "seq": int(seq), "camera": camera, "frame": int(frame_index),
              "t_capture_ns": int(capture_time_ns), "skeleton": skeleton_name,
              "joints_sha1": joints_sha1(names), **extra}
    if not builtin_skeleton:
        header["joint_names"] = list(names)
    return encode(f"kp2d.{camera}", header, {"keypoints": kp})


def _little() -> bool:
    import sys
    return sys.byteorder == "little"


# ---------------------------------------------------------------- decoding
def _int(header: dict, key: str, topic: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"{topic}: header field {key!r} must be an integer, got {value!r}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ProtocolError(f"{topic}: header field {key!r} = {value} does not fit in int64")
    return value


def decode(frames, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Message:
    """Frames (bytes or zmq.Frame) -> :class:`Message`, or :class:`ProtocolError`.

    The arrays are read-only views on the received buffers (no copy).
    """
    if not isinstance(frames, (list, tuple)) or len(frames) < 2:
        raise ProtocolError(f"expected [topic, header, payload...], got {len(frames) if hasattr(frames, '__len__') else '?'} frame(s)")
    raw = [f.buffer if isinstance(f, zmq.Frame) else f for f in frames]
    try:
        topic = bytes(raw[0]).decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("topic is not ASCII") from None
    if len(raw[1]) > MAX_HEADER_BYTES:
        raise ProtocolError(f"{topic}: header of {len(raw[1])} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(raw[1]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{topic}: header is not UTF-8 JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"{topic}: header must be a JSON object")
    if header.get("v") != VERSION:
        raise ProtocolError(f"{topic}: unsupported protocol version {header.get('v')!r} (this reader knows {VERSION})")
    kind = header.get("kind")
    if kind not in KINDS or topic.split(".", 1)[0] != kind:
        raise ProtocolError(f"{topic}: kind {kind!r} does not match the topic or is unknown ({', '.join(KINDS)})")
    _int(header, "seq", topic)
    _int(header, "t_publish_ns", topic)
    specs = header.get("arrays")
    if not isinstance(specs, list) or len(specs) != len(raw) - 2:
        raise ProtocolError(f"{topic}: header lists {len(specs) if isinstance(specs, list) else '?'} arrays but "
                            f"{len(raw) - 2} payload frame(s) came")
    total = sum(len(p) for p in raw[2:])
    if total > max_payload_bytes:
        raise ProtocolError(f"{topic}: payload of {total} bytes exceeds the limit of {max_payload_bytes}")
    arrays = {}
    for spec, payload in zip(specs, raw[2:]):
        try:
            name, dtype, shape = spec["name"], spec["dtype"], spec["shape"]
        except (TypeError, KeyError):
            raise ProtocolError(f"{topic}: array spec {spec!r} needs name, dtype and shape") from None
        if dtype not in _DTYPES:
            raise ProtocolError(f"{topic}: array {name!r} has unsupported dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(type(s) is int and 0 <= s <= _INT64_MAX for s in shape)):
            raise ProtocolError(f"{topic}: array {name!r} has an invalid shape {shape!r}")
        dt = np.dtype(dtype)
        expected = math.prod(shape) * dt.itemsize  # Python ints: a huge shape cannot overflow to a match
        if expected != len(payload):
            raise ProtocolError(f"{topic}: array {name!r} {dtype}{shape} needs {expected} bytes, payload has {len(payload)}")
        arrays[name] = np.frombuffer(payload, dtype=dt).reshape(shape)
    if kind == "kp2d":
        _check_kp2d(topic, header, arrays)
    return Message(topic, header, arrays, time.time_ns())


def _check_kp2d(topic: str, header: dict, arrays: dict) -> None:
    for key in ("frame", "t_capture_ns"):
        _int(header, key, topic)
    if not isinstance(header.get("camera"), str) or topic != f"kp2d.{header['camera']}":
        raise ProtocolError(f"{topic}: header camera {header.get('camera')!r} does not match the topic")
    if not isinstance(header.get("skeleton"), str):
        raise ProtocolError(f"{topic}: header field 'skeleton' missing")
    kp = arrays.get("keypoints")
    if kp is None or kp.ndim != 3 or kp.shape[2] != 3 or kp.dtype != np.dtype("<f4"):
        raise ProtocolError(f"{topic}: kp2d needs a 'keypoints' array <f4 [persons, joints, 3]")


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

    def __init__(self, endpoint: str = DEFAULT_PUB_ENDPOINT, bind: bool = False, sndhwm: int = 1000,
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
        """Send one camera frame's keypoints; ``skeleton`` a :class:`triangulate.skeletons.Skeleton`."""
        from triangulate.skeletons import SKELETONS

        topic = f"kp2d.{camera}"
        seq = self.next_seq(topic)
        self.send(encode_kp2d(camera, frame_index, seq, capture_time_ns, keypoints, skeleton.name,
                              skeleton.joint_names, SKELETONS.get(skeleton.name) == skeleton, **extra))
        return seq



class Subscriber(_OwnsSocket):
    """A SUB socket that yields decoded messages and counts (never raises on) bad ones.

    ``topics``: prefixes to subscribe to (``"kp2d."`` for all cameras, ``"kp3d"``).
    ``latest_only=True`` is the viewer's mode: :meth:`recv` drains what is
    queued and returns only the newest message.  (ZeroMQ's ``CONFLATE`` cannot
    be used: it does not support multipart messages; and a small receive
    high-water mark would not help either: a full queue drops the *newest*
    messages, keeping stale ones.)
    ``bind=True`` binds instead of connecting (a publisher that binds is the
    usual pairing the other way round).
    """

    def __init__(self, endpoint: str = DEFAULT_SUB_ENDPOINT, topics=("",), latest_only: bool = False,
                 rcvhwm: int | None = None, bind: bool = False, max_payload_bytes: int = MAX_PAYLOAD_BYTES):
        self.endpoint = endpoint
        self.latest_only = latest_only
        self.max_payload_bytes = max_payload_bytes
        self.socket = context().socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, rcvhwm if rcvhwm is not None else 10000)
        self.socket.setsockopt(zmq.LINGER, 0)
        for t in ([topics] if isinstance(topics, str) else topics):
            self.socket.setsockopt(zmq.SUBSCRIBE, t.encode("ascii"))
        attach(self.socket, endpoint, bind, "subscriber")
        self.received = 0
        self.malformed = 0
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

    def recv(self, timeout_ms: int | None = 100) -> Message | None:
        """The next valid message (the newest in ``latest_only`` mode) or None on timeout."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            remaining = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(remaining):
                return None
            newest = None
            while True:
                try:
                    frames = self.socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                msg = self._decode(frames)
                if msg is not None:
                    if not self.latest_only:
                        return msg
                    newest = msg
            if newest is not None:
                return newest
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def __iter__(self):
        """Messages forever (blocking)."""
        while True:
            msg = self.recv(None)
            if msg is not None:
                yield msg



class Backbone:
    """The forwarder every publisher and subscriber meets at (XSUB -> XPUB, in a thread).

    ``Backbone().start()`` binds ``pub_endpoint`` (publishers connect) and
    ``sub_endpoint`` (subscribers connect).  Per-subscriber drops happen at the
    XPUB's high-water mark, so one slow subscriber never holds up the others or
    the cameras.
    """

    def __init__(self, pub_endpoint: str = DEFAULT_PUB_ENDPOINT, sub_endpoint: str = DEFAULT_SUB_ENDPOINT,
                 hwm: int = 10000):
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint
        self.hwm = hwm
        self._thread: threading.Thread | None = None
        self._control_endpoint = f"inproc://rigcap-backbone-{id(self)}"
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "Backbone":
        self._thread = threading.Thread(target=self._run, name="rigcap-backbone", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        ctx = context()
        xsub = ctx.socket(zmq.XSUB)
        xpub = ctx.socket(zmq.XPUB)
        ctrl = ctx.socket(zmq.PAIR)
        try:
            xsub.setsockopt(zmq.RCVHWM, self.hwm)
            xpub.setsockopt(zmq.SNDHWM, self.hwm)
            for s in (xsub, xpub, ctrl):
                s.setsockopt(zmq.LINGER, 0)
            xsub.bind(self.pub_endpoint)
            xpub.bind(self.sub_endpoint)
            ctrl.bind(self._control_endpoint)
        except zmq.ZMQError as exc:
            self._error = EndpointError(f"cannot bind the ZeroMQ backbone on {self.pub_endpoint} / {self.sub_endpoint}: {exc}")
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- clock
_CLOCK_REQ = struct.Struct("<q")
_CLOCK_REP = struct.Struct("<qqq")


class ClockServer:
    """Answers time queries (REP) in a thread, for :func:`measure_clock_offset`."""

    def __init__(self, endpoint: str = DEFAULT_CLOCK_ENDPOINT, clock=time.time_ns):
        self.endpoint = endpoint
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "ClockServer":
        self._thread = threading.Thread(target=self._run, name="rigcap-clock", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        sock = context().socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
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
                req = sock.recv()
                t1 = self.clock()
                t0 = _CLOCK_REQ.unpack(req)[0] if len(req) == _CLOCK_REQ.size else 0
                sock.send(_CLOCK_REP.pack(t0, t1, self.clock()))
        finally:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class ClockOffset:
    offset_ns: int  # server clock - client clock
    round_trip_ns: int  # of the sample used; the offset is uncertain by half of it
    samples: int


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
                best = (rtt, offset)
    finally:
        sock.close()
    return ClockOffset(offset_ns=best[1], round_trip_ns=best[0], samples=n)
