"""Live counters: per camera (delivered fps, dropped frames, timings) and per rig (grab spread).

``CameraStats`` runs inside a camera process and is published once a second
as a ``stats.<camera>`` message; ``RigSpread`` runs in any subscriber and
measures how far apart the cameras grabbed the frames of one instant.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

import numpy as np


class CameraStats:
    """Counters of one camera process.

    A frame is *dropped* when the frame index jumps (index gap) or, for sources
    without a slot index, when the capture-time gap exceeds 1.5 periods.
    """

    def __init__(self, camera: str, fps: float, window_s: float = 2.0):
        self.camera = camera
        self.fps = fps
        self.window_ns = int(window_s * 1e9)
        self.frames = 0
        self.dropped = 0
        self.detected = 0  # frames with at least one person
        self._last_index: int | None = None
        self._arrivals: deque[int] = deque()
        self._detect_ms: deque[float] = deque(maxlen=300)
        self._latency_ms: deque[float] = deque(maxlen=300)

    def update(self, frame_index: int, capture_time_ns: int, persons: int, detect_ms: float,
               publish_time_ns: int, now_mono_ns: int | None = None) -> None:
        now = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
        if self._last_index is not None and frame_index > self._last_index + 1:
            self.dropped += frame_index - self._last_index - 1
        self._last_index = frame_index
        self.frames += 1
        self.detected += persons > 0
        self._arrivals.append(now)
        while self._arrivals and now - self._arrivals[0] > self.window_ns:
            self._arrivals.popleft()
        self._detect_ms.append(detect_ms)
        self._latency_ms.append((publish_time_ns - capture_time_ns) / 1e6)

    @property
    def delivered_fps(self) -> float:
        a = self._arrivals
        if len(a) < 2:
            return 0.0
        return (len(a) - 1) / ((a[-1] - a[0]) / 1e9)

    def snapshot(self) -> dict:
        """Plain numbers for the ``stats.<camera>`` message."""
        det = np.asarray(self._detect_ms) if self._detect_ms else np.zeros(1)
        lat = np.asarray(self._latency_ms) if self._latency_ms else np.zeros(1)
        return {
            "camera": self.camera, "frames": self.frames, "dropped": self.dropped, "detected": self.detected,
            "fps": round(self.delivered_fps, 2), "nominal_fps": self.fps, "last_frame": self._last_index,
            "detect_ms_p50": round(float(np.percentile(det, 50)), 3),
            "detect_ms_p99": round(float(np.percentile(det, 99)), 3),
            "grab_to_publish_ms_p50": round(float(np.percentile(lat, 50)), 3),
            "grab_to_publish_ms_p99": round(float(np.percentile(lat, 99)), 3),
        }


class RigSpread:
    """Spread (max - min) of the capture times of one frame index across cameras, in ms.

    Feed it every kp2d message; an instant is measured once ``n_cameras``
    reported it (or it is pushed out of the ``keep`` most recent indices).
    """

    def __init__(self, n_cameras: int, keep: int = 120):
        self.n_cameras = n_cameras
        self.keep = keep
        self._open: OrderedDict[int, dict[str, int]] = OrderedDict()
        self.spreads_ms: deque[float] = deque(maxlen=3000)

    def add(self, camera: str, frame_index: int, capture_time_ns: int) -> float | None:
        times = self._open.setdefault(frame_index, {})
        times[camera] = capture_time_ns
        done = None
        if len(times) >= self.n_cameras:
            done = self._close(frame_index)
        while len(self._open) > self.keep:
            self._close(next(iter(self._open)))
        return done

    def _close(self, frame_index: int) -> float | None:
        times = self._open.pop(frame_index)
        if len(times) < 2:
            return None
        spread = (max(times.values()) - min(times.values())) / 1e6
        self.spreads_ms.append(spread)
        return spread

    def summary(self) -> dict:
        s = np.asarray(self.spreads_ms)
        if not s.size:
            return {"instants": 0}
        return {"instants": int(s.size), "p50_ms": float(np.percentile(s, 50)), "p99_ms": float(np.percentile(s, 99)),
                "max_ms": float(s.max())}
