"""3D tracks of several people with stable identities, live and offline.

:class:`PersonTracker` holds one :class:`Track` per person: its last pose,
its whole-body velocity, when it was last seen and its body size.  Per instant:

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
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from triangulate.skeletons import Skeleton


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


@dataclass
class Track:
    key: int  # position in PersonTracker.tracks (stable)
    pose: np.ndarray  # (J, 3) last pose, each joint's last finite value
    last_s: float
    first_s: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    hits: int = 1
    track_id: int = 0  # 0 while tentative
    bones: list = field(default_factory=list)
    merged_into: int | None = None
    size_checked: bool = False

    def size(self) -> np.ndarray:
        """Median length of every bone over the kept samples (NaN for a bone never measured)."""
        if not self.bones:
            return np.full(0, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.array(self.bones), axis=0)


class PersonTracker:
    """Tracks with stable identities (see the module docstring)."""

    def __init__(self, skeleton: Skeleton, config: TrackingConfig | None = None):
        self.skeleton = skeleton
        self.config = config or TrackingConfig()
        self.tracks: list[Track] = []
        self.next_id = 1
        self._predicted: list[int] = []
        self._waiting: list[int] = []
        self.bones = skeleton.bones if len(skeleton.bones) else np.zeros((0, 2), int)

    # ------------------------------------------------------------------ per instant
    def predict(self, time_s: float) -> np.ndarray:
        """(T, J, 3) predicted poses of the tracks seen within ``max_gap_s`` (the association's priors)."""
        cfg = self.config
        live = [t for t in self.tracks if t.merged_into is None and time_s - t.last_s <= cfg.prior_s]
        self._predicted = [t.key for t in live]
        self._waiting = [t.key for t in self.tracks if t.merged_into is None
                         and cfg.prior_s < time_s - t.last_s <= cfg.max_gap_s]
        if not live:
            return np.zeros((0, len(self.skeleton.joint_names), 3))
        dt = np.array([min(time_s - t.last_s, 0.3) for t in live])
        return np.stack([t.pose for t in live]) + (np.stack([t.velocity for t in live]) * dt[:, None])[:, None]

    def update(self, time_s: float, track: np.ndarray, points: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._update(time_s, track, points)

    def _update(self, time_s: float, track: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Groups of the association (``track`` (G,) prior index or -1, ``points`` (G, J, 3)) -> track keys (G,), -1 = dropped.

        Call :meth:`predict` for the same instant first (``track`` indexes its rows).
        """
        cfg = self.config
        keys = np.full(len(track), -1)
        seen = set()
        for g in np.flatnonzero(track >= 0):
            keys[g] = self._predicted[int(track[g])]
        self._merge_duplicates(keys, points)
        seen.update(int(k) for k in keys[keys >= 0])
        new = np.flatnonzero(track < 0)
        if new.size:
            centre = _centre(points[new])
            ok = np.isfinite(centre).all(-1)
            new = new[ok]
        if new.size:  # a new group beside a person tracked now is more views of that person
            dup = [any(_pose_distance(points[g:g + 1], self.tracks[k].pose)[0] < cfg.duplicate_m for k in seen)
                   for g in new]
            new = new[~np.array(dup, bool)]
        if new.size:
            unseen = [k for k in self._predicted + self._waiting if k not in seen]
            if unseen:
                cost = np.stack([_pose_distance(points[new], self.tracks[k].pose) for k in unseen], 1)  # (n, u)
                gap = np.array([time_s - self.tracks[k].last_s for k in unseen])
                gate = cfg.new_gate_m + cfg.max_speed_m_s * gap
                rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
                hit = cost[rows, cols] < gate[cols]
                for r, c in zip(rows[hit], cols[hit]):
                    keys[new[r]] = unseen[c]
                    seen.add(unseen[c])
                new = np.array([g for g in new if keys[g] < 0], int)
            for g in new:
                t = Track(len(self.tracks), points[g].copy(), time_s, time_s)
                self.tracks.append(t)
                keys[g] = t.key
                seen.add(t.key)
        done = set()
        for g in np.flatnonzero(keys >= 0):
            if int(keys[g]) not in done:  # a merged duplicate advances its track once
                done.add(int(keys[g]))
                self._advance(self.tracks[int(keys[g])], time_s, points[g])
        self._expire(time_s)
        return keys

    def _merge_duplicates(self, keys: np.ndarray, points: np.ndarray) -> None:
        """Two prior-based groups with nearly the same pose are one person: a stale track took some
        of the views of a person tracked now.  The group of the track seen more recently keeps both."""
        idx = np.flatnonzero(keys >= 0)
        if idx.size < 2:
            return
        centre = _centre(points[idx])
        dc = np.sqrt(((centre[:, None] - centre[None]) ** 2).sum(-1))
        near = np.argwhere(np.triu(dc < 2 * self.config.duplicate_m, 1))  # cheap test first
        for a, b in near:
            if _pose_distance(points[idx[a]][None], points[idx[b]])[0] >= self.config.duplicate_m:
                continue
            ga, gb = idx[a], idx[b]
            ta, tb = self.tracks[int(keys[ga])], self.tracks[int(keys[gb])]
            if ta is tb:
                continue
            fresh, stale = (ta, tb) if (ta.last_s, ta.hits) >= (tb.last_s, tb.hits) else (tb, ta)
            keys[keys == stale.key] = fresh.key

    def _advance(self, t: Track, time_s: float, pose: np.ndarray) -> None:
        cfg = self.config
        ok = pose[:, 0] == pose[:, 0]
        dt = time_s - t.last_s
        if dt > 0:
            step = pose - t.pose
            both = step[:, 0] == step[:, 0]
            n = int(both.sum())
            if n >= 3:
                v = np.where(both[:, None], step, 0.0).sum(0) / (n * dt)
                speed = float(np.sqrt(v @ v))
                if speed > cfg.max_speed_m_s:
                    v *= cfg.max_speed_m_s / speed
                t.velocity = (1 - cfg.velocity_smoothing) * t.velocity + cfg.velocity_smoothing * v
            t.hits += 1
        t.pose = np.where(ok[:, None], pose, t.pose)
        t.last_s = time_s
        if len(self.bones) and (t.hits % cfg.size_every == 0 or t.hits <= 4 * cfg.reid_frames):
            b = np.linalg.norm(pose[self.bones[:, 0]] - pose[self.bones[:, 1]], axis=-1)
            t.bones.append(b)
            del t.bones[:-cfg.size_history]
        if not t.size_checked and t.hits in (cfg.reid_frames, 2 * cfg.reid_frames):
            # tried twice, as the size estimate settles (15 and 30 instants)
            t.size_checked = self._reidentify(t) or t.hits >= 2 * cfg.reid_frames
        if t.track_id == 0 and t.hits >= cfg.min_hits and (t.size_checked or not self._lost_before(t)):
            # while someone is lost, a new track waits for the size test before it gets an id of its
            # own: live, a returning person is published under their old id, never a new one first
            t.track_id = self.next_id
            self.next_id += 1

    def _lost_before(self, t: Track) -> list[Track]:
        """Confirmed tracks lost (unseen > ``max_gap_s``) before ``t`` began: whom ``t`` may be."""
        cfg = self.config
        return [o for o in self.tracks if o is not t and o.merged_into is None and o.track_id
                and o.last_s < t.first_s and t.first_s - o.last_s > cfg.max_gap_s]

    def _reidentify(self, t: Track) -> bool:
        """Give ``t`` the identity of the one lost track of its size, if there is exactly one (True: done)."""
        cfg = self.config
        lost = self._lost_before(t)
        if not lost or not len(self.bones):
            return False
        mine = t.size()
        diffs = []
        for o in lost:
            rel = np.abs(mine - o.size()) / np.maximum(o.size(), 1e-6)
            diffs.append(float(np.nanmedian(rel)) if np.isfinite(rel).any() else np.inf)
        diffs = np.array(diffs)
        match = diffs < cfg.reid_tolerance
        if match.sum() == 1:
            o = lost[int(np.argmax(match))]
            t.track_id = o.track_id
            o.merged_into = t.key
            return True
        return False

    def _expire(self, time_s: float) -> None:
        cfg = self.config
        for t in self.tracks:
            if t.merged_into is None and time_s - t.last_s > cfg.max_gap_s and t.track_id == 0:
                t.merged_into = -1  # a tentative track that vanished: forgotten
            elif t.merged_into is None and time_s - t.last_s > cfg.reid_s:
                t.merged_into = -1

    # ------------------------------------------------------------------ results
    def ids(self) -> np.ndarray:
        """(n_tracks,) identity of every track key (0: never confirmed)."""
        return np.array([t.track_id for t in self.tracks], int)

    def confirmed(self) -> list[tuple[int, int]]:
        """(key, id) of the confirmed tracks."""
        return [(t.key, t.track_id) for t in self.tracks if t.track_id]


def _centre(points: np.ndarray) -> np.ndarray:
    """(n, 3) mean of each pose's finite joints; NaN for a pose with none."""
    ok = points[..., 0] == points[..., 0]
    return np.where(ok[..., None], points, 0.0).sum(-2) / ok.sum(-1)[..., None]


def _pose_distance(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(n,) mean distance over common joints between poses (n, J, 3) and one pose (J, 3); inf when none."""
    diff = points - pose[None]
    d = np.sqrt((diff * diff).sum(-1))
    ok = d == d
    n = ok.sum(-1)
    return np.where(n >= 3, np.where(ok, d, 0.0).sum(-1) / np.maximum(n, 1), np.inf)
