"""Angles and repetitions live: one fused instant at a time, at the 3D rate.

:class:`LiveRepCounter` is the offline counter of :mod:`rigcap.analysis.exercises` made causal:
the same driving angle, ``enter``/``exit`` hysteresis, ``min_duration_s`` and ``[[require]]``
conditions (checked on the angles at the peak), fed one instant at a time; a frame where the
driving angle is unknown changes nothing (offline, short gaps are interpolated instead).
:class:`LiveAngles` is the hook the fusion node calls after publishing each ``kp3d``: it
publishes the instant's ``angles`` (see :mod:`rigcap.wire`) with the reps counted so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigcap.analysis.angles import ANGLE_NAMES, JointAngles, estimate_up, joint_angles, to_halpe26
from rigcap.analysis.exercises import Exercise


@dataclass
class _State:
    moving: bool = False
    last_rest_s: float = 0.0
    start_s: float = 0.0
    peak_z: float = -np.inf
    peak_row: np.ndarray | None = None
    reps: int = 0
    last_peak_value: float = np.nan


class LiveRepCounter:
    """Counts one exercise's reps for ``n_persons`` people, one instant at a time."""

    def __init__(self, exercise: Exercise, n_persons: int = 1):
        self.exercise = exercise
        self.sign = 1.0 if exercise.enter > exercise.exit else -1.0
        self.states = [_State() for _ in range(n_persons)]

    @property
    def reps(self) -> list[int]:
        return [s.reps for s in self.states]

    def _required(self, row: np.ndarray) -> bool:
        one = JointAngles(row[None], ANGLE_NAMES, np.zeros(3))
        for rule in self.exercise.require:
            value = float(rule.signal.combined(one)[0])
            if np.isfinite(value) and ((rule.min is not None and value < rule.min)
                                       or (rule.max is not None and value > rule.max)):
                return False
        return True

    def update(self, rows: np.ndarray, time_s: float) -> list[int]:
        """``rows`` (persons, A) angles in :data:`ANGLE_NAMES` order at ``time_s``; returns the counts."""
        ex = self.exercise
        rows = np.atleast_2d(rows)
        while len(self.states) < len(rows):
            self.states.append(_State(last_rest_s=time_s))
        drive = ex.driving.combined(JointAngles(rows, ANGLE_NAMES, np.zeros(3)))
        for st, row, s in zip(self.states, rows, drive):
            if not np.isfinite(s):
                continue
            z = self.sign * s
            if not st.moving and z > self.sign * ex.enter:
                st.moving, st.start_s, st.peak_z = True, st.last_rest_s, -np.inf
            if st.moving and z > st.peak_z:
                st.peak_z, st.peak_row = z, row.copy()
            if z < self.sign * ex.exit:
                if st.moving:
                    st.moving = False
                    if time_s - st.start_s >= ex.min_duration_s and self._required(st.peak_row):
                        st.reps += 1
                        st.last_peak_value = self.sign * st.peak_z
                st.last_rest_s = time_s
        return self.reps


class LiveAngles:
    """Fusion-node hook: after each ``kp3d``, publish the instant's angles (and reps).

    ``joint_names``: the skeleton's, or None to take the node's (it may adopt its skeleton from
    the messages).  ``up``: the rig's vertical, or None to estimate it from the first
    ``up_frames`` instants (the body's median long axis, as offline) and keep it from then on.
    """

    def __init__(self, exercise: Exercise | None = None, joint_names=None, up=None, up_frames: int = 30):
        self.joint_names = list(joint_names) if joint_names is not None else None
        self.counter = LiveRepCounter(exercise) if exercise is not None else None
        self.up = None if up is None else np.asarray(up, float)
        self._up_frames = up_frames
        self._seen: list[np.ndarray] = []
        self.published = 0

    def angles(self, points: np.ndarray) -> np.ndarray:
        """(J, 3) or (P, J, 3) -> (P, A) degrees."""
        pts = np.asarray(points, float)
        pts = pts[None] if pts.ndim == 2 else pts
        up = self.up
        if up is None:
            self._seen.append(to_halpe26(pts, self.joint_names))
            up = estimate_up(np.concatenate(self._seen))
            if len(self._seen) >= self._up_frames:
                self.up = up
        return joint_angles(pts, self.joint_names, up=up).values

    def __call__(self, inst, node) -> None:
        """Called by :class:`triangulate.fusion_node.FusionNode` with the instant and itself."""
        if self.joint_names is None:
            self.joint_names = list(node.skeleton.joint_names)
        self.publish(inst, node.pub)

    def publish(self, inst, publisher) -> None:
        values = self.angles(inst.points)
        fields = {}
        if self.counter is not None:
            fields = {"exercise": self.counter.exercise.name,
                      "reps": self.counter.update(values, inst.time_ns * 1e-9)}
        publisher.publish_angles(inst.time_ns, ANGLE_NAMES, values[0] if values.shape[0] == 1 else values,
                                 **fields)
        self.published += 1
