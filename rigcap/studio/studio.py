"""``SyntheticStudio``: the virtual rig, the moving person and its detections in one object.

Cheap and deterministic to build, so every camera process of a live demo can
construct its own copy from the same parameters and all of them agree:

>>> studio = SyntheticStudio(n_cameras=4, fps=30.0, duration_s=10.0, seed=0)
>>> kp = studio.keypoints(cam_index=0, frame_index=12)      # (26, 3) x, y, confidence
>>> t = studio.capture_time_ns(0, 12)                        # when camera 0 grabbed it
>>> img = studio.image(0, 12)                                # the rendered person, BGR
>>> truth = studio.truth_at(t)                               # (26, 3) metres

All detections are computed once, vectorised, at construction (well under a
second for 10 s x 4 cameras); images are rendered on demand.
"""

from __future__ import annotations

import numpy as np

from calibration.rig import Rig
from rigcap.studio.keypoints import DetectorNoise, SyntheticKeypoints, synthesize_keypoints
from rigcap.studio.motion import PersonMotion
from rigcap.studio.studio_rig import make_studio_rig
from triangulate.formats import Keypoints2D, Points3D
from triangulate.skeletons import HALPE26


def motion_cycle_ns(n_frames: int, fps: float) -> int:
    """How long one pass of a studio's motion lasts when live synthetic cameras repeat it.

    Live cameras film cycle after cycle; whoever scores them must cut time at the same
    place, or the truth drifts from the motion by the rounding of a frame period each
    cycle (``n_frames * round(1e9 / fps)`` is 20 ns short per cycle at 30 fps)."""
    return int(round(n_frames * 1e9 / fps))


class SyntheticStudio:
    """A seeded virtual capture: ``rig``, ``skeleton`` (HALPE26), ``points3d`` (F, J, 3) truth
    at the nominal frame times ``frame / fps``, ``fps``, ``n_frames``.

    ``time_offsets_ms``: per-camera clock offsets -- a number means random
    within +- that many ms (default 4), a sequence gives them exactly, None or
    0 means none.  Per-frame jitter comes from ``noise.time_jitter_ms``.
    ``drop_rate``: fraction of camera-frames the camera never delivers.
    ``program``: the person's motion, ``mixed`` or ``workout`` (sets of squats, lunges and
    arm raises with known repetitions: ``exercise_reps()``).
    """

    def __init__(self, n_cameras: int = 4, fps: float = 30.0, duration_s: float = 10.0, seed: int = 0,
                 noise: DetectorNoise | None = None, size=(1280, 720), time_offsets_ms=4.0,
                 drop_rate: float = 0.0, rig: Rig | None = None, program: str = "mixed"):
        self.seed = int(seed)
        self.fps = float(fps)
        self.n_frames = max(1, int(round(duration_s * self.fps)))
        self.duration_s = self.n_frames / self.fps
        self.noise = noise if noise is not None else DetectorNoise()
        self.rig = rig if rig is not None else make_studio_rig(n_cameras, size=size, seed=self.seed)
        self.n_cameras = len(self.rig)
        self.skeleton = HALPE26
        self.motion = PersonMotion(duration_s=self.duration_s + 1.0, seed=self.seed, program=program)
        self.frame_times_s = np.arange(self.n_frames) / self.fps
        self.points3d = self.motion.joints(self.frame_times_s)
        self.detections: SyntheticKeypoints = synthesize_keypoints(
            self.rig, self.points3d, self.noise, seed=self.seed, time_offsets_ms=time_offsets_ms,
            drop_rate=drop_rate, fps=self.fps, motion=self.motion.joints, skeleton=self.skeleton)
        self._kp = self.detections.keypoints.keypoints  # (C, F, J, 3) float32

    # ------------------------------------------------------------------ per call
    def _check(self, cam_index: int, frame_index: int) -> None:
        if not 0 <= cam_index < self.n_cameras:
            raise IndexError(f"camera index {cam_index} out of range (0..{self.n_cameras - 1})")
        if not 0 <= frame_index < self.n_frames:
            raise IndexError(f"frame index {frame_index} out of range (0..{self.n_frames - 1})")

    def keypoints(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(J, 3) float32 x px, y px, confidence that camera makes at that frame; NaN where missing."""
        self._check(cam_index, frame_index)
        return self._kp[cam_index, frame_index].copy()

    def capture_time_ns(self, cam_index: int, frame_index: int) -> int:
        """Capture time relative to the start (ns), camera offset and jitter included."""
        self._check(cam_index, frame_index)
        return int(self.detections.timestamps_ns[cam_index, frame_index])

    def dropped(self, cam_index: int, frame_index: int) -> bool:
        """True when that camera never delivers that frame (``drop_rate``)."""
        self._check(cam_index, frame_index)
        return bool(self.detections.dropped[cam_index, frame_index])

    def truth_at(self, time_ns) -> np.ndarray:
        """(J, 3) (or (..., J, 3) for an array of times) true joints at a time in ns from the start."""
        return self.motion.joints(np.asarray(time_ns, dtype=np.float64) * 1e-9)

    def truth_for(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(J, 3) true joints at the instant that camera captured that frame."""
        self._check(cam_index, frame_index)
        return self.detections.points3d_sampled[cam_index, frame_index].copy()

    def image(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(h, w, 3) uint8 BGR: the rendered person as that camera sees it at its capture instant."""
        from rigcap.studio.person_render import render_person

        self._check(cam_index, frame_index)
        cam = self.rig.cameras[cam_index]
        return render_person(cam, self.detections.points3d_sampled[cam_index, frame_index], self.skeleton,
                             seed=self.seed)

    def exercise_reps(self) -> dict[str, int]:
        """True repetitions per exercise whose peak falls within the recording."""
        return {k: len(v) for k, v in self.motion.exercise_reps(0.0, (self.n_frames - 1) / self.fps).items()}

    # ------------------------------------------------------------------ whole files
    def keypoints2d(self) -> Keypoints2D:
        """All detections as a 2D keypoint file object (with ``timestamps_ns``)."""
        return self.detections.keypoints

    def points3d_true(self) -> Points3D:
        """The 3D truth at the nominal frame times as a 3D points file object."""
        n_f, n_j = self.points3d.shape[:2]
        return Points3D(self.points3d.copy(), list(self.skeleton.joint_names), np.zeros((n_f, n_j)),
                        np.full((n_f, n_j), self.n_cameras), np.round(self.frame_times_s * 1e9).astype(np.int64),
                        self.fps)

    def __repr__(self) -> str:
        return (f"SyntheticStudio(n_cameras={self.n_cameras}, fps={self.fps}, n_frames={self.n_frames}, "
                f"seed={self.seed})")


def make_studio(persons: int = 1, **kwargs):
    """The studio with ``persons`` people: :class:`SyntheticStudio` for one, the crowd studio
    (:class:`rigcap.studio.crowd.CrowdStudio`) for 2-6; ``kwargs`` are the studios' shared
    parameters (``n_cameras``, ``fps``, ``duration_s``, ``seed``, ``size``, ``rig``)."""
    if persons == 1:
        return SyntheticStudio(**kwargs)
    from rigcap.studio.crowd import CrowdStudio

    return CrowdStudio(n_persons=persons, **kwargs)
