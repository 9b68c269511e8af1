"""3D tracks of several people with stable identities, live and offline.

:class:`PersonTracker` holds one track per person, a row of :class:`TrackTable`:
its last pose, its whole-body velocity, when it was last seen and its body size.
An instant updates every track it sees in one pass of array operations (no
Python loop per person; only the rare decisions, a new id or a re-identification,
are taken one track at a time).  Per instant:

* :meth:`PersonTracker.predict` gives the pose of every track seen within
  ``prior_s`` moved on by its velocity: the prior the cross-view
  association (:mod:`triangulate.association`) assigns detections to, so a
  person keeps their track through crossings (the prior, not the 2D order,
  decides) and through short disappearances (the track waits, predicted);
* :meth:`PersonTracker.update` takes the association's groups: a group built
  on a track's prior continues that track (two such groups with one pose are
  merged into the fresher track); a new group is dropped when it duplicates a
  track seen this instant, else tries the tracks unseen for up to
  ``max_gap_s`` (3D distance, gate growing with the time unseen), else starts
  a tentative track, confirmed after ``min_hits`` instants.  A track unseen
  for more than ``prior_s`` is no prior any more: a stale pose must not catch
  the views of someone walking past where it was;
* **re-identification by body size**: a track unseen for longer than
  ``max_gap_s`` is kept for ``reid_s``; when a new track has been seen for
  ``reid_frames`` instants (and again at 2x, as its estimate settles)
  its bone lengths (medians) are compared with the lost tracks', and if exactly one matches within ``reid_tolerance``
  (median relative difference over the bones) the new track takes that
  identity (someone who left the room and came back).  Different people
  differ in size by a few per cent; the test is off when sizes are too alike.
  While someone is lost, a new track gets no id of its own before that test
  (live, a returning person is never published under a new id first).

Identities are positive integers in order of confirmation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import linear_sum_assignment

from triangulate.skeletons import Skeleton

_MAX_EXTRAPOLATION_S = 0.3  # a prediction moves a track on by its velocity for at most this long


@dataclass
class TrackingConfig:
    prior_s: float = 0.2  # a track unseen longer is no prior: only a new group near it revives it
    max_gap_s: float = 1.0  # a track unseen this long is lost (kept for re-identification only)
    max_speed_m_s: float = 2.5  # how far an unseen person may have walked
    new_gate_m: float = 0.35  # mean joint distance for a new group to continue an unseen track
    duplicate_m: float = 0.3  # a new group this close to a track seen now is the same person
    min_hits: int = 3  # instants before a tentative track is confirmed
    reid_s: float = 60.0  # lost tracks are kept this long for re-identification
    reid_frames: int = 15  # instants a new track is seen before re-identification is tried
    reid_tolerance: float = 0.025  # median relative bone-length difference for the same person
    velocity_smoothing: float = 0.5  # weight of the newest velocity estimate
    size_history: int = 60  # bone-length samples kept per track
    size_every: int = 5  # instants between bone-length samples once a track is established


class TrackTable:
    """Every track's state as one row of a few arrays (key = row), grown by doubling.

    Rows, not objects: an instant updates all the tracks it sees in a handful of
    array operations, whatever their number.
    """

    def __init__(self, n_joints: int, n_bones: int, history: int):
        self.n = 0
        self._shapes = {"pose": (n_joints, 3), "velocity": (3,), "last_s": (), "first_s": (), "hits": (),
                        "track_id": (), "size_checked": (), "bones": (history, n_bones), "n_bones": ()}
        self._dtypes = {"hits": np.int64, "track_id": np.int64, "size_checked": bool, "n_bones": np.int64}
        self._allocate(16)

    def _allocate(self, capacity: int) -> None:
        old = {k: getattr(self, k) for k in self._shapes} if self.n else {}
        for k, shape in self._shapes.items():
            dtype = self._dtypes.get(k, np.float64)
            a = np.full((capacity,) + shape, np.nan) if dtype is np.float64 else np.zeros((capacity,) + shape, dtype)
            if k in old:
                a[: self.n] = old[k][: self.n]
            setattr(self, k, a)
        self.capacity = capacity

    def add(self, poses: np.ndarray, time_s: float) -> np.ndarray:
        """New tentative tracks at ``poses`` (n, J, 3) seen at ``time_s``; returns their keys."""
        n = len(poses)
        if self.n + n > self.capacity:
            self._allocate(max(2 * self.capacity, self.n + n))
        keys = np.arange(self.n, self.n + n)
        self.pose[keys] = poses
        self.velocity[keys] = 0.0
        self.last_s[keys] = self.first_s[keys] = time_s
        self.hits[keys] = 1
        self.track_id[keys] = 0
        self.size_checked[keys] = False
        self.n_bones[keys] = 0
        self.n += n
        return keys

    def size(self, key: int) -> np.ndarray:
        """Median length of every bone over the kept samples (NaN for a bone never measured)."""
        m = min(int(self.n_bones[key]), self.bones.shape[1])
        if m == 0:
            return np.full(self.bones.shape[2], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(self.bones[key, :m], axis=0)


class PersonTracker:
    """Tracks with stable identities (see the module docstring)."""

    def __init__(self, skeleton: Skeleton, config: TrackingConfig | None = None):
        self.skeleton = skeleton
        self.config = config or TrackingConfig()
        self.bones = skeleton.bones if len(skeleton.bones) else np.zeros((0, 2), int)
        self.table = TrackTable(len(skeleton.joint_names), len(self.bones), self.config.size_history)
        self.next_id = 1
        self._alive = np.zeros(0, int)  # keys of the tracks followed (not forgotten, not re-identified), ascending
        self._predicted = np.zeros(0, int)
        self._ages = (np.zeros(0, int), np.zeros(0), np.zeros(0, bool))  # alive keys, ages, recent at predict
        self._next_expiry = np.inf  # no track can expire before this time (s)

    # ------------------------------------------------------------------ per instant
    def predict(self, time_s: float) -> np.ndarray:
        """(T, J, 3) predicted poses of the tracks seen within ``prior_s`` (the association's priors)."""
        tb, a = self.table, self._alive
        self._predicted, poses, age, recent = _predict_kernel(a, time_s, tb.last_s, tb.pose, tb.velocity,
                                                              self.config.prior_s, _MAX_EXTRAPOLATION_S)
        self._ages = (a, age, recent)  # for the waiting tracks, if this instant needs them
        return poses

    def _waiting(self) -> np.ndarray:
        """Keys of the tracks unseen for more than ``prior_s`` and at most ``max_gap_s`` at the instant predicted."""
        a, age, recent = self._ages
        return a[~recent & (age <= self.config.max_gap_s)]

    def update(self, time_s: float, track: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Groups of the association (``track`` (G,) prior index or -1, ``points`` (G, J, 3)) -> track keys (G,), -1 = dropped.

        Call :meth:`predict` for the same instant first (``track`` indexes its rows).
        """
        track = np.asarray(track)
        cfg, tb = self.config, self.table
        prior = track >= 0
        if prior.all():  # the usual instant: every group continues a track
            keys = self._predicted[track]
            new = np.zeros(0, int)
        else:
            keys = np.full(len(track), -1)
            keys[prior] = self._predicted[track[prior]]
            new = np.flatnonzero(~prior)
        merged = self._merge_duplicates(keys, points)
        if new.size:
            new = new[np.isfinite(_centre(points[new])).all(-1)]
        if new.size:
            seen = np.unique(keys[keys >= 0])
            if seen.size:  # a new group beside a person tracked now is more views of that person
                near = _pose_distances(points[new], tb.pose[seen]) < cfg.duplicate_m  # (n, s)
                new = new[~near.any(1)]
        if new.size:
            seen = np.unique(keys[keys >= 0])
            candidates = np.concatenate([self._predicted, self._waiting()])
            unseen = candidates[~np.isin(candidates, seen)]
            if unseen.size:
                cost = _pose_distances(points[new], tb.pose[unseen])  # (n, u)
                gate = cfg.new_gate_m + cfg.max_speed_m_s * (time_s - tb.last_s[unseen])
                rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
                hit = cost[rows, cols] < gate[cols]
                keys[new[rows[hit]]] = unseen[cols[hit]]
                new = new[keys[new] < 0]
            if new.size:
                keys[new] = tb.add(points[new], time_s)
                self._alive = np.concatenate([self._alive, keys[new]])
                self._next_expiry = min(self._next_expiry, time_s + cfg.max_gap_s)
        if not merged and new.size == 0 and prior.all():  # the usual instant: every group, once
            if keys.size:
                self._advance(keys, time_s, points)
        else:
            groups = np.flatnonzero(keys >= 0)
            if merged:  # a merged duplicate advances its track once (its first group)
                _, first = np.unique(keys[groups], return_index=True)
                groups = groups[np.sort(first)]
            if groups.size:
                self._advance(keys[groups], time_s, points[groups])
        self._expire(time_s)
        return keys

    def _merge_duplicates(self, keys: np.ndarray, points: np.ndarray) -> bool:
        """Two prior-based groups with nearly the same pose are one person: a stale track took some
        of the views of a person tracked now.  The group of the track seen more recently keeps both.
        True when some were merged."""
        idx = np.flatnonzero(keys >= 0)
        n = idx.size
        if n < 2:
            return False
        pairs = _duplicate_pairs(points if n == len(keys) else points[idx], self.config.duplicate_m)
        if not len(pairs):
            return False
        tb = self.table
        merged = False
        for a, b in pairs:
            ka, kb = int(keys[idx[a]]), int(keys[idx[b]])
            if ka == kb:
                continue
            fresh, stale = (ka, kb) if (tb.last_s[ka], tb.hits[ka]) >= (tb.last_s[kb], tb.hits[kb]) else (kb, ka)
            keys[keys == stale] = fresh
            merged = True
        return merged

    def _advance(self, keys: np.ndarray, time_s: float, poses: np.ndarray) -> None:
        """Tracks ``keys`` (distinct) seen at ``poses`` (n, J, 3): velocity, pose, hits, body size, ids."""
        cfg, tb = self.config, self.table
        hits, settled = _advance_kernel(keys, time_s, poses, tb.pose, tb.velocity, tb.last_s, tb.hits,
                                        cfg.max_speed_m_s, cfg.velocity_smoothing, self.bones, tb.bones, tb.n_bones,
                                        cfg.size_every, 4 * cfg.reid_frames, tb.track_id, tb.size_checked)
        if settled:  # every one confirmed and its size checked: no decision left
            return
        # the rare per-track decisions, in group order (a re-identification changes who is lost)
        check = ~tb.size_checked[keys] & ((hits == cfg.reid_frames) | (hits == 2 * cfg.reid_frames))
        confirm = (tb.track_id[keys] == 0) & (hits >= cfg.min_hits)
        for i in np.flatnonzero(check | confirm):
            k = int(keys[i])
            if check[i]:  # tried twice, as the size estimate settles (15 and 30 instants)
                tb.size_checked[k] = self._reidentify(k) or hits[i] >= 2 * cfg.reid_frames
            if tb.track_id[k] == 0 and hits[i] >= cfg.min_hits and (tb.size_checked[k] or not self._lost_before(k).size):
                # while someone is lost, a new track waits for the size test before it gets an id of its
                # own: live, a returning person is published under their old id, never a new one first
                tb.track_id[k] = self.next_id
                self.next_id += 1

    def _lost_before(self, key: int) -> np.ndarray:
        """Keys of the confirmed tracks lost (unseen > ``max_gap_s``) before track ``key`` began: whom it may be."""
        tb, a = self.table, self._alive
        first = tb.first_s[key]
        last = tb.last_s[a]
        return a[(a != key) & (tb.track_id[a] != 0) & (last < first) & (first - last > self.config.max_gap_s)]

    def _reidentify(self, key: int) -> bool:
        """Give track ``key`` the identity of the one lost track of its size, if there is exactly one (True: done)."""
        cfg, tb = self.config, self.table
        lost = self._lost_before(key)
        if not lost.size or not len(self.bones):
            return False
        mine = tb.size(key)
        diffs = []
        for o in lost:
            size = tb.size(o)
            rel = np.abs(mine - size) / np.maximum(size, 1e-6)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                diffs.append(float(np.nanmedian(rel)) if np.isfinite(rel).any() else np.inf)
        match = np.array(diffs) < cfg.reid_tolerance
        if match.sum() == 1:
            o = int(lost[int(np.argmax(match))])
            tb.track_id[key] = tb.track_id[o]
            self._alive = self._alive[self._alive != o]
            return True
        return False

    def _expire(self, time_s: float) -> None:
        """Forget the tentative tracks unseen for ``max_gap_s`` and every track unseen for ``reid_s``
        (checked only once the earliest such moment may have come)."""
        cfg, tb, a = self.config, self.table, self._alive
        if time_s < self._next_expiry:
            return
        age = time_s - tb.last_s[a]
        tentative = tb.track_id[a] == 0
        gone = ((age > cfg.max_gap_s) & tentative) | (age > cfg.reid_s)
        if gone.any():
            a = self._alive = a[~gone]
            tentative = tentative[~gone]
        limit = np.where(tentative, cfg.max_gap_s, cfg.reid_s)
        # a little early (rounding): the exact test above decides
        self._next_expiry = float((tb.last_s[a] + limit).min()) - 1e-6 if a.size else np.inf

    # ------------------------------------------------------------------ results
    def ids(self) -> np.ndarray:
        """(n_tracks,) identity of every track key (0: never confirmed)."""
        return self.table.track_id[: self.table.n].copy()

    def confirmed(self) -> list[tuple[int, int]]:
        """(key, id) of the confirmed tracks."""
        ids = self.ids()
        return [(int(k), int(ids[k])) for k in np.flatnonzero(ids)]


@njit(cache=True)
def _predict_kernel(alive, time_s, last_s, pose, velocity, prior_s, max_dt):
    """:meth:`PersonTracker.predict`: the keys of the tracks among ``alive`` seen within ``prior_s``,
    their poses moved on by velocity x min(age, ``max_dt``), and every alive track's age and recent flag."""
    n = alive.size
    age = np.empty(n)
    recent = np.empty(n, np.bool_)
    m = 0
    for i in range(n):
        age[i] = time_s - last_s[alive[i]]
        recent[i] = age[i] <= prior_s
        m += recent[i]
    live = np.empty(m, np.int64)
    out = np.empty((m, pose.shape[1], 3))
    r = 0
    for i in range(n):
        if recent[i]:
            k = alive[i]
            live[r] = k
            dt = min(age[i], max_dt)
            for j in range(pose.shape[1]):
                for x in range(3):
                    out[r, j, x] = pose[k, j, x] + velocity[k, x] * dt
            r += 1
    return live, out, age, recent


@njit(cache=True)
def _advance_kernel(keys, time_s, poses, pose, velocity, last_s, hits, max_speed, smoothing, bones, bone_table,
                    n_bones, size_every, size_early, track_id, size_checked):
    """:meth:`PersonTracker._advance` on the table's rows ``keys`` (distinct), seen at ``poses`` (n, J, 3).

    Velocity: the mean step of the joints seen both times over the time since last seen (at
    least 3 joints, capped at ``max_speed``), blended in by ``smoothing``; the pose keeps
    the old joint where the new one is missing; a bone-length sample every ``size_every`` hits
    (every hit for the first ``size_early``).  Returns the new hits (n,) and whether every track
    is settled (confirmed and its size checked: no decision left for it)."""
    n, n_j = poses.shape[0], poses.shape[1]
    out = np.empty(n, np.int64)
    settled = True
    for i in range(n):
        k = keys[i]
        dt = time_s - last_s[k]
        moved = dt > 0
        s0 = s1 = s2 = 0.0
        m = 0
        for j in range(n_j):
            d0 = poses[i, j, 0] - pose[k, j, 0]
            if d0 == d0:
                s0 += d0
                s1 += poses[i, j, 1] - pose[k, j, 1]
                s2 += poses[i, j, 2] - pose[k, j, 2]
                m += 1
        if moved and m >= 3:
            scale = m * dt
            v0, v1, v2 = s0 / scale, s1 / scale, s2 / scale
            speed = np.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
            if speed > max_speed:
                cap = max_speed / speed
                v0, v1, v2 = v0 * cap, v1 * cap, v2 * cap
            velocity[k, 0] = (1 - smoothing) * velocity[k, 0] + smoothing * v0
            velocity[k, 1] = (1 - smoothing) * velocity[k, 1] + smoothing * v1
            velocity[k, 2] = (1 - smoothing) * velocity[k, 2] + smoothing * v2
        h = hits[k] + (1 if moved else 0)
        hits[k] = h
        out[i] = h
        for j in range(n_j):
            if poses[i, j, 0] == poses[i, j, 0]:
                pose[k, j, 0], pose[k, j, 1], pose[k, j, 2] = poses[i, j, 0], poses[i, j, 1], poses[i, j, 2]
        last_s[k] = time_s
        if bones.shape[0] and (h % size_every == 0 or h <= size_early):
            row = n_bones[k] % bone_table.shape[1]
            for b in range(bones.shape[0]):
                e0, e1 = bones[b, 0], bones[b, 1]
                d0 = poses[i, e0, 0] - poses[i, e1, 0]
                d1 = poses[i, e0, 1] - poses[i, e1, 1]
                d2 = poses[i, e0, 2] - poses[i, e1, 2]
                bone_table[k, row, b] = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            n_bones[k] += 1
        settled = settled and track_id[k] != 0 and size_checked[k]
    return out, settled


@njit(cache=True)
def _centre(points):
    """(n, 3) mean of each pose's finite joints (n, J, 3); NaN for a pose with none."""
    n, n_j = points.shape[0], points.shape[1]
    out = np.empty((n, 3))
    for i in range(n):
        s0 = s1 = s2 = 0.0
        m = 0
        for j in range(n_j):
            if points[i, j, 0] == points[i, j, 0]:
                s0 += points[i, j, 0]
                s1 += points[i, j, 1]
                s2 += points[i, j, 2]
                m += 1
        out[i, 0], out[i, 1], out[i, 2] = (s0 / m, s1 / m, s2 / m) if m else (np.nan, np.nan, np.nan)
    return out


@njit(cache=True)
def _pose_distance(a, b) -> float:
    """Mean distance over the joints both poses (J, 3) have; inf when fewer than 3."""
    total = 0.0
    m = 0
    for j in range(a.shape[0]):
        d0, d1, d2 = a[j, 0] - b[j, 0], a[j, 1] - b[j, 1], a[j, 2] - b[j, 2]
        d = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        if d == d:
            total += d
            m += 1
    return total / m if m >= 3 else np.inf


@njit(cache=True)
def _pose_distances(points, poses):
    """(n, m) :func:`_pose_distance` between poses (n, J, 3) and poses (m, J, 3)."""
    out = np.empty((points.shape[0], poses.shape[0]))
    for i in range(points.shape[0]):
        for k in range(poses.shape[0]):
            out[i, k] = _pose_distance(points[i], poses[k])
    return out


@njit(cache=True)
def _duplicate_pairs(points, gate):
    """(k, 2) pairs ``a < b`` of poses (n, J, 3) closer than ``gate`` (mean joint distance), row by row;
    only the pairs whose centres are within ``2 * gate`` are compared joint by joint."""
    n = points.shape[0]
    centre = _centre(points)
    pairs = np.empty((n * (n - 1) // 2, 2), np.int64)
    k = 0
    for a in range(n):
        for b in range(a + 1, n):
            d0, d1, d2 = centre[a, 0] - centre[b, 0], centre[a, 1] - centre[b, 1], centre[a, 2] - centre[b, 2]
            if np.sqrt(d0 * d0 + d1 * d1 + d2 * d2) < 2 * gate and _pose_distance(points[a], points[b]) < gate:
                pairs[k, 0], pairs[k, 1] = a, b
                k += 1
    return pairs[:k]
