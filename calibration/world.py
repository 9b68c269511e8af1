"""The world frame of a calibrated rig, and comparing two rigs.

Bundle adjustment works in camera 0's frame.  A user wants the floor: when
the board lay on the floor at one instant, its sighting defines the world
(origin at the board's origin corner, x along the board's squares, z up out
of the printed face, metres).  Otherwise the world is camera 0's frame.

A rigid change of world frame ``X_new = R_new_old @ X_old + t_new_old`` (the
transform *new_from_old*, named by its frames as COLMAP's ``cam_from_world``)
moves every camera (``R' = R R_new_old^T``, ``t' = t - R' t_new_old``) and every
board pose (``R_b' = R_new_old R_b``, ``t_b' = R_new_old t_b + t_new_old``) and
changes no pixel.

:func:`compare_rigs` measures a rig against a reference (the synthetic
truth, or another tool's calibration) after the best rigid alignment of the
whole camera poses (centres and orientations together), since two
calibrations may differ by their world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.camera import matrix_to_rodrigues, rodrigues_to_matrix
from calibration.rig import Rig

#: board frame -> world frame for a board lying face up on the floor:
#: x along the board's rows, y = -board y, z = -board z (board z points into the print).
FLOOR_FROM_BOARD = np.diag([1.0, -1.0, -1.0])


def transform_rig(rig: Rig, r_new_old: np.ndarray, t_new_old: np.ndarray) -> Rig:
    """The same rig in a new world frame ``X_new = r_new_old @ X_old + t_new_old`` (a rotation, metres)."""
    out = rig.copy()
    for cam in out.cameras:
        r_cam_new = cam.R @ r_new_old.T
        cam.tvec = cam.tvec - r_cam_new @ t_new_old
        cam.rvec = matrix_to_rodrigues(r_cam_new)
    return out


def transform_board_poses(rvecs: np.ndarray, tvecs: np.ndarray, r_new_old: np.ndarray, t_new_old: np.ndarray):
    """world_from_board poses (K, 3) moved into the new world frame ``X_new = r_new_old @ X_old + t_new_old``."""
    r = r_new_old @ rodrigues_to_matrix(rvecs)
    rv = np.array([matrix_to_rodrigues(m) for m in r]).reshape(-1, 3)
    return rv, np.asarray(tvecs) @ r_new_old.T + t_new_old


def frame_from_board(board_rvec: np.ndarray, board_tvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(r_new_old, t_new_old)`` that make the board sighting ``(rvec, tvec)`` (world_from_board) the floor.

    The board's origin corner becomes the world origin, its plane ``z = 0``,
    with ``z`` pointing out of the printed face (up, for a board lying face up).
    """
    r_world_board = rodrigues_to_matrix(np.asarray(board_rvec, float))
    r_floor_world = FLOOR_FROM_BOARD @ r_world_board.T
    return r_floor_world, -r_floor_world @ np.asarray(board_tvec, float)


def still_pose(rvecs: np.ndarray, tvecs: np.ndarray, k: int, mm: float = 3.0, deg: float = 0.3):
    """Board pose ``k`` (world_from_board) averaged with every other sighting of the board lying
    still in the same place (within ``mm`` and ``deg``).

    A board on the floor is usually filmed for a while: averaging those
    sightings makes the world frame steadier than any single one.
    """
    from calibration.extrinsics_init import project_to_rotation, rotation_angle

    rots = rodrigues_to_matrix(rvecs)
    same = (np.linalg.norm(tvecs - tvecs[k], axis=1) < mm / 1000.0) & (rotation_angle(rots, rots[k]) < deg)
    return matrix_to_rodrigues(project_to_rotation(rots[same].sum(axis=0))), tvecs[same].mean(axis=0)


def frame_from_camera(rig: Rig, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(r_new_old, t_new_old)`` that make camera ``index``'s frame the world frame (its cam_from_world)."""
    cam = rig.cameras[index]
    return cam.R.copy(), cam.tvec.copy()


# ------------------------------------------------------------- comparison
def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dst_from_src: rotation ``a`` and translation ``b`` minimising ``|a @ src + b - dst|`` (no scale)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    h = (src - mu_s).T @ (dst - mu_d)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    a = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return a, mu_d - a @ mu_s


def _rms_radius(rig: Rig) -> float:
    centers = rig.centers
    r = float(np.sqrt(((centers - centers.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return r if r > 1e-9 else 1.0


def pose_anchors(rig: Rig, radius: float | None = None) -> np.ndarray:
    """(4C, 3) points that carry every camera's pose: its centre and the tips of its x, y, z
    axes at ``radius`` (default: the rig's RMS radius about its centroid)."""
    radius = _rms_radius(rig) if radius is None else radius
    centers = rig.centers
    axes = np.array([c.R for c in rig.cameras])  # rows: camera axes in world coordinates
    tips = centers[:, None, :] + radius * axes
    return np.concatenate([centers, tips.reshape(-1, 3)])


@dataclass
class RigComparison:
    names: list[str]
    center_mm: np.ndarray  # (C,) camera centre distance after alignment
    rotation_deg: np.ndarray  # (C,) angle between orientations after alignment
    focal_pct: np.ndarray  # (C,) |f - f_ref| / f_ref * 100, mean of fx and fy
    aligned: Rig  # the rig moved into the reference's world frame

    def summary(self) -> dict:
        return {
            "center_mm_max": float(self.center_mm.max()), "center_mm_mean": float(self.center_mm.mean()),
            "rotation_deg_max": float(self.rotation_deg.max()), "focal_pct_max": float(self.focal_pct.max()),
        }


def compare_rigs(rig: Rig, reference: Rig, align: bool = True) -> RigComparison:
    """Per-camera differences between ``rig`` and ``reference`` (cameras matched by name).

    With ``align`` the rig is first moved by the rigid transform that best
    maps its camera poses onto the reference's (scale is not fitted: a
    wrong scale shows up as centre error, as it should).  The fit uses every
    camera's centre and the tips of its three axes drawn at the rig's RMS
    radius, so orientations weigh as much as positions: fitting centres
    alone tilts the whole rig by the centre errors (a few mm over a 3 m ring
    is ~0.1 deg, the size of the rotation target) and charges that gauge
    tilt to every camera's rotation.
    """
    ref = reference.subset(rig.names)
    if align:
        a, b = kabsch(pose_anchors(rig), pose_anchors(ref, radius=_rms_radius(rig)))
        moved = transform_rig(rig, a, b)
    else:
        moved = rig.copy()
    center = np.linalg.norm(moved.centers - ref.centers, axis=1) * 1000.0
    rots = np.array([c.R for c in moved.cameras])
    rots_ref = np.array([c.R for c in ref.cameras])
    tr = np.einsum("cij,cij->c", rots, rots_ref)
    angle = np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))
    f = np.array([c.focal for c in moved.cameras])
    f_ref = np.array([c.focal for c in ref.cameras])
    focal = (np.abs(f - f_ref) / f_ref).mean(axis=1) * 100.0
    return RigComparison(rig.names, center, angle, focal, moved)
