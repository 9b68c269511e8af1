"""Message kinds on the wire: one encoder and one validator per kind (``kp2d``, ``kp3d``, ``angles``, ``stats``).

The format itself is documented in :mod:`rigcap.wire` (the package docstring); this
module is the only code that turns arrays into frames and frames back into a
checked :class:`Message`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import zmq

VERSION = 1
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:5555"  # publishers connect here
DEFAULT_SUB_ENDPOINT = "tcp://127.0.0.1:5556"  # subscribers connect here
DEFAULT_CLOCK_ENDPOINT = "tcp://127.0.0.1:5557"
MAX_HEADER_BYTES = 64 * 1024
# 256 KiB: 21 845 keypoints (160 persons x 133 joints); a real kp2d/kp3d is a few KiB.  Small on purpose:
# every queue's worst case is its high-water mark times the biggest message (rigcap.wire.sockets).
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = MAX_HEADER_BYTES + MAX_PAYLOAD_BYTES  # ZMQ_MAXMSGSIZE on every receiving socket
KINDS = ("kp2d", "kp3d", "angles", "stats")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
MAX_DIMS = 8
# Physical ranges a receiver enforces (anything outside is a sender's bug or an attack, never data):
MAX_TIME_NS = 2**62  # wall-clock times in [0, 2^62) ns (until the year 2116): any difference of two fits int64
MAX_FRAME_INDEX = 2**40  # frame indices in [0, 2^40): 34 years at 1000 fps; a bigger one would be a bogus allocation
MAX_PIXEL = 1e6  # |x|, |y| of a 2D keypoint in pixels (a 1-megapixel-wide sensor is far beyond any camera)
MAX_WORLD_M = 1e4  # |x|, |y|, |z| of a 3D point in metres
_DTYPES = {"<f4", "<f8", "<f2", "<i1", "<i2", "<i4", "<i8", "|i1", "|u1", "<u1", "<u2", "<u4", "<u8", "|b1"}


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
    def points(self) -> np.ndarray | None:
        """kp3d: (joints, 3) or (persons, joints, 3) float32 metres."""
        return self.arrays.get("points")

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


def encode_kp3d(seq: int, capture_time_ns: int, points: np.ndarray, *, cameras, frames: dict, skeleton_name: str,
                joints_sha1_hex: str, error_px: np.ndarray | None = None, n_views: np.ndarray | None = None,
                person_ids: np.ndarray | None = None, **extra) -> list[bytes]:
    """kp3d frames for one fused instant.

    ``points`` (joints, 3) for one person or (persons, joints, 3), metres in the
    rig's world frame, NaN where a joint was not triangulated; ``error_px`` and
    ``n_views`` have the shape of ``points`` without its last axis;
    ``person_ids`` (persons,) stable track identities.  ``extra`` header fields
    (``spread_ns``, ``t_last_arrival_ns``, ``filtered`` ...) pass through.
    """
    arrays = {"points": np.asarray(points, dtype="<f4")}
    if error_px is not None:
        arrays["error_px"] = np.asarray(error_px, dtype="<f4")
    if n_views is not None:
        arrays["n_views"] = np.asarray(n_views, dtype="<i2")
    if person_ids is not None:
        arrays["person_ids"] = np.asarray(person_ids, dtype="<i4")
    header = {"kind": "kp3d", "seq": int(seq), "t_capture_ns": int(capture_time_ns), "cameras": list(cameras),
              "frames": {str(k): int(v) for k, v in frames.items()}, "skeleton": skeleton_name,
              "joints_sha1": joints_sha1_hex, **extra}
    frames_out = encode("kp3d", header, arrays)
    _check_kp3d("kp3d", header, arrays)  # a sender never puts on the wire what a receiver would refuse
    return frames_out


def encode_angles(seq: int, capture_time_ns: int, names, values: np.ndarray, *, exercise: str | None = None,
                  reps=None, **extra) -> list[bytes]:
    """angles frames for one fused instant: ``values`` (angles,) or (persons, angles) degrees, NaN where
    unknown; ``reps`` (persons,) repetitions of ``exercise`` counted so far."""
    arrays = {"values": np.asarray(values, dtype="<f4")}
    header = {"kind": "angles", "seq": int(seq), "t_capture_ns": int(capture_time_ns),
              "names": [str(n) for n in names], **extra}
    if exercise is not None:
        header["exercise"] = str(exercise)
        header["reps"] = [int(r) for r in np.atleast_1d(reps if reps is not None else [])]
    frames_out = encode("angles", header, arrays)
    _check_angles("angles", header, arrays)
    return frames_out


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
    if type(header.get("v")) is not int or header["v"] != VERSION:  # true == 1 in Python, not on the wire
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
    _CHECKS[kind](topic, header, arrays)
    return Message(topic, header, arrays, time.time_ns())


def _in_range(header: dict, key: str, topic: str, upper: int) -> int:
    value = _int(header, key, topic)
    if not 0 <= value < upper:
        raise ProtocolError(f"{topic}: header field {key!r} = {value} is outside [0, {upper})")
    return value


def _f4_array(arrays: dict, name: str, ndims: tuple[int, ...], last: int, topic: str, needs: str) -> np.ndarray:
    """``arrays[name]``, checked to be little-endian float32 with ``ndims`` axes and ``last`` columns."""
    arr = arrays.get(name)
    if arr is None or arr.ndim not in ndims or arr.shape[-1] != last or arr.dtype != np.dtype("<f4"):
        raise ProtocolError(f"{topic}: {needs}")
    return arr


def _fusion_header(topic: str, header: dict, kind: str, names_key: str, what: str) -> list[str]:
    """The header checks the fusion node's messages (kp3d, angles) share: the topic is the kind
    itself, a capture time, and a list of names (``names_key``: cameras, angle names)."""
    if topic != kind:
        raise ProtocolError(f"{topic}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} message's topic is '{kind}'")
    _in_range(header, "t_capture_ns", topic, MAX_TIME_NS)
    names = header.get(names_key)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError(f"{topic}: header field {names_key!r} must be a list of {what}")
    return names


def _check_kp2d(topic: str, header: dict, arrays: dict) -> None:
    _in_range(header, "frame", topic, MAX_FRAME_INDEX)
    _in_range(header, "t_capture_ns", topic, MAX_TIME_NS)
    if not isinstance(header.get("camera"), str) or topic != f"kp2d.{header['camera']}":
        raise ProtocolError(f"{topic}: header camera {header.get('camera')!r} does not match the topic")
    if not isinstance(header.get("skeleton"), str):
        raise ProtocolError(f"{topic}: header field 'skeleton' missing")
    kp = _f4_array(arrays, "keypoints", (3,), 3, topic, "kp2d needs a 'keypoints' array <f4 [persons, joints, 3]")
    xy, conf = kp[..., :2], kp[..., 2]
    with np.errstate(invalid="ignore"):  # NaN marks a joint not detected: allowed, compares False
        if (np.abs(xy) > MAX_PIXEL).any():  # also catches +-inf
            raise ProtocolError(f"{topic}: keypoint coordinates outside +-{MAX_PIXEL:g} px (or infinite)")
        if ((conf < 0) | (conf > 1)).any():
            raise ProtocolError(f"{topic}: keypoint confidence outside [0, 1]")


def _check_kp3d(topic: str, header: dict, arrays: dict) -> None:
    _fusion_header(topic, header, "kp3d", "cameras", "camera names")
    frames = header.get("frames", {})
    if not isinstance(frames, dict) or not all(type(v) is int and 0 <= v < MAX_FRAME_INDEX for v in frames.values()):
        raise ProtocolError(f"{topic}: header field 'frames' must map camera names to frame indices "
                            f"in [0, {MAX_FRAME_INDEX})")
    if not isinstance(header.get("skeleton"), str):
        raise ProtocolError(f"{topic}: header field 'skeleton' missing")
    points = _f4_array(arrays, "points", (2, 3), 3, topic, "kp3d needs a 'points' array <f4 [joints, 3] or "
                       "[persons, joints, 3]")
    with np.errstate(invalid="ignore"):
        if (np.abs(points) > MAX_WORLD_M).any():
            raise ProtocolError(f"{topic}: 'points' holds coordinates beyond +-{MAX_WORLD_M:g} m or infinite "
                                "(NaN marks a joint not seen)")
    for name in ("error_px", "n_views"):
        arr = arrays.get(name)
        if arr is not None and arr.shape != points.shape[:-1]:
            raise ProtocolError(f"{topic}: {name!r} has shape {list(arr.shape)}, expected {list(points.shape[:-1])}")
    ids = arrays.get("person_ids")
    if ids is not None and (points.ndim != 3 or ids.shape != points.shape[:1]):
        raise ProtocolError(f"{topic}: 'person_ids' must be [persons] beside 'points' [persons, joints, 3]")


def _check_angles(topic: str, header: dict, arrays: dict) -> None:
    names = _fusion_header(topic, header, "angles", "names", "angle names")
    values = _f4_array(arrays, "values", (1, 2), len(names), topic, "angles needs a 'values' array <f4 [angles] or "
                       f"[persons, angles] with one column per name ({len(names)})")
    if np.isinf(values).any():
        raise ProtocolError(f"{topic}: 'values' holds infinite angles (NaN marks an angle not known)")
    if "exercise" in header:
        reps = header.get("reps")
        if not isinstance(header["exercise"], str) or not isinstance(reps, list) or not all(
                isinstance(r, int) and not isinstance(r, bool) for r in reps):
            raise ProtocolError(f"{topic}: 'exercise' must be a name and 'reps' a list of counts")


def _check_stats(topic: str, header: dict, arrays: dict) -> None:
    parts = topic.split(".", 1)
    if len(parts) != 2 or not parts[1]:
        raise ProtocolError(f"{topic}: a stats topic is 'stats.<sender>'")


_CHECKS = {"kp2d": _check_kp2d, "kp3d": _check_kp3d, "angles": _check_angles, "stats": _check_stats}


