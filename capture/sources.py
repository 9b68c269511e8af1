"""Camera sources behind one interface: USB camera, video file, synthetic studio camera.

Every source is opened in the process that reads it (one source, one process)
and hands out :class:`Frame` objects::

    src = make_source(CameraConfig(...))   # or UsbCameraSource(...), ...
    src.open()
    frame = src.read()      # Frame, or None at the end of a file
    src.close()

Frame index and time
    ``index`` is the frame's slot on the rig's timeline: for live sources
    ``round((capture_time_ns - epoch_ns) * fps / 1e9)`` with a shared
    ``epoch_ns`` (the supervisor gives every camera the same one), so frames of
    one instant carry the same index on every camera, a restarted process goes
    on with the right numbers and a gap in the index is a dropped frame.  For a
    video file it is the file's frame number.
    ``capture_time_ns`` is wall clock (``time.time_ns()``, Unix epoch) for
    grouping across processes and hosts; ``monotonic_ns`` is
    ``time.monotonic_ns()`` at the same moment, for intervals.

A source that loses its device raises :class:`SourceError`; the camera process
exits and the supervisor restarts it.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rigcap.errors import RigcapError


class SourceError(RigcapError):
    """A camera that cannot be opened or stopped delivering frames."""


@dataclass
class Frame:
    index: int
    capture_time_ns: int  # wall clock, Unix epoch ns
    monotonic_ns: int
    image: np.ndarray | None = None  # BGR uint8 (H, W, 3); None when the source sends keypoints only
    keypoints: np.ndarray | None = None  # (persons, joints, 3) when the source knows them (synthetic)


@dataclass
class SourceInfo:
    """What a source actually delivers (after open), recorded in the session."""

    name: str
    kind: str
    fps: float
    size: tuple[int, int]  # width, height
    details: dict = field(default_factory=dict)


def _sleep_until_ns(target_wall_ns: int) -> None:
    """Sleep until the wall clock reaches ``target_wall_ns`` (coarse sleep, then short spin)."""
    while True:
        remaining = target_wall_ns - time.time_ns()
        if remaining <= 0:
            return
        time.sleep(remaining / 1e9 if remaining > 2_000_000 else 0.0002)


class WallClock:
    """The wall clock a paced source reads and sleeps on; tests pass a virtual one, so pacing is checked exactly."""

    now_ns = staticmethod(time.time_ns)
    sleep_until_ns = staticmethod(_sleep_until_ns)


class FrameSource:
    """Base class: ``open``, ``read``, ``close`` and the properties ``name``, ``fps``, ``size``."""

    kind = "base"
    clock = WallClock()

    def __init__(self, name: str, fps: float, size: tuple[int, int], epoch_ns: int | None = None):
        self.name = name
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.epoch_ns = time.time_ns() if epoch_ns is None else int(epoch_ns)

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.fps))

    def open(self) -> "FrameSource":
        return self

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def info(self) -> SourceInfo:
        return SourceInfo(self.name, self.kind, self.fps, self.size)

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------- USB
class UsbCameraSource(FrameSource):
    """An OpenCV ``VideoCapture`` device (index or path such as ``/dev/video2``).

    Requests ``size``, ``fps`` and (``mjpg=True``) the MJPG pixel format, then
    reports what the camera actually gave in :meth:`info` (cameras silently
    pick the nearest mode they have).  The driver's queue is kept at one frame
    so a slow consumer gets fresh frames, not old ones.
    """

    kind = "usb"

    def __init__(self, name: str, device: int | str = 0, size=(1280, 720), fps: float = 30.0, mjpg: bool = True,
                 epoch_ns: int | None = None, read_timeout_s: float = 2.0):
        super().__init__(name, fps, size, epoch_ns)
        self.device = device
        self.mjpg = mjpg
        self.read_timeout_s = read_timeout_s
        self.requested = {"size": list(map(int, size)), "fps": float(fps), "mjpg": mjpg}
        self._cap = None
        self._last_index = -1
        self._fourcc = ""

    def open(self) -> "UsbCameraSource":
        import cv2

        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            raise SourceError(f"camera {self.name!r}: cannot open USB camera {self.device!r}")
        if self.mjpg:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise SourceError(f"camera {self.name!r}: USB camera {self.device!r} opened but delivers no frames")
        self.size = (image.shape[1], image.shape[0])
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and fps > 0:
            self.fps = float(fps)
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        self._fourcc = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)) if code else ""
        self._cap = cap
        return self

    def read(self) -> Frame:
        ok = self._cap.grab()  # the grab is the capture instant; decoding comes after
        wall, mono = time.time_ns(), time.monotonic_ns()
        if not ok:
            raise SourceError(f"camera {self.name!r}: USB camera {self.device!r} stopped delivering frames (unplugged?)")
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            raise SourceError(f"camera {self.name!r}: USB camera {self.device!r} returned an undecodable frame")
        slot = int(round((wall - self.epoch_ns) / self.period_ns))
        self._last_index = max(slot, self._last_index + 1)
        return Frame(self._last_index, wall, mono, image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def info(self) -> SourceInfo:
        return SourceInfo(self.name, self.kind, self.fps, self.size,
                          {"device": self.device, "fourcc": self._fourcc, "requested": self.requested})


# ------------------------------------------------------------------- video file
def read_timestamps_csv(path: str | Path, camera_id: int | None = None) -> dict[int, int]:
    """``frame_index -> time_ns`` from rigcap's ``frame_index,time_ns`` CSV, or from
    caliscope's ``sync_index,cam_id,frame_index,frame_time`` (seconds; ``camera_id`` picks rows).

    A cut last line (a process killed mid-write) is ignored.
    """
    out: dict[int, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        for row in reader:
            try:
                if {"frame_index", "time_ns"} <= fields:
                    out[int(row["frame_index"])] = int(row["time_ns"])
                elif {"cam_id", "frame_index", "frame_time"} <= fields:
                    if camera_id is None or int(row["cam_id"]) == camera_id:
                        out[int(row["frame_index"])] = int(round(float(row["frame_time"]) * 1e9))
            except (TypeError, ValueError):
                continue
    return out


def find_timestamps_for_video(path: Path) -> tuple[Path, int | None] | None:
    """The timestamps CSV beside a video: ``<stem>.timestamps.csv``, ``<stem>.csv`` or
    the folder's ``timestamps.csv`` (caliscope; camera id from a ``cam_<id>`` file name)."""
    for candidate in (path.with_name(path.stem + ".timestamps.csv"), path.with_suffix(".csv")):
        if candidate.is_file():
            return candidate, None
    shared = path.with_name("timestamps.csv")
    if shared.is_file():
        digits = "".join(ch for ch in path.stem.rsplit("_", 1)[-1] if ch.isdigit())
        return shared, int(digits) if digits else None
    return None


class VideoFileSource(FrameSource):
    """Frames of a video file.

    ``pace=True`` plays the file like a live camera started at ``epoch_ns``:
    frame ``i`` is due at ``epoch_ns + i / fps``; a process that opens late
    (or restarts) starts with the frame due now, and frames that fall behind
    schedule are skipped as a live camera drops them.  ``pace=False`` delivers
    every frame as fast as it decodes.  Capture times are the recorded ones
    when a timestamps CSV sits beside the video (shifted so the first frame is
    at ``epoch_ns``, their spacing kept), else ``epoch_ns + index / fps``.
    ``loop=True`` starts the file again at its end; the index keeps counting.
    """

    kind = "video"

    def __init__(self, name: str, path: str | Path, pace: bool = True, loop: bool = False,
                 epoch_ns: int | None = None, fps: float | None = None, use_timestamps: bool = True):
        super().__init__(name, fps or 30.0, (0, 0), epoch_ns)
        self.path = Path(path)
        self.pace = pace
        self.loop = loop
        self._fps_override = fps
        self.use_timestamps = use_timestamps
        self._cap = None
        self._next = 0  # index of the next frame to deliver
        self._times: dict[int, int] = {}
        self.timestamps_file: Path | None = None
        self.n_frames = 0

    def open(self) -> "VideoFileSource":
        import cv2

        if not self.path.is_file():
            raise SourceError(f"camera {self.name!r}: video file not found: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"camera {self.name!r}: cannot read video file {self.path}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        if self._fps_override:
            self.fps = float(self._fps_override)
        elif fps and fps > 0:
            self.fps = float(fps)
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if self.use_timestamps:
            found = find_timestamps_for_video(self.path)
            if found is not None:
                times = read_timestamps_csv(*found)
                if times:
                    self.timestamps_file = found[0]
                    keys = sorted(times)
                    if keys[0] != 0:  # numbered from elsewhere (caliscope): the i-th row is video frame i
                        times = {i: times[k] for i, k in enumerate(keys)}
                    self._times = {i: t - times[min(times)] for i, t in times.items()}
        if self.pace:
            due = int((time.time_ns() - self.epoch_ns) // self.period_ns)
            if due > 0:
                self._seek(due)
        return self

    def _seek(self, index: int) -> None:
        import cv2

        self._next = index
        if self.n_frames:
            position = index % self.n_frames if self.loop else min(index, self.n_frames)
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, position)

    def _grab(self) -> tuple[int, np.ndarray] | None:
        ok, image = self._cap.read()
        if not ok:
            if not self.loop or self._next == 0:
                return None
            self._seek(self._next)  # back to the file's start; the index keeps counting
            ok, image = self._cap.read()
            if not ok:
                return None
        index = self._next
        self._next += 1
        return index, image

    def _wall_ns(self, index: int) -> int:
        """Capture time of frame ``index`` (recorded spacing on the first pass, nominal after)."""
        rel = self._times.get(index) if index < self.n_frames or not self.n_frames else None
        return self.epoch_ns + (rel if rel is not None else int(round(index * 1e9 / self.fps)))

    def read(self) -> Frame | None:
        got = self._grab()
        if got is None:
            return None
        index, image = got
        if self.pace:
            # Late by more than a period: skip, as a live camera would have dropped the frame.
            while time.time_ns() > self._wall_ns(index) + self.period_ns:
                got = self._grab()
                if got is None:
                    return None
                index, image = got
            _sleep_until_ns(self._wall_ns(index))
        wall = self._wall_ns(index) if (self.pace or self._times) else time.time_ns()
        return Frame(index, wall, time.monotonic_ns(), image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def info(self) -> SourceInfo:
        return SourceInfo(self.name, self.kind, self.fps, self.size,
                          {"path": str(self.path), "frames": self.n_frames, "paced": self.pace, "loop": self.loop,
                           "timestamps_file": str(self.timestamps_file) if self.timestamps_file else None})


# ------------------------------------------------------------------- synthetic
class SyntheticCameraSource(FrameSource):
    """One camera of the synthetic studio, paced at its frame rate.

    Every process builds the same studio from the same seed.  Frame ``f`` is
    delivered at wall time ``epoch_ns + studio.capture_time_ns(cam, f)``, which
    is also its capture time, so :meth:`SyntheticStudio.truth_at` applies to
    it directly.  ``keypoints=True`` attaches the studio's noisy detections
    (``Frame.keypoints``, (persons, joints, 3)) for the ``synthetic`` detector;
    ``persons`` >= 2 films the crowd studio (:class:`rigcap.studio.crowd.CrowdStudio`:
    that many people, its detections in detection order);
    ``render=True`` attaches the rendered image (for a real model or a
    recording).  Past the studio's length the motion repeats.
    """

    kind = "synthetic"

    def __init__(self, name: str, camera_index: int, n_cameras: int = 4, fps: float = 30.0, duration_s: float = 10.0,
                 seed: int = 0, size=(1280, 720), render: bool = False, keypoints: bool = True,
                 epoch_ns: int | None = None, studio=None, persons: int = 1):
        super().__init__(name, fps, size, epoch_ns)
        self.camera_index = int(camera_index)
        self.n_cameras = int(n_cameras)
        self.duration_s = float(duration_s)
        self.seed = int(seed)
        self.persons = int(persons)
        self.render = render
        self.with_keypoints = keypoints
        self.studio = studio
        self._next = None

    def open(self) -> "SyntheticCameraSource":
        if self.studio is None:
            from rigcap.studio.studio import make_studio

            self.studio = make_studio(self.persons, n_cameras=self.n_cameras, fps=self.fps,
                                      duration_s=self.duration_s, seed=self.seed, size=self.size)
        if not 0 <= self.camera_index < len(self.studio.rig):
            raise SourceError(f"camera {self.name!r}: the synthetic studio has cameras 0..{len(self.studio.rig) - 1}, "
                              f"not {self.camera_index}")
        self.fps = float(self.studio.fps)
        if self.render:
            self.studio.image(self.camera_index, 0)  # the first image builds the renderer's caches (~1 s)
        from rigcap.studio.studio import motion_cycle_ns

        self._period_studio = motion_cycle_ns(self.studio.n_frames, self.fps)
        # Start with the first frame whose time is still ahead (a restarted process picks up where the rig is).
        self._next = max(0, int((self.clock.now_ns() - self.epoch_ns) // self.period_ns))
        return self

    @property
    def skeleton(self):
        return self.studio.skeleton

    def time_of(self, index: int) -> int:
        """Wall-clock capture time of frame ``index`` (the studio's motion repeats)."""
        cycle, f = divmod(index, self.studio.n_frames)
        return self.epoch_ns + cycle * self._period_studio + int(self.studio.capture_time_ns(self.camera_index, f))

    def read(self) -> Frame:
        index = self._next
        now = self.clock.now_ns()
        # Behind schedule by more than a period: drop to the newest due frame, as a live camera does;
        # and skip the frames the studio says this camera never delivers.
        while (self.time_of(index + 1) <= now - self.period_ns
               or self.studio.dropped(self.camera_index, index % self.studio.n_frames)):
            index += 1
        self.clock.sleep_until_ns(self.time_of(index))
        self._next = index + 1
        f = index % self.studio.n_frames
        wall = self.time_of(index)
        image = self.studio.image(self.camera_index, f) if self.render else None
        kp = None
        if self.with_keypoints:
            kp = np.asarray(self.studio.keypoints(self.camera_index, f), dtype=np.float32)
            kp = kp[None] if kp.ndim == 2 else kp  # one person, or the crowd's (persons, joints, 3)
        return Frame(index, wall, time.monotonic_ns(), image, kp)

    def info(self) -> SourceInfo:
        return SourceInfo(self.name, self.kind, self.fps, self.size,
                          {"camera_index": self.camera_index, "n_cameras": self.n_cameras, "seed": self.seed,
                           "duration_s": self.duration_s, "render": self.render, "persons": self.persons})


# ------------------------------------------------------------------- factory
def make_source(camera, epoch_ns: int | None = None) -> FrameSource:
    """The source a :class:`capture.config.CameraConfig` describes (not yet opened)."""
    kind = camera.source
    if kind == "usb":
        return UsbCameraSource(camera.name, camera.device, camera.size, camera.fps, camera.mjpg, epoch_ns)
    if kind == "video":
        return VideoFileSource(camera.name, camera.path, pace=camera.pace, loop=camera.loop, epoch_ns=epoch_ns,
                               fps=camera.fps_override)
    if kind == "synthetic":
        return SyntheticCameraSource(camera.name, camera.camera_index, camera.n_cameras, camera.fps,
                                     camera.duration_s, camera.seed, camera.size, render=camera.render,
                                     keypoints=camera.keypoints, epoch_ns=epoch_ns, persons=camera.persons)
    raise SourceError(f"camera {camera.name!r}: unknown source type {kind!r} (usb, video, synthetic)")
