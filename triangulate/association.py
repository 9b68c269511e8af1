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

from triangulate.dlt import LinearTriangulator, solve_terms, view_terms

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


@dataclass
class Views:
    """One instant's detections, prepared once for every step of the association.

    ``xn`` (C, P, J, 2) normalised coordinates (NaN where missing); ``w`` (C, P, J)
    the weight of each keypoint (its confidence, 0 where unused); ``usable`` (C, P)
    detections with enough confident joints; ``xn0`` ``xn`` with 0 where unused and
    ``q`` (C, P, J, 10) its DLT view terms (:func:`triangulate.dlt.view_terms`), so that
    triangulating any grouping is a weighted sum of these, not a new pass over the
    observations.  :meth:`CrossViewAssociator.prepare` makes it, for one instant or
    for many at once (leading frame axis after the camera axis).
    """

    xn: np.ndarray
    w: np.ndarray
    usable: np.ndarray
    xn0: np.ndarray
    q: np.ndarray

    def frame(self, f: int) -> "Views":
        """The instant ``f`` of views prepared for many (camera axis first, frames second)."""
        return Views(self.xn[:, f], self.w[:, f], self.usable[:, f], self.xn0[:, f], self.q[:, f])


class CrossViewAssociator:
    """Cross-view association for one fixed set of cameras (see the module docstring)."""

    def __init__(self, lin: LinearTriangulator, config: AssociationConfig | None = None):
        self.lin = lin
        self.config = config or AssociationConfig()
        self.n_cameras = lin.n_cameras
        self.essential = essential_matrices(lin.extrinsics)
        self.focal = lin.focal
        self._cams = np.arange(self.n_cameras)

    def prepare(self, xn: np.ndarray, conf: np.ndarray) -> Views:
        """xn (C, ..., J, 2) normalised coordinates (NaN where missing), conf (C, ..., J) -> :class:`Views`."""
        cfg = self.config
        with np.errstate(invalid="ignore"):
            w = np.where((xn[..., 0] == xn[..., 0]) & (conf >= cfg.min_confidence), conf, 0.0)
        usable = (w > 0).sum(-1) >= cfg.min_joints
        xn0 = np.where(w[..., None] > 0, xn, 0.0)
        n_c = xn.shape[0]
        q = view_terms(xn0.reshape(n_c, -1, 2).transpose(1, 0, 2), self.lin.basis)  # (N, C, 10)
        return Views(xn, w, usable, xn0, np.ascontiguousarray(q.transpose(1, 0, 2)).reshape(xn.shape[:-1] + (10,)))

    # ------------------------------------------------------------------ costs
    def track_costs(self, v: Views, poses: np.ndarray) -> np.ndarray:
        """(C, P, T) mean joint distance (m at the track's depth) of detections to track poses; BIG where not comparable."""
        cfg = self.config
        cam = self.lin.camera_coords(poses).transpose(2, 0, 1, 3)  # (C, T, J, 3)
        z = cam[..., 2]
        diff = v.xn[:, :, None] * z[:, None, :, :, None] - cam[:, None, :, :, :2]  # (C, P, T, J, 2), metres at depth
        d = np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2)
        ok = (v.w[:, :, None] > 0) & (d == d) & (z[:, None] > 0)
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

    # ------------------------------------------------------------------ assignment
    def assign(self, cost: np.ndarray) -> np.ndarray:
        """(C, P) track of each detection (-1: none) from costs (C, P, T): every camera's optimal
        assignment, solved as one problem (block-diagonal, other cameras' blocks forbidden), gated."""
        n_c, n_p, n_t = cost.shape
        whole = np.full((n_c, n_p, n_c, n_t), np.inf)
        whole[self._cams, :, self._cams, :] = cost
        rows, cols = linear_sum_assignment(whole.reshape(n_c * n_p, n_c * n_t))
        c, p, t = rows // n_p, rows % n_p, cols % n_t
        keep = cost[c, p, t] < self.config.track_gate_m
        group = np.full((n_c, n_p), -1)
        group[c[keep], p[keep]] = t[keep]
        return group

    # ------------------------------------------------------------------ 3D of groups
    def triangulate_groups(self, group: np.ndarray, n_groups: int, v: Views):
        """Quick DLT of every group: points (G, J, 3) and each slot's reprojection error (C, P)
        (median over its joints, metres at their depth).  A group holds at most one detection per
        camera, so its normal equations are the weighted sum of its members' view terms."""
        n_c, n_p, n_j = v.w.shape
        cs, ps = np.nonzero(group >= 0)
        gs = group[cs, ps]
        member = np.zeros((n_groups, n_c), bool)
        slot = np.zeros((n_groups, n_c), int)
        member[gs, cs] = True
        slot[gs, cs] = ps
        wt = v.w[self._cams, slot] * member[..., None]  # (G, C, J): 0 where the camera is not in the group
        acc = (v.q[self._cams, slot] * (wt * wt)[..., None]).sum(1)  # (G, J, 10), cameras summed in order
        points = solve_terms(acc)
        err2, depth = self.lin.errors_sq(points.reshape(-1, 3),
                                         v.xn0[self._cams, slot].transpose(0, 2, 1, 3).reshape(-1, n_c, 2))
        err = (np.sqrt(err2) * depth / self.focal).reshape(n_groups, n_j, n_c).transpose(0, 2, 1)  # (G, C, J) m
        used = (wt > 0) & (err == err) & (err < np.inf)
        view_err, _ = masked_median(err, used)  # (G, C)
        slot_err = np.full((n_c, n_p), np.inf)
        slot_err[cs, ps] = view_err[gs, cs]
        return points, slot_err

    def _verified(self, group: np.ndarray, n_groups: int, v: Views):
        """Triangulate, release views beyond ``verify_m``, triangulate again."""
        if n_groups == 0:
            return group, np.zeros((0, v.w.shape[2], 3))
        points, err = self.triangulate_groups(group, n_groups, v)
        bad = (group >= 0) & (err > self.config.verify_m)
        if bad.any():
            group = np.where(bad, -1, group)
            points, _ = self.triangulate_groups(group, n_groups, v)
        return group, points

    # ------------------------------------------------------------------ one instant
    def associate(self, xn: np.ndarray, conf: np.ndarray, priors: np.ndarray | None = None) -> Association:
        """xn (C, P, J, 2) normalised coordinates (NaN where missing), conf (C, P, J), priors (T, J, 3) or None."""
        return self.associate_views(self.prepare(xn, conf), priors)

    def associate_views(self, v: Views, priors: np.ndarray | None = None) -> Association:
        """:meth:`associate` on views from :meth:`prepare` (prepared for many instants at once offline)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._associate(v, priors)

    def _associate(self, v: Views, priors) -> Association:
        cfg = self.config
        n_c, n_p, n_j = v.w.shape
        usable = v.usable
        group = np.full((n_c, n_p), -1)
        n_t = 0 if priors is None else len(priors)
        points = np.full((n_t, n_j, 3), np.nan)  # tracks no detection is usable for: no point
        if n_t and usable.any():
            ref = priors
            for r in range(cfg.rounds):
                cost = self.track_costs(v, ref)
                cost[~usable] = _BIG
                group, points = self._verified(self.assign(cost), n_t, v)
                if not (usable & (group < 0)).any():
                    break  # every detection has its person: another round would change nothing
                ref = np.where(points == points, points, priors)
        track = np.arange(n_t)
        # ---- the detections no track claims: new people, clustered over all camera pairs at once
        free_c, free_p = np.nonzero(usable & (group < 0))
        if free_c.size >= 2 and free_c[0] != free_c[-1]:  # (sorted) at least two cameras
            clusters = self._cluster(free_c, v.xn[free_c, free_p], v.w[free_c, free_p])
            if clusters.max() >= 0:
                n_new = int(clusters.max()) + 1
                sub = np.full((n_c, n_p), -1)
                sub[free_c, free_p] = clusters
                sub, new_points = self._verified(sub, n_new, v)
                group = np.where(sub >= 0, sub + n_t, group)
                points = np.concatenate([points.reshape(-1, n_j, 3), new_points])
                track = np.concatenate([track, np.full(n_new, -1)])
        # groups need two views; renumber densely
        n_g = len(track)
        if n_g == 0:
            return Association(group, track, points.reshape(0, n_j, 3), np.zeros(0, int))
        views = np.bincount(group[group >= 0], minlength=n_g)
        keep = views >= 2
        if keep.all():
            return Association(group, track, points, views)
        remap = np.full(n_g + 1, -1)
        remap[:n_g][keep] = np.arange(int(keep.sum()))
        group = remap[np.where(group >= 0, group, n_g)]
        return Association(group, track[keep], points[keep], views[keep])

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
