"""Fusion logic on the synthetic studio: grouped instants triangulate to the 3D truth."""

import numpy as np
import pytest

from capture.synthetic.keypoints import DetectorNoise
from capture.synthetic.studio import SyntheticStudio
from triangulate.filters import OneEuroFilter
from triangulate.fusion import FusionEngine, first_person

TRANSIT_NS = 1_500_000


def feed(studio, engine, dead_camera=None, dead_from=None):
    """Push every camera's frames in arrival order; returns the fused instants."""
    msgs = []
    for c in range(len(studio.rig)):
        for f in range(studio.n_frames):
            if studio.dropped(c, f) or (c == dead_camera and f >= dead_from):
                continue
            t = studio.capture_time_ns(c, f)
            msgs.append((t + TRANSIT_NS + c * 100_000, c, f, t))
    msgs.sort()
    out = []
    for arrival, c, f, t in msgs:
        out += engine.push(studio.rig.names[c], f, t, studio.keypoints(c, f)[None], arrival)
    out += engine.poll(msgs[-1][0] + 10**10)
    return out


def mpjpe_mm(studio, fused):
    errs = []
    for inst in fused:
        truth = studio.truth_at(inst.time_ns)
        d = np.linalg.norm(inst.raw_points - truth, axis=-1)
        errs.append(d[np.isfinite(d)])
    return 1000 * np.mean(np.concatenate(errs))


def test_noiseless_instants_triangulate_exactly():
    studio = SyntheticStudio(n_cameras=4, duration_s=1.0, seed=1, noise=DetectorNoise.none(), time_offsets_ms=None)
    engine = FusionEngine(studio.rig, studio.skeleton, fps=studio.fps)
    fused = feed(studio, engine)
    assert len(fused) == studio.n_frames
    assert all(len(i.cameras) == 4 for i in fused)
    assert mpjpe_mm(studio, fused) < 0.01
    assert all(len(set(i.frames.values())) == 1 for i in fused)


def test_noisy_rig_with_offsets_and_drops_stays_accurate():
    studio = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=2, noise=DetectorNoise(), drop_rate=0.05)
    engine = FusionEngine(studio.rig, studio.skeleton, fps=studio.fps)
    fused = feed(studio, engine)
    assert abs(len(fused) - studio.n_frames) <= 2
    assert all(len(set(i.frames.values())) == 1 for i in fused)
    assert mpjpe_mm(studio, fused) < 25.0
    spread_ms = np.array([i.spread_ns for i in fused]) / 1e6
    assert np.median(spread_ms) < 10


def test_dead_camera_leaves_three_view_instants():
    studio = SyntheticStudio(n_cameras=4, duration_s=2.0, seed=3, noise=DetectorNoise(pixel_sigma=1.0))
    engine = FusionEngine(studio.rig, studio.skeleton, fps=studio.fps, alive_window_ns=200_000_000)
    fused = feed(studio, engine, dead_camera=2, dead_from=20)
    late = [i for i in fused if min(i.frames.values()) > 30]
    assert late and all("cam_2" not in i.cameras and len(i.cameras) == 3 for i in late)
    assert mpjpe_mm(studio, late) < 30.0


def test_one_euro_smoothing_reduces_jitter_of_a_still_subject():
    rng = np.random.default_rng(0)
    truth = rng.uniform(-0.5, 0.5, (5, 3))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw, smooth = [], []
    for k in range(120):
        noisy = truth + rng.normal(0, 0.005, truth.shape)
        raw.append(noisy)
        smooth.append(f.update(noisy, k / 30))
    raw_err = np.linalg.norm(np.array(raw[30:]) - truth, axis=-1).mean()
    smooth_err = np.linalg.norm(np.array(smooth[30:]) - truth, axis=-1).mean()
    assert smooth_err < 0.5 * raw_err


@pytest.mark.parametrize("persons", [0, 1, 3])
def test_first_person_picks_the_most_confident(persons):
    kp = np.zeros((persons, 4, 3))
    if persons:
        kp[..., 2] = 0.1
        kp[-1, :, 2] = 0.9
        kp[-1, :, 0] = 7.0
    out = first_person(kp, 4)
    assert out.shape == (4, 3)
    if persons:
        assert np.all(out[:, 0] == 7.0)
    else:
        assert np.isnan(out).all()
