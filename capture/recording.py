"""Session recording that survives SIGKILL, and reading a session back.

Layout of a session folder::

    session.toml                  written at start: start time, epoch, cameras,
                                  the capture config, the rig file; [stop] added
                                  on a clean stop
    keypoints2d.npz               all cameras' 2D keypoints (rigcap's Keypoints2D
                                  format), assembled on a clean stop or by
                                  open_session(); rebuildable from the segments
    <camera>/segment-000.json     written when the camera process starts: what the
                                  source delivers (size, fps), skeleton, joint names
    <camera>/segment-000.avi      video, Motion-JPEG in AVI (see below)
    <camera>/segment-000.timestamps.csv   ``frame_index,time_ns`` (wall clock, ns)
    <camera>/segment-000.kp2d.bin fixed-size records, one per frame (below)
    <camera>/segment-000.end.json written on a clean close: frames, last time

Each start of a camera process (a restart after a crash too) opens the next
segment, so nothing already written is ever rewritten.

Crash safety
    Every file is append-only and flushed to the operating system at least once
    a second (``flush_interval_s``); a process killed with SIGKILL loses at
    most the last second, since the kernel keeps what was flushed.  The video is
    Motion-JPEG in an AVI container written by OpenCV's own MJPEG writer, which
    passes data to the OS every 32 KiB: unlike MP4 (whose index is written on
    close, so a killed recording is unreadable), FFmpeg -- and so OpenCV --
    reads an AVI that was never closed frame by frame up to its last complete
    frame.  A cut last CSV line or record is ignored when reading.

``kp2d.bin`` record (little-endian), numpy dtype::

    [("frame", "<i8"), ("time_ns", "<i8"), ("n_persons", "<i4"), ("pad", "<i4"),
     ("keypoints", "<f4", (joints, 3))]

One record per person the detector found, in its order (consecutive records
with the same ``frame``), and one record with NaN ``keypoints`` for a frame
where it found nobody; ``n_persons`` how many it found in that frame.  (Segments
written before rigcap kept everybody -- no ``"record_layout": "per_person"`` in
the JSON -- hold one record per frame, the most confident person.)  A session
whose frames held at most one person reads as the single-person 2D form; with
more, as the multi-person form (the person index = detection order).  The
joint count and names are in the segment's JSON.  ``pad`` holds the CRC-32 of
the record's other bytes (pad taken as 0) when the JSON says
``"record_checksum": "crc32"``, so a zeroed or overwritten record is found and
left out.

Damage
    Reading never gives up on a whole session for one bad part: a segment whose
    JSON is unreadable or lacks ``joint_names`` is skipped, records that fail
    their checksum or hold impossible frame indices are left out, and a record
    count that disagrees with ``end.json`` marks the segment cut; each is one
    line in :attr:`Session.damage` (and :meth:`Session.summary_lines`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import time
import tomllib
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from rigcap.errors import InputFileError
from rigcap.wire.messages import MAX_FRAME_INDEX, MAX_TIME_NS

SESSION_FILE = "session.toml"
KEYPOINTS_FILE = "keypoints2d.npz"


def record_dtype(n_joints: int) -> np.dtype:
    return np.dtype([("frame", "<i8"), ("time_ns", "<i8"), ("n_persons", "<i4"), ("pad", "<i4"),
                     ("keypoints", "<f4", (n_joints, 3))])


RECORD_CHECKSUM = "crc32"
RECORD_LAYOUT = "per_person"  # one record per detected person (see the module docstring)
# keypoints2d() refuses to allocate more than this for the shared timeline (a bogus frame index, not data)
MAX_TIMELINE_BYTES = 4 * 1024**3


def _record_crc(record_bytes: bytes, pad_offset: int) -> int:
    """CRC-32 of one record with its ``pad`` field taken as 0, as a signed int32 (the field's type)."""
    crc = zlib.crc32(record_bytes[:pad_offset])
    crc = zlib.crc32(b"\0\0\0\0", crc)
    crc = zlib.crc32(record_bytes[pad_offset + 4:], crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


LOW_SPACE_MINUTES = 10  # warn when the disk holds less than this much of the session's recording rate


def low_space_warning(folder: str | Path, bytes_per_s: float, minutes: float = LOW_SPACE_MINUTES) -> str | None:
    """A one-line warning when ``folder``'s disk has room for less than ``minutes`` at ``bytes_per_s``."""
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free >= bytes_per_s * minutes * 60:
        return None
    return (f"low disk space: {free / 2**20:.0f} MiB free at {folder}, about {free / bytes_per_s / 60:.1f} minutes "
            f"at this recording's {bytes_per_s / 2**20:.2f} MiB/s (warned below {minutes:g} minutes)")


def _write_json(path: Path, obj) -> None:
    """Write JSON whole or not at all (a full disk leaves no 0-byte description behind)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _iso(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc).isoformat()


def _toml_safe(value):
    """Drop None (TOML has no null) recursively."""
    if isinstance(value, dict):
        return {str(k): _toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_safe(v) for v in value if v is not None]
    return value


# ------------------------------------------------------------------ writing
def write_session_start(folder: str | Path, cameras: list[dict], config: dict | None = None,
                        rig_file: str | None = None, epoch_ns: int | None = None,
                        start_time_ns: int | None = None, extra: dict | None = None) -> Path:
    """Create the session folder and its ``session.toml`` (before any camera starts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time_ns() if start_time_ns is None else start_time_ns
    from rigcap import __version__

    doc = {
        "session": {"start_time_ns": start, "start_time": _iso(start), "epoch_ns": epoch_ns if epoch_ns is not None else start,
                    "rigcap_version": __version__, "rig_file": rig_file, **(extra or {})},
        "cameras": cameras,
        "config": config or {},
    }
    path = folder / SESSION_FILE
    path.write_text(tomli_w.dumps(_toml_safe(doc)), encoding="utf-8")
    return path


def write_session_stop(folder: str | Path, summary: dict | None = None) -> None:
    """Add a ``[stop]`` table to ``session.toml`` (a clean stop)."""
    path = Path(folder) / SESSION_FILE
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    now = time.time_ns()
    doc["stop"] = _toml_safe({"stop_time_ns": now, "stop_time": _iso(now), **(summary or {})})
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")


class CameraRecorder:
    """Writes one camera's segment: video, timestamps, keypoints (see module docstring).

    ``write(frame, people)`` per frame; ``close()`` on a clean stop.
    ``video=False`` records no video (keypoints and timestamps only); a frame
    without an image writes no video frame.
    """

    def __init__(self, folder: str | Path, camera: str, skeleton, fps: float, source_info: dict | None = None,
                 video: bool = True, fourcc: str = "MJPG", flush_interval_s: float = 1.0):
        self.dir = Path(folder) / camera
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.dir.glob("segment-*.json"))
        self.segment = 1 + max((int(p.name[8:11]) for p in existing if p.name[8:11].isdigit()), default=-1)
        self.stem = self.dir / f"segment-{self.segment:03d}"
        self.camera = camera
        self.skeleton = skeleton
        self.fps = float(fps)
        self.video = video
        self.fourcc = fourcc
        self.flush_interval_s = flush_interval_s
        self._dtype = record_dtype(skeleton.n_joints)
        meta = {"camera": camera, "segment": self.segment, "start_time_ns": time.time_ns(), "fps": self.fps,
                "skeleton": skeleton.name, "joint_names": list(skeleton.joint_names), "record_dtype": self._dtype.descr.__repr__(),
                "record_checksum": RECORD_CHECKSUM, "record_layout": RECORD_LAYOUT,
                "video": f"{self.stem.name}.avi" if video else None, "pid": os.getpid(), "source": source_info or {}}
        _write_json(self.stem.with_suffix(".json"), meta)
        size = (source_info or {}).get("width", 0) * (source_info or {}).get("height", 0)
        # MJPEG at OpenCV's default quality is ~0.25 byte per pixel; the records and CSV are tiny beside it
        self.bytes_per_s = self.fps * (self._dtype.itemsize + 32 + (0.25 * size if video else 0))
        self._csv = open(self.stem.with_suffix(".timestamps.csv"), "w", encoding="utf-8", newline="")
        self._csv.write("frame_index,time_ns\n")
        self._kp = open(self.stem.with_suffix(".kp2d.bin"), "wb")
        self._writer = None
        self._last_flush = time.monotonic()
        self.frames = 0
        self.records = 0
        self.video_frames = 0
        self.last_time_ns: int | None = None
        self._pad_offset = self._dtype.fields["pad"][1]

    def _open_video(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        path = str(self.stem.with_suffix(".avi"))
        # OpenCV's own Motion-JPEG writer: it hands its output to the OS in 32 KiB blocks, so a
        # killed process loses only the last few frames (FFmpeg's writer buffers 256 KiB, which
        # at low bit rates is many seconds).
        api = cv2.CAP_OPENCV_MJPEG if self.fourcc == "MJPG" else cv2.CAP_ANY
        self._writer = cv2.VideoWriter(path, api, cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
        if not self._writer.isOpened():
            raise OSError(f"cannot write video {path} with codec {self.fourcc}")

    def write(self, frame, people: np.ndarray) -> None:
        if self.video and frame.image is not None:
            if self._writer is None:
                self._open_video(frame.image)
            self._writer.write(frame.image)
            self.video_frames += 1
        n = people.shape[0]
        recs = np.zeros(max(n, 1), self._dtype)  # one per person; one with NaN when nobody was found
        recs["frame"] = frame.index
        recs["time_ns"] = frame.capture_time_ns
        recs["n_persons"] = n
        recs["keypoints"] = people if n else np.nan
        raw, size = recs.tobytes(), self._dtype.itemsize
        recs["pad"] = [_record_crc(raw[i * size:(i + 1) * size], self._pad_offset) for i in range(len(recs))]
        self._kp.write(recs.tobytes())
        self.records += len(recs)
        self._csv.write(f"{frame.index},{frame.capture_time_ns}\n")
        self.frames += 1
        self.last_time_ns = frame.capture_time_ns
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval_s:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        self._csv.flush()
        self._kp.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self._csv.closed:
            self._csv.close()
            self._kp.close()
            end = {"frames": self.frames, "records": self.records, "video_frames": self.video_frames,
                   "last_time_ns": self.last_time_ns,
                   "stop_time_ns": time.time_ns()}
            _write_json(self.stem.with_suffix(".end.json"), end)


# ------------------------------------------------------------------ reading
@dataclass
class SegmentRecord:
    stem: Path
    meta: dict
    frames: np.ndarray  # (N,) int64
    times_ns: np.ndarray  # (N,) int64
    n_persons: np.ndarray  # (N,) int32: how many the detector found
    people: np.ndarray  # (N, P, J, 3) float32: everybody recorded, detection order, NaN-padded (P >= 1)
    clean: bool  # closed properly (end marker present, record count as it says, no damaged record)
    video: Path | None
    damage: list[str] = field(default_factory=list)  # one line per problem found

    @property
    def n_frames(self) -> int:
        return int(self.frames.size)

    @property
    def keypoints(self) -> np.ndarray:
        """(N, J, 3) the most confident person per frame (NaN where nobody was found)."""
        return most_confident(self.people)


def most_confident(people: np.ndarray) -> np.ndarray:
    """(N, P, J, 3) -> (N, J, 3): per frame the person with the highest mean confidence (NaN: nobody)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slots
        score = np.nanmean(people[..., 2], axis=-1)
    best = np.argmax(np.where(np.isfinite(score), score, -np.inf), axis=1)
    return np.take_along_axis(people, best[:, None, None, None], axis=1)[:, 0]


def _pad_people(people: np.ndarray, n_persons: int) -> np.ndarray:
    """(N, P, J, 3) NaN-padded to (N, n_persons, J, 3)."""
    if people.shape[1] == n_persons:
        return people
    out = np.full((people.shape[0], n_persons) + people.shape[2:], np.nan, np.float32)
    out[:, : people.shape[1]] = people
    return out


@dataclass
class CameraRecording:
    name: str
    segments: list[SegmentRecord]
    joint_names: list[str]
    skeleton: str

    @property
    def frames(self) -> np.ndarray:
        return np.concatenate([s.frames for s in self.segments]) if self.segments else np.zeros(0, np.int64)

    @property
    def times_ns(self) -> np.ndarray:
        return np.concatenate([s.times_ns for s in self.segments]) if self.segments else np.zeros(0, np.int64)

    @property
    def people(self) -> np.ndarray:
        """(N, P, J, 3) everybody recorded per frame (P: the most in any frame, at least 1; NaN-padded)."""
        j = len(self.joint_names)
        if not self.segments:
            return np.zeros((0, 1, j, 3), np.float32)
        n_p = max(s.people.shape[1] for s in self.segments)
        return np.concatenate([_pad_people(s.people, n_p) for s in self.segments])

    @property
    def max_persons(self) -> int:
        """The most people recorded in one frame (0: nobody ever)."""
        return max((int(np.isfinite(s.people[..., 0]).any(-1).sum(-1).max(initial=0)) for s in self.segments),
                   default=0)

    @property
    def keypoints(self) -> np.ndarray:
        """(N, J, 3) the most confident person per frame."""
        return most_confident(self.people)

    @property
    def n_frames(self) -> int:
        return sum(s.n_frames for s in self.segments)

    @property
    def last_time_ns(self) -> int | None:
        t = self.times_ns
        return int(t[-1]) if t.size else None

    @property
    def clean(self) -> bool:
        """Every segment closed properly: nothing was cut."""
        return all(s.clean for s in self.segments)

    @property
    def restarts(self) -> int:
        return max(0, len(self.segments) - 1)

    def videos(self) -> list[Path]:
        return [s.video for s in self.segments if s.video is not None]


@dataclass
class Session:
    path: Path
    info: dict  # session.toml
    cameras: dict[str, CameraRecording] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # segments that could not be read at all, one line each

    @property
    def damage(self) -> list[str]:
        """Every problem found, one line each: unreadable segments, then damaged records and counts."""
        return self.skipped + [d for c in self.cameras.values() for s in c.segments for d in s.damage]

    @property
    def clean(self) -> bool:
        return "stop" in self.info and not self.skipped and all(c.clean for c in self.cameras.values())

    @property
    def camera_names(self) -> list[str]:
        return list(self.cameras)

    def keypoints2d(self):
        """All cameras as a :class:`triangulate.formats.Keypoints2D`.

        Row ``f`` of every camera is frame index ``f - first`` on the shared
        timeline (``first`` the smallest index recorded by any camera); frames a
        camera did not deliver are NaN with ``timestamps_ns`` -1.  Cameras must
        share one skeleton.  The single-person form (cameras, frames, joints, 3)
        when no frame held more than one person, else the multi-person form
        (cameras, frames, persons, joints, 3), everybody each camera recorded in
        detection order.
        """
        from triangulate.formats import Keypoints2D

        cams = [c for c in self.cameras.values() if c.n_frames]
        if not cams:
            raise InputFileError(self.path, "no frames were recorded")
        names = {tuple(c.joint_names) for c in cams}
        if len(names) != 1:
            raise InputFileError(self.path, "cameras recorded different skeletons; cannot build one keypoints2d array")
        first = min(int(c.frames.min()) for c in cams)
        last = max(int(c.frames.max()) for c in cams)
        n, j = last - first + 1, len(cams[0].joint_names)
        n_p = max(1, max(c.max_persons for c in cams))
        if n * len(self.cameras) * n_p * j * 12 > MAX_TIMELINE_BYTES:
            raise InputFileError(self.path, f"frame indices span {n} frames ({first}..{last}) for "
                                 f"{sum(c.n_frames for c in cams)} records: a damaged frame index?")
        kp = np.full((len(self.cameras), n, n_p, j, 3), np.nan, np.float32)
        ts = np.full((len(self.cameras), n), -1, np.int64)
        for ci, cam in enumerate(self.cameras.values()):
            if not cam.n_frames:
                continue
            rows = cam.frames - first
            people = cam.people
            kp[ci, rows, : min(n_p, people.shape[1])] = people[:, :n_p]
            ts[ci, rows] = cam.times_ns
        if n_p == 1:
            kp = kp[:, :, 0]
        fps = self.info.get("session", {}).get("fps") or next(
            (s.meta.get("fps") for c in cams for s in c.segments if s.meta.get("fps")), None)
        return Keypoints2D(kp, list(self.cameras), list(cams[0].joint_names), ts, fps)

    def summary_lines(self) -> list[str]:
        """One line per camera: frames, last time, clean or cut."""
        lines = []
        for name, cam in self.cameras.items():
            last = cam.last_time_ns
            when = _iso(last) if last else "-"
            state = "clean" if cam.clean else "CUT (process did not stop cleanly; readable up to the last flush)"
            extra = f", {cam.restarts} restart(s)" if cam.restarts else ""
            extra += f", up to {cam.max_persons} people per frame" if cam.max_persons > 1 else ""
            lines.append(f"{name}: {cam.n_frames} frames, last {when}{extra}: {state}")
        lines += [f"damaged: {d}" for d in self.damage]
        if "stop" not in self.info:
            lines.append("session: no clean stop recorded")
        return lines


def _read_csv_times(path: Path) -> dict[int, int]:
    out = {}
    if not path.is_file():
        return out
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) != 2:
                continue
            try:
                out[int(row[0])] = int(row[1])
            except ValueError:
                continue
    return out


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(meta_path, f"unreadable segment description ({exc})") from None
    if not isinstance(meta, dict):
        raise InputFileError(meta_path, "unreadable segment description (not a JSON object)")
    names = meta.get("joint_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise InputFileError(meta_path, "segment description has no joint_names (a list of joint names)")
    return meta


def _good_records(recs: np.ndarray, checksummed: bool, bin_path: Path, damage: list[str]) -> np.ndarray:
    """Records that pass their checksum and hold possible frame indices and times; the rest named in ``damage``."""
    ok = np.ones(recs.size, bool)
    if checksummed and recs.size:
        pad_offset = recs.dtype.fields["pad"][1]
        stored = recs["pad"].copy()
        raw, size = recs.tobytes(), recs.dtype.itemsize
        crc = np.array([_record_crc(raw[i * size:(i + 1) * size], pad_offset) for i in range(recs.size)], np.int64)
        bad = crc != stored
        if bad.any():
            damage.append(f"{bin_path}: {int(bad.sum())} of {recs.size} records fail their checksum "
                          f"(first at record {int(np.argmax(bad))}); left out")
        ok &= ~bad
    impossible = ok & ((recs["frame"] < 0) | (recs["frame"] >= MAX_FRAME_INDEX)
                       | (recs["time_ns"] < 0) | (recs["time_ns"] >= MAX_TIME_NS))
    if impossible.any():
        damage.append(f"{bin_path}: {int(impossible.sum())} records with impossible frame indices or times; left out")
    return recs[ok & ~impossible]


def _read_segment(meta_path: Path) -> SegmentRecord:
    stem = meta_path.with_suffix("")
    meta = _read_meta(meta_path)
    j = len(meta["joint_names"])
    dtype = record_dtype(j)
    bin_path = stem.with_suffix(".kp2d.bin")
    raw = bin_path.read_bytes() if bin_path.is_file() else b""
    n = len(raw) // dtype.itemsize  # a cut last record is ignored
    damage: list[str] = []
    recs = _good_records(np.frombuffer(raw[: n * dtype.itemsize], dtype=dtype),
                         meta.get("record_checksum") == RECORD_CHECKSUM, bin_path, damage)
    n = recs.size
    # The CSV is the timestamps file users read; the binary records carry the same
    # times.  Keep only frames present in both (each is flushed at the same moments).
    csv_times = _read_csv_times(stem.with_suffix(".timestamps.csv"))
    keep = np.array([int(f) in csv_times for f in recs["frame"]], bool) if csv_times else np.zeros(n, bool)
    if csv_times and not keep.all():
        recs = recs[keep]
    frames, people, n_persons = _group_people(recs, meta.get("record_layout") == RECORD_LAYOUT)
    video = stem.with_suffix(".avi")
    end_path = stem.with_suffix(".end.json")
    if end_path.is_file():
        try:
            end = json.loads(end_path.read_text(encoding="utf-8"))
            end_frames, end_records = end.get("frames"), end.get("records", end.get("frames"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            end_frames = end_records = None
            damage.append(f"{end_path}: unreadable")
        if end_records is not None and end_records != n:  # n: records that passed their checks
            damage.append(f"{bin_path}: end.json says {end_frames} frames ({end_records} records), "
                          f"{n} records readable")
    return SegmentRecord(stem, meta, frames["frame"].astype(np.int64), frames["time_ns"].astype(np.int64),
                         n_persons, people, end_path.is_file() and not damage, video if video.is_file() else None,
                         damage)


def _group_people(recs: np.ndarray, per_person: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records -> (one record per frame, people (N, P, J, 3) float32, n_persons (N,) int32).

    ``per_person``: consecutive records of one frame are its people, in order; otherwise (older
    segments) each record is a frame with its most confident person."""
    kp = np.asarray(recs["keypoints"], np.float32)
    if not per_person or recs.size == 0:
        return recs, kp[:, None], recs["n_persons"].astype(np.int32)
    starts = np.flatnonzero(np.r_[True, recs["frame"][1:] != recs["frame"][:-1]])
    run = np.diff(np.r_[starts, recs.size])
    slot = np.arange(recs.size) - np.repeat(starts, run)
    people = np.full((starts.size, int(run.max()), kp.shape[1], 3), np.nan, np.float32)
    people[np.repeat(np.arange(starts.size), run), slot] = kp
    return recs[starts], people, recs["n_persons"][starts].astype(np.int32)


def _check_session_info(path: Path, info: dict) -> None:
    """The fields open_session reads, with the right types (one line naming the file otherwise)."""
    cameras = info.get("cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, dict) and isinstance(c.get("name", ""), str)
                                                for c in cameras):
        raise InputFileError(path, f"cameras = {cameras!r}: expected a list of tables with a name, "
                             "e.g. [[cameras]] name = \"cam_1\"")
    fps = info.get("session", {}).get("fps") if isinstance(info.get("session", {}), dict) else None
    if not isinstance(info.get("session", {}), dict):
        raise InputFileError(path, "[session] must be a table")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        raise InputFileError(path, f"fps = {fps!r}: expected a positive number of frames per second")


def open_session(folder: str | Path, write_keypoints: bool = True) -> Session:
    """Load a session folder, whether it was stopped cleanly or killed.

    Says what was cut through :attr:`Session.clean`, each camera's
    :attr:`CameraRecording.clean` and :meth:`Session.summary_lines`.  With
    ``write_keypoints`` a missing ``keypoints2d.npz`` is assembled and saved.
    """
    folder = Path(folder)
    session_file = folder / SESSION_FILE
    if not session_file.is_file():
        raise InputFileError(folder, f"not a rigcap session (no {SESSION_FILE})")
    try:
        info = tomllib.loads(session_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(session_file, f"not a valid TOML file ({exc})") from None
    _check_session_info(session_file, info)
    names = [c["name"] for c in info.get("cameras", []) if "name" in c]
    names += sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in names
                    and any(p.glob("segment-*.json")))
    session = Session(folder, info)
    for name in names:
        segments = []
        for p in sorted((folder / name).glob("segment-[0-9][0-9][0-9].json")):
            try:
                segments.append(_read_segment(p))
            except InputFileError as exc:  # one damaged segment: the rest of the session still loads
                session.skipped.append(str(exc))
        joint_names = segments[0].meta["joint_names"] if segments else []
        skeleton = segments[0].meta.get("skeleton", "") if segments else ""
        session.cameras[name] = CameraRecording(name, segments, list(joint_names), skeleton)
    if write_keypoints and not (folder / KEYPOINTS_FILE).is_file() and any(c.n_frames for c in session.cameras.values()):
        session.keypoints2d().save(folder / KEYPOINTS_FILE)
    return session


def finalize_session(folder: str | Path, summary: dict | None = None) -> Session:
    """On a clean stop: mark ``session.toml`` stopped and write ``keypoints2d.npz``."""
    write_session_stop(folder, summary)
    target = Path(folder) / KEYPOINTS_FILE
    if target.exists():
        target.unlink()
    return open_session(folder, write_keypoints=True)
