"""Several people in the synthetic studio, with exact truth about who is where and who is seen.

:class:`Crowd` is N procedural people (:class:`~rigcap.studio.motion.PersonMotion`,
each its own seed) of different heights walking, squatting and turning on the
same 3.6 m floor, so their paths cross; one of them (the last, when there are
two or more) leaves the studio for a while and comes back.  A person of height
``h`` is the 1.74 m body scaled by ``h / 1.74`` about the point on the floor
under the pelvis, so every bone keeps its (scaled) length exactly.

:class:`CrowdStudio` is the multi-person counterpart of
:class:`~rigcap.studio.studio.SyntheticStudio`: the rig, the truth
``points3d`` (persons, frames, joints, 3) -- NaN while a person is away -- and
what each camera's 2D detector reports in the multi-person 2D format
(:class:`~triangulate.formats.Keypoints2D` with ``keypoints`` (cameras, frames,
persons, joints, 3)).  Each person's detections are simulated as for one
person (noise, misses, outliers, swaps) at the camera's own capture instants,
plus occlusion by the *other* people (a joint whose line of sight passes
through another person's body capsules is occluded).  Per camera-frame the
detected people are listed in random order, as a detector lists them (the
index is not an identity); ``detection_person`` (cameras, frames, persons)
says which true person each slot is (-1 = empty slot).
"""

from __future__ import annotations

import numpy as np

from calibration.rig import Rig
from rigcap.studio.body import RADII, _segment_segment_distance, capsule_endpoints
from rigcap.studio.keypoints import DetectorNoise, SyntheticKeypoints, _resolve_offsets, sample_times, synthesize_keypoints
from rigcap.studio.motion import PersonMotion
from rigcap.studio.studio_rig import make_studio_rig
from triangulate.formats import Keypoints2D, Points3D
from triangulate.skeletons import HALPE26

#: Heights (m, top of the head) of persons 1..6: all different, 1.55-1.90 m.
HEIGHTS = (1.78, 1.62, 1.90, 1.55, 1.70, 1.84)
BODY_HEIGHT = 1.74  # the procedural body's own height
MAX_PERSONS = len(HEIGHTS)


class Crowd:
    """N people's motion, evaluated at any times (seconds); NaN while a person is away.

    ``absence``: the (start, end) seconds the last person is out of the studio
    (default: from 40 % to 55 % of ``duration_s`` when there are >= 2 people;
    ``None`` for nobody leaving).
    """

    def __init__(self, n_persons: int = 2, duration_s: float = 10.0, seed: int = 0, absence="auto",
                 min_gap_m: float = 0.45):
        if not 1 <= n_persons <= MAX_PERSONS:
            raise ValueError(f"n_persons must be between 1 and {MAX_PERSONS}, got {n_persons}")
        self.n_persons = int(n_persons)
        self.seed = int(seed)
        self.min_gap_m = float(min_gap_m)
        self.motions = self._choose_motions(duration_s)
        self.heights = np.array(HEIGHTS[: self.n_persons])
        self.scales = self.heights / BODY_HEIGHT
        if absence == "auto":
            absence = (0.40 * duration_s, 0.55 * duration_s) if self.n_persons >= 2 else None
        self.absences: list[tuple[float, float] | None] = [None] * self.n_persons
        if absence is not None:
            self.absences[-1] = (float(absence[0]), float(absence[1]))

    def _choose_motions(self, duration_s: float) -> list[PersonMotion]:
        """One motion per person, each drawn (seeded) until its pelvis never comes closer than
        ``min_gap_m`` to anyone drawn before: people pass each other, shoulder to shoulder
        at the closest, but never walk through one another (the best of 300 draws otherwise)."""
        times = np.arange(0.0, duration_s + 1e-9, 0.1)
        hip = HALPE26.joint_names.index("hip")
        chosen, paths = [], []
        for p in range(self.n_persons):
            best, best_gap = None, -1.0
            for k in range(300):
                m = PersonMotion(duration_s=duration_s + 1.0, seed=1000 * self.seed + 7919 * p + 104729 * k + 1)
                path = m.joints(times)[:, hip, :2]
                gap = min((float(np.linalg.norm(path - q, axis=-1).min()) for q in paths), default=np.inf)
                if gap > best_gap:
                    best, best_gap = (m, path), gap
                if gap >= self.min_gap_m:
                    break
            chosen.append(best[0])
            paths.append(best[1])
        return chosen

    def present(self, t) -> np.ndarray:
        """(P, *t.shape) bool: who is in the studio at times ``t``."""
        t = np.asarray(t, float)
        out = np.ones((self.n_persons,) + t.shape, bool)
        for p, gap in enumerate(self.absences):
            if gap is not None:
                out[p] = ~((t >= gap[0]) & (t < gap[1]))
        return out

    def person_joints(self, p: int, t) -> np.ndarray:
        """(*t.shape, J, 3) person ``p``'s joints at times ``t``; NaN while away."""
        t = np.asarray(t, float)
        j = self.motions[p].joints(t)
        base = j[..., HALPE26.joint_names.index("hip"), :].copy()
        base[..., 2] = 0.0
        j = base[..., None, :] + self.scales[p] * (j - base[..., None, :])
        j[~self.present(t)[p]] = np.nan
        return j

    def joints(self, t) -> np.ndarray:
        """(P, *t.shape, J, 3) everybody's joints at times ``t``."""
        return np.stack([self.person_joints(p, t) for p in range(self.n_persons)])

    def closest_approach(self, t) -> np.ndarray:
        """(*t.shape,) smallest pelvis distance between two people present (m); inf with one person."""
        hip = self.joints(t)[..., HALPE26.joint_names.index("hip"), :2]  # (P, ..., 2)
        best = np.full(np.shape(t), np.inf)
        for a in range(self.n_persons):
            for b in range(a + 1, self.n_persons):
                d = np.linalg.norm(hip[a] - hip[b], axis=-1)
                best = np.fmin(best, d)
        return best


def hidden_by_others(camera_center: np.ndarray, joints: np.ndarray, others: np.ndarray,
                     margin: float = 0.04) -> np.ndarray:
    """(F, J) True where the line of sight from the camera to a joint of ``joints`` (F, J, 3)
    passes through a body capsule of one of ``others`` (Q, F, J, 3) before reaching it.
    NaN (absent) people hide nothing."""
    joints = np.asarray(joints, float)
    n_f, n_j = joints.shape[:2]
    out = np.zeros((n_f, n_j), bool)
    if len(others) == 0:
        return out
    cam = np.asarray(camera_center, float)
    ray = joints - cam
    length = np.linalg.norm(ray, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        end = cam + ray * np.clip((length - margin) / length, 0, 1)
    p0 = np.broadcast_to(cam, end.shape)[:, :, None, :]
    p1 = end[:, :, None, :]
    for other in others:
        a, b = capsule_endpoints(np.asarray(other, float))  # (F, K, 3)
        with np.errstate(invalid="ignore"):
            dist, _, _ = _segment_segment_distance(p0, p1, a[:, None], b[:, None])  # (F, J, K)
            out |= (dist < RADII).any(-1)
    return out


class CrowdStudio:
    """A seeded virtual capture of several people: ``rig``, ``crowd``, ``points3d`` (P, F, J, 3)
    truth at the nominal frame times (NaN while away), and the cameras' multi-person detections.

    ``keypoints2d()`` is the multi-person 2D file object; ``detection_person``
    (C, F, P) which true person each detection slot holds; ``per_person`` the
    single-person simulations (one :class:`SyntheticKeypoints` per person, in
    person order: the oracle a benchmark triangulates with perfect association).
    ``min_joints``: a person with fewer reported joints in a camera-frame is not
    detected there at all (a detector reports no skeleton for a few joints).
    """

    def __init__(self, n_persons: int = 2, n_cameras: int = 4, fps: float = 30.0, duration_s: float = 10.0,
                 seed: int = 0, noise: DetectorNoise | None = None, size=(1280, 720), time_offsets_ms=4.0,
                 drop_rate: float = 0.0, rig: Rig | None = None, absence="auto", min_joints: int = 4):
        self.seed = int(seed)
        self.fps = float(fps)
        self.n_frames = max(1, int(round(duration_s * self.fps)))
        self.duration_s = self.n_frames / self.fps
        self.noise = noise if noise is not None else DetectorNoise()
        self.rig = rig if rig is not None else make_studio_rig(n_cameras, size=size, seed=self.seed)
        self.n_cameras = len(self.rig)
        self.skeleton = HALPE26
        self.crowd = Crowd(n_persons, self.duration_s, self.seed, absence)
        self.n_persons = self.crowd.n_persons
        self.frame_times_s = np.arange(self.n_frames) / self.fps
        self.points3d = self.crowd.joints(self.frame_times_s)  # (P, F, J, 3)

        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xC40D]))
        offsets = _resolve_offsets(time_offsets_ms, self.n_cameras, rng)
        times = sample_times(self.n_frames, self.fps, offsets, self.noise.time_jitter_ms, rng)  # (C, F)
        sampled = self.crowd.joints(times)  # (P, C, F, J, 3): everybody at each camera's instants
        self.points3d_sampled = sampled
        self.per_person: list[SyntheticKeypoints] = []
        for p in range(self.n_persons):
            others = np.delete(sampled, p, axis=0)
            hidden = (np.stack([hidden_by_others(cam.center, sampled[p, ci], others[:, ci])
                                for ci, cam in enumerate(self.rig.cameras)]) if self.noise.occlusion else None)
            self.per_person.append(synthesize_keypoints(
                self.rig, self.points3d[p], self.noise, seed=self.seed * 31 + p, time_offsets_ms=offsets,
                drop_rate=0.0, fps=self.fps, motion=lambda t, p=p: self.crowd.person_joints(p, t),
                skeleton=self.skeleton, capture_times_s=times, hidden_by_others=hidden))
        self.timestamps_ns = np.round(times * 1e9).astype(np.int64)
        self.time_offsets_ms = offsets
        self.dropped_mask = rng.random((self.n_cameras, self.n_frames)) < drop_rate  # (C, F) frames never delivered

        # ---- what the detector lists per camera-frame: the people it found, in random order
        each = np.stack([d.keypoints.keypoints for d in self.per_person], axis=2)  # (C, F, P, J, 3)
        found = (np.isfinite(each[..., 0]).sum(-1) >= min_joints) & ~self.dropped_mask[..., None]  # (C, F, P)
        order = np.argsort(np.where(found, rng.random(found.shape), 2.0), axis=-1, kind="stable")
        slot_found = np.take_along_axis(found, order, axis=-1)
        self.detection_person = np.where(slot_found, order, -1).astype(np.int8)  # (C, F, P)
        packed = np.take_along_axis(each, order[..., None, None], axis=2)
        packed[~slot_found] = np.nan
        self.found = found
        self._kp = packed.astype(np.float32)

    # ------------------------------------------------------------------ per call (camera processes)
    def keypoints(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(persons found, J, 3) float32 that camera reports at that frame, in detection order."""
        kp = self._kp[cam_index, frame_index]
        return kp[: int((self.detection_person[cam_index, frame_index] >= 0).sum())].copy()

    def capture_time_ns(self, cam_index: int, frame_index: int) -> int:
        return int(self.timestamps_ns[cam_index, frame_index])

    def dropped(self, cam_index: int, frame_index: int) -> bool:
        """True for a frame that camera never delivers (as :meth:`SyntheticStudio.dropped`)."""
        return bool(self.dropped_mask[cam_index, frame_index])

    def truth_at(self, time_ns) -> np.ndarray:
        """(P, ..., J, 3) true joints at times in ns from the start; NaN for who is away."""
        return self.crowd.joints(np.asarray(time_ns, dtype=np.float64) * 1e-9)

    def truth_for(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(P, J, 3) everybody's true joints at the instant that camera captured that frame (NaN: away)."""
        return self.points3d_sampled[:, cam_index, frame_index].copy()

    def image(self, cam_index: int, frame_index: int) -> np.ndarray:
        """(h, w, 3) uint8 BGR: everybody as that camera sees them at its capture instant
        (person ``p`` dressed by seed ``seed * 31 + p``)."""
        from rigcap.studio.person_render import render_people

        return render_people(self.rig.cameras[cam_index], self.truth_for(cam_index, frame_index),
                             [self.seed * 31 + p for p in range(self.n_persons)], self.skeleton, room_seed=self.seed)

    # ------------------------------------------------------------------ whole files
    def keypoints2d(self) -> Keypoints2D:
        """All detections, multi-person form (C, F, P, J, 3), with ``timestamps_ns``."""
        return Keypoints2D(self._kp, self.rig.names, list(self.skeleton.joint_names), self.timestamps_ns, self.fps)

    def oracle_keypoints2d(self, person: int) -> Keypoints2D:
        """One person's detections (C, F, J, 3) as if association were perfect (the single-person oracle)."""
        kp = self.per_person[person].keypoints.keypoints.copy()
        kp[self.dropped_mask | ~self.found[..., person]] = np.nan
        return Keypoints2D(kp, self.rig.names, list(self.skeleton.joint_names), self.timestamps_ns, self.fps)

    def points3d_true(self) -> Points3D:
        """The truth as a multi-person 3D file object (person ids 1..P)."""
        n_p, n_f, n_j = self.points3d.shape[:3]
        seen = np.isfinite(self.points3d).all(-1)
        return Points3D(self.points3d.copy(), list(self.skeleton.joint_names), np.zeros((n_p, n_f, n_j)),
                        np.where(seen, self.n_cameras, 0), np.round(self.frame_times_s * 1e9).astype(np.int64),
                        self.fps, person_ids=np.arange(1, n_p + 1))

    def save_truth(self, path) -> None:
        """Who each detection slot is, each person's visibility masks and exact pixels, the heights."""
        np.savez_compressed(path, detection_person=self.detection_person, found=self.found,
                            dropped=self.dropped_mask, heights_m=self.crowd.heights,
                            absences_s=np.array([a if a else (np.nan, np.nan) for a in self.crowd.absences]),
                            true_pixels=np.stack([d.true_pixels for d in self.per_person], axis=2),
                            in_image=np.stack([d.in_image for d in self.per_person], axis=2),
                            occluded=np.stack([d.occluded for d in self.per_person], axis=2),
                            inlier=np.stack([d.inlier for d in self.per_person], axis=2),
                            timestamps_ns=self.timestamps_ns, time_offsets_ms=self.time_offsets_ms,
                            camera_names=np.array(self.rig.names))

    def __repr__(self) -> str:
        return (f"CrowdStudio(n_persons={self.n_persons}, n_cameras={self.n_cameras}, fps={self.fps}, "
                f"n_frames={self.n_frames}, seed={self.seed})")
