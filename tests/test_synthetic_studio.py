"""Synthetic studio: rig, person motion, 2D detections and the studio object."""

from __future__ import annotations

import numpy as np
import pytest

from rigcap.studio.keypoints import DetectorNoise, synthesize_keypoints
from rigcap.studio.motion import PersonMotion, simulate_person
from rigcap.studio.studio import SyntheticStudio
from rigcap.studio.studio_rig import make_studio_rig
from triangulate.skeletons import HALPE26

FPS = 30.0


@pytest.fixture(scope="module")
def person():
    return simulate_person(300, FPS, seed=0)  # 10 s


@pytest.fixture(scope="module")
def rig():
    return make_studio_rig(4, seed=0)


# ---------------------------------------------------------------- rig
@pytest.mark.parametrize("n", [4, 8, 16])
def test_rig_is_realistic_and_looks_at_the_volume(n):
    rig = make_studio_rig(n, seed=3)
    assert rig.names == [f"cam_{i}" for i in range(n)]
    centres = rig.centers
    dist = np.hypot(centres[:, 0], centres[:, 1])
    assert np.all((dist > 2.6) & (dist < 3.8)) and np.all((centres[:, 2] >= 1.6) & (centres[:, 2] <= 2.6))
    for cam in rig:
        assert 0.8 * 1280 <= cam.matrix[0, 0] <= 1.0 * 1280
        assert -0.3 <= cam.dist[0] <= -0.1
        assert abs(cam.matrix[0, 2] - 639.5) < 40 and abs(cam.matrix[1, 2] - 359.5) < 25
    uv = rig.project(np.array([0.0, 0.0, 1.0]))  # the volume centre is near every image centre
    assert np.all(np.abs(uv - [640, 360]) < [250, 150])


def test_rig_is_reproducible_by_seed():
    a, b, c = make_studio_rig(4, seed=5), make_studio_rig(4, seed=5), make_studio_rig(4, seed=6)
    assert np.array_equal(a.projection_matrices, b.projection_matrices)
    assert not np.allclose(a.projection_matrices, c.projection_matrices)


# ---------------------------------------------------------------- person
def test_bone_lengths_are_constant_and_adult(person):
    bones = HALPE26.bones
    lengths = np.linalg.norm(person[:, bones[:, 0]] - person[:, bones[:, 1]], axis=-1)  # (F, B)
    assert lengths.std(axis=0).max() < 1e-6
    named = dict(zip(HALPE26.bone_names, lengths[0]))
    for side in ("left", "right"):
        assert 0.38 <= named[(f"{side}_hip", f"{side}_knee")] <= 0.50  # femur
        assert 0.36 <= named[(f"{side}_knee", f"{side}_ankle")] <= 0.48  # tibia
        assert 0.25 <= named[(f"{side}_shoulder", f"{side}_elbow")] <= 0.36  # humerus
        assert 0.20 <= named[(f"{side}_elbow", f"{side}_wrist")] <= 0.30  # forearm
    assert 0.4 <= named[("neck", "hip")] <= 0.6


def test_person_stands_walks_squats_on_the_floor(person):
    motion = PersonMotion(10.0, seed=0)
    t = np.arange(300) / FPS
    activity = motion.activity(t)
    assert {"walk", "squat", "armraise"} <= set(activity)
    head = person[:, HALPE26.index("head"), 2]
    assert 1.65 < head.max() < 1.85  # about 1.75 m tall
    pelvis = person[:, HALPE26.index("hip"), 2]
    assert pelvis[activity == "squat"].min() < 0.65  # squats go down
    feet = [HALPE26.index(j) for j in ("left_heel", "right_heel", "left_big_toe", "right_big_toe",
                                       "left_small_toe", "right_small_toe")]
    foot_z = person[:, feet, 2]
    assert foot_z.min() > -0.005  # never through the floor
    walking = activity == "walk"
    assert np.all(foot_z[walking].min(axis=1) < 0.02)  # one foot always on the floor while walking
    ground = person[walking, HALPE26.index("hip"), :2]
    assert np.linalg.norm(ground[-1] - ground[0]) > 0.5 or np.ptp(ground, axis=0).max() > 0.5  # it moves
    assert np.abs(person[..., :2]).max() < 2.0  # stays on the 4 m x 4 m floor


# ---------------------------------------------------------------- 2D detections
def test_noise_off_keypoints_equal_the_projection(rig, person):
    sk = synthesize_keypoints(rig, person, DetectorNoise.none(), seed=0)
    proj = rig.project(person)
    seen = np.isfinite(sk.pixels[..., 0])
    assert seen.mean() > 0.8
    assert np.abs(sk.pixels[seen] - proj[seen]).max() < 1e-6
    # the float32 file values are that projection rounded to float32, nothing else
    kp = sk.keypoints.keypoints
    assert np.array_equal(kp[..., :2][seen], proj[seen].astype(np.float32))
    assert np.all(kp[..., 2][seen] == 1.0)
    # what is NaN is exactly what the camera cannot image
    assert np.array_equal(seen, sk.in_image)
    assert not sk.missing.any() and not sk.swapped.any() and not sk.outlier.any()
    assert np.array_equal(sk.timestamps_ns, np.broadcast_to(np.round(np.arange(300) / FPS * 1e9), (4, 300)))


def test_noise_statistics_match_the_requested_rates(rig, person):
    noise = DetectorNoise(pixel_sigma=2.0, missing_rate=0.10, outlier_rate=0.03, swap_rate=0.02)
    rig8 = make_studio_rig(8, seed=1)
    sk = synthesize_keypoints(rig8, person, noise, seed=4, drop_rate=0.05)
    live = sk.in_image & ~sk.dropped[..., None]
    assert abs(sk.missing.sum() / live.sum() - 0.10) < 0.015
    reported = np.isfinite(sk.pixels[..., 0])
    assert abs(sk.outlier.sum() / reported.sum() - 0.03) < 0.006
    assert abs(sk.swapped.mean() - 0.02) < 0.008
    assert abs(sk.dropped.mean() - 0.05) < 0.01
    assert np.isnan(sk.keypoints.keypoints[sk.dropped]).all()
    clean = sk.inlier & ~sk.occluded & ~sk.swapped[..., None]
    err = sk.pixels[clean] - sk.true_pixels[clean]
    assert abs(err.std() - 2.0) < 0.1 and abs(err.mean()) < 0.05
    out_err = np.linalg.norm(sk.pixels[sk.outlier & ~sk.swapped[..., None]] - sk.true_pixels[sk.outlier & ~sk.swapped[..., None]], axis=-1)
    assert out_err.min() > 35 and out_err.max() < 210
    conf = sk.keypoints.confidence
    assert 0.8 < np.nanmean(conf[clean]) < 0.9
    assert np.nanmean(conf[sk.occluded & sk.inlier]) < np.nanmean(conf[clean]) - 0.2
    # occlusion is plausible: the body hides joints more from cameras behind them, not uniformly
    assert 0.1 < sk.occluded.sum() / sk.in_image.sum() < 0.45
    assert (sk.missing & sk.occluded).sum() > 0.5 * sk.missing.sum()


def test_swaps_exchange_left_and_right_labels(rig, person):
    noise = DetectorNoise.none().replace(swap_rate=0.2)
    sk = synthesize_keypoints(rig, person, noise, seed=2)
    c, f = np.argwhere(sk.swapped & np.isfinite(sk.pixels).all(axis=(2, 3)))[0]
    perm = HALPE26.swap_permutation()
    assert np.allclose(sk.pixels[c, f], sk.true_pixels[c, f, perm])
    centre = HALPE26.index("neck")
    assert sk.inlier[c, f, centre] and not sk.inlier[c, f, HALPE26.index("left_wrist")]


def test_time_offsets_sample_the_motion_at_capture_time(rig):
    motion = PersonMotion(3.0, seed=0)
    pts = motion.joints(np.arange(90) / FPS)
    offsets = np.array([0.0, 5.0, -3.0, 8.0])
    noise = DetectorNoise.none().replace(time_jitter_ms=0.5)
    sk = synthesize_keypoints(rig, pts, noise, seed=1, time_offsets_ms=offsets, motion=motion.joints)
    t = sk.timestamps_ns * 1e-9
    dt_ms = (t - np.arange(90) / FPS) * 1e3
    assert np.allclose(dt_ms.mean(axis=1), offsets, atol=0.3) and dt_ms.std(axis=1).max() < 1.0
    # positions are the truth at the camera's own capture instant
    for c in range(4):
        expect = rig[c].project(motion.joints(t[c]))
        seen = sk.in_image[c]
        assert np.abs(sk.pixels[c][seen] - expect[seen]).max() < 1e-6
    # without the motion callable, cubic interpolation of the frames is close to exact
    sk2 = synthesize_keypoints(rig, pts, noise, seed=1, time_offsets_ms=offsets)
    inner = np.zeros(90, bool)
    inner[2:-2] = True
    both = sk.in_image & sk2.in_image & inner[None, :, None]
    diff = np.linalg.norm(sk2.pixels - sk.pixels, axis=-1)[both]
    assert np.percentile(diff, 99) < 0.1 and diff.max() < 1.5  # sharpest moments: foot contacts


# ---------------------------------------------------------------- studio
def test_studio_is_deterministic_and_consistent():
    a = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=7)
    b = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=7)
    c = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=8)
    assert a.n_frames == 60 and a.points3d.shape == (60, 26, 3)
    kp_a = np.stack([a.keypoints(1, f) for f in range(60)])
    kp_b = np.stack([b.keypoints(1, f) for f in range(60)])
    assert kp_a.dtype == np.float32 and kp_a.shape == (60, 26, 3)
    assert np.array_equal(kp_a, kp_b, equal_nan=True)
    assert not np.array_equal(kp_a, np.stack([c.keypoints(1, f) for f in range(60)]), equal_nan=True)
    assert [a.capture_time_ns(2, f) for f in range(60)] == [b.capture_time_ns(2, f) for f in range(60)]
    t = a.capture_time_ns(3, 30)
    assert abs(t - 1e9) < 12e6  # within the offset range + jitter of the nominal 1 s
    assert np.allclose(a.truth_at(t), a.truth_for(3, 30))
    assert np.allclose(a.truth_at(int(round(30 / 30.0 * 1e9))), a.points3d[30])
    kp2d, p3d = a.keypoints2d(), a.points3d_true()
    assert kp2d.keypoints.shape == (4, 60, 26, 3) and kp2d.timestamps_ns.shape == (4, 60)
    assert p3d.points.shape == (60, 26, 3) and p3d.joint_names == list(HALPE26.joint_names)
    with pytest.raises(IndexError):
        a.keypoints(4, 0)


def test_studio_noise_off_matches_projection():
    s = SyntheticStudio(n_cameras=3, duration_s=1.0, seed=1, noise=DetectorNoise.none(), time_offsets_ms=None)
    for c in range(3):
        for f in (0, 17):
            kp = s.keypoints(c, f)
            proj = s.rig[c].project(s.points3d[f])
            ok = np.isfinite(kp[:, 0])
            assert ok.sum() > 20
            assert np.abs(kp[ok, :2] - proj[ok]).max() < 1e-3  # float32 storage
            assert s.capture_time_ns(c, f) == round(f / 30.0 * 1e9)
