"""Which detection in camera A is which in camera B: cross-view association of several people.

One instant at a time (:meth:`CrossViewAssociator.associate`), on normalised
undistorted coordinates (:class:`triangulate.lens.LensBatch`), all cameras in
one problem:

1. **3D tracks as the prior.**  Every track's predicted pose is projected into
   every camera; the cost of detection ``(c, p)`` for track ``t`` is the mean
   distance between their joints *in metres at the track's depth* (image
   distance x depth: the same gate for a near and a far camera), the median
   over their joints so a few joints far off cannot dominate.  Each camera's detections
   go to the tracks by an optimal assignment (Hungarian), all cameras against
   the same 3D hypotheses, so the result is consistent across cameras by
   construction, not built camera by camera.
2. **3D verification, twice.**  The views assigned to a track are triangulated
   together (the closed-form DLT of :mod:`triangulate.dlt`); a view whose
   reprojection error (median over its joints, in metres at their depth)
   exceeds ``verify_m`` is released.  Then the assignment is solved again against
   those fresh 3D poses, which pool every camera's evidence, and verified again.
3. **New people** (no track, or detections no track claims) are clustered
   over *all* camera pairs at once: the symmetric epipolar distance of every
   pair of detections from different cameras (median over their common
   joints), edges taken globally cheapest first, two clusters merged when they
   share no camera and their average linkage stays under ``epipolar_gate``.  Two views are enough to start a person.  Clusters are
   triangulated and verified like tracks.

Everything per instant is a handful of array operations over cameras x
people x joints plus one small assignment per camera; the Python work grows
with the number of cameras, not with joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from triangulate.dlt import LinearTriangulator

_BIG = 1e6


def masked_median(values: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis of the entries where ``ok`` (inf where none), and their count.

    By one sort (unused entries sort last as inf): ``np.nanmedian`` does the same ten times slower.
    Real detectors put a few joints of a right view far off (a hand, a foot); the median
    ignores them where a mean would not.
    """
    v = np.sort(np.where(ok, values, np.inf), axis=-1)
    n = ok.sum(-1)
    flat = v.reshape(-1, v.shape[-1])
    rows = np.arange(flat.shape[0])
    nf = n.reshape(-1)
    lo = flat[rows, np.maximum(nf - 1, 0) // 2]
    hi = flat[rows, np.minimum(nf // 2, v.shape[-1] - 1)]
    lo, hi = lo.reshape(n.shape), hi.reshape(n.shape)
    return np.where(n > 0, 0.5 * (lo + hi), np.inf), n


@dataclass
class AssociationConfig:
    """Gates of :class:`CrossViewAssociator` (units in the names).

    ``track_gate_m``: largest mean joint distance (metres at the track's depth)
    for a detection to be claimed by a track.  ``epipolar_gate``: largest
    median symmetric epipolar distance (normalised image units, i.e. about
    radians: 0.012 is 12 px at a focal length of 1000 px) for two detections to be
    one new person.
    ``verify_m``: largest reprojection error of a view in its group's
    triangulation (median over its joints, metres at the joints' depth: the
    same gate for every image size and distance).  ``min_joints``: fewest common confident joints for any
    comparison.  ``min_confidence``: keypoints below are ignored.
    """

    track_gate_m: float = 0.3
    epipolar_gate: float = 0.012
    verify_m: float = 0.1
    min_joints: int = 4
    min_confidence: float = 0.3
    rounds: int = 2


@dataclass
class Association:
    """One instant's answer.  ``group`` (C, P): the group of each detection slot (-1: none);
    ``track`` (G,): the prior track index of each group (-1: a new person);
    ``points`` (G, J, 3) the groups' quick DLT poses (NaN where < 2 views);
    ``n_views`` (G,) cameras per group."""

    group: np.ndarray
    track: np.ndarray
    points: np.ndarray
    n_views: np.ndarray


def essential_matrices(extrinsics: np.ndarray) -> np.ndarray:
    """(C, C, 3, 3): ``E[a, b]`` with ``x_b^T E[a, b] x_a = 0`` for normalised homogeneous points."""
    r = extrinsics[:, :, :3]
    t = extrinsics[:, :, 3]
    r_ab = np.einsum("bij,akj->abik", r, r)  # R_b R_a^T
    t_ab = t[None, :, :] - np.einsum("abij,aj->abi", r_ab, t)  # t_b - R_ab t_a
    skew = np.zeros(t_ab.shape[:2] + (3, 3))
    skew[..., 0, 1], skew[..., 0, 2] = -t_ab[..., 2], t_ab[..., 1]
    skew[..., 1, 0], skew[..., 1, 2] = t_ab[..., 2], -t_ab[..., 0]
    skew[..., 2, 0], skew[..., 2, 1] = -t_ab[..., 1], t_ab[..., 0]
    return skew @ r_ab


class CrossViewAssociator:
    """Cross-view association for one fixed set of cameras (see the module docstring)."""

    def __init__(self, lin: LinearTriangulator, config: AssociationConfig | None = None):
        self.lin = lin
        self.config = config or AssociationConfig()
        self.n_cameras = lin.n_cameras
        self.essential = essential_matrices(lin.extrinsics)
        self.focal = lin.focal

    # ------------------------------------------------------------------ costs
    def track_costs(self, xn: np.ndarray, w: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(C, P, T) mean joint distance (m at the track's depth) of detections to track poses; BIG where not comparable."""
        cfg = self.config
        cam = self.lin.camera_coords(poses).transpose(2, 0, 1, 3)  # (C, T, J, 3)
        z = cam[..., 2]
        diff = xn[:, :, None] * z[:, None, :, :, None] - cam[:, None, :, :, :2]  # (C, P, T, J, 2), metres at depth
        d = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2)
        ok = (w[:, :, None] > 0) & (d == d) & (z[:, None] > 0)
        cost, n = masked_median(d, ok)
        return np.where(n >= cfg.min_joints, cost, _BIG)

    def epipolar_costs(self, cams: np.ndarray, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
        """(n, n) median symmetric epipolar distance (normalised image units: radians, about) between
        detections ``xn`` (n, J, 2) of cameras ``cams``; inf between detections of one camera."""
        cfg = self.config
        h = np.concatenate([np.nan_to_num(xn), np.ones(xn.shape[:-1] + (1,))], -1)  # (n, J, 3)
        e = self.essential[cams[:, None], cams[None, :]]  # (n, n, 3, 3): from i's camera to j's
        lines = np.einsum("ijab,ikb->ijka", e, h)  # (n, n, J, 3) line in j's image of i's joints
        num = np.abs((lines * h[None]).sum(-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            d = num / np.linalg.norm(lines[..., :2], axis=-1)  # (n, n, J) in j's normalised image
        sym = 0.5 * (d + d.transpose(1, 0, 2))
        ok = (w[:, None] > 0) & (w[None, :] > 0) & np.isfinite(sym)
        cost, n = masked_median(sym, ok)
        cost = np.where((n >= cfg.min_joints) & (cams[:, None] != cams[None, :]), cost, np.inf)
        return cost

    # ------------------------------------------------------------------ 3D of groups
    def triangulate_groups(self, group: np.ndarray, n_groups: int, xn: np.ndarray, w: np.ndarray):
        """Quick DLT of every group: points (G, J, 3) and each slot's reprojection error (C, P)
        (median over its joints, metres at their depth)."""
        n_c, n_p, n_j = w.shape
        cs, ps = np.nonzero(group >= 0)
        gs = group[cs, ps]
        obs = np.zeros((n_groups, n_j, n_c, 2))
        wt = np.zeros((n_groups, n_j, n_c))
        obs[gs, :, cs] = np.where(w[cs, ps, :, None] > 0, xn[cs, ps], 0.0)
        wt[gs, :, cs] = w[cs, ps]
        flat_obs = obs.reshape(-1, n_c, 2)
        points = self.lin.solve(self.lin.terms(flat_obs), wt.reshape(-1, n_c))  # (G*J, 3)
        err2, depth = self.lin.errors_sq(points, flat_obs)  # (G*J, C) undistorted px, depth m
        err = (np.sqrt(err2) * depth / self.focal).reshape(n_groups, n_j, n_c)  # metres at the joint's depth
        used = (wt > 0) & (err == err) & (err < np.inf)
        view_err, _ = masked_median(err.transpose(0, 2, 1), used.transpose(0, 2, 1))  # (G, C)
        slot_err = np.full((n_c, n_p), np.inf)
        slot_err[cs, ps] = np.where(np.isfinite(view_err[gs, cs]), view_err[gs, cs], np.inf)
        return points.reshape(n_groups, n_j, 3), slot_err

    def _verified(self, group: np.ndarray, n_groups: int, xn, w):
        """Triangulate, release views beyond ``verify_m``, triangulate again."""
        if n_groups == 0:
            return group, np.zeros((0, w.shape[2], 3))
        points, err = self.triangulate_groups(group, n_groups, xn, w)
        bad = (group >= 0) & (err > self.config.verify_m)
        if bad.any():
            group = np.where(bad, -1, group)
            points, _ = self.triangulate_groups(group, n_groups, xn, w)
        return group, points

    # ------------------------------------------------------------------ one instant
    def associate(self, xn: np.ndarray, conf: np.ndarray, priors: np.ndarray | None = None) -> Association:
        """xn (C, P, J, 2) normalised coordinates (NaN where missing), conf (C, P, J), priors (T, J, 3) or None."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._associate(xn, conf, priors)

    def _associate(self, xn, conf, priors) -> Association:
        cfg = self.config
        n_c, n_p, n_j = conf.shape
        w = np.where((xn[..., 0] == xn[..., 0]) & (conf >= cfg.min_confidence), conf, 0.0)
        usable = (w > 0).sum(-1) >= cfg.min_joints  # (C, P)
        group = np.full((n_c, n_p), -1)
        n_t = 0 if priors is None else len(priors)
        points = np.zeros((0, n_j, 3))
        if n_t and usable.any():
            ref = priors
            for r in range(cfg.rounds):
                cost = self.track_costs(xn, w, ref)
                cost[~usable] = _BIG
                group[:] = -1
                for c in np.flatnonzero(usable.any(1)):
                    rows, cols = linear_sum_assignment(cost[c])
                    keep = cost[c, rows, cols] < cfg.track_gate_m
                    group[c, rows[keep]] = cols[keep]
                group, points = self._verified(group, n_t, xn, w)
                if not (usable & (group < 0)).any():
                    break  # every detection has its person: another round would change nothing
                ref = np.where(points == points, points, priors)
        track = np.arange(n_t)
        # ---- the detections no track claims: new people, clustered over all camera pairs at once
        free_c, free_p = np.nonzero(usable & (group < 0))
        if free_c.size >= 2 and np.unique(free_c).size >= 2:
            clusters = self._cluster(free_c, xn[free_c, free_p], w[free_c, free_p])
            if clusters.max() >= 0:
                n_new = int(clusters.max()) + 1
                sub = np.full((n_c, n_p), -1)
                sub[free_c, free_p] = clusters
                sub, new_points = self._verified(sub, n_new, xn, w)
                group = np.where(sub >= 0, sub + n_t, group)
                points = np.concatenate([points.reshape(-1, n_j, 3), new_points])
                track = np.concatenate([track, np.full(n_new, -1)])
        # groups need two views; renumber densely
        n_g = len(track)
        views = np.bincount(group[group >= 0], minlength=n_g) if n_g else np.zeros(0, int)
        keep = views >= 2
        remap = np.full(n_g + 1, -1)
        remap[:n_g][keep] = np.arange(int(keep.sum()))
        group = remap[np.where(group >= 0, group, n_g)]
        return Association(group, track[keep], points.reshape(-1, n_j, 3)[keep] if n_g else points, views[keep])

    def _cluster(self, cams: np.ndarray, xn: np.ndarray, w: np.ndarray) -> np.ndarray:
        """(n,) cluster index of each free detection (-1: alone), average linkage, one camera per cluster."""
        gate = self.config.epipolar_gate
        cost = self.epipolar_costs(cams, xn, w)
        n = len(cams)
        iu, ju = np.triu_indices(n, 1)
        c = cost[iu, ju]
        sel = np.flatnonzero(c < gate)
        label = np.arange(n)
        masks = {i: 1 << int(cams[i]) for i in range(n)}
        members = {i: [i] for i in range(n)}
        for k in sel[np.argsort(c[sel], kind="stable")]:
            a, b = label[iu[k]], label[ju[k]]
            if a == b or masks[a] & masks[b]:
                continue
            link = cost[np.ix_(members[a], members[b])]
            link = link[np.isfinite(link)]
            if link.size == 0 or link.mean() >= gate:
                continue
            members[a] += members.pop(b)
            masks[a] |= masks.pop(b)
            label[members[a]] = a
        out = np.full(n, -1)
        roots = [r for r, m in members.items() if len(m) >= 2]
        for i, r in enumerate(roots):
            out[members[r]] = i
        return out
