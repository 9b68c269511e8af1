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

from numba import njit

from triangulate.dlt import LinearTriangulator, solve_normal

_BIG = 1e6


@njit(cache=True)
def _median(buf: np.ndarray, n: int) -> float:
    """Median of ``buf[:n]`` (sorted in place; inf when ``n == 0``): the mean of the two middle entries.

    Real detectors put a few joints of a right view far off (a hand, a foot); the median
    over joints ignores them where a mean would not.  Insertion sort: n is a skeleton's joints."""
    if n == 0:
        return np.inf
    for i in range(1, n):
        x = buf[i]
        k = i - 1
        while k >= 0 and buf[k] > x:
            buf[k + 1] = buf[k]
            k -= 1
        buf[k + 1] = x
    return 0.5 * (buf[(n - 1) >> 1] + buf[n >> 1])


@njit(cache=True)
def _row_medians(values, ok):
    """(M,) median of each row's entries where ``ok`` (M, K) and their count (inf where none)."""
    m, k = values.shape
    out = np.empty(m)
    count = np.zeros(m, np.int64)
    buf = np.empty(k)
    for i in range(m):
        n = 0
        for j in range(k):
            if ok[i, j]:
                buf[n] = values[i, j]
                n += 1
        out[i] = _median(buf, n)
        count[i] = n
    return out, count


def masked_median(values: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over the last axis of the entries where ``ok`` (inf where none), and their count."""
    shape = values.shape[:-1]
    med, n = _row_medians(np.ascontiguousarray(values).reshape(-1, values.shape[-1]),
                          np.ascontiguousarray(ok).reshape(-1, ok.shape[-1]))
    return med.reshape(shape), n.reshape(shape)


@njit(cache=True)
def _track_cost_kernel(x0, y0, seen, usable, cx, cy, z, min_joints, big):
    """(C, P, T) median joint distance (metres at the track's depth) of every detection to every track
    pose, ``cx, cy, z`` (C, T, J) the poses in each camera's frame; ``big`` where fewer than
    ``min_joints`` joints are comparable (seen, in front of the camera) or the detection is not usable."""
    n_c, n_p, n_j = x0.shape
    n_t = z.shape[1]
    cost = np.empty((n_c, n_p, n_t))
    buf = np.empty(n_j)
    for c in range(n_c):
        for p in range(n_p):
            for t in range(n_t):
                n = 0
                if usable[c, p]:
                    for j in range(n_j):
                        if seen[c, p, j] and z[c, t, j] > 0:
                            dx = x0[c, p, j] * z[c, t, j] - cx[c, t, j]
                            dy = y0[c, p, j] * z[c, t, j] - cy[c, t, j]
                            buf[n] = np.sqrt(dx * dx + dy * dy)
                            n += 1
                cost[c, p, t] = _median(buf, n) if n >= min_joints else big
    return cost


@njit(cache=True)
def _assign_direct(cost, gate, big):
    """The assignment of :meth:`CrossViewAssociator.assign` when every comparable detection's cheapest
    track (first on a tie) differs from the others' in its camera: ``(slots (T, C), True)``; else
    ``(-, False)`` and the solver decides."""
    n_c, n_p, n_t = cost.shape
    slots = np.full((n_t, n_c), -1)
    taken = np.zeros(n_t, np.bool_)
    for c in range(n_c):
        taken[:] = False
        for p in range(n_p):
            best = 0
            for t in range(1, n_t):
                if cost[c, p, t] < cost[c, p, best]:
                    best = t
            least = cost[c, p, best]
            if least < big:  # a detection no track can be compared with takes no part
                if taken[best]:
                    return slots, False
                taken[best] = True
                if least < gate:
                    slots[best, c] = p
    return slots, True


@njit(cache=True)
def _group_views(slots, qw, x0, y0, seen):
    """Each group's (``slots`` (G, C)) summed DLT view terms (10, G, J), in camera order, and its
    members' observations ``x``, ``y``, ``use`` (C, G, J) (0 / False where the group has no view)."""
    n_g, n_c = slots.shape
    n_j = qw.shape[2]
    q = np.zeros((qw.shape[3], n_g, n_j))
    x = np.zeros((n_c, n_g, n_j))
    y = np.zeros((n_c, n_g, n_j))
    use = np.zeros((n_c, n_g, n_j), np.bool_)
    for g in range(n_g):
        for c in range(n_c):
            p = slots[g, c]
            if p < 0:
                continue
            for j in range(n_j):
                for m in range(qw.shape[3]):
                    q[m, g, j] += qw[c, p, j, m]
                x[c, g, j] = x0[c, p, j]
                y[c, g, j] = y0[c, p, j]
                use[c, g, j] = seen[c, p, j]
    return q, x, y, use


@njit(cache=True)
def _view_error_kernel(slots, use, err2, scale, points):
    """(G, C) each view's reprojection error in its group's fit (``points`` (3, G, J)): the median over its joints of
    pixel error / (focal / depth), i.e. metres at the joint's depth; inf where the group has no view.
    A joint with no 3D point (fewer than two views) does not count; a joint behind the camera
    (``scale`` 0, ``err2`` inf) counts as infinitely wrong: a view cannot see it there."""
    n_g, n_c = slots.shape
    n_j = points.shape[2]
    out = np.full((n_g, n_c), np.inf)
    buf = np.empty(n_j)
    for g in range(n_g):
        for c in range(n_c):
            if slots[g, c] < 0:
                continue
            n = 0
            for j in range(n_j):
                if use[c, g, j] and points[0, g, j] == points[0, g, j]:
                    s = scale[c, g, j]
                    buf[n] = np.sqrt(err2[c, g, j]) / s if s > 0 else np.inf
                    n += 1
            out[g, c] = _median(buf, n)
    return out


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
    """One instant's answer.  ``slots`` (G, C): the detection of each group in each camera (-1:
    none); ``track`` (G,): the prior track index of each group (-1: a new person);
    ``points`` (G, J, 3) the groups' quick DLT poses (NaN where < 2 views);
    ``n_views`` (G,) cameras per group; ``n_slots`` detection slots per camera."""

    slots: np.ndarray
    track: np.ndarray
    points: np.ndarray
    n_views: np.ndarray
    n_slots: int

    @property
    def group(self) -> np.ndarray:
        """(C, P) the group of each detection slot (-1: none)."""
        group = np.full((self.slots.shape[1], self.n_slots), -1)
        g, c = np.nonzero(self.slots >= 0)
        group[c, self.slots[g, c]] = g
        return group


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
    the weight of each keypoint (its confidence, 0 where unused) and ``seen`` where
    it is > 0; ``usable`` (C, P) detections with enough confident joints; ``x0``,
    ``y0`` (C, P, J) the coordinates with 0 where unused, and ``qw`` (C, P, J, 10)
    their DLT view terms (:func:`triangulate.dlt.view_terms`) times the squared
    weight, so that triangulating any grouping is a sum of these, not a new pass
    over the observations.
    Every array is contiguous, camera axis first: the per-instant steps are
    few operations on small arrays, and their cost is mostly the operations'
    number and layout.  :meth:`CrossViewAssociator.prepare` makes them, for one
    instant or for many at once (then :meth:`frame` takes one).
    """

    xn: np.ndarray
    w: np.ndarray
    seen: np.ndarray
    usable: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    qw: np.ndarray

    def frame(self, f: int) -> "Views":
        """Instant ``f`` of views prepared for many (frame axis first)."""
        return Views(self.xn[f], self.w[f], self.seen[f], self.usable[f], self.x0[f], self.y0[f], self.qw[f])


class CrossViewAssociator:
    """Cross-view association for one fixed set of cameras (see the module docstring)."""

    def __init__(self, lin: LinearTriangulator, config: AssociationConfig | None = None):
        self.lin = lin
        self.config = config or AssociationConfig()
        self.n_cameras = lin.n_cameras
        self.essential = essential_matrices(lin.extrinsics)
        self.focal = lin.focal
        self._cams = np.arange(self.n_cameras)[:, None]

    def prepare(self, xn: np.ndarray, conf: np.ndarray) -> Views:
        """xn (C, P, J, 2) normalised coordinates (NaN where missing), conf (C, P, J) -> :class:`Views`;
        xn (C, F, P, J, 2) and conf (C, F, P, J): views of F instants (frame axis first)."""
        cfg = self.config
        if xn.ndim == 5:
            xn, conf = xn.transpose(1, 0, 2, 3, 4), conf.transpose(1, 0, 2, 3)
        xn = np.ascontiguousarray(xn)
        with np.errstate(invalid="ignore"):
            w = np.where((xn[..., 0] == xn[..., 0]) & (conf >= cfg.min_confidence), conf, 0.0)
        seen = w > 0
        usable = seen.sum(-1) >= cfg.min_joints
        x0 = np.where(seen, xn[..., 0], 0.0)
        y0 = np.where(seen, xn[..., 1], 0.0)
        lead, n_c = x0.shape[:-3], x0.shape[-3]
        feats = np.stack([x0 * x0 + y0 * y0, x0, y0, np.ones_like(x0)], -1).reshape(lead + (n_c, -1, 4))
        q = np.matmul(feats, self.lin.basis).reshape(x0.shape + (10,))  # view_terms, per camera
        return Views(xn, w, seen, usable, x0, y0, q * (w * w)[..., None])

    # ------------------------------------------------------------------ costs
    def track_costs(self, v: Views, poses: np.ndarray) -> np.ndarray:
        """(C, P, T) median joint distance (m at the track's depth) of detections to track poses (T, J, 3);
        BIG where not comparable (fewer than ``min_joints`` common joints, or the detection not usable)."""
        cx, cy, z = self.lin.camera_planes(poses.transpose(2, 0, 1))  # (C, T, J) each
        return _track_cost_kernel(v.x0, v.y0, v.seen, v.usable, cx, cy, z, self.config.min_joints, _BIG)

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
        """(T, C) detection of each track in each camera (-1: none) from costs (C, P, T): every camera's
        optimal assignment, solved as one problem (block-diagonal, other cameras' blocks forbidden), gated.

        The usual instant needs no solver: when every comparable detection's cheapest track differs from the others' in its camera, giving each
        detection that track reaches the lower bound (the sum of the row minima), so it is the
        optimum the solver would find.  (At most as many detections as tracks then compete.)"""
        n_c, n_p, n_t = cost.shape
        slots, direct = _assign_direct(cost, self.config.track_gate_m, _BIG)
        if direct:
            return slots
        whole = np.full((n_c, n_p, n_c, n_t), np.inf)
        whole[self._cams[:, 0], :, self._cams[:, 0], :] = cost
        rows, cols = linear_sum_assignment(whole.reshape(n_c * n_p, n_c * n_t))
        c, p, t = rows // n_p, rows % n_p, cols % n_t
        keep = cost[c, p, t] < self.config.track_gate_m
        slots = np.full((n_t, n_c), -1)
        slots[t[keep], c[keep]] = p[keep]
        return slots

    # ------------------------------------------------------------------ 3D of groups
    def triangulate_groups(self, slots: np.ndarray, v: Views):
        """Quick DLT of every group, ``slots`` (G, C) its detection in each camera (-1: none):
        points (G, J, 3) and each view's reprojection error (G, C) (median over its joints, metres
        at their depth; inf where the group has no view, or most of its joints lie behind it).  A
        group holds at most one detection per camera, so its normal equations are the weighted sum
        of its members' view terms."""
        q, x, y, use = _group_views(slots, v.qw, v.x0, v.y0, v.seen)
        points = solve_normal(q)  # (3, G, J)
        err2, scale = self.lin.residuals_sq(points, x, y)  # (C, G, J) each
        return points.transpose(1, 2, 0), _view_error_kernel(slots, use, err2, scale, points)

    def _verified(self, slots: np.ndarray, v: Views):
        """Triangulate, release views beyond ``verify_m``, triangulate again."""
        points, err = self.triangulate_groups(slots, v)
        bad = err > self.config.verify_m  # (inf where no view: -1 stays -1)
        if bad.any():
            slots = np.where(bad, -1, slots)
            points, _ = self.triangulate_groups(slots, v)
        return slots, points

    # ------------------------------------------------------------------ one instant
    def associate(self, xn: np.ndarray, conf: np.ndarray, priors: np.ndarray | None = None) -> Association:
        """xn (C, P, J, 2) normalised coordinates (NaN where missing), conf (C, P, J), priors (T, J, 3) or None."""
        return self.associate_views(self.prepare(xn, conf), priors)

    def associate_views(self, v: Views, priors: np.ndarray | None = None) -> Association:
        """:meth:`associate` on views from :meth:`prepare` (prepared for many instants at once offline)."""
        cfg = self.config
        n_c, n_p, n_j = v.w.shape
        usable = v.usable
        n_t = 0 if priors is None else len(priors)
        slots = np.full((n_t, n_c), -1)
        points = np.full((n_t, n_j, 3), np.nan)  # tracks no detection is usable for: no point
        n_usable = int(usable.sum())
        if n_t and n_usable:
            ref, chosen = priors, None
            for r in range(cfg.rounds):
                proposed = self.assign(self.track_costs(v, ref))
                if chosen is not None and np.array_equal(proposed, chosen):
                    break  # the fresh poses chose as the priors did: the same groups again
                chosen = proposed
                slots, points = self._verified(proposed, v)
                if (slots >= 0).sum() == n_usable:
                    break  # every detection has its person: another round would change nothing
                ref = np.where(points == points, points, priors)
        track = np.arange(n_t)
        # ---- the detections no track claims: new people, clustered over all camera pairs at once
        if (slots >= 0).sum() < n_usable - 1:
            free = usable.copy()
            g, c = np.nonzero(slots >= 0)
            free[c, slots[g, c]] = False
            free_c, free_p = np.nonzero(free)
            if free_c[0] != free_c[-1]:  # (sorted) at least two cameras
                clusters = self._cluster(free_c, v.xn[free_c, free_p], v.w[free_c, free_p])
                if clusters.max() >= 0:
                    new = np.full((int(clusters.max()) + 1, n_c), -1)
                    inside = clusters >= 0
                    new[clusters[inside], free_c[inside]] = free_p[inside]
                    new, new_points = self._verified(new, v)
                    slots = np.concatenate([slots, new])
                    points = np.concatenate([points, new_points])
                    track = np.concatenate([track, np.full(len(new), -1)])
        # groups need two views
        views = (slots >= 0).sum(1)
        keep = views >= 2
        if not keep.all():
            slots, track, points, views = slots[keep], track[keep], points[keep], views[keep]
        return Association(slots, track, points, views, n_p)

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
