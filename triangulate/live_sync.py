"""Per-camera time offsets refined live from the motion the cameras see.

Host clocks are measured and followed (:mod:`rigcap.wire.clock_tracking`), but
a camera's timestamp can still be off from when its shutter opened by a fixed
latency nobody measured (USB buffering, an IP camera's encoder, a phone's
pipeline): tens of milliseconds, enough to pair a fast wrist with the wrong
instant.  The fusion node (``FusionOptions(motion_sync=True)``, ``--motion-sync``)
keeps a sliding window of every camera's recent keypoints (the most confident
person, on the capture times the clocks give) and every
:data:`INTERVAL_S` seconds runs :func:`triangulate.motion_sync.sync_from_motion`
on it in a background thread (offsets within :data:`MAX_OFFSET_S`, no drift:
the clock trackers follow that).  An estimate whose confidence reaches
:data:`MIN_CONFIDENCE` replaces the camera's correction, added to its capture
times before grouping; a doubtful one (nobody moving, a camera that shares
too little) leaves the last correction as it was.  Camera 0 of the rig is the
reference.

Cost: one estimate over 6 s of 4 cameras at 30 fps takes ~1.2 s of one core,
every 4 s, off the fusion loop's thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from calibration.rig import Rig
from triangulate.formats import Keypoints2D
from triangulate.motion_sync import LOW_CONFIDENCE

WINDOW_S = 6.0  # keypoints kept per camera for an estimate
INTERVAL_S = 4.0  # seconds between estimates
MAX_OFFSET_S = 0.25  # offsets searched: beyond this it is a clock's problem, not a latency's
# an estimate below this is reported but not applied: the offline sync's own doubt threshold.  Measured
# (synthetic studio, 3 seeds, 4-6 s windows): a moving person 0.54-0.68, one standing still 0.00-0.02
MIN_CONFIDENCE = LOW_CONFIDENCE
MIN_FRAMES_FRACTION = 0.6  # of the window a camera must cover to be estimated


class LiveMotionSync:
    """The sliding window, the background estimate, and the per-camera corrections.

    :meth:`add` every message (capture time on the common clock, before this
    correction), :meth:`correction_ns` to add to a camera's capture times,
    :meth:`poll` on every loop turn (starts an estimate when one is due and
    none is running), :meth:`snapshot` for the stats.
    """

    def __init__(self, rig: Rig, joint_names, fps: float, *, window_s: float = WINDOW_S,
                 interval_s: float = INTERVAL_S, max_offset_s: float = MAX_OFFSET_S,
                 min_confidence: float = MIN_CONFIDENCE, background: bool = True):
        self.rig = rig
        self.names = list(rig.names)
        self.joint_names = list(joint_names)
        self.fps = float(fps)
        self.window_s, self.interval_s = float(window_s), float(interval_s)
        self.max_offset_s, self.min_confidence = float(max_offset_s), float(min_confidence)
        self.background = background
        keep = int(np.ceil(self.window_s * self.fps * 1.5)) + 8
        self._times = {n: deque(maxlen=keep) for n in self.names}
        self._points = {n: deque(maxlen=keep) for n in self.names}
        self._applied_ns = dict.fromkeys(self.names, 0)
        self._latest: dict[str, tuple[float, float]] = {}  # camera -> (offset s, confidence) of the last estimate
        self._next_ns: int | None = None
        self._running: threading.Thread | None = None
        self._lock = threading.Lock()
        self.estimates = 0
        self.last_seconds = float("nan")  # how long the last estimate took
        self.last_error: str | None = None

    # ------------------------------------------------------------- the window
    def add(self, camera: str, capture_ns: int, keypoints: np.ndarray) -> None:
        """One camera frame: its capture time (common clock, before :meth:`correction_ns`) and (J, 3)."""
        times = self._times.get(camera)
        if times is None:
            return
        times.append(int(capture_ns))
        self._points[camera].append(np.asarray(keypoints, dtype=np.float32))

    def correction_ns(self, camera: str) -> int:
        return self._applied_ns.get(camera, 0)

    def _window(self, now_ns: int) -> Keypoints2D | None:
        """The last ``window_s`` of the cameras that cover enough of it, as a :class:`Keypoints2D`
        (shorter cameras padded with missing frames), or None when the reference camera or every
        other one covers too little."""
        start = now_ns - int(self.window_s * 1e9)
        need = MIN_FRAMES_FRACTION * self.window_s * self.fps
        times, points = [], []
        for n in self.names:
            t = np.fromiter(self._times[n], dtype=np.int64, count=len(self._times[n]))
            keep = t >= start
            times.append(t[keep])
            points.append([p for p, k in zip(self._points[n], keep) if k])
        counts = np.array([t.size for t in times])
        use = np.flatnonzero(counts >= need)
        if counts[0] < need or use.size < 2:
            return None
        n_f = int(counts[use].max())
        kp = np.full((use.size, n_f, len(self.joint_names), 3), np.nan, np.float32)
        ts = np.full((use.size, n_f), -1, np.int64)
        for i, c in enumerate(use):
            kp[i, : counts[c]] = np.stack(points[c])
            ts[i, : counts[c]] = times[c]
        return Keypoints2D(kp, [self.names[c] for c in use], self.joint_names, ts, self.fps)

    # ------------------------------------------------------------- estimates
    def poll(self, now_ns: int) -> None:
        """Start an estimate when one is due and none is running."""
        if self._next_ns is None:
            self._next_ns = now_ns + int(max(self.interval_s, self.window_s * MIN_FRAMES_FRACTION) * 1e9)
            return
        if now_ns < self._next_ns or (self._running is not None and self._running.is_alive()):
            return
        self._next_ns = now_ns + int(self.interval_s * 1e9)
        window = self._window(now_ns)
        if window is None:
            return
        if self.background:
            self._running = threading.Thread(target=self._estimate, args=(window,), daemon=True,
                                             name="rigcap-motion-sync")
            self._running.start()
        else:
            self._estimate(window)

    def _estimate(self, window: Keypoints2D) -> None:
        import warnings

        from triangulate.motion_sync import sync_from_motion

        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joints never seen in the window
                sync = sync_from_motion(self.rig.subset(window.camera_names), window, max_offset_s=self.max_offset_s,
                                        drift=False)
        except Exception as exc:  # an estimate that fails leaves the corrections alone; said in the stats
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            for c, name in enumerate(window.camera_names):
                if c == 0:
                    continue
                offset, conf = float(sync.offsets_s[c]), float(sync.confidence[c])
                self._latest[name] = (offset, conf)
                if conf >= self.min_confidence and np.isfinite(offset):
                    self._applied_ns[name] = int(round(offset * 1e9))
            self.estimates += 1
            self.last_seconds = time.perf_counter() - t0
            self.last_error = None

    def snapshot(self) -> dict:
        """For the stats: per camera the latest estimate (ms, confidence) and the correction applied (ms)."""
        with self._lock:
            cams = {n: {"offset_ms": round(o * 1e3, 2), "confidence": round(c, 2),
                        "applied_ms": round(self._applied_ns[n] / 1e6, 2)} for n, (o, c) in self._latest.items()}
            out = {"cameras": cams, "estimates": self.estimates, "reference": self.names[0]}
            if np.isfinite(self.last_seconds):
                out["seconds"] = round(self.last_seconds, 2)
            if self.last_error:
                out["error"] = self.last_error
        return out
