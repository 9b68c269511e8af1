"""Read OpenPose-style JSON keypoint folders (the layout Pose2Sim uses) into :class:`Keypoints2D`.

One folder per camera, one file per frame::

    pose/
      cam01_json/
        cam01_000000000000_keypoints.json
        cam01_000000000001_keypoints.json
      cam02_json/ ...

Each file holds ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, ...]}, ...]}``
(pixels, confidence; OpenPose writes ``0, 0, 0`` for a joint it did not find,
read here as NaN).  The camera name is the folder name without ``_json``; the
frame number is the last number before ``_keypoints.json``, and cameras are
aligned on it (frames a camera lacks are NaN; a camera that never saw
anyone is all NaN).

One person per frame is kept: the most confident (sum of confidences) where
there is no earlier choice, else the one closest to the previous frame's
choice (mean pixel distance over the joints both have).  With
``multi_person=True`` every person is kept, in the file's order, in the
multi-person 2D form (cameras, frames, persons, joints, 3), NaN-padded to the
largest number of people any file lists.

The skeleton follows from the joint count (:func:`skeleton_for_count`: 17
COCO, 25 BODY_25, 26 Halpe, 33 MediaPipe) unless given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rigcap.errors import InputFileError
from triangulate.formats import Keypoints2D
from triangulate.skeletons import Skeleton, skeleton_for_count

_FRAME = re.compile(r"(\d+)_keypoints\.json$")


def camera_folders(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """The per-camera folders: the paths given, or the ``*_json`` folders inside a single parent."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for p in paths:
        if not p.is_dir():
            raise InputFileError(p, "not a folder of OpenPose JSON files")
    if len(paths) == 1 and not any(paths[0].glob("*_keypoints.json")):
        subs = sorted(d for d in paths[0].iterdir() if d.is_dir() and any(d.glob("*_keypoints.json")))
        if not subs:
            raise InputFileError(paths[0], "holds no *_keypoints.json files and no camera folders that do")
        return subs
    return paths


def camera_name(folder: Path) -> str:
    name = folder.name
    return name[: -len("_json")] if name.endswith("_json") else name


def _people(path: Path) -> np.ndarray:
    """(P, J, 3) of one file; J = 0 when nobody was detected."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [np.asarray(p.get("pose_keypoints_2d", []), dtype=np.float64) for p in data.get("people", [])]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise InputFileError(path, f"not an OpenPose keypoint file ({exc})") from None
    rows = [r for r in rows if r.size]
    if not rows:
        return np.zeros((0, 0, 3))
    sizes = {r.size for r in rows}
    if len(sizes) != 1 or rows[0].size % 3:
        raise InputFileError(path, f"pose_keypoints_2d lengths {sorted(sizes)} are not one multiple of 3")
    people = np.stack(rows).reshape(len(rows), -1, 3)
    people[people[..., 2] <= 0] = np.nan
    return people


def _choose(people: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """One person (J, 3) of (P, J, 3): closest to ``previous`` where comparable, else most confident."""
    if previous is not None:
        d = np.linalg.norm(people[..., :2] - previous[None, :, :2], axis=-1)  # (P, J)
        shared = np.isfinite(d).sum(axis=1)
        if shared.max() > 0:
            with np.errstate(invalid="ignore"):
                mean = np.where(shared > 0, np.nansum(d, axis=1) / np.maximum(shared, 1), np.inf)
            return people[int(np.argmin(mean))]
    return people[int(np.argmax(np.nansum(people[..., 2], axis=1)))]


def read_camera_folder(folder: str | Path, multi_person: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One camera's folder -> ``(frame_numbers (F,), keypoints (F, J, 3))``, NaN where missing
    (``multi_person``: keypoints (F, P, J, 3), everybody in the file's order)."""
    folder = Path(folder)
    files = []
    for f in folder.glob("*_keypoints.json"):
        m = _FRAME.search(f.name)
        if m:
            files.append((int(m.group(1)), f))
    if not files:
        raise InputFileError(folder, "holds no <name>_<frame>_keypoints.json files")
    files.sort()
    frames = np.array([n for n, _ in files])
    if len(np.unique(frames)) != len(frames):
        raise InputFileError(folder, "two files carry the same frame number")
    people = [_people(f) for _, f in files]
    n_joints = {p.shape[1] for p in people if p.shape[0]}
    if len(n_joints) > 1:
        raise InputFileError(folder, f"files disagree on the number of joints: {sorted(n_joints)}")
    if not n_joints:  # a camera that never saw anyone: all NaN, joint count from the others
        return frames, np.full((len(files), 0, 0, 3) if multi_person else (len(files), 0, 3), np.nan)
    j = n_joints.pop()
    if multi_person:
        out = np.full((len(files), max(p.shape[0] for p in people), j, 3), np.nan)
        for i, p in enumerate(people):
            out[i, : p.shape[0]] = p
        return frames, out
    out = np.full((len(files), j, 3), np.nan)
    previous = None
    for i, p in enumerate(people):
        if p.shape[0]:
            out[i] = _choose(p, previous)
            previous = out[i]
    return frames, out


def load_openpose_json(
    folders: Sequence[str | Path] | str | Path,
    skeleton: Skeleton | None = None,
    fps: float | None = None,
    multi_person: bool = False,
) -> Keypoints2D:
    """Camera folders (or one parent of ``*_json`` folders) -> :class:`Keypoints2D` aligned on frame number
    (``multi_person``: the multi-person form, everybody each file lists)."""
    dirs = camera_folders(folders)
    per_cam = [read_camera_folder(d, multi_person) for d in dirs]
    counts = {kp.shape[-2] for _, kp in per_cam if kp.shape[-2]}
    if not counts:
        raise InputFileError(dirs[0].parent, "no person detected in any frame of any camera")
    if len(counts) > 1:
        raise InputFileError(dirs[0].parent, f"camera folders disagree on the number of joints: {sorted(counts)}")
    n_joints = counts.pop()
    if skeleton is None:
        try:
            skeleton = skeleton_for_count(n_joints)
        except KeyError as exc:
            raise InputFileError(dirs[0], str(exc.args[0])) from None
    elif skeleton.n_joints != n_joints:
        raise InputFileError(dirs[0], f"{n_joints} joints per person, skeleton {skeleton.name!r} has {skeleton.n_joints}")
    first = min(int(f[0]) for f, _ in per_cam)
    last = max(int(f[-1]) for f, _ in per_cam)
    n_people = max(kp.shape[1] for _, kp in per_cam) if multi_person else 0
    shape = (n_people, n_joints, 3) if multi_person else (n_joints, 3)
    out = np.full((len(dirs), last - first + 1) + shape, np.nan, dtype=np.float32)
    for c, (frames, kp) in enumerate(per_cam):
        if kp.shape[-2]:
            if multi_person:
                out[c, frames - first, : kp.shape[1]] = kp
            else:
                out[c, frames - first] = kp
    return Keypoints2D(out, [camera_name(d) for d in dirs], list(skeleton.joint_names), None, fps)
