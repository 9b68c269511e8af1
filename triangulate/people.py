"""Offline 3D of several people: association + tracking per frame, then the robust engine per person.

:func:`triangulate_people` takes multi-person 2D keypoints (cameras, frames,
persons, joints, 3) of a rig and returns the multi-person 3D file object
(:class:`~triangulate.formats.Points3D` with ``person_ids``):

1. every keypoint undistorted at once (:class:`triangulate.lens.LensBatch`);
2. frame by frame, :class:`~triangulate.association.CrossViewAssociator`
   groups the detections of all cameras, with the
   :class:`~triangulate.tracking.PersonTracker`'s predicted poses as the prior,
   and the tracker gives each group its identity;
3. each identity's detections are gathered into a single-person array and all
   of them go through the offline engine (:class:`triangulate.engine.Triangulator`:
   view selection, left/right swap repair, temporal prior) in one batch, so
   every person gets exactly the single-person quality of ``rigcap
   triangulate``;
4. identities seen for fewer than ``min_track_frames`` frames are dropped
   (a few frames of a mis-association are not a person); ``persons=N`` keeps
   the N seen longest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from calibration import Rig
from triangulate.association import AssociationConfig, CrossViewAssociator
from triangulate.engine import (TriangulationConfig, Triangulator, TriangulationInputError, match_cameras,
                                optimized_note)
from triangulate.filters import smooth_points
from triangulate.formats import Keypoints2D, Points3D
from triangulate.lens import LensBatch
from triangulate.skeletons import skeleton_for_joints
from triangulate.tracking import PersonTracker, TrackingConfig


@dataclass
class PeopleResult:
    points3d: Points3D  # multi-person form
    slot_person: np.ndarray  # (C, F, P) int: person id of each detection slot (0: unassigned)
    camera_names: list[str]
    association_s: float  # seconds spent in association + tracking
    triangulation_s: float
    warnings: list[str] = field(default_factory=list)


def track_people(lens: LensBatch, associator: CrossViewAssociator, tracker: PersonTracker, kp: np.ndarray,
                 times_s: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Association + tracking over a recording: kp (C, F, P, J, 3) -> (C, F, P) track key per slot (-1: none).

    The per-keypoint work (undistortion, weights, DLT view terms) is done for ``chunk`` frames at
    once; what is left per frame depends on the tracks, which the previous frame moved on."""
    n_c, n_f, n_p, n_j = kp.shape[:4]
    slot = np.full((n_c, n_f, n_p), -1)
    present = np.isfinite(kp[..., 0]).any(-1).any(0)  # (F, P): some camera lists someone in that slot
    for f0 in range(0, n_f, chunk):
        part = kp[:, f0:f0 + chunk]
        views = associator.prepare(lens.undistort(part[..., :2].astype(np.float64)), part[..., 2].astype(np.float64))
        for i in range(part.shape[1]):
            f = f0 + i
            priors = tracker.predict(float(times_s[f]))
            if not present[f].any():
                continue
            a = associator.associate_views(views.frame(i), priors)
            keys = tracker.update(float(times_s[f]), a.track, a.points)
            g, c = np.nonzero(a.slots >= 0)
            slot[c, f, a.slots[g, c]] = keys[g]
    return slot


def triangulate_people(rig: Rig, keypoints: Keypoints2D, config: TriangulationConfig | None = None,
                       persons: int | None = None, association: AssociationConfig | None = None,
                       tracking: TrackingConfig | None = None, min_track_frames: int = 10,
                       progress=None) -> PeopleResult:
    """Multi-person 2D keypoints -> multi-person 3D with stable ids (``persons``: keep at most this many; None = all).

    With ``config.optimize`` every person gets their own spatio-temporal solve (own bone lengths, no
    smoothness across people; ``progress(done, total)`` over its frames)."""
    config = config or TriangulationConfig()
    cameras = match_cameras(rig, keypoints.camera_names)
    kp = keypoints.persons_form()
    n_c, n_f, n_p, n_j = kp.shape[:4]
    skeleton = skeleton_for_joints(keypoints.joint_names)
    fps = keypoints.fps
    if keypoints.timestamps_ns is not None:
        ts = np.where(keypoints.timestamps_ns >= 0, keypoints.timestamps_ns, np.nan).astype(np.float64)
        with np.errstate(all="ignore"):
            times_ns = np.nanmedian(ts, axis=0) if np.isfinite(ts).any() else np.full(n_f, np.nan)
        if np.isnan(times_ns).any():
            step = 1e9 / fps if fps else np.nanmedian(np.diff(times_ns)) if np.isfinite(times_ns).sum() > 1 else 1e9 / 30
            idx = np.arange(n_f)
            good = np.isfinite(times_ns)
            times_ns = np.interp(idx, idx[good], times_ns[good]) if good.any() else idx * step
    else:
        times_ns = np.arange(n_f) * (1e9 / (fps or 30.0))
    times_s = (times_ns - times_ns[0]) * 1e-9

    engine = Triangulator(cameras, config, skeleton)
    associator = CrossViewAssociator(engine.lin, (association or AssociationConfig(min_confidence=config.min_confidence)))
    tracker = PersonTracker(skeleton, tracking)
    t0 = time.perf_counter()
    slot = track_people(engine.lens, associator, tracker, kp, times_s)
    t1 = time.perf_counter()

    ids_of_key = np.append(tracker.ids(), 0)  # key -> id (0: never confirmed); -1 maps to the appended 0
    slot_id = ids_of_key[slot]
    ids, counts = np.unique(slot_id[slot_id > 0], return_counts=True)
    frames_seen = np.array([int((slot_id == i).any(axis=(0, 2)).sum()) for i in ids], int)
    keep = frames_seen >= min_track_frames
    ids, frames_seen = ids[keep], frames_seen[keep]
    if persons is not None and len(ids) > persons:
        best = np.sort(np.argsort(-frames_seen, kind="stable")[:persons])
        ids = ids[best]
    slot_id = np.where(np.isin(slot_id, ids), slot_id, 0)

    # one single-person array per identity, separated by empty frames so no temporal window spans two people
    pad = 2 * config.temporal_window + 1
    block = n_f + pad
    single = np.full((n_c, len(ids) * block, n_j, 3), np.nan, dtype=np.float64)
    for k, pid in enumerate(ids):
        c_i, f_i, p_i = np.nonzero(slot_id == pid)
        single[c_i, k * block + f_i] = kp[c_i, f_i, p_i]
    if len(ids):
        res = engine.run(single, fps, segments=[(k * block, k * block + n_f) for k in range(len(ids))],
                         progress=progress)
        pts = res.points.reshape(len(ids), block, n_j, 3)[:, :n_f]
        err = res.error_px.reshape(len(ids), block, n_j)[:, :n_f]
        views = res.n_views.reshape(len(ids), block, n_j)[:, :n_f]
    else:
        pts = np.zeros((0, n_f, n_j, 3))
        err = np.zeros((0, n_f, n_j))
        views = np.zeros((0, n_f, n_j), int)
    if (config.filter_hz or config.max_gap) and len(ids):
        pts = np.stack([smooth_points(p, fps or 0.0, config.filter_hz, config.filter_order, config.max_gap,
                                      config.interpolation) for p in pts])
    t2 = time.perf_counter()
    method = optimized_note(config) if config.optimize and len(ids) else None
    p3d = Points3D(pts, list(keypoints.joint_names), err, views, times_ns.astype(np.int64), fps, person_ids=ids,
                   method=method)
    return PeopleResult(p3d, slot_id, [c.name for c in cameras], t1 - t0, t2 - t1)


def check_persons(value) -> int | None:
    """``--persons`` value: 'auto' -> None, else a positive int."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise TriangulationInputError(f"--persons must be 'auto' or a positive number, got {value!r}") from None
    if n < 1:
        raise TriangulationInputError(f"--persons must be 'auto' or a positive number, got {value!r}")
    return n


def people_points3d(rig: Rig, kp: Keypoints2D, config: TriangulationConfig, persons: int | None, progress=None):
    """Association + tracking + the engine per person -> ``(PeopleResult, Points3D to write)``:
    the multi-person form, or with ``persons == 1`` the single-person file (what ``rigcap triangulate``
    and ``rigcap batch`` write for multi-person 2D input without --persons)."""
    result = triangulate_people(rig, kp, config, persons=persons, progress=progress)
    p3d = result.points3d
    if persons == 1:
        p3d = (p3d.person(0) if p3d.n_persons else
               Points3D(np.full((kp.n_frames, len(kp.joint_names), 3), np.nan), kp.joint_names,
                        timestamps_ns=p3d.timestamps_ns, fps=p3d.fps, method=p3d.method))
    return result, p3d
