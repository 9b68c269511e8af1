"""The fusion node's logic, free of sockets: messages in, filtered 3D instants out.

Kept apart from the ZeroMQ process (:mod:`capture.fusion_node`) so the
grouping, triangulation and filtering of the live path are tested and
benchmarked directly, with the same engine as the offline command.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration import Rig
from triangulate.engine import TriangulationConfig, Triangulator
from triangulate.filters import OneEuroFilter
from triangulate.live_grouping import Instant, InstantGrouper, Observation
from triangulate.skeletons import Skeleton


@dataclass
class FusedInstant:
    time_ns: int  # median capture time of the cameras that took part
    points: np.ndarray  # (J, 3) metres, causally filtered; NaN where not triangulated
    raw_points: np.ndarray  # (J, 3) before filtering
    error_px: np.ndarray  # (J,) mean reprojection error of the views used
    n_views: np.ndarray  # (J,) views used per joint
    cameras: list[str]  # cameras whose message is in this instant
    frames: dict[str, int]  # camera -> its frame index
    spread_ns: int  # capture-time spread across those cameras
    last_arrival_ns: int  # when the instant's last message arrived


def first_person(keypoints: np.ndarray, n_joints: int) -> np.ndarray:
    """(persons, J, 3) or (J, 3) -> (J, 3) of the most confident person; NaN when nobody was seen.

    Multi-person association across cameras is out of scope for the live
    path: one subject per rig, as in the synthetic studio and a lab walkway.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.shape[0] == 0:
        return np.full((n_joints, 3), np.nan)
    score = np.nansum(kp[..., 2], axis=1)
    return kp[int(np.argmax(score))]


class FusionEngine:
    """Group per-camera keypoints into instants, triangulate, filter.

    ``tolerance_ns`` defaults to half a frame period: two frames of one camera
    can never fall into one instant.  ``deadline_ns`` (default one frame
    period) bounds how long an instant waits for a straggler.
    """

    def __init__(
        self,
        rig: Rig,
        skeleton: Skeleton,
        config: TriangulationConfig | None = None,
        fps: float = 30.0,
        tolerance_ns: int | None = None,
        deadline_ns: int | None = None,
        alive_window_ns: int = 1_000_000_000,
        smoothing: OneEuroFilter | None = None,
    ):
        period = int(1e9 / fps)
        self.rig = rig
        self.skeleton = skeleton
        # Live instants are independent: no temporal prior, no refinement by default (latency).
        self.config = config or TriangulationConfig(temporal_window=0, refine=False)
        self.triangulator = Triangulator(rig, self.config, skeleton)
        self.grouper = InstantGrouper(
            rig.names,
            tolerance_ns if tolerance_ns is not None else period // 2,
            deadline_ns if deadline_ns is not None else period,
            alive_window_ns,
        )
        self.smoothing = smoothing
        self._index = {name: i for i, name in enumerate(rig.names)}

    def push(self, camera: str, frame_index: int, capture_time_ns: int, keypoints: np.ndarray,
             arrival_ns: int) -> list[FusedInstant]:
        kp = first_person(keypoints, self.skeleton.n_joints)
        obs = Observation(camera, int(frame_index), int(capture_time_ns), kp, int(arrival_ns))
        return [self._fuse(inst) for inst in self.grouper.push(obs)]

    def poll(self, now_ns: int) -> list[FusedInstant]:
        return [self._fuse(inst) for inst in self.grouper.poll(now_ns)]

    def _fuse(self, inst: Instant) -> FusedInstant:
        kp = np.full((len(self.rig), self.skeleton.n_joints, 3), np.nan)
        for name, obs in inst.observations.items():
            kp[self._index[name]] = obs.keypoints
        result = self.triangulator.frame(kp)
        points = result.points
        if self.smoothing is not None:
            points = self.smoothing.update(points, inst.time_ns * 1e-9)
        return FusedInstant(
            time_ns=inst.time_ns,
            points=points,
            raw_points=result.points,
            error_px=result.error_px,
            n_views=result.n_views,
            cameras=inst.cameras,
            frames={name: obs.frame_index for name, obs in inst.observations.items()},
            spread_ns=inst.spread_ns,
            last_arrival_ns=inst.last_arrival_ns,
        )
