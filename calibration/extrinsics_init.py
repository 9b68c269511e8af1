"""First guess of every camera's pose from board poses seen at the same instant.

1. **Board poses per view**: ``solvePnPGeneric`` with IPPE (the planar
   solver, which returns both mirror solutions of a planar target), then
   Levenberg-Marquardt refinement.  A view whose two solutions fit almost
   equally well (a small or far board, the classic planar flip) is marked
   ambiguous and kept out of the initialisation; bundle adjustment still uses
   its corners.
2. **Camera graph**: an edge between two cameras for every instant both see
   the board unambiguously, weighted by the number of such instants.
3. **Best spanning tree**: the maximum-weight spanning tree, walked from
   camera 0.
4. **Relative pose per edge**, a robust average over the shared instants:
   rotations by the chordal L2 mean (SVD projection of the summed matrices)
   after rejecting instants whose rotation is far from the median-based
   estimate; translations by the mean of the inliers around the median.

The result is in camera 0's frame (camera 0 at the identity), metres from the
board's square length.  A camera the graph does not reach is named in a
:class:`~rigcap.errors.RigcapError` saying what to record.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.board import BoardDefinition
from calibration.camera import Camera, matrix_to_rodrigues, rodrigues_to_matrix
from rigcap.errors import RigcapError

MIN_PNP_CORNERS = 6
AMBIGUITY_RATIO = 1.5  # second IPPE solution's error / best's below this: ambiguous


# --------------------------------------------------------------- rotations
def project_to_rotation(m: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (Frobenius) to each 3x3 in ``m`` (..., 3, 3)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def rotation_angle(r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Angle in degrees between rotations (..., 3, 3)."""
    tr = np.einsum("...ij,...ij->...", r_a, r_b)  # trace(A^T B)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def robust_mean_pose(rots: np.ndarray, trans: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust average of poses ``rots (K,3,3)``, ``trans (K,3)``; returns (R, t, inlier mask).

    Start from the chordal mean, drop samples more than ``max(3 * median, 0.5 deg)``
    from it (rotation) or ``max(3 * median, 5 mm)`` (translation), average again.
    """
    w = np.ones(len(rots)) if weights is None else np.asarray(weights, float)
    r_mean = project_to_rotation(np.einsum("k,kij->ij", w, rots))
    t_med = np.median(trans, axis=0)
    inl = np.ones(len(rots), bool)
    for _ in range(3):
        ang = rotation_angle(rots, r_mean)
        dist = np.linalg.norm(trans - t_med, axis=1)
        inl = (ang <= max(3.0 * np.median(ang), 0.5)) & (dist <= max(3.0 * np.median(dist), 0.005))
        if not inl.any():
            inl[:] = True
        r_mean = project_to_rotation(np.einsum("k,kij->ij", w[inl], rots[inl]))
        t_med = np.average(trans[inl], axis=0, weights=w[inl])
    return r_mean, t_med, inl


# -------------------------------------------------------------- PnP per view
@dataclass
class ViewPoses:
    """Board -> camera pose of every (camera, instant) with a usable view."""

    rvecs: np.ndarray  # (C, F, 3)
    tvecs: np.ndarray  # (C, F, 3)
    ok: np.ndarray  # (C, F) bool: pose solved and unambiguous
    rms: np.ndarray  # (C, F) px, NaN where not solved


def board_poses(corners: np.ndarray, cameras: list[Camera], board: BoardDefinition, min_corners: int = MIN_PNP_CORNERS) -> ViewPoses:
    """PnP for every view with ``min_corners`` or more corners (``corners`` is ``(C, F, N, 2)``)."""
    c_n, f_n = corners.shape[:2]
    obj_all = board.corner_points()
    rvecs = np.zeros((c_n, f_n, 3))
    tvecs = np.zeros((c_n, f_n, 3))
    ok = np.zeros((c_n, f_n), bool)
    rms = np.full((c_n, f_n), np.nan)
    vis = np.isfinite(corners[..., 0])
    for c, cam in enumerate(cameras):
        for f in np.flatnonzero(vis[c].sum(axis=1) >= min_corners):
            m = vis[c, f]
            obj, img = obj_all[m], corners[c, f, m]
            n_sol, rs, ts, errs = cv2.solvePnPGeneric(obj, img, cam.matrix, cam.dist, flags=cv2.SOLVEPNP_IPPE)
            if not n_sol:
                continue
            errs = np.asarray(errs).ravel()
            order = np.argsort(errs)
            r, t = rs[order[0]], ts[order[0]]
            r, t = cv2.solvePnPRefineLM(obj, img, cam.matrix, cam.dist, r.copy(), t.copy())
            proj, _ = cv2.projectPoints(obj, r, t, cam.matrix, cam.dist)
            e = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
            rvecs[c, f], tvecs[c, f], rms[c, f] = r.ravel(), t.ravel(), e
            ambiguous = len(errs) > 1 and errs[order[1]] < AMBIGUITY_RATIO * max(errs[order[0]], 0.05)
            ok[c, f] = (not ambiguous) and t.ravel()[2] > 0
    # a view far worse than its camera's others is a mis-detection
    for c in range(c_n):
        e = rms[c][ok[c]]
        if e.size:
            ok[c] &= ~(rms[c] > max(5.0 * np.median(e), 2.0))
    return ViewPoses(rvecs, tvecs, ok, rms)


# -------------------------------------------------------------- the graph
def shared_counts(ok: np.ndarray) -> np.ndarray:
    """(C, C) number of instants both cameras have an unambiguous board pose."""
    o = ok.astype(np.int64)
    w = o @ o.T
    np.fill_diagonal(w, 0)
    return w


def max_spanning_tree(weights: np.ndarray, root: int = 0) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Prim's algorithm on a dense weight matrix: edges (parent, child) in BFS order, and reached mask."""
    n = weights.shape[0]
    reached = np.zeros(n, bool)
    reached[root] = True
    edges: list[tuple[int, int]] = []
    while True:
        w = np.where(reached[:, None] & ~reached[None, :], weights, 0)
        if w.max() <= 0:
            break
        i, j = np.unravel_index(int(np.argmax(w)), w.shape)
        edges.append((int(i), int(j)))
        reached[j] = True
    return edges, reached


def _components(weights: np.ndarray) -> list[list[int]]:
    n = weights.shape[0]
    left = set(range(n))
    comps = []
    while left:
        start = min(left)
        _, reached = max_spanning_tree(weights, start)
        comp = sorted(int(i) for i in np.flatnonzero(reached))
        comps.append(comp)
        left -= set(comp)
    return comps


def check_linked(weights: np.ndarray, names: list[str], views_per_camera: np.ndarray) -> None:
    """Raise a RigcapError naming every camera the graph cannot place, and what to record."""
    comps = _components(weights)
    if len(comps) == 1:
        return
    main = max(comps, key=lambda c: (len(c), -c[0]))
    problems = []
    for comp in comps:
        if comp is main:
            continue
        who = ", ".join(repr(names[i]) for i in comp)
        seen = int(sum(views_per_camera[i] for i in comp))
        if len(comp) == 1 and seen == 0:
            problems.append(f"camera {who} never saw the whole-enough board (no frame with {MIN_PNP_CORNERS}+ corners)")
        elif len(comp) == 1:
            problems.append(
                f"camera {who} saw the board in {seen} frame(s) but never at the same instant as any other camera"
            )
        else:
            problems.append(f"cameras {who} see the board together but never at the same instant as the others")
    others = ", ".join(repr(names[i]) for i in main)
    raise RigcapError(
        "cannot place every camera: " + "; ".join(problems) + f". Record the board where each of these cameras "
        f"and at least one of {others} see it at the same time (a few seconds in each shared view), "
        f"or check that --timestamps groups the right frames."
    )


# ---------------------------------------------------------------- chaining
@dataclass
class InitialRig:
    cameras: list[Camera]  # poses in camera 0's frame
    tree: list[tuple[int, int]]  # (parent, child) camera indices
    weights: np.ndarray  # (C, C) shared instants
    board_rvecs: np.ndarray  # (F, 3) board -> world, NaN where no camera has a pose
    board_tvecs: np.ndarray  # (F, 3)


def initial_extrinsics(cameras: list[Camera], poses: ViewPoses) -> InitialRig:
    """Chain robust relative poses along the best spanning tree; board poses in the same frame."""
    names = [c.name for c in cameras]
    weights = shared_counts(poses.ok)
    check_linked(weights, names, poses.ok.sum(axis=1))
    tree, _ = max_spanning_tree(weights, 0)
    r_board = rodrigues_to_matrix(poses.rvecs)  # (C, F, 3, 3) board -> camera
    t_board = poses.tvecs
    r_cam = np.zeros((len(cameras), 3, 3))
    t_cam = np.zeros((len(cameras), 3))
    r_cam[0] = np.eye(3)
    for parent, child in tree:
        shared = poses.ok[parent] & poses.ok[child]
        rp, tp = r_board[parent, shared], t_board[parent, shared]
        rc, tc = r_board[child, shared], t_board[child, shared]
        # parent camera coords -> child camera coords, per instant
        r_rel = rc @ np.transpose(rp, (0, 2, 1))
        t_rel = tc - np.einsum("kij,kj->ki", r_rel, tp)
        r_m, t_m, _ = robust_mean_pose(r_rel, t_rel)
        r_cam[child] = r_m @ r_cam[parent]
        t_cam[child] = r_m @ t_cam[parent] + t_m
    out = []
    for c, cam in enumerate(cameras):
        new = cam.copy()
        new.rvec = matrix_to_rodrigues(r_cam[c])
        new.tvec = t_cam[c]
        out.append(new)
    b_r, b_t = board_poses_world(out, poses)
    return InitialRig(out, tree, weights, b_r, b_t)


def board_poses_world(cameras: list[Camera], poses: ViewPoses) -> tuple[np.ndarray, np.ndarray]:
    """Board -> world pose per instant (F, 3) x 2: robust average over the cameras with a good view.

    NaN where no camera has an unambiguous pose.  Also the way to start
    bundle adjustment from a given rig (e.g. the true one in a benchmark).
    """
    r_cam = np.array([c.R for c in cameras])
    t_cam = np.array([c.tvec for c in cameras])
    r_board = rodrigues_to_matrix(poses.rvecs)  # (C, F, 3, 3) board -> camera
    f_n = poses.ok.shape[1]
    b_r = np.full((f_n, 3), np.nan)
    b_t = np.full((f_n, 3), np.nan)
    r_w = np.einsum("cji,cfjk->cfik", r_cam, r_board)  # R_c^T R_cb
    t_w = np.einsum("cji,cfj->cfi", r_cam, poses.tvecs - t_cam[:, None, :])
    for f in np.flatnonzero(poses.ok.any(axis=0)):
        seen = poses.ok[:, f]
        r_m, t_m, _ = robust_mean_pose(r_w[seen, f], t_w[seen, f])
        b_r[f] = matrix_to_rodrigues(r_m)
        b_t[f] = t_m
    return b_r, b_t
