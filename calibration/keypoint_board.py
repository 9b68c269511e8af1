"""Metric scale and world origin of a keypoint rig from a ChArUco board seen in the same session.

A rig bundle-adjusted on keypoints (:mod:`calibration.keypoint_calibration`)
knows its shape but not its size, and its world frame is the start rig's.  A
board filmed by the same cameras (a few seconds, before or after the take,
the cameras unmoved) fixes both:

* **scale**: at every instant two or more cameras see the board, its corners
  are triangulated with the keypoint rig (:func:`calibration.report.triangulate_views`)
  and compared with the board's metric corners: the ratio of their spreads about
  their centroids is that sighting's metres per rig unit.  The median over
  sightings is the scale (a blurred or grazing sighting is one vote of many);
  the spread of the votes and the corner residual after the fit are reported.
* **origin**: the board lying on the floor (``floor_instant``, or found: the
  longest run of still sightings whose face is within :data:`FLOOR_TILT_DEG`
  of the start world's vertical) becomes the world frame, exactly as the board
  calibration does it (:func:`calibration.world.frame_from_board` on the
  still sightings averaged, :func:`calibration.world.still_pose`): origin at
  the board's origin corner, z up out of its printed face.  With no floor
  sighting the origin stays the start rig's, and the report says so.

The board detection itself is the board calibration's
(:func:`calibration.pipeline.detect_inputs`); this module only takes corners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.board import BoardDefinition
from calibration.camera import matrix_to_rodrigues
from calibration.extrinsics_init import rotation_angle
from calibration.report import triangulate_views
from calibration.rig import Rig
from calibration.world import FLOOR_FROM_BOARD, frame_from_board, kabsch, still_pose, transform_rig
from rigcap.errors import RigcapError

MIN_CORNERS = 6  # triangulated corners a sighting needs to vote for the scale
FLOOR_TILT_DEG = 15.0  # a board face this close to the world's vertical counts as lying on the floor
STILL_MM, STILL_DEG = 3.0, 0.5  # consecutive sightings this close are the board lying still


@dataclass
class BoardGauge:
    scale: float  # metres per unit of the rig given
    sightings: int  # sightings that voted
    scale_spread: float  # median absolute deviation of the votes, relative to the scale
    corner_rms_mm: float  # corners' RMS distance from the fitted metric board, median over sightings
    floor_instant: int | None  # the instant that set the world origin (None: kept the rig's)
    r_new_old: np.ndarray  # rotation of the world change applied after scaling
    t_new_old: np.ndarray  # translation of it, metres
    note: str

    def apply(self, rig: Rig, points: np.ndarray | None = None):
        """``rig`` (and world ``points (..., 3)``) scaled and moved into the board's world frame."""
        from calibration.keypoint_calibration import scale_rig

        out = transform_rig(scale_rig(rig, self.scale), self.r_new_old, self.t_new_old)
        if points is None:
            return out
        return out, (np.asarray(points) * self.scale) @ self.r_new_old.T + self.t_new_old


def _fit_sightings(rig: Rig, corners: np.ndarray, board: BoardDefinition):
    """Per instant with enough triangulated corners: (instants, scale votes, rotations (K, 3, 3),
    translations (K, 3) in rig units, corner RMS in board units), world_from_board."""
    pts = triangulate_views(rig, corners)  # (F, N, 3)
    model = board.corner_points()  # (N, 3) metres, board frame
    ok = np.isfinite(pts).all(axis=-1)
    instants = np.flatnonzero(ok.sum(axis=1) >= MIN_CORNERS)
    votes, rots, trans, rms = [], [], [], []
    for k in instants:  # one similarity per sighting (tens to hundreds of them)
        seen = ok[k]
        x, p = pts[k, seen], model[seen]
        xc, pc = x - x.mean(axis=0), p - p.mean(axis=0)
        s = np.sqrt((xc**2).sum() / (pc**2).sum())  # rig units per metre
        a, b = kabsch(p * s, x)
        votes.append(1.0 / s)
        rots.append(a)
        trans.append(b)
        rms.append(np.sqrt(np.mean(np.sum((x / s - (p @ a.T + b / s)) ** 2, axis=1))))
    return instants, np.array(votes), np.array(rots).reshape(-1, 3, 3), np.array(trans).reshape(-1, 3), np.array(rms)


def _floor_run(instants: np.ndarray, rots: np.ndarray, trans_m: np.ndarray) -> int | None:
    """Index (into the sightings) of the middle of the longest still run of the board lying face up
    (its printed face within FLOOR_TILT_DEG of world +z), or None."""
    face_up = (rots @ FLOOR_FROM_BOARD)[:, :, 2] @ np.array([0.0, 0.0, 1.0])  # world z of the floor frame's z
    flat = face_up > np.cos(np.radians(FLOOR_TILT_DEG))
    if not flat.any():
        return None
    best, best_len = None, 0
    i = 0
    while i < len(instants):
        if not flat[i]:
            i += 1
            continue
        j = i
        while (j + 1 < len(instants) and flat[j + 1] and np.linalg.norm(trans_m[j + 1] - trans_m[i]) < STILL_MM / 1000.0
               and rotation_angle(rots[j + 1], rots[i]) < STILL_DEG):
            j += 1
        if j - i + 1 > best_len:
            best, best_len = (i + j) // 2, j - i + 1
        i = j + 1
    return best


def board_gauge(rig: Rig, corners: np.ndarray, board: BoardDefinition, floor_instant: int | None = None) -> BoardGauge:
    """Scale and world frame for ``rig`` from board ``corners (C, F, N, 2)`` (pixels, NaN = not
    found, cameras in ``rig``'s order, instant f the same moment in every camera).
    ``floor_instant``: the instant at which the board lay on the floor (default: found, see
    the module docstring)."""
    corners = np.asarray(corners, dtype=np.float64)
    if corners.ndim != 4 or corners.shape[0] != len(rig) or corners.shape[-1] != 2:
        raise RigcapError(f"board corners of shape {corners.shape} for a rig of {len(rig)} cameras")
    instants, votes, rots, trans, rms = _fit_sightings(rig, corners, board)
    if instants.size < 1:
        raise RigcapError(f"the board is never seen by two cameras at once with {MIN_CORNERS}+ corners: "
                          "nothing to take the scale from (film it where the cameras' views overlap)")
    scale = float(np.median(votes))
    spread = float(np.median(np.abs(votes - scale)) / scale)
    trans_m = trans * scale
    if floor_instant is not None:
        hit = np.flatnonzero(instants == int(floor_instant))
        if hit.size == 0:
            raise RigcapError(f"--floor-frame {floor_instant}: the board is not triangulated there (instants with "
                              f"it: {', '.join(map(str, instants[:10]))}{' ...' if instants.size > 10 else ''})")
        k = int(hit[0])
    else:
        k = _floor_run(instants, rots, trans_m)
    rvecs = np.array([matrix_to_rodrigues(r) for r in rots]).reshape(-1, 3)
    if k is None:
        r_new_old, t_new_old, floor = np.eye(3), np.zeros(3), None
        note = (f"no sighting of the board lying on the floor (face within {FLOOR_TILT_DEG:g} deg of the start "
                "rig's vertical): world origin and axes kept from the start rig; give --floor-frame K")
    else:
        r_new_old, t_new_old = frame_from_board(*still_pose(rvecs, trans_m, k, STILL_MM, STILL_DEG))
        floor = int(instants[k])
        note = f"world origin at the board's origin corner at instant {floor}, z up out of its face"
    return BoardGauge(scale, int(instants.size), spread, float(np.median(rms) * 1000.0), floor, r_new_old, t_new_old,
                      note)


def with_board(result, gauge: BoardGauge):
    """A :class:`~calibration.keypoint_calibration.KeypointCalibrationResult` made metric and moved
    into the world frame by ``gauge``; its metadata say so."""
    from dataclasses import replace

    rig, points = gauge.apply(result.rig, result.points)
    rig.metadata = dict(result.rig.metadata)
    calib = dict(rig.metadata.get("calibration", {}))
    source = (f"a ChArUco board seen in the same session ({gauge.sightings} sightings, votes within "
              f"{gauge.scale_spread:.2%}, corners {gauge.corner_rms_mm:.2f} mm RMS)")
    calib.update({"scale_from": source, "origin": gauge.note})
    rig.metadata["calibration"] = calib
    return replace(result, rig=rig, points=points, scale_source=source,
                   scale_factor=result.scale_factor * gauge.scale)
