"""rigcap's ZeroMQ wire protocol: one format for every stream, any language can read it.

The ground floor: imports nothing of calibration, triangulate, capture or viewer,
so every process (camera, fusion, viewer, your own tool) uses the same code:
:mod:`rigcap.wire.messages` (encode/validate per kind), :mod:`rigcap.wire.sockets`
(Publisher, Subscriber, Backbone), :mod:`rigcap.wire.clock` (clock server and
offset measurement), :mod:`rigcap.wire.clock_tracking` (offsets followed while
running: re-measured, drift fitted).

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

A publisher never blocks: its send high-water mark (``SNDHWM``) makes ZeroMQ
drop messages for a subscriber that does not keep up, and the backbone drops
per subscriber the same way.  Queues are bounded in bytes: every receiving
socket sets ``ZMQ_MAXMSGSIZE`` to :data:`MAX_MESSAGE_BYTES` (64 KiB header +
256 KiB payload; a bigger frame is dropped and its sender disconnected before
it is buffered) and every high-water mark is ``QUEUE_BUDGET_BYTES`` (128 MiB)
divided by that, 409 messages, so a stalled subscriber costs at most 256 MiB.  A subscriber misses what
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
        kind         "kp2d" | "kp3d" | "angles" | "stats"   (matches the topic's first part)
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
    ``kp3d`` (one fused instant, from the fusion node) adds ``t_capture_ns``
    (the instant's capture time on the common clock), ``cameras`` (list of the
    cameras fused), ``frames`` (object camera -> frame index), ``skeleton``,
    ``joints_sha1``, and optionally ``spread_ns`` (capture-time spread of the
    instant), ``t_last_arrival_ns``, ``filtered`` (bool).  Arrays: ``points``
    ``"<f4"`` ``[joints, 3]`` or ``[persons, joints, 3]``, metres in the rig's
    world frame, NaN where a joint was not triangulated (never infinite);
    optional ``error_px`` ``"<f4"`` and ``n_views`` ``"<i2"`` with the shape of
    ``points`` without its last axis; optional ``person_ids`` ``"<i4"``
    ``[persons]`` (stable identities).
    ``angles`` (joint angles of one fused instant, published beside ``kp3d`` when
    the fusion node is asked for them: ``rigcap fuse --angles``) adds
    ``t_capture_ns`` (the instant's, as in its ``kp3d``), ``names`` (angle names,
    ``rigcap angles --list``), optionally ``exercise`` and ``reps`` (repetitions
    counted so far, one per person).  Array ``values`` ``"<f4"`` ``[angles]`` or
    ``[persons, angles]``, degrees, NaN where an angle's joints were not seen.
    ``stats.<sender>`` carries a sender's counters in the header, no arrays.
    Each kind has one encoder (:func:`encode_kp2d`, :func:`encode_kp3d`,
    :func:`encode_angles`, :meth:`Publisher.publish` for ``stats``) and one validator, run by
    :func:`decode` on every message received.
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
:class:`ClockServer` answers REQ-shaped time queries on a ROUTER socket, dropping any other shape (default
``tcp://127.0.0.1:5557``); :func:`measure_clock_offset` sends ``n`` queries (from a DEALER, REQ-shaped) and
keeps the one with the smallest round trip.  Request: 8 bytes, little-endian
int64 ``t0`` (client clock at send).  Reply: 24 bytes, ``t0, t1, t2``
(``t1`` server clock at receive, ``t2`` at reply).  With ``t3`` the client
clock at receive, NTP's estimate is ``offset = ((t1 - t0) + (t2 - t3)) / 2``
(server clock minus client clock) with uncertainty half the round trip
``(t3 - t0) - (t2 - t1)``.
"""

from rigcap.wire.messages import (DEFAULT_CLOCK_ENDPOINT, DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT, KINDS,
                                  MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES, VERSION, Message, ProtocolError,
                                  decode, encode, encode_angles, encode_kp2d, encode_kp3d, joints_sha1)
from rigcap.wire.sockets import (Backbone, EndpointError, Publisher, Relay, Subscriber, attach, context,
                                 free_tcp_endpoint)
from rigcap.wire.clock import ClockOffset, ClockServer, measure_clock_offset
from rigcap.wire.clock_tracking import ClockFit, ClockTracker, fit_offsets
