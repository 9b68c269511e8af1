"""Group frames of several cameras into instants.

Three ways to say which frames were taken together:

* none: frame ``i`` of every input is instant ``i``;
* caliscope's ``timestamps.csv`` (``sync_index,cam_id,frame_index,frame_time``,
  or ``sync_index,cam_id,frame_time`` as older caliscope versions wrote it):
  the frames sharing a ``sync_index`` are one instant; ``cam_id`` ``k`` is the
  input whose name ends in the number ``k`` (``cam_0``, ``port_0``, ...); a
  camera's rows in ``frame_index`` order (old files: in file order) are its
  video's frames 0, 1, 2, ...;
* rigcap's recording format: one CSV per camera, ``frame_index,time_ns``,
  one row per video frame, named after the camera (``cam_0.csv``,
  ``cam_0_timestamps.csv`` or ``cam_0.timestamps.csv``) in one folder, or a
  recording session folder (``cam_0/segment-000.timestamps.csv``): frames are matched to the nearest
  frame in time of the camera with the fewest frames, within half its frame
  interval.

The result is always a ``(C, F)`` int array of each camera's frame index per
instant, -1 where a camera has no frame at that instant.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.detect import CameraDetections, Detections
from rigcap.errors import InputFileError, RigcapError

CALISCOPE_HEADER = ["sync_index", "cam_id", "frame_index", "frame_time"]
CALISCOPE_OLD_HEADER = ["sync_index", "cam_id", "frame_time"]  # caliscope before frame_index was written
RIGCAP_HEADER = ["frame_index", "time_ns"]


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(x.strip() for x in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot be read ({exc})") from None
    if not rows:
        raise InputFileError(path, "timestamps file is empty")
    return [h.strip() for h in rows[0]], rows[1:]


def _trailing_int(name: str) -> int | None:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


def is_caliscope_header(header: Sequence[str]) -> bool:
    return list(header[:4]) == CALISCOPE_HEADER or list(header[:3]) == CALISCOPE_OLD_HEADER


def frames_from_caliscope(path: Path, names: Sequence[str]) -> np.ndarray:
    header, rows = _read_csv(path)
    if not is_caliscope_header(header):
        raise InputFileError(path, f"expected the header {','.join(CALISCOPE_HEADER)} (or the older "
                                   f"{','.join(CALISCOPE_OLD_HEADER)}), got {','.join(header)}")
    old = list(header[:4]) != CALISCOPE_HEADER
    try:
        if old:  # no frame_index: a camera's rows in file order are its frames
            data = np.array([[int(r[0]), int(r[1]), i] for i, r in enumerate(rows)], dtype=np.int64).reshape(-1, 3)
        else:
            data = np.array([[int(r[0]), int(r[1]), int(r[2])] for r in rows], dtype=np.int64).reshape(-1, 3)
    except (ValueError, IndexError):
        raise InputFileError(path, "every row needs integer sync_index, cam_id" + ("" if old else " and frame_index")) from None
    if data.shape[0] == 0:
        raise InputFileError(path, "no frames listed")
    cam_ids = [_trailing_int(n) for n in names]
    in_file = sorted(set(data[:, 1].tolist()))
    if any(c is None for c in cam_ids) or len(set(cam_ids)) != len(cam_ids):
        raise RigcapError(
            f"{path}: cannot tell which input is which cam_id: input names {', '.join(names)} must end in the "
            f"camera number used in the file ({', '.join(map(str, in_file))}), e.g. cam_0.mp4"
        )
    missing = [n for n, c in zip(names, cam_ids) if c not in in_file]
    if missing:
        raise RigcapError(f"{path}: no rows for camera {', '.join(missing)} (cam_ids in the file: {', '.join(map(str, in_file))})")
    syncs = np.unique(data[:, 0])
    frames = np.full((len(names), syncs.size), -1, dtype=np.int64)
    col = np.searchsorted(syncs, data[:, 0])
    for c, cid in enumerate(cam_ids):
        rows_c = np.flatnonzero(data[:, 1] == cid)
        # caliscope writes one video frame per row: a camera's k-th row in
        # frame_index order is frame k of its video (frame_index itself counts
        # from the start of the stream, 26 in the shared recording).
        rank = np.empty(rows_c.size, dtype=np.int64)
        rank[np.argsort(data[rows_c, 2], kind="stable")] = np.arange(rows_c.size)
        frames[c, col[rows_c]] = rank
    return frames


def _rigcap_csv_for(folder: Path, name: str) -> Path:
    for candidate in (f"{name}.csv", f"{name}_timestamps.csv", f"{name}.timestamps.csv"):
        if (folder / candidate).is_file():
            return folder / candidate
    # a rigcap recording session: <session>/<camera>/segment-000.timestamps.csv
    segments = sorted((folder / name).glob("*.timestamps.csv")) if (folder / name).is_dir() else []
    if len(segments) == 1:
        return segments[0]
    raise InputFileError(
        folder, f"no timestamps for camera {name!r} (looked for {name}.csv, {name}_timestamps.csv and "
        f"{name}/segment-*.timestamps.csv{'; found several segments' if segments else ''})"
    )


def read_rigcap_times(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One camera's ``frame_index,time_ns`` CSV -> (frame_index, time_ns) int arrays."""
    header, rows = _read_csv(path)
    if header[:2] != RIGCAP_HEADER:
        raise InputFileError(path, f"expected the header {','.join(RIGCAP_HEADER)}, got {','.join(header)}")
    try:
        data = np.array([[int(r[0]), int(r[1])] for r in rows], dtype=np.int64).reshape(-1, 2)
    except (ValueError, IndexError):
        raise InputFileError(path, "every row needs an integer frame_index and time_ns") from None
    if data.shape[0] == 0:
        raise InputFileError(path, "no frames listed")
    # one row per frame written to the video: the k-th row (in frame_index order) is video frame k,
    # whatever number the capture gave it (a recording's frame_index need not start at 0)
    rank = np.empty(data.shape[0], dtype=np.int64)
    rank[np.argsort(data[:, 0], kind="stable")] = np.arange(data.shape[0])
    return rank, data[:, 1]


def group_by_time(times: Sequence[np.ndarray], frame_ids: Sequence[np.ndarray]) -> np.ndarray:
    """Match every camera's frames to the nearest frame of the camera with the fewest frames.

    ``times[c]`` in any one unit (ns); a frame farther than half the reference
    camera's median frame interval from every reference frame is left out,
    and each frame is used at most once (the nearest claim wins).
    """
    ref = int(np.argmin([t.size for t in times]))
    t_ref = np.asarray(times[ref], dtype=np.float64)
    order = np.argsort(t_ref)
    t_ref = t_ref[order]
    dt = np.median(np.diff(t_ref)) if t_ref.size > 1 else np.inf
    tol = 0.5 * dt
    frames = np.full((len(times), t_ref.size), -1, dtype=np.int64)
    for c, (t, ids) in enumerate(zip(times, frame_ids)):
        t = np.asarray(t, dtype=np.float64)
        if t.size == 0:
            continue
        s_order = np.argsort(t)
        t_s, ids_s = t[s_order], np.asarray(ids)[s_order]
        right = np.searchsorted(t_s, t_ref)
        lo, hi = np.clip(right - 1, 0, t_s.size - 1), np.clip(right, 0, t_s.size - 1)
        j = np.where(np.abs(t_s[lo] - t_ref) <= np.abs(t_s[hi] - t_ref), lo, hi)
        err = np.abs(t_s[j] - t_ref)
        ok = err <= tol
        # one frame, one instant: among instants claiming the same frame keep the nearest
        claim = np.lexsort((err, j))
        first = np.ones(claim.size, dtype=bool)
        first[1:] = j[claim][1:] != j[claim][:-1]
        unique = np.zeros(t_ref.size, dtype=bool)
        unique[claim[first]] = True
        frames[c] = np.where(ok & unique, ids_s[j], -1)
    return frames


def frames_from_rigcap(folder: Path, names: Sequence[str]) -> np.ndarray:
    ids, times = zip(*(read_rigcap_times(_rigcap_csv_for(folder, n)) for n in names))
    return group_by_time(times, ids)


def read_timestamps(path: str | Path, names: Sequence[str]) -> np.ndarray:
    """(C, F) frame index per camera per instant from a caliscope CSV or a folder of rigcap CSVs."""
    path = Path(path)
    if path.is_dir():
        if (path / "timestamps.csv").is_file() and is_caliscope_header(_read_csv(path / "timestamps.csv")[0]):
            return frames_from_caliscope(path / "timestamps.csv", names)
        return frames_from_rigcap(path, names)
    if not path.is_file():
        raise InputFileError(path, "timestamps file not found")
    header, _ = _read_csv(path)
    if is_caliscope_header(header):
        return frames_from_caliscope(path, names)
    if header[:2] == RIGCAP_HEADER:
        return frames_from_rigcap(path.parent, names)
    raise InputFileError(
        path,
        f"unknown timestamps format (header {','.join(header)}); expected caliscope's "
        f"{','.join(CALISCOPE_HEADER)} (or its older {','.join(CALISCOPE_OLD_HEADER)}) or rigcap's per-camera "
        f"{','.join(RIGCAP_HEADER)}",
    )


def group_detections(per_camera: Sequence[CameraDetections], frames: np.ndarray | None = None) -> Detections:
    """Stack per-camera detections into instants (``frames`` from :func:`read_timestamps`, or frame i = instant i)."""
    n = per_camera[0].corners.shape[1]
    if frames is None:
        f = max(d.n_frames for d in per_camera)
        frames = np.array([[i if i < d.n_frames else -1 for i in range(f)] for d in per_camera], dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    c, f = frames.shape
    corners = np.full((c, f, n, 2), np.nan)
    markers = np.zeros((c, f), dtype=np.int32)
    mirrored = np.zeros((c, f), dtype=bool)
    for ci, d in enumerate(per_camera):
        beyond = frames[ci] >= d.n_frames
        if beyond.any():
            raise RigcapError(
                f"timestamps list frame {int(frames[ci][beyond].max())} of camera {d.name!r} but {d.source} "
                f"has only {d.n_frames} frames"
            )
        ok = frames[ci] >= 0
        corners[ci, ok] = d.corners[frames[ci, ok]]
        markers[ci, ok] = d.n_markers[frames[ci, ok]]
        mirrored[ci, ok] = d.mirrored[frames[ci, ok]]
    return Detections(
        [d.name for d in per_camera], [d.size for d in per_camera], corners, frames, markers,
        [d.source for d in per_camera], mirrored,
    )
