"""Temporal filtering of 3D joint trajectories.

Offline (:func:`smooth_points`): short gaps (at most ``max_gap`` frames,
bounded by data on both sides) are interpolated, then every contiguous run of
data is low-passed with a zero-phase Butterworth filter
(``scipy.signal.sosfiltfilt``, forward and backward: no lag).  Longer gaps and
the ends of a recording before the first / after the last detection stay NaN:
nothing is extrapolated.  Because the filter runs twice, ``cutoff_hz`` is its
-6 dB point (a single pass of the same design is -3 dB there).

Live (:class:`OneEuroFilter`): the causal One-Euro filter (Casiez, Roussel and
Vogel, CHI 2012), an exponential smoother whose cutoff rises with speed, so a
still joint stops jittering and a fast one does not lag.  Vectorised over
joints; speed is the norm of the 3D velocity, so a joint is smoothed the same
way along every axis.

Arrays are (frames, joints, 3) in metres, NaN where a joint is missing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# scipy is imported inside the offline functions: it takes seconds to import, and the
# live fusion process (OneEuroFilter only) starts faster without it.

INTERPOLATIONS = ("linear", "cubic", "pchip")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def fill_gaps(points: np.ndarray, max_gap: int = 10, interpolation: str = "cubic") -> np.ndarray:
    """Interpolate interior gaps of at most ``max_gap`` frames in (F, J, D) trajectories.

    ``interpolation``: ``"linear"``, ``"cubic"`` (cubic spline through every
    sample of that joint) or ``"pchip"`` (shape-preserving cubic, no
    overshoot).  Returns a copy; longer gaps and leading/trailing gaps stay NaN.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    out = np.array(points, dtype=np.float64, copy=True)
    if max_gap <= 0 or out.shape[0] < 3:
        return out
    frames = np.arange(out.shape[0])
    for j in range(out.shape[1]):
        have = np.isfinite(out[:, j]).all(axis=-1)
        if have.sum() < 2 or have.all():
            continue
        starts, ends = _runs(~have)
        fill = np.zeros_like(have)
        for s, e in zip(starts, ends):
            if s > 0 and e < len(have) and e - s <= max_gap:
                fill[s:e] = True
        if not fill.any():
            continue
        t, v = frames[have], out[have, j]
        from scipy import interpolate

        if interpolation == "linear" or have.sum() < 3:
            out[fill, j] = np.stack([np.interp(frames[fill], t, v[:, d]) for d in range(v.shape[1])], axis=-1)
        elif interpolation == "cubic":
            out[fill, j] = interpolate.CubicSpline(t, v, axis=0)(frames[fill])
        else:
            out[fill, j] = interpolate.PchipInterpolator(t, v, axis=0)(frames[fill])
    return out


def butterworth(points: np.ndarray, fps: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Zero-phase low-pass of (F, J, D) trajectories, each run of finite frames on its own.

    Runs shorter than the filter's usual padding are filtered with the
    padding they allow; single frames pass unchanged.
    """
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise ValueError("Butterworth filtering needs the frame rate (fps > 0)")
    if not 0 < cutoff_hz < fps / 2:
        raise ValueError(f"cutoff {cutoff_hz} Hz must lie between 0 and the Nyquist frequency {fps / 2:g} Hz")
    from scipy import signal

    sos = signal.butter(order, cutoff_hz, btype="low", fs=fps, output="sos")
    default_pad = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    out = np.array(points, dtype=np.float64, copy=True)
    have = np.isfinite(out).all(axis=-1)  # (F, J)
    full = have.all(axis=0)
    if full.any() and out.shape[0] > 1:  # every complete trajectory in one call
        out[:, full] = signal.sosfiltfilt(sos, out[:, full], axis=0, padlen=min(default_pad, out.shape[0] - 1))
    for j in np.flatnonzero(~full):
        for s, e in zip(*_runs(have[:, j])):
            if e - s > 1:
                out[s:e, j] = signal.sosfiltfilt(sos, out[s:e, j], axis=0, padlen=min(default_pad, e - s - 1))
    return out


def smooth_points(points: np.ndarray, fps: float, cutoff_hz: float | None = 6.0, order: int = 4,
                  max_gap: int = 10, interpolation: str = "cubic") -> np.ndarray:
    """Gap filling then zero-phase Butterworth (``cutoff_hz=None``: gap filling only)."""
    out = fill_gaps(points, max_gap, interpolation)
    if cutoff_hz:
        out = butterworth(out, fps, cutoff_hz, order)
    return out


class OneEuroFilter:
    """Causal One-Euro filter over J joints, for the live path.

    ``min_cutoff`` (Hz): smoothing of a still joint (lower = smoother, more
    lag).  ``beta`` (1/m): how fast the cutoff rises with speed (cutoff =
    ``min_cutoff + beta * speed_m_per_s``).  ``d_cutoff`` (Hz): smoothing of
    the speed estimate.  A joint missing for longer than ``reset_after_s``
    restarts from its next measurement instead of gliding from a stale one.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 2.0, d_cutoff: float = 1.0, reset_after_s: float = 0.5):
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset_after_s = float(reset_after_s)
        self.reset()
        # Load the compiled step now (numba's cache), not on the first live instant.
        _one_euro_step(np.zeros((0, 3)), 0.0, np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0),
                       1.0, 0.0, 1.0, 0.5, np.zeros((0, 3)))

    def reset(self) -> None:
        self._x: np.ndarray | None = None  # (J, 3) last output
        self._dx: np.ndarray | None = None  # (J, 3) smoothed velocity
        self._t: np.ndarray | None = None  # (J,) time of last output, NaN = never

    def extend(self, n: int) -> None:
        """Make room for ``n`` points (J) without touching the state of those already filtered:
        the new ones start as never seen."""
        if self._x is None:
            self._x, self._dx, self._t = np.full((n, 3), np.nan), np.zeros((n, 3)), np.full(n, np.nan)
        elif self._x.shape[0] < n:
            k = n - self._x.shape[0]
            self._x = np.concatenate([self._x, np.full((k, 3), np.nan)])
            self._dx = np.concatenate([self._dx, np.zeros((k, 3))])
            self._t = np.concatenate([self._t, np.full(k, np.nan)])

    def update(self, points: np.ndarray, t_s: float, rows: np.ndarray | None = None) -> np.ndarray:
        """Filter one instant: points (J, 3) at time ``t_s`` seconds -> (J, 3), NaN where missing.

        ``rows`` (K,): ``points`` (K, 3) are those rows of the state (made with :meth:`extend`); the other
        rows keep their state untouched, as a row given NaN does, at no cost."""
        x = np.ascontiguousarray(points, dtype=np.float64)
        if rows is None:
            if self._x is None or self._x.shape != x.shape:
                self._x = np.full_like(x, np.nan)
                self._dx = np.zeros_like(x)
                self._t = np.full(x.shape[0], np.nan)
            rows = np.arange(x.shape[0])
        out = np.empty_like(x)
        _one_euro_step(x, float(t_s), np.asarray(rows, dtype=np.int64), self._x, self._dx, self._t,
                       self.min_cutoff, self.beta, self.d_cutoff, self.reset_after_s, out)
        return out


@njit(cache=True)
def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@njit(cache=True)
def _one_euro_step(x, t_s, rows, state_x, state_dx, state_t, min_cutoff, beta, d_cutoff, reset_after_s, out) -> None:
    """One instant of :class:`OneEuroFilter` for points ``x`` (K, 3), the state rows ``rows`` (K,), in place.

    Per point: a NaN point is missing (output NaN, state kept); one never seen or last seen more than
    ``reset_after_s`` ago restarts from itself; otherwise the speed is smoothed at ``d_cutoff`` and the
    point at ``min_cutoff + beta * speed``; a repeated timestamp returns the previous output.  A compiled
    loop: the numpy form was ~25 calls (0.1-0.2 ms) per instant on 26 joints."""
    for k in range(x.shape[0]):
        r = rows[k]
        if not (np.isfinite(x[k, 0]) and np.isfinite(x[k, 1]) and np.isfinite(x[k, 2])):
            out[k, :] = np.nan
            continue
        dt = t_s - state_t[r]  # NaN where never seen
        if not dt <= reset_after_s:  # never seen, or stale: restart
            out[k, :] = x[k]
            state_dx[r, :] = 0.0
            state_x[r, :] = x[k]
            state_t[r] = t_s
        elif dt > 0:
            a_d = _alpha(d_cutoff, dt)
            dx0 = a_d * (x[k, 0] - state_x[r, 0]) / dt + (1.0 - a_d) * state_dx[r, 0]
            dx1 = a_d * (x[k, 1] - state_x[r, 1]) / dt + (1.0 - a_d) * state_dx[r, 1]
            dx2 = a_d * (x[k, 2] - state_x[r, 2]) / dt + (1.0 - a_d) * state_dx[r, 2]
            a = _alpha(min_cutoff + beta * np.sqrt(dx0 * dx0 + dx1 * dx1 + dx2 * dx2), dt)
            for i in range(3):
                out[k, i] = a * x[k, i] + (1.0 - a) * state_x[r, i]
            state_dx[r, 0], state_dx[r, 1], state_dx[r, 2] = dx0, dx1, dx2
            state_x[r, :] = out[k]
            state_t[r] = t_s
        else:  # a repeated timestamp
            out[k, :] = state_x[r]


class OneEuroBank:
    """One-Euro filters of several people, one row of joints per identity, all updated in one
    array pass (a person not seen at an instant keeps their state, as a joint not seen does)."""

    def __init__(self, n_joints: int, **params):
        self.n_joints = n_joints
        self.filter = OneEuroFilter(**params)
        self.rows: dict[int, int] = {}  # identity -> row

    def update(self, ids, points: np.ndarray, t_s: float) -> np.ndarray:
        """points (K, J, 3) of identities ``ids`` (K,) at ``t_s`` -> (K, J, 3) filtered.

        Only the rows of ``ids`` are filtered: the cost follows the people in view, not every identity
        ever seen (which grows without bound on a long session)."""
        rows = np.array([self.rows.setdefault(int(i), len(self.rows)) for i in ids], dtype=np.intp)
        self.filter.extend(len(self.rows) * self.n_joints)
        k = len(rows)
        joint_rows = (rows[:, None] * self.n_joints + np.arange(self.n_joints)).ravel()
        pts = np.asarray(points, dtype=np.float64).reshape(k * self.n_joints, 3)
        return self.filter.update(pts, t_s, joint_rows).reshape(k, self.n_joints, 3)
