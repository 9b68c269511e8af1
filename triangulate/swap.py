"""Left/right swap repair: find the camera frames whose detector mixed up left and right.

A 2D detector that sees a person from behind, or from the side, often labels
the left knee as the right one and vice versa, for the whole body at once.  A
swapped view is a gross outlier for every left/right joint, and when two
cameras swap in the same frame they even agree with each other.

For every camera ``c`` and frame, the left/right joints are triangulated from
the *other* cameras (up to four cameras the best two-view hypothesis that
leaves ``c`` out, as in :mod:`triangulate.robust`; with more, the fit of the
views a first selection found to agree, less ``c``, a leave-one-out downdate
of its normal equations; either way a second swapped camera is outvoted), then
``c``'s labels are scored both ways against those points (truncated squared
pixel error, summed over the left/right joints).  Per frame the camera whose
swapped labels fit best is swapped, and that frame scored again, until no swap
helps.  Every round is one batch over frames x joints x cameras.

Real detectors also swap one limb pair only (the legs of a walker seen from
the side, while the arms stay right).  So several *swap hypotheses* compete
(:func:`swap_hypotheses`): the whole body, the legs alone (with or without the hips), the arms alone; a
camera frame takes the one that gains most.  The repair is then a joint
permutation per camera frame (:func:`detect_swap_states`,
:func:`permute_joints`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triangulate.dlt import LinearTriangulator, Views, solve_normal
from triangulate.robust import ViewSelection, camera_pairs, chunks, pair_hypotheses, select_views

# Up to this many cameras each camera is scored against the others' best two-view hypothesis
# (exhaustive over the pairs: (pairs x cameras) per point, C^3 / 2); with more, against the fit of
# the views that agree, less that camera (O(C)).
PAIR_REFERENCE_CAMERAS = 4


def swap_gain(
    lin: LinearTriangulator,
    xn: np.ndarray,
    valid: np.ndarray,
    permutation: np.ndarray,
    threshold_px: float = 15.0,
) -> np.ndarray:
    """(C, F) how much better each camera frame fits the others with its labels swapped.

    The gain is the drop in truncated squared pixel error, summed over the
    left/right joints, when the camera's labels are swapped; > 0 means the
    swapped labels fit better.  ``xn`` (C, F, J, 2) normalised undistorted
    observations, ``valid`` (C, F, J) bool, ``permutation`` (J,) the skeleton's
    :meth:`~triangulate.skeletons.Skeleton.swap_permutation`.
    """
    gains, _ = joint_swap_gains(lin, xn, valid, permutation, threshold_px)
    return gains.sum(axis=1).T


def joint_swap_gains(
    lin: LinearTriangulator,
    xn: np.ndarray,
    valid: np.ndarray,
    permutation: np.ndarray,
    threshold_px: float = 15.0,
    consensus: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint terms of :func:`swap_gain`: ``(gains (F, L, C), lr (L,))`` for the swapped joints ``lr``.

    A joint's gain depends only on its own and its twin's labels, so the gain
    of swapping any subset of the pairs (a limb) is the sum over that subset.
    Without ``consensus`` each camera is judged against the others' best
    two-view hypothesis (:func:`_pair_references`); with it, (C, F, J) bool
    (views known to agree, e.g. a view selection's inliers), against the fit
    of the consensus views without that camera (:func:`_consensus_references`).
    """
    n_cams, n_frames, n_joints = valid.shape
    permutation = np.asarray(permutation)
    lr = np.flatnonzero(permutation != np.arange(n_joints))
    if n_cams < 3 or lr.size == 0 or n_frames == 0:
        return np.zeros((n_frames, lr.size, n_cams)), lr
    n = n_frames * lr.size

    def planes(a: np.ndarray, joints: np.ndarray) -> np.ndarray:  # (C, F, J, ...) -> (C, F*L, ...)
        return a[:, :, joints].reshape((n_cams, n) + a.shape[3:])

    views = Views.of(planes(xn[..., 0], lr), planes(xn[..., 1], lr), planes(valid, lr), np.ones((n_cams, n)))
    ok_sw = planes(valid, permutation[lr])
    x_sw = np.where(ok_sw, planes(xn[..., 0], permutation[lr]), 0.0)
    y_sw = np.where(ok_sw, planes(xn[..., 1], permutation[lr]), 0.0)
    t2 = threshold_px * threshold_px
    gains = np.zeros((n_cams, n))
    per_point = n_cams if consensus is not None else n_cams * n_cams * (n_cams - 1) // 2
    for sl in chunks(n, per_point):
        v = views[sl]
        if consensus is None:
            ref, usable = _pair_references(lin, v, t2)
        else:
            ref, usable = _consensus_references(lin, v, planes(consensus, lr)[:, sl])
        usable &= v.valid & ok_sw[:, sl]
        keep = np.minimum(_own_camera_err2(lin, ref, v.x, v.y), t2)
        flip = np.minimum(_own_camera_err2(lin, ref, x_sw[:, sl], y_sw[:, sl]), t2)
        gains[:, sl] = np.where(usable, keep - flip, 0.0)
    return gains.T.reshape(n_frames, lr.size, n_cams), lr


def _pair_references(lin: LinearTriangulator, views: Views, t2: float):
    """Per camera, the best two-view hypothesis of the *other* cameras (MSAC cost without that camera's term).

    Returns ``(points (3, C, N), usable (C, N))``.  Exhaustive over the camera
    pairs: (pairs x cameras) per point, affordable for a few cameras only.
    """
    n_cams = views.valid.shape[0]
    pairs = camera_pairs(n_cams)
    k = np.arange(len(pairs))
    hyp = pair_hypotheses(lin, views, np.sqrt(t2), pairs)
    # A hypothesis counts only where its own two views agree with it.
    own = (hyp.err2[pairs[:, 0], k] < t2) & (hyp.err2[pairs[:, 1], k] < t2)  # (K, N)
    total = np.where(own, hyp.total_cost(), np.inf)
    loo = total[None] - hyp.cost  # (C, K, N)
    # Leave camera c out: its own cost term goes, pairs containing it are barred.
    contains = np.zeros((n_cams, len(pairs), 1), bool)
    contains[pairs[:, 0], k] = contains[pairs[:, 1], k] = True
    np.copyto(loo, np.inf, where=contains)
    best = np.argmin(loo, axis=1)  # (C, N)
    cams, cols = np.arange(n_cams)[:, None], np.arange(views.n_points)[None, :]
    return hyp.points[:, best, cols], np.isfinite(loo[cams, best, cols])


def _consensus_references(lin: LinearTriangulator, views: Views, consensus: np.ndarray):
    """Per camera, the pixel-weighted fit of the ``consensus`` views (C, N) other than that camera.

    One fit of the consensus, then each camera's leave-one-out point from the
    same normal equations less that camera's own terms (a downdate): O(C)
    per point.  Returns ``(points (3, C, N), usable (C, N))``: usable where at
    least two other consensus views remain.
    """
    w = consensus.astype(np.float64)
    p = lin.fit(views, w)
    scale = lin.pixel_scale(p)
    w2 = (w * scale) ** 2
    total = lin.normal(views.feats, w2)  # (10, N)
    loo = total[:, None] - lin.camera_terms(views.feats).transpose(1, 0, 2) * w2  # (10, C, N)
    points = solve_normal(loo)  # (3, C, N)
    others = consensus.sum(axis=0) - consensus
    return points, (others >= 2) & np.isfinite(points).all(axis=0)


def _own_camera_err2(lin: LinearTriangulator, points: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared px error (C, N) of point ``points[:, c, n]`` (3, C, N) in camera ``c`` only, against ``x, y`` (C, N).

    :meth:`LinearTriangulator.residuals_sq` would project every point into
    every camera; here each camera needs only its own point.
    """
    ext = lin.extrinsics[:, :, :, None]  # (C, 3, 4, 1)
    u, v, z = (ext[:, r, 0] * points[0] + ext[:, r, 1] * points[1] + ext[:, r, 2] * points[2] + ext[:, r, 3]
               for r in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = (u / z - x) * lin.fx[:, None]
        dy = (v / z - y) * lin.fy[:, None]
        return np.where(z > 0, dx * dx + dy * dy, np.inf)


# Words naming the joints of a limb group, for partial swap hypotheses.
LIMB_WORDS = {
    "legs": ("hip", "knee", "ankle", "heel", "foot", "toe"),
    "legs below the hips": ("knee", "ankle", "heel", "foot", "toe"),
    "arms": ("shoulder", "elbow", "wrist", "pinky", "index", "thumb", "hand"),
}


def swap_hypotheses(joint_names, permutation: np.ndarray) -> np.ndarray:
    """(H, J) permutations to try: the whole-body swap first, then each limb group's alone.

    Groups come from the joint names (:data:`LIMB_WORDS`); a group that is
    empty or equals the whole-body swap is left out.
    """
    permutation = np.asarray(permutation)
    ident = np.arange(len(permutation))
    hyps = [permutation]
    for words in LIMB_WORDS.values():
        sel = [j for j, name in enumerate(joint_names) if permutation[j] != j and any(w in name for w in words)]
        p = ident.copy()
        p[sel] = permutation[sel]
        if np.all(p[p] == ident) and not any(np.array_equal(p, h) for h in hyps) and np.any(p != ident):
            hyps.append(p)
    return np.stack(hyps)


def permute_joints(values: np.ndarray, state: np.ndarray) -> np.ndarray:
    """``values`` (C, F, J, ...) with every camera frame's joints permuted by ``state`` (C, F, J).

    One gather along the flattened camera-frame-joint axis: ``np.take_along_axis`` with the index broadcast
    over the trailing axes was 2-3x slower (16 cameras x 120 frames x 26 joints x 2: 3.1 vs 1.4 ms).
    """
    n_cams, n_frames, n_joints = state.shape
    flat = (np.arange(n_cams * n_frames)[:, None] * n_joints + state.reshape(-1, n_joints)).ravel()
    return values.reshape((flat.size,) + values.shape[3:])[flat].reshape(values.shape)


def swap_setup(skeleton) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(permutation (J,), hypotheses (H, J))`` of a skeleton's left/right repair, ``(None, None)`` without one.

    The permutation is :meth:`~triangulate.skeletons.Skeleton.swap_permutation` (None for no skeleton or
    one without left/right pairs), the hypotheses :func:`swap_hypotheses`.  The offline engine and the
    live triangulator both set up their repair with it.
    """
    perm = None if skeleton is None else skeleton.swap_permutation()
    if perm is None or not np.any(perm != np.arange(len(perm))):
        return None, None
    return perm, swap_hypotheses(skeleton.joint_names, perm)


@dataclass
class SwapStates:
    """The answer of :func:`detect_swap_states`."""

    state: np.ndarray  # (C, F, J) int: label j of camera c, frame f is read from joint state[c, f, j]
    # With the MSAC check: the view selection of the left/right joints (F * L points, frame-major, the
    # joints ``lr``) under ``state``, for every frame it changed (it made them on the way); None without.
    selection: ViewSelection | None
    lr: np.ndarray  # (L,) the left/right joints


def detect_swap_states(
    lin: LinearTriangulator,
    xn: np.ndarray,
    valid: np.ndarray,
    hypotheses: np.ndarray,
    threshold_px: float = 15.0,
    consensus: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    min_views: int = 2,
    tries: int = 3,
    selected: ViewSelection | None = None,
) -> SwapStates:
    """Joint permutation per camera frame that repairs its left/right labels (:class:`SwapStates`).

    Greedy as :func:`detect_swaps`, with several hypotheses (H, J) (e.g.
    :func:`swap_hypotheses`; the first is the whole-body swap and the others
    swap subsets of its pairs): per frame and round the (camera, hypothesis)
    with the largest gain is applied, if it gains more than
    ``threshold_px^2 / 2``; every camera is changed once at most.  One
    :func:`joint_swap_gains` call per round scores all hypotheses.

    With ``weights`` (C, F, J), the views' confidences, and at most
    :data:`PAIR_REFERENCE_CAMERAS` cameras, a change must also
    lower the frame's MSAC cost (:func:`truncated_cost` of a fresh view
    selection, summed over the joints): the ``tries`` best-scored changes
    of each frame and round are tried and the one with the lowest cost is
    taken.  Why: the gain judges a camera against a reference built from the
    others, and with three cameras that reference is one camera pair whose
    depth may be too poor to judge the body (a short baseline); the vote
    then swaps a good camera, or a second camera after the right one
    (the real Pose2Sim demo with three of its cameras: a 736 mm shank).
    The MSAC cost needs no reference: it compares two labellings directly,
    whichever side either calls left.  Only the joints a try relabels are
    selected afresh (:class:`_FrameCosts`); ``selected``, a view selection
    of the left/right joints as detected (F * L points, frame-major, e.g. the
    engine's first one), spares the selection of the labels as they are.

    ``consensus`` (C, F, J) bool, the views a first selection found to agree
    (its inliers): given (and with more than :data:`PAIR_REFERENCE_CAMERAS`
    cameras), each camera is scored against the fit of the consensus without
    it, O(C) per point, instead of the others' best two-view hypothesis,
    O(C^3).  A camera frame once changed leaves the consensus.
    """
    if valid.shape[0] <= PAIR_REFERENCE_CAMERAS:
        consensus = None
    else:
        # Above PAIR_REFERENCE_CAMERAS each camera is judged against the fit of the views that agree (not one
        # camera pair), the reference the MSAC check below exists to back up: skipped there, it cost 3x the
        # swap repair at 16 cameras (620 vs 459 us/frame) and changed no studio output.
        weights = None
    hypotheses = np.atleast_2d(np.asarray(hypotheses))
    full = hypotheses[0]
    n_cams, n_frames, n_joints = valid.shape
    lr = np.flatnonzero(full != np.arange(n_joints))
    relabels = hypotheses[:, lr] != lr[None]  # (H, L): which pairs each hypothesis swaps
    member = relabels.astype(np.float64)
    state = np.broadcast_to(np.arange(n_joints), (n_cams, n_frames, n_joints)).copy()
    changed = np.zeros((n_cams, n_frames), dtype=bool)
    frames = np.arange(n_frames)
    # The frames' MSAC costs (with ``weights``), over the left/right joints only: the others keep their
    # labels under every hypothesis, so their cost is the same on both sides of every comparison.
    costs = None if weights is None else _FrameCosts(lin, xn, valid, weights, full, threshold_px, min_views, selected)
    t2 = threshold_px * threshold_px
    for _ in range(n_cams - 1):
        if frames.size == 0:
            break
        if changed.any():
            sub_state = state[:, frames]
            sub_xn = permute_joints(xn[:, frames], sub_state)
            sub_valid = permute_joints(valid[:, frames], sub_state)
        else:  # first round: every label as detected
            sub_xn, sub_valid = xn[:, frames], valid[:, frames]
        cons = None if consensus is None else consensus[:, frames] & ~changed[:, frames, None]
        per_joint, _ = joint_swap_gains(lin, sub_xn, sub_valid, full, threshold_px, cons)  # (f, L, C)
        gains = np.einsum("hl,flc->hcf", member, per_joint)  # (H, C, f)
        gains[:, changed[:, frames]] = 0.0  # a camera is changed once at most
        flat = gains.reshape(-1, frames.size)
        # (k, f): the tries, best first; without the cost check only the best, the lowest index on a tie
        ranked = np.argsort(-flat, axis=0)[:tries] if costs is not None else np.argmax(flat, axis=0)[None]
        cols = np.arange(frames.size)
        passes = flat[ranked, cols] > 0.5 * t2  # (k, f): the tries whose gain is enough
        pick = np.full(frames.size, -1)
        if costs is not None and passes.any():
            # Every try of every frame in one batch: a try's cost depends only on its own labels, so
            # this is the sequential search, at once.
            k_at, at = np.nonzero(passes)
            h, cam = np.divmod(ranked[k_at, at], n_cams)
            trial_cost = np.full(passes.shape, np.inf)
            trial_cost[k_at, at] = costs.of_tries(state, frames[at], cam, relabels[h])
            trial = np.full(passes.shape, -1)
            trial[k_at, at] = np.arange(at.size)
            best_cost = costs.total[frames]
            for k in range(ranked.shape[0]):  # in rank order, as tried one after the other
                better = passes[k] & (trial_cost[k] < best_cost)
                best_cost[better] = trial_cost[k, better]
                pick[better] = trial[k, better]
            ok = pick >= 0
            costs.take(pick[ok])
            pick[ok] = ranked[k_at[pick[ok]], at[pick[ok]]]
        elif costs is None:
            pick[passes[0]] = ranked[0, passes[0]]
        ok = pick >= 0
        h, cam = np.divmod(pick[ok], n_cams)
        fr = frames[ok]
        state[cam, fr] = np.take_along_axis(state[cam, fr], hypotheses[h], axis=-1)
        changed[cam, fr] = True
        frames = fr
    return SwapStates(state, None if costs is None else costs.selection, lr)


class _FrameCosts:
    """The MSAC cost of every frame over its left/right joints (:func:`truncated_cost` of a view selection,
    per joint), under the labels chosen so far, and of the tries of :func:`detect_swap_states`.

    A joint's selection depends only on its own views, so a try (one hypothesis at one camera) is selected
    afresh only at the joints it relabels, the others keep the cost they have; and two tries at the same
    camera relabel a shared joint alike (every hypothesis swaps a subset of the whole-body pairs), so such
    a joint is selected once.  On the 4-camera studio 3.5 x fewer points selected than a fresh selection of
    every try and frame.  The selection itself is kept: the engine's points of the changed frames.
    """

    def __init__(self, lin, xn, valid, weights, full, threshold_px, min_views, selected):
        n_cams, n_frames, n_joints = valid.shape
        self.lin, self.xn, self.valid, self.weights = lin, xn, valid, weights
        self.full, self.lr = full, np.flatnonzero(full != np.arange(n_joints))
        self.threshold_px, self.min_views = threshold_px, min_views
        n_lr = self.lr.size
        self.joint = np.full((n_frames, n_lr), np.nan)  # per-joint costs; NaN: not costed yet
        self.total = np.full(n_frames, np.nan)
        self.selection = ViewSelection.empty(n_frames * n_lr, n_cams)
        self.selected = selected
        self._tries = None

    def _select(self, frames: np.ndarray, labels: np.ndarray, selection: ViewSelection | None = None):
        """The selection and cost of P points: point p of frame ``frames[p]``, camera c reading joint ``labels[c, p]``."""
        c = np.arange(self.valid.shape[0])[:, None]
        f = frames[None]
        x = self.xn[c, f, labels]
        views = Views.of(x[..., 0], x[..., 1], self.valid[c, f, labels], self.weights[c, f, labels])
        if selection is None:
            selection = select_views(self.lin, views, self.threshold_px, self.min_views)
        return selection, truncated_cost(self.lin, views, selection.points, self.threshold_px)

    def _cost_frames(self, frames: np.ndarray, state: np.ndarray) -> None:
        """Cost ``frames`` (not costed yet, their labels as detected) under ``state``."""
        n_lr = self.lr.size
        rows = (frames[:, None] * n_lr + np.arange(n_lr)).ravel()
        given = None if self.selected is None else self.selected.subset(rows)
        labels = state[:, frames][:, :, self.lr].reshape(state.shape[0], -1)
        sel, cost = self._select(np.repeat(frames, n_lr), labels, given)
        self.selection.update(rows, sel)
        self.joint[frames] = cost.reshape(frames.size, n_lr)
        self.total[frames] = self.joint[frames].sum(axis=1)

    def of_tries(self, state: np.ndarray, frames: np.ndarray, cams: np.ndarray, relabels: np.ndarray) -> np.ndarray:
        """(T,) the cost of T tries: camera ``cams[t]`` of frame ``frames[t]`` swaps the left/right joints
        ``relabels[t]`` (T, L) bool, under ``state`` (C, F, J)."""
        fresh = np.unique(frames[np.isnan(self.total[frames])])
        if fresh.size:
            self._cost_frames(fresh, state)
        n_cams, n_lr = state.shape[0], self.lr.size
        keys, inv = np.unique(frames * n_cams + cams, return_inverse=True)  # one entry per (frame, camera)
        uf, uc = np.divmod(keys, n_cams)
        union = np.zeros((keys.size, n_lr), bool)
        np.logical_or.at(union, inv, relabels)
        u, j = np.nonzero(union)
        f, jl = uf[u], self.lr[j]
        labels = state[:, f, jl]
        labels[uc[u], np.arange(u.size)] = state[uc[u], f, self.full[jl]]
        sel, cost = self._select(f, labels)
        swapped = np.full(union.shape, np.nan)
        swapped[u, j] = cost
        point = np.full(union.shape, -1)
        point[u, j] = np.arange(u.size)
        rows = np.where(relabels, swapped[inv], self.joint[frames])  # (T, L)
        self._tries = (frames, relabels, rows, point[inv], sel)
        return rows.sum(axis=1)

    def take(self, tries: np.ndarray) -> None:
        """Adopt these tries (indices into the last :meth:`of_tries`): their frames' costs and selection."""
        frames, relabels, rows, point, sel = self._tries
        f = frames[tries]
        self.joint[f] = rows[tries]
        self.total[f] = self.joint[f].sum(axis=1)
        t, j = np.nonzero(relabels[tries])
        self.selection.update(f[t] * self.lr.size + j, sel.subset(point[tries][t, j]))


def truncated_cost(lin: LinearTriangulator, views: Views, points: np.ndarray, threshold_px: float) -> np.ndarray:
    """(N,) per point, the summed truncated squared px error ``min(e^2, threshold^2)`` of its valid views.

    ``points`` (N, 3) the fit of ``views`` (NaN: every view costs the full threshold): how well the
    cameras agree on a joint, whichever side it is called.
    """
    err2, _ = lin.residuals_sq(points.T, views.x, views.y, scale=False)
    t2 = threshold_px * threshold_px
    return np.where(views.valid, np.fmin(np.nan_to_num(err2, nan=t2), t2), 0.0).sum(axis=0)


def detect_swaps(
    lin: LinearTriangulator,
    xn: np.ndarray,
    valid: np.ndarray,
    permutation: np.ndarray,
    threshold_px: float = 15.0,
) -> np.ndarray:
    """(C, F) bool: camera frames whose left/right labels should be swapped.

    Greedy, one camera per frame and round: the camera whose swap gains most
    (:func:`swap_gain`) is swapped, then that frame is scored again, until no
    swap gains more than ``threshold_px^2 / 2`` (half of one joint's worth of
    evidence: near-ambiguous frames, whose left and right joints project
    close together, stay as they are).  A single round would let a swapped camera mislead the
    verdict on a good one when they are the only two others that see a joint.
    Arguments as :func:`swap_gain`.
    """
    n_cams, n_frames = valid.shape[:2]
    swapped = np.zeros((n_cams, n_frames), dtype=bool)
    frames = np.arange(n_frames)
    for _ in range(n_cams - 1):
        if frames.size == 0:
            break
        sub_xn = apply_swaps(xn[:, frames], swapped[:, frames], permutation)
        sub_valid = apply_swaps(valid[:, frames], swapped[:, frames], permutation)
        gain = swap_gain(lin, sub_xn, sub_valid, permutation, threshold_px)
        gain[swapped[:, frames]] = 0.0  # a camera is swapped once at most
        cam = np.argmax(gain, axis=0)
        flip = gain[cam, np.arange(frames.size)] > 0.5 * threshold_px * threshold_px
        swapped[cam[flip], frames[flip]] = True
        frames = frames[flip]
    return swapped


def swap_candidates(valid: np.ndarray, inliers: np.ndarray, permutation: np.ndarray,
                    min_joints: int = 2, min_fraction: float = 0.15) -> np.ndarray:
    """(F,) bool: frames where some camera disagrees with the others on many left/right joints.

    ``valid``, ``inliers`` (C, F, J) from a first view selection.  A swapped
    camera frame is an outlier for most of its left/right joints at once
    (at least ``min_joints`` and ``min_fraction`` of those it sees; a legs-only
    swap is a quarter of a body's left/right joints), while
    ordinary outliers strike single joints; only candidate frames need
    :func:`detect_swaps`.  A swap that leaves its camera agreeing with the
    others (a pose nearly symmetric in that view) is no candidate, and is
    harmless.
    """
    lr = np.flatnonzero(np.asarray(permutation) != np.arange(valid.shape[-1]))
    if lr.size == 0:
        return np.zeros(valid.shape[1], dtype=bool)
    seen = valid[..., lr]
    bad = (seen & ~inliers[..., lr]).sum(axis=-1)
    flagged = (bad >= min_joints) & (bad >= min_fraction * seen.sum(axis=-1))
    return flagged.any(axis=0)


def apply_swaps(values: np.ndarray, swapped: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Copy of ``values`` (C, F, J, ...) with the joints of swapped (C, F) frames permuted."""
    out = np.array(values, copy=True)
    out[swapped] = out[swapped][:, np.asarray(permutation)]
    return out
