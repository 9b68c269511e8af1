"""Cameras synchronised from the motion they see: per-camera time offsets (and clock drift) from 2D keypoints.

For cameras that cannot share a clock (phones, action cams, videos from
different machines), the keypoints themselves say when each frame was taken:
a joint seen by two calibrated cameras at the same instant lies on the
epipolar line of the other view; at the wrong instant it is off it by as
much as the joint moved.  The model per camera ``c``::

    common time = t_c + offset_c + drift_c * (t_c - t_c[first frame])

``t_c`` its own timestamps (``timestamps_ns``, or ``frame / fps``), camera
0 the reference (offset 0, drift 0).

1. **Coarse, no hint** (:func:`coarse_offsets`): every whole-frame lag within
   ``+- max_offset_s`` (5 s) is scored by the truncated mean symmetric
   epipolar distance (px) between camera 0's keypoints and camera ``c``'s at
   that lag; the lowest wins.  Confidence = how much lower it is than the
   best lag more than ``AMBIGUOUS_FRAMES`` away: a person standing still
   scores every lag alike and gets confidence ~0, never a silent wrong answer.
2. **Sub-frame** (:func:`refine_offsets`): camera ``c``'s 2D trajectories are
   interpolated linearly in time and the offset minimises a Cauchy-robust
   epipolar cost against *all* other cameras (at their current offsets), by
   bounded scalar search within one frame of the coarse lag; two rounds.
3. **Drift** (clock rate, or a frame rate that differs from the nominal one):
   offset and drift minimise the same cost over the whole recording
   together (Nelder-Mead); the drift is kept when it is worth 0.15 frame or
   more over the recording (below that a constant offset is within 0.08 frame
   everywhere).

:func:`speed_correlation_offsets` is the Pose2Sim-style whole-frame method
(cross-correlating the summed 2D speed of the keypoints), kept to compare.
All of it is vectorised over frames x joints; Python loops are over cameras,
candidate lags and windows only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from calibration.rig import Rig
from rigcap.errors import RigcapError
from triangulate.dlt import triangulate_dlt
from triangulate.formats import Keypoints2D

MAX_OFFSET_S = 5.0
AMBIGUOUS_FRAMES = 3  # a rival minimum this many frames away or more makes an offset ambiguous
LOW_CONFIDENCE = 0.3
TRUNCATE_PX = 25.0  # coarse cost: epipolar distances truncated here (outliers, swaps)
CAUCHY_PX = 4.0  # fine cost scale
SPEED_SMOOTH = 7  # frames of moving average on the speed signal (correlation method)
MIN_OVERLAP = 0.2
# the cost at the solution above this fraction of the image diagonal lowers the confidence (to 0 at
# twice it): the true rig leaves 4-6 px on the synthetic studio (1280x720) and 29-33 px with MediaPipe
# on the real demo (1080x1920, limit 44 px); a start rig off by 5 cm / 3 deg leaves 47-77 px
RIG_MISFIT = 0.02
# a drift is kept when it moves the offset by this many frames over the recording (below that, the
# constant offset fitted over the whole recording is within half of it everywhere)
DRIFT_MIN_FRAMES = 0.15
# ... and when it raises the (Cauchy) log-likelihood by this much: measured 54 for a true 1 000 ppm
# drift over 10 s, 5 for a spurious one (distances within a frame are correlated, so the usual
# one-parameter chi-square threshold of ~4 is far too low)
DRIFT_MIN_GAIN = 20.0
# drift is not fitted on recordings too short for this one (29.97 vs 30 fps) to reach DRIFT_MIN_FRAMES
DRIFT_SMALLEST = 1e-3
DRIFT_MAX = 0.01  # 1 %: more is a wrong frame rate, not a drifting clock (fix the fps)  # a lag is scored only when this fraction of the best overlap is left


@dataclass
class SyncResult:
    camera_names: list[str]
    offsets_s: np.ndarray  # (C,) seconds added to each camera's timestamps (at its first frame)
    drift: np.ndarray  # (C,) clock drift, seconds per second of the camera's own clock
    confidence: np.ndarray  # (C,) in [0, 1]; camera 0 is 1
    frame_s: np.ndarray  # (C,) each camera's median frame interval, s
    coarse_s: np.ndarray  # (C,) the whole-frame coarse offsets
    correlation_s: np.ndarray  # (C,) Pose2Sim-style speed-correlation offsets (whole frames), for comparison
    cost_px: np.ndarray  # (C,) epipolar cost at the solution (Cauchy-robust mean, px)
    warnings: list[str] = field(default_factory=list)

    @property
    def offsets_frames(self) -> np.ndarray:
        return self.offsets_s / self.frame_s


# ------------------------------------------------------------------ inputs
def camera_times(kp: Keypoints2D) -> tuple[np.ndarray, float]:
    """(C, F) seconds (NaN: no frame) relative to a common origin, and that origin in seconds."""
    if kp.timestamps_ns is not None:
        ts = np.asarray(kp.timestamps_ns, dtype=np.int64)
        valid = ts >= 0
        if not valid.any(axis=1).all():
            raise RigcapError("timestamps_ns: a camera has no timestamp at all")
        origin = int(ts[valid].min())
        t = np.where(valid, (ts - origin).astype(np.float64) * 1e-9, np.nan)
        return t, origin * 1e-9
    if not kp.fps:
        raise RigcapError("sync needs time: the keypoints carry neither timestamps_ns nor fps (pass --fps)")
    t = np.broadcast_to(np.arange(kp.n_frames) / float(kp.fps), kp.keypoints.shape[:2]).copy()
    return t, 0.0


def normalised_keypoints(rig: Rig, kp: Keypoints2D, min_confidence: float) -> np.ndarray:
    """(C, F, J, 2) undistorted normalised coordinates, NaN where missing or below ``min_confidence``."""
    xy = kp.xy.astype(np.float64)
    conf = np.nan_to_num(kp.confidence.astype(np.float64), nan=0.0)
    xy = np.where((conf >= min_confidence)[..., None], xy, np.nan)
    return rig.undistort(xy)


def _interp(t: np.ndarray, x: np.ndarray, q: np.ndarray, max_gap: float) -> np.ndarray:
    """Linear interpolation of one camera's ``x (F, J, 2)`` at times ``t (F,)`` to ``q (Q,)`` -> (Q, J, 2);
    NaN outside, across a missing neighbour or across a gap longer than ``max_gap`` s."""
    ok = np.isfinite(t)
    t, x = t[ok], x[ok]
    order = np.argsort(t)
    t, x = t[order], x[order]
    out = np.full((q.size,) + x.shape[1:], np.nan)
    if t.size < 2:
        return out
    i = np.searchsorted(t, q)
    inside = (i > 0) & (i < t.size)
    i = np.clip(i, 1, t.size - 1)
    t0, t1 = t[i - 1], t[i]
    inside &= (t1 - t0) <= max_gap
    w = ((q - t0) / np.where(t1 > t0, t1 - t0, 1.0))[:, None, None]
    val = (1.0 - w) * x[i - 1] + w * x[i]
    out[inside] = val[inside]
    return out


def _essentials(rig: Rig) -> np.ndarray:
    """(C, C, 3, 3) ``E[a, b]`` with ``x_b^T E x_a = 0`` for normalised homogeneous points."""
    n = len(rig)
    e = np.zeros((n, n, 3, 3))
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            r = rig[b].R @ rig[a].R.T
            t = rig[b].tvec - r @ rig[a].tvec
            tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
            e[a, b] = tx @ r
    return e


def epipolar_px(xa: np.ndarray, xb: np.ndarray, e_ab: np.ndarray, f_a: float, f_b: float) -> np.ndarray:
    """Symmetric epipolar distance in pixels between normalised points ``xa``, ``xb`` (..., 2)."""
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], axis=-1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], axis=-1)
    lb = ha @ e_ab.T  # line in b
    la = hb @ e_ab  # line in a
    num = np.abs(np.sum(hb * lb, axis=-1))
    db = num / np.hypot(lb[..., 0], lb[..., 1]) * f_b
    da = num / np.hypot(la[..., 0], la[..., 1]) * f_a
    return 0.5 * (da + db)


# ------------------------------------------------------------------ methods
class _Problem:
    """Everything the cost functions share: times, normalised keypoints, essentials, focal lengths."""

    def __init__(self, rig: Rig, kp: Keypoints2D, min_confidence: float):
        self.t, self.origin_s = camera_times(kp)
        self.xn = normalised_keypoints(rig, kp, min_confidence)
        self.e = _essentials(rig)
        self.rig = rig
        self.ext = rig.extrinsics
        self.px = np.where(np.isfinite(self.xn).all(-1, keepdims=True), kp.xy.astype(np.float64), np.nan)
        self.f = np.array([float(np.mean(c.focal)) for c in rig.cameras])
        self.n = len(rig)
        self.dt = np.array([float(np.nanmedian(np.diff(t[np.isfinite(t)]))) for t in self.t])
        self.first = np.array([float(np.nanmin(t)) for t in self.t])
        self.scale = np.full(self.n, CAUCHY_PX)  # px: each camera's distance scale (set by the coarse search)

    def at(self, c: int, q: np.ndarray, offset: float, drift: float = 0.0, pixels: bool = False) -> np.ndarray:
        """Camera ``c``'s normalised keypoints (or pixels) at common times ``q`` under (offset, drift)."""
        # common = t + offset + drift * (t - first)  ->  t = (common - offset + drift * first) / (1 + drift)
        own = (q - offset + drift * self.first[c]) / (1.0 + drift)
        return _interp(self.t[c], self.px[c] if pixels else self.xn[c], own, 1.5 * self.dt[c])

    def triangulated(self, cams: list[int], q: np.ndarray, offsets, drifts) -> np.ndarray:
        """(Q, J, 3) points at common times ``q`` from cameras ``cams`` at their offsets (DLT)."""
        xn = np.stack([self.at(k, q, offsets[k], drifts[k]) for k in cams])
        return triangulate_dlt(xn, self.ext[cams])

    def reprojection(self, c: int, points: np.ndarray, q: np.ndarray, offset: float, drift: float = 0.0) -> np.ndarray:
        """(Q, J) px between camera ``c``'s keypoints at ``q`` and the projection of ``points``."""
        return np.linalg.norm(self.rig[c].project(points) - self.at(c, q, offset, drift, pixels=True), axis=-1)

    def distances(self, a: int, xa: np.ndarray, b: int, xb: np.ndarray) -> np.ndarray:
        return epipolar_px(xa, xb, self.e[a, b], self.f[a], self.f[b])


def _score_lags(distances, lags: np.ndarray) -> tuple[np.ndarray, float]:
    """Truncated-mean cost (px) of every lag and the noise scale (px) it was truncated at.

    ``distances(lag)`` gives the distances at one lag.  The truncation is
    ``max(TRUNCATE_PX, 3 x`` the lowest median over the lags): a rough rig
    leaves every distance tens of pixels off, and a fixed truncation would
    flatten the curve the motion draws on top of that."""
    per_lag = []
    for lag in lags:
        d = distances(lag)
        per_lag.append(d[np.isfinite(d)])
    count = np.array([d.size for d in per_lag], dtype=float)
    enough = count >= MIN_OVERLAP * count.max() if count.max() > 0 else np.zeros(lags.size, bool)
    medians = [float(np.median(d)) for d, ok in zip(per_lag, enough) if ok and d.size]
    scale = min(medians) if medians else TRUNCATE_PX
    cut = max(TRUNCATE_PX, 3.0 * scale)
    cost = np.array([float(np.mean(np.minimum(d, cut))) if ok and d.size else np.inf for d, ok in zip(per_lag, enough)])
    return cost, scale


def coarse_offsets(p: _Problem, max_offset_s: float = MAX_OFFSET_S, ref: int = 0):
    """Whole-frame offsets against ``ref`` with no hint: (offsets (C,), confidence (C,), rival (C,)).

    ``rival``: the best lag at least ``AMBIGUOUS_FRAMES`` frames from the winner (s)."""
    offsets = np.zeros(p.n)
    conf = np.ones(p.n)
    rival = np.full(p.n, np.nan)
    q = p.t[ref][np.isfinite(p.t[ref])]
    x_ref = p.xn[ref][np.isfinite(p.t[ref])]
    for c in range(p.n):
        if c == ref:
            continue
        lag, conf[c], lag_rival = _search_lag(p, c, max_offset_s,
                                              lambda lag: p.distances(ref, x_ref, c, p.at(c, q, lag)))
        if lag is not None:
            offsets[c], rival[c] = lag, lag_rival
    return offsets, conf, rival


def _search_lag(p: _Problem, c: int, max_offset_s: float, distances) -> tuple[float | None, float, float]:
    """Camera ``c``'s best whole-frame lag within +-``max_offset_s`` under ``distances(lag)``
    (:func:`_score_lags`; sets ``p.scale[c]``): (lag, or None when no lag had data; its
    confidence, 0 then; the rival lag, :func:`_distinctness`)."""
    step = p.dt[c]
    lags = np.arange(-np.floor(max_offset_s / step), np.floor(max_offset_s / step) + 1) * step
    cost, p.scale[c] = _score_lags(distances, lags)
    if not np.isfinite(cost).any():
        return None, 0.0, float("nan")
    best = int(np.argmin(cost))
    conf, rival = _distinctness(cost, best, lags)
    return lags[best], conf, rival


def _distinctness(cost: np.ndarray, best: int, lags: np.ndarray) -> tuple[float, float]:
    """(confidence, rival lag): how much lower the winner's valley is than the deepest other one.

    The winner's valley is the run of lags around it over which the cost keeps rising, widened
    to ``AMBIGUOUS_FRAMES``; the rival is the lowest cost outside it.  A flat curve (nothing
    moves) or a second valley as deep gives ~0."""
    lo = best
    while lo > 0 and cost[lo - 1] >= cost[lo]:
        lo -= 1
    hi = best
    while hi < cost.size - 1 and cost[hi + 1] >= cost[hi]:
        hi += 1
    lo, hi = min(lo, best - AMBIGUOUS_FRAMES + 1), max(hi, best + AMBIGUOUS_FRAMES - 1)
    outside = np.ones(cost.size, bool)
    outside[max(lo, 0): hi + 1] = False
    outside &= np.isfinite(cost)
    if not outside.any():
        # the winner's valley fills the whole search range (a short one, as the live refinement
        # searches): no rival inside it; a winner at the range's end may lie beyond it (unresolved),
        # else the valley's lower rim says how distinct it is
        if best in (0, cost.size - 1) or not np.isfinite(cost[[0, -1]]).all():
            return 0.0, float("nan")
        rim = float(min(cost[0], cost[-1]))
        return float(np.clip((rim - cost[best]) / max(rim, 1e-9), 0.0, 1.0)), float("nan")
    j = int(np.argmin(np.where(outside, cost, np.inf)))
    return float(np.clip((cost[j] - cost[best]) / max(cost[j], 1e-9), 0.0, 1.0)), float(lags[j])


def _fine_cost(p: _Problem, c: int, offsets, drifts, ref: int, q: np.ndarray, others=None,
               epipolar: bool = False) -> callable:
    """Cauchy-robust mean distance (px) of camera ``c``'s keypoints to the other cameras', as a
    function of (offset, drift) of ``c``; the others at their current estimates.  With two
    other cameras or more: reprojection error of the points they triangulate (not blind to
    motion along epipolar lines); with one, or ``epipolar``: the symmetric epipolar distance
    to each other camera."""
    others = [k for k in range(p.n) if k != c] if others is None else others
    if len(others) >= 2 and not epipolar:
        points = p.triangulated(others, q, offsets, drifts)

        def distances(offset, drift):
            return [p.reprojection(c, points, q, offset, drift)]
    else:
        at_others = [(k, p.at(k, q, offsets[k], drifts[k])) for k in others]

        def distances(offset, drift):
            xc = p.at(c, q, offset, drift)
            return [p.distances(k, xk, c, xc) for k, xk in at_others]

    scale = max(CAUCHY_PX, float(p.scale[c]))

    def cost(offset: float, drift: float = 0.0) -> float:
        total, n = 0.0, 0
        for d in distances(offset, drift):
            d = d[np.isfinite(d)]
            total += float(np.sum(np.log1p((d / scale) ** 2)))
            n += d.size
        cost.count = n
        return scale * np.sqrt(np.expm1(total / n)) if n else np.inf

    cost.scale = scale

    cost.count = 0
    return cost


def reprojection_lags(p: _Problem, offsets: np.ndarray, max_offset_s: float, ref: int = 0, rounds: int = 2):
    """Whole-frame offsets re-searched over the full range with the reprojection cost: each camera
    against the points the others triangulate at their current offsets (needs 3 cameras);
    returns (offsets, confidence, rival)."""
    offsets = offsets.copy()
    conf = np.ones(p.n)
    rival = np.full(p.n, np.nan)
    q = p.t[ref][np.isfinite(p.t[ref])]
    zero = np.zeros(p.n)
    for _ in range(rounds):
        for c in range(p.n):
            if c == ref:
                continue
            others = [k for k in range(p.n) if k != c]
            points = p.triangulated(others, q, offsets, zero)
            lag, conf[c], lag_rival = _search_lag(p, c, max_offset_s, lambda lag: p.reprojection(c, points, q, lag))
            if lag is not None:  # else the last round's lag stands
                offsets[c], rival[c] = lag, lag_rival
    return offsets, conf, rival


def refine_offsets(p: _Problem, offsets: np.ndarray, ref: int = 0, rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Sub-frame offsets (within one frame of ``offsets``) against all other cameras; (offsets, cost px)."""
    offsets = offsets.astype(np.float64).copy()
    drifts = np.zeros(p.n)
    q = p.t[ref][np.isfinite(p.t[ref])]
    costs = np.zeros(p.n)
    for _ in range(rounds):
        for c in range(p.n):
            if c == ref:
                continue
            f = _fine_cost(p, c, offsets, drifts, ref, q)
            lo, hi = offsets[c] - p.dt[c], offsets[c] + p.dt[c]
            res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3 * p.dt[c]})
            offsets[c], costs[c] = float(res.x), float(res.fun)
    return offsets, costs


def fit_drift(p: _Problem, offsets: np.ndarray, ref: int = 0, confidence: np.ndarray | None = None):
    """Per-camera (offset at the first frame, drift) minimising the fine cost over the whole
    recording (Nelder-Mead from no drift); a drift is kept only when it moves the offset by
    ``DRIFT_MIN_FRAMES`` or more over the recording.  Returns (offsets, drifts)."""
    from scipy.optimize import minimize

    q = p.t[ref][np.isfinite(p.t[ref])]
    offsets = offsets.copy()
    drifts = np.zeros(p.n)
    for c in range(p.n):
        if c == ref:
            continue
        if confidence is not None and confidence[c] < LOW_CONFIDENCE:
            continue  # no drift on top of an offset that is itself in doubt
        span = float(np.nanmax(p.t[c]) - p.first[c])
        if span * DRIFT_SMALLEST < DRIFT_MIN_FRAMES * p.dt[c]:
            continue  # too short for the smallest drift that matters to show (29.97 vs 30 fps)
        # the epipolar cost over every pair: its likelihood gain is what DRIFT_MIN_GAIN was measured on
        f = _fine_cost(p, c, offsets, drifts, ref, q, epipolar=True)
        # unknowns scaled to frames: the offset, and the drift as the frames it adds over the span
        scale = np.array([p.dt[c], p.dt[c] / span])
        res = minimize(lambda z: f(offsets[c] + z[0] * scale[0], z[1] * scale[1]), np.zeros(2), method="Nelder-Mead",
                       options={"xatol": 1e-3, "fatol": 1e-6, "initial_simplex": [[0, 0], [0.3, 0], [0, 0.5]]})
        # log-likelihood ratio of the Cauchy model with and without the drift (one parameter more)
        base = f(offsets[c], 0.0)
        gain = f.count * (np.log1p((base / f.scale) ** 2) - np.log1p((res.fun / f.scale) ** 2))
        if (abs(res.x[1]) >= DRIFT_MIN_FRAMES and gain > DRIFT_MIN_GAIN and np.isfinite(res.fun)
                and abs(res.x[1] * scale[1]) <= DRIFT_MAX):
            offsets[c] += res.x[0] * scale[0]
            drifts[c] = res.x[1] * scale[1]
    return offsets, drifts


def speed_correlation_offsets(p: _Problem, max_offset_s: float = MAX_OFFSET_S, ref: int = 0) -> np.ndarray:
    """Pose2Sim-style: whole-frame lag maximising the correlation of the summed 2D keypoint speed
    (normalised units x focal = px/frame) of each camera with the reference camera's."""

    def speed(c):
        x = p.xn[c] * p.f[c]
        v = np.linalg.norm(np.diff(x, axis=0), axis=-1)  # (F-1, J) px per frame
        with warnings.catch_warnings():  # frames where no joint is seen twice in a row: NaN, filled below
            warnings.simplefilter("ignore", RuntimeWarning)
            s = np.nanmedian(v, axis=1) if v.size else np.zeros(0)
        s = np.where(np.isfinite(s), s, np.nanmedian(s) if np.isfinite(s).any() else 0.0)
        s = np.convolve(s, np.ones(SPEED_SMOOTH) / SPEED_SMOOTH, mode="same")  # Pose2Sim low-passes too
        return s - s.mean()

    out = np.zeros(p.n)
    s_ref = speed(ref)
    for c in range(p.n):
        if c == ref:
            continue
        s_c = speed(c)
        max_lag = int(np.floor(max_offset_s / p.dt[c]))
        best, best_r = 0, -np.inf
        for lag in range(-max_lag, max_lag + 1):
            # camera c's frame i shows the common instant of reference frame i + lag / dt
            a = s_ref[max(lag, 0): len(s_ref) + min(lag, 0)]
            b = s_c[max(-lag, 0): len(s_c) + min(-lag, 0)]
            n = min(a.size, b.size)
            if n < 0.2 * min(s_ref.size, s_c.size) or n < 5:
                continue
            a, b = a[:n], b[:n]
            den = np.linalg.norm(a - a.mean()) * np.linalg.norm(b - b.mean())
            r = float((a - a.mean()) @ (b - b.mean()) / den) if den > 0 else -np.inf
            if r > best_r:
                best, best_r = lag, r
        out[c] = best * p.dt[c]
    return out


def sync_from_motion(rig: Rig, kp: Keypoints2D, *, max_offset_s: float = MAX_OFFSET_S, min_confidence: float = 0.3,
                     drift: bool = True) -> SyncResult:
    """Per-camera time offsets (camera 0 the reference) from the keypoints; see the module docstring.
    ``rig``'s cameras are in ``kp``'s camera order."""
    if kp.keypoints.ndim != 4:
        raise RigcapError("sync from motion takes one person's keypoints (cameras, frames, joints, 3); this file "
                          "holds several people per frame: triangulate them with --persons first, or keep one")
    if len(rig) != kp.n_cameras:
        raise RigcapError(f"sync: {len(rig)} rig cameras for keypoints of {kp.n_cameras} cameras")
    if kp.n_cameras < 2:
        raise RigcapError("sync needs two cameras or more")
    p = _Problem(rig, kp, min_confidence)
    coarse, conf, rival = coarse_offsets(p, max_offset_s)
    if p.n >= 3:
        coarse, conf, rival = reprojection_lags(p, coarse, max_offset_s)
    fine, cost = refine_offsets(p, coarse)
    warnings = []
    # a rig that does not fit the keypoints (a rough start) makes every lag wrong in a way the rival
    # valley cannot see: the cost at the solution gives it away
    limit = RIG_MISFIT * np.array([np.hypot(*cam.size) for cam in rig.cameras])
    misfit = np.clip(2.0 - cost / limit, 0.0, 1.0)
    misfit[0] = 1.0
    for c in range(1, p.n):
        if misfit[c] < 1.0:
            warnings.append(f"{kp.camera_names[c]}: at its best offset the keypoints miss the rig's geometry by "
                            f"{cost[c]:.0f} px (above {RIG_MISFIT:.0%} of the image diagonal): the rig does not fit "
                            "these keypoints; sync with a calibrated rig")
    conf = conf * misfit
    drifts = np.zeros(p.n)
    if drift:
        fine, drifts = fit_drift(p, fine, confidence=conf)
        fine, cost = _polish(p, fine, drifts)
    corr = speed_correlation_offsets(p, max_offset_s)
    for c in range(1, p.n):
        if conf[c] < LOW_CONFIDENCE and misfit[c] == 1.0:
            alt = f"; another lag, {rival[c]:+.3f} s, fits almost as well" if np.isfinite(rival[c]) else ""
            warnings.append(
                f"{kp.camera_names[c]}: offset ambiguous (confidence {conf[c]:.2f}){alt}: the keypoints barely move "
                "or the cameras share too little; record a few seconds of brisk motion seen by all cameras")
    return SyncResult(list(kp.camera_names), fine, drifts, conf, p.dt, coarse, corr, cost, warnings)


def _polish(p: _Problem, offsets: np.ndarray, drifts: np.ndarray, ref: int = 0):
    """The offsets refined once more with the drift held, over the whole recording."""
    q = p.t[ref][np.isfinite(p.t[ref])]
    costs = np.zeros(p.n)
    offsets = offsets.copy()
    for c in range(p.n):
        if c == ref:
            continue
        f = _fine_cost(p, c, offsets, drifts, ref, q)
        res = minimize_scalar(lambda o: f(o, drifts[c]), bounds=(offsets[c] - 0.5 * p.dt[c], offsets[c] + 0.5 * p.dt[c]),
                              method="bounded", options={"xatol": 1e-3 * p.dt[c]})
        offsets[c], costs[c] = float(res.x), float(res.fun)
    return offsets, costs


# ------------------------------------------------------------------ outputs
def corrected_timestamps_ns(kp: Keypoints2D, sync: SyncResult) -> np.ndarray:
    """(C, F) int64 timestamps on the common clock (-1 kept where there was no frame)."""
    t, origin = camera_times(kp)
    first = np.nanmin(t, axis=1, keepdims=True)
    common = t + sync.offsets_s[:, None] + sync.drift[:, None] * (t - first)
    ns = np.round((common + origin) * 1e9)
    return np.where(np.isfinite(ns), ns, -1).astype(np.int64)


def apply_sync(kp: Keypoints2D, sync: SyncResult) -> Keypoints2D:
    """The same keypoints with corrected ``timestamps_ns`` and the sync arrays attached."""
    extra = dict(kp.extra)
    extra.update(time_offsets_s=sync.offsets_s.astype(np.float64), sync_confidence=sync.confidence.astype(np.float64),
                 clock_drift=sync.drift.astype(np.float64))
    return Keypoints2D(kp.keypoints, kp.camera_names, kp.joint_names, corrected_timestamps_ns(kp, sync), kp.fps, extra)


def resample_to_reference(kp: Keypoints2D, sync: SyncResult, ref: int = 0) -> Keypoints2D:
    """Keypoints where frame ``f`` of every camera is the reference camera's instant ``f``:
    each camera's 2D positions interpolated linearly at those instants on its own clock
    (confidence: the lower of the two neighbours), so frame-indexed triangulation sees
    synchronous views."""
    t, _ = camera_times(kp)
    q = t[ref]
    dt = np.array([float(np.nanmedian(np.diff(ti[np.isfinite(ti)]))) for ti in t])
    first = np.nanmin(t, axis=1)
    out = np.full(kp.keypoints.shape, np.nan, dtype=np.float64)
    for c in range(kp.n_cameras):
        own = (q - sync.offsets_s[c] + sync.drift[c] * first[c]) / (1.0 + sync.drift[c])
        xy = kp.keypoints[c, ..., :2].astype(np.float64)
        conf = kp.keypoints[c, ..., 2:3].astype(np.float64)
        valid = np.isfinite(q)
        res_xy = _interp(t[c], xy, own[valid], 1.5 * dt[c])
        # confidence: the lower neighbour's, carried by interpolating min over a 2-frame window
        conf_lo = np.fmin(conf, np.roll(conf, -1, axis=0))
        res_c = _interp(t[c], np.concatenate([conf_lo, conf_lo], axis=-1), own[valid], 1.5 * dt[c])[..., :1]
        out[c, valid] = np.concatenate([res_xy, res_c], axis=-1)
    times = np.where(np.isfinite(q), np.round(q * 1e9), -1).astype(np.int64)
    ts = None
    if kp.timestamps_ns is not None:
        ts = np.broadcast_to(np.where(np.isfinite(q), kp.timestamps_ns[ref], -1), kp.keypoints.shape[:2]).copy()
    elif kp.fps:
        ts = np.broadcast_to(times, kp.keypoints.shape[:2]).copy()
    return Keypoints2D(out.astype(np.float32), kp.camera_names, kp.joint_names, ts, kp.fps)


def sync_keypoints(rig: Rig, kp: Keypoints2D, **kwargs) -> tuple[Keypoints2D, SyncResult]:
    """Sync from motion, then resample every camera at the reference camera's instants."""
    sync = sync_from_motion(rig, kp, **kwargs)
    return resample_to_reference(kp, sync), sync


def print_sync(sync: SyncResult, console=None) -> None:
    """A row per camera: offset in ms and frames, drift, confidence; beside Pose2Sim-style speed correlation."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="sync from motion (camera 0 the reference)")
    for col in ("camera", "offset ms", "offset frames", "drift ppm", "confidence", "epipolar px",
                "Pose2Sim-style ms"):
        table.add_column(col, justify="left" if col == "camera" else "right")
    for c, name in enumerate(sync.camera_names):
        table.add_row(name, f"{sync.offsets_s[c] * 1e3:+.2f}", f"{sync.offsets_frames[c]:+.3f}",
                      f"{sync.drift[c] * 1e6:+.0f}", f"{sync.confidence[c]:.2f}",
                      "-" if c == 0 else f"{sync.cost_px[c]:.2f}", f"{sync.correlation_s[c] * 1e3:+.1f}")
    console.print(table)
    console.print("Pose2Sim-style: whole-frame lag of best correlation of the keypoints' 2D speed, for comparison")
    for w in sync.warnings:
        console.print(f"[yellow]low confidence:[/yellow] {w}")
