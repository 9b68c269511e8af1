"""The fusion node's recording of its 3D stream, readable also after the node was killed.

``<session>/fusion/points3d.bin`` holds fixed-size records (:func:`fused_record_dtype`) appended and
flushed once a second, beside ``fusion/meta.json`` (skeleton, joint names, fps); a clean stop also writes
``<session>/points3d.npz``.  A node killed with SIGKILL leaves only the ``.bin``: :func:`read_fused_recording`
reads it (a cut last record is ignored) and :func:`rebuild_points_npz` writes the missing ``.npz``, so
every reader of :class:`triangulate.formats.Points3D` (``Points3D.load`` with a ``.bin``, a ``fusion/``
folder or a session folder, ``rigcap view``, ``rigcap capture --inspect``) gets the same points.

Several people (fusion with ``persons`` != 1; ``meta.json`` says ``"record_layout": "per_person"``): one
record per person published at an instant (:func:`fused_people_record_dtype`: the instant's sequence
number, its time, the person's id, their points), one with ``person_id`` -1 for an instant with nobody;
read back as the multi-person 3D form, ``points`` (persons, frames, joints, 3) with ``person_ids``, one
frame per instant, NaN where a person was not published.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rigcap.errors import InputFileError

FUSION_DIR = "fusion"
POINTS_FILE = "points3d.npz"
RECORD_FILE = "points3d.bin"


PER_PERSON = "per_person"  # meta.json "record_layout" of a multi-person recording
NOBODY = -1  # person_id of the record that keeps an instant with nobody in it


def fused_record_dtype(n_joints: int) -> np.dtype:
    return np.dtype([("time_ns", "<i8"), ("spread_ns", "<i8"), ("points", "<f4", (n_joints, 3)),
                     ("error_px", "<f4", (n_joints,)), ("n_views", "<i2", (n_joints,))])


def fused_people_record_dtype(n_joints: int) -> np.dtype:
    """One person at one instant (several people; see the module docstring)."""
    return np.dtype([("instant", "<i8"), ("time_ns", "<i8"), ("spread_ns", "<i8"), ("person_id", "<i4"),
                     ("pad", "<i4"), ("points", "<f4", (n_joints, 3)), ("error_px", "<f4", (n_joints,)),
                     ("n_views", "<i2", (n_joints,))])


def people_records(recs: np.ndarray, names: list[str], fps):
    """Per-person records -> the multi-person :class:`triangulate.formats.Points3D` (one frame per instant)."""
    from triangulate.formats import Points3D

    n_j = len(names)
    instants, frame = np.unique(recs["instant"], return_inverse=True)
    first = np.unique(frame, return_index=True)[1]
    seen = recs["person_id"] != NOBODY
    ids = np.unique(recs["person_id"][seen])
    person = np.searchsorted(ids, recs["person_id"][seen])
    points = np.full((len(ids), len(instants), n_j, 3), np.nan)
    error = np.full((len(ids), len(instants), n_j), np.nan)
    views = np.zeros((len(ids), len(instants), n_j), np.int16)
    points[person, frame[seen]] = recs["points"][seen]
    error[person, frame[seen]] = recs["error_px"][seen]
    views[person, frame[seen]] = recs["n_views"][seen]
    return Points3D(points, list(names), error, views, recs["time_ns"][first].astype(np.int64), fps,
                    person_ids=ids.astype(np.int64))


def session_of(path: str | Path) -> Path | None:
    """The session folder a path names (the session, its ``fusion/`` folder or ``points3d.bin``), if it has a 3D recording."""
    path = Path(path)
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / FUSION_DIR / "meta.json").is_file() and (path == candidate or path.name in (FUSION_DIR, RECORD_FILE)):
            return candidate
    return None


def read_fused_recording(session_dir: str | Path):
    """The recorded 3D stream as :class:`triangulate.formats.Points3D` (a cut last record is ignored)."""
    from triangulate.formats import Points3D

    folder = Path(session_dir) / FUSION_DIR
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise InputFileError(Path(session_dir), "no recorded 3D stream (fusion/meta.json missing): was the fusion node run with --record?")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(meta_path, f"unreadable 3D recording description ({exc})") from None
    names = meta.get("joint_names") if isinstance(meta, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise InputFileError(meta_path, "3D recording description has no joint_names (a list of joint names)")
    fps = meta.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        fps = None
    per_person = meta.get("record_layout") == PER_PERSON
    dtype = fused_people_record_dtype(len(names)) if per_person else fused_record_dtype(len(names))
    bin_path = folder / RECORD_FILE
    raw = bin_path.read_bytes() if bin_path.is_file() else b""
    usable = len(raw) - len(raw) % dtype.itemsize
    recs = np.frombuffer(raw[:usable], dtype=dtype)
    if per_person:
        return people_records(recs, list(names), fps)
    return Points3D(recs["points"].astype(np.float64), list(names), recs["error_px"].astype(np.float64),
                    recs["n_views"], recs["time_ns"], fps)


def rebuild_points_npz(session_dir: str | Path):
    """Read the ``.bin`` and write ``<session>/points3d.npz`` when it is missing (a killed node); returns the points."""
    points = read_fused_recording(session_dir)
    target = Path(session_dir) / POINTS_FILE
    if not target.is_file():
        try:
            points.save(target)
        except OSError:  # a read-only session: the points are still returned
            pass
    return points
