"""Temporal filters: zero-phase Butterworth, gap interpolation, causal One-Euro, against known signals."""

import numpy as np
import pytest

from triangulate.filters import OneEuroBank, OneEuroFilter, butterworth, fill_gaps, smooth_points

FPS = 60.0


def trajectory(n=300, slow_hz=1.0, fast_hz=15.0, fast_amp=0.01):
    """(F, 2, 3): joint 0 a slow 1 Hz sway (0.2 m) plus 15 Hz jitter; joint 1 a straight walk."""
    t = np.arange(n) / FPS
    slow = 0.2 * np.sin(2 * np.pi * slow_hz * t)
    pts = np.zeros((n, 2, 3))
    pts[:, 0, 0] = slow
    pts[:, 0, 1] = slow
    pts[:, 0, 2] = 1.0
    pts[:, 1] = np.stack([1.2 * t, 0.3 + 0 * t, 0.9 + 0 * t], axis=-1)
    clean = pts.copy()
    pts[:, 0, :2] += fast_amp * np.sin(2 * np.pi * fast_hz * t)[:, None]
    return t, clean, pts


def test_butterworth_removes_jitter_without_lag():
    _, clean, noisy = trajectory()
    out = butterworth(noisy, FPS, cutoff_hz=6.0)
    inner = slice(30, -30)
    assert np.abs(noisy - clean)[inner].max() > 0.009
    assert np.abs(out - clean)[inner].max() < 0.001  # 15 Hz jitter gone, 1 Hz sway kept
    # Zero phase: the filtered sway peaks on the same frame as the true one.
    assert np.argmax(out[:150, 0, 0]) == np.argmax(clean[:150, 0, 0])
    assert np.abs(out[:, 1] - clean[:, 1]).max() < 1e-3  # a straight line passes through


def test_butterworth_rejects_bad_settings():
    _, _, pts = trajectory(50)
    with pytest.raises(ValueError, match="Nyquist"):
        butterworth(pts, FPS, cutoff_hz=40.0)
    with pytest.raises(ValueError, match="frame rate"):
        butterworth(pts, 0.0, cutoff_hz=6.0)


def test_butterworth_filters_runs_between_gaps_and_keeps_gaps():
    _, clean, noisy = trajectory()
    noisy[100:140, 0] = np.nan
    out = butterworth(noisy, FPS, cutoff_hz=6.0)
    assert np.isnan(out[100:140, 0]).all()
    assert np.isfinite(out[:100, 0]).all() and np.isfinite(out[140:, 0]).all()
    assert np.abs(out - clean)[40:80, 0].max() < 0.001
    single = np.full((5, 1, 3), np.nan)
    single[2] = 1.0
    assert np.array_equal(butterworth(single, FPS, 6.0)[2], single[2])  # a lone frame passes unchanged


@pytest.mark.parametrize("kind, tol", [("linear", 0.01), ("cubic", 0.001), ("pchip", 0.004)])
def test_short_gaps_are_interpolated_long_ones_and_ends_are_not(kind, tol):
    _, clean, _ = trajectory()
    pts = clean.copy()
    pts[50:56, 0] = np.nan  # 6 frames: filled
    pts[200:230, 0] = np.nan  # 30 frames: kept
    pts[:4, 1] = np.nan  # leading: never extrapolated
    out = fill_gaps(pts, max_gap=10, interpolation=kind)
    assert np.abs(out[50:56, 0] - clean[50:56, 0]).max() < tol
    assert np.isnan(out[200:230, 0]).all()
    assert np.isnan(out[:4, 1]).all()
    assert np.array_equal(out[np.isfinite(pts)], pts[np.isfinite(pts)])  # data untouched
    assert np.isnan(fill_gaps(pts, max_gap=0)[50:56, 0]).all()
    with pytest.raises(ValueError, match="interpolation"):
        fill_gaps(pts, 5, "nearest")


def test_smooth_points_fills_then_filters():
    _, clean, noisy = trajectory()
    noisy[120:125, 0] = np.nan
    out = smooth_points(noisy, FPS, cutoff_hz=6.0, max_gap=8)
    assert np.isfinite(out).all()
    assert np.abs(out - clean)[30:-30].max() < 0.006  # the filled gap rests on jittered neighbours


def test_one_euro_steadies_a_still_joint_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    n = 240
    t = np.arange(n) / FPS
    still = np.array([0.1, 0.2, 1.0]) + rng.normal(0, 0.005, (n, 3))  # 5 mm jitter
    moving = np.stack([2.0 * t, 0 * t, 1.0 + 0 * t], axis=-1) + rng.normal(0, 0.005, (n, 3))  # 2 m/s
    f = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    out = np.stack([f.update(np.stack([still[i], moving[i]]), t[i]) for i in range(n)])
    assert out[60:, 0].std(axis=0).max() < 0.4 * still[60:].std(axis=0).min()  # jitter cut by > 2.5x
    lag = np.abs(out[60:, 1, 0] - 2.0 * t[60:]).mean()
    f0 = OneEuroFilter(min_cutoff=1.0, beta=0.0)  # a plain 1 Hz exponential low-pass
    out0 = np.stack([f0.update(np.stack([still[i], moving[i]]), t[i]) for i in range(n)])
    lag0 = np.abs(out0[60:, 1, 0] - 2.0 * t[60:]).mean()
    assert lag < 0.05 and lag < 0.2 * lag0  # speed opens the cutoff: little lag where it matters
    # Causal: the output at frame i does not change when later frames change.
    g = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    later = np.stack([g.update(np.stack([still[i], moving[i] + (5.0 if i > 100 else 0.0)]), t[i]) for i in range(n)])
    assert np.array_equal(later[:101], out[:101])


def test_one_euro_handles_missing_joints_and_restarts_after_long_gaps():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, reset_after_s=0.5)
    p = np.array([[0.0, 0.0, 1.0]])
    assert np.array_equal(f.update(p, 0.0), p)  # first sample passes through
    assert np.isnan(f.update(np.full((1, 3), np.nan), 1 / FPS)).all()  # missing stays missing
    mid = f.update(p + 1.0, 2 / FPS)
    assert 0.0 < mid[0, 0] < 0.5  # smoothed across the short gap
    back = f.update(p + 3.0, 2.0)  # 2 s later: restart, no glide from a stale value
    assert np.allclose(back, p + 3.0)
    assert np.array_equal(f.update(p + 9.0, 2.0), back)  # repeated timestamp: same output


def test_one_euro_bank_filters_each_identity_as_its_own_filter_and_keeps_absent_ones():
    """A person out of view keeps their state (and costs nothing); each identity's output is what a filter
    of that identity alone gives, whoever else came and went (review finding: the bank filtered every
    identity ever seen at every instant)."""
    rng = np.random.default_rng(0)
    n_j = 3
    walk = {i: np.cumsum(rng.normal(0, 0.01, (40, n_j, 3)), axis=0) + i for i in (1, 2, 3)}
    present = {1: range(0, 40), 2: list(range(0, 10)) + list(range(12, 40)), 3: range(20, 40)}  # 2: gone 66 ms
    bank = OneEuroBank(n_j, min_cutoff=1.0, beta=30.0)
    alone = {i: OneEuroFilter(min_cutoff=1.0, beta=30.0) for i in walk}
    for f in range(40):
        t = f / 30.0
        ids = [i for i in (3, 1, 2) if f in present[i]]  # any order
        out = bank.update(np.array(ids), np.stack([walk[i][f] for i in ids]), t)
        assert out.shape == (len(ids), n_j, 3)
        for k, i in enumerate(ids):
            np.testing.assert_array_equal(out[k], alone[i].update(walk[i][f], t))
    assert len(bank.rows) == 3 and bank.filter._x.shape == (3 * n_j, 3)
