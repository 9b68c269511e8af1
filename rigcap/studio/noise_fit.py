"""Measure a 2D detector's errors: the statistics the real-detector model (:mod:`rigcap.studio.detector_error`) is made of.

Two steps, so the same statistics serve real data and the tests:

* :func:`error_statistics` -- from known errors (px), confidences and body
  sizes: per-camera-joint bias, a joint maximum-likelihood Student-t fit of
  the scale (per joint group, times the confidence factor) and the tail index,
  the lag-1 autocorrelation of the errors' normal scores (the AR(1) of the
  model's Gaussian copula), and the confidences' distribution and
  autocorrelation.  On the studio's own errors it must give back the model's
  parameters (``tests/test_detector_error.py``).
* :func:`measure_detector_error` -- real keypoints + a calibrated rig: the
  errors are the residuals against rigcap's triangulation (swap repair and
  soft robust fit, as ``rigcap triangulate``), each divided by
  ``sqrt(1 - leverage)`` (a point fitted to a view pulls towards it: the raw
  residual of 4 equal views underestimates the error by about 1.27x);
  points with fewer than three views are left out (two views fit each other).

Units: errors relative to the body size (:func:`~rigcap.studio.detector_error.body_size_px`)
per image axis; time constants in ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import optimize, special, stats

from rigcap.studio.detector_error import (MEDIAPIPE_POSE2SIM, RealDetectorError, ar1_normal, body_size_px,
                                          joint_group, student_t_from_normal)

CONF_LEVELS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass
class ErrorStatistics:
    """What :func:`error_statistics` measured (see :class:`~rigcap.studio.detector_error.RealDetectorError`)."""

    n_errors: int  # error samples (views x 2 axes) in the fit
    sigma_rel: float  # t scale at confidence 1, body sizes (count-weighted geometric mean over joint groups)
    joint_scale: dict[str, float]  # per joint group, relative to sigma_rel
    joint_count: dict[str, int]
    conf_gain: float
    tail_nu: float
    rho: float  # lag-1 autocorrelation of the errors' normal scores at ``fps``
    tau_ms: float
    bias_rel: float  # rms per axis of the per camera-joint bias (sampling noise of the estimate removed)
    bias_raw_rel: float  # rms of the bias estimates as measured
    conf_levels: tuple[float, ...]
    conf_quantiles: tuple[float, ...]
    conf_rho: float
    conf_tau_ms: float
    max_abs_t: float  # largest |error| / scale seen
    fps: float
    sigma_by_conf: list[tuple] = field(default_factory=list)  # (lo, hi, measured scale, model scale, views) per band

    def model(self, **extra) -> RealDetectorError:
        """These statistics as model parameters (``extra``: the rest, e.g. ``swap_rate``, ``source``)."""
        base = dict(sigma_rel=self.sigma_rel, joint_scale=dict(self.joint_scale), conf_gain=self.conf_gain,
                    tau_ms=self.tau_ms, tail_nu=self.tail_nu, bias_rel=self.bias_rel,
                    conf_levels=self.conf_levels, conf_quantiles=self.conf_quantiles, conf_tau_ms=self.conf_tau_ms,
                    swap_rate=0.0)
        base.update(extra)
        return RealDetectorError(**base)


def _t_nll(x: np.ndarray, log_scale: np.ndarray, nu: float) -> float:
    """Negative log-likelihood of ``x`` under Student-t(``nu``) with per-sample log scale."""
    u = x * np.exp(-log_scale)
    c = special.gammaln(0.5 * (nu + 1)) - special.gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
    return float(np.sum(log_scale + 0.5 * (nu + 1) * np.log1p(u * u / nu)) - c * x.size)


def _t_nll_grad(x: np.ndarray, log_scale: np.ndarray, nu: float):
    """:func:`_t_nll`, its derivative by each sample's log scale (N,) and by log nu."""
    u2 = (x * np.exp(-log_scale)) ** 2
    c = special.gammaln(0.5 * (nu + 1)) - special.gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
    dc = 0.5 * special.digamma(0.5 * (nu + 1)) - 0.5 * special.digamma(0.5 * nu) - 0.5 / nu
    l1 = np.log1p(u2 / nu)
    f = float(np.sum(log_scale + 0.5 * (nu + 1) * l1) - c * x.size)
    d_ls = 1.0 - (nu + 1) * u2 / (nu + u2)
    d_nu = float(np.sum(0.5 * l1 - 0.5 * (nu + 1) * u2 / (nu * (nu + u2))) - dc * x.size)
    return f, d_ls, d_nu * nu


def _lag1(z: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    """Pooled lag-1 correlation of series along axis 1 (pairs where both are ``ok``), and the mean series length."""
    a, b = z[:, :-1], z[:, 1:]
    pair = ok[:, :-1] & ok[:, 1:]
    num = np.sum(np.where(pair, a * b, 0.0))
    den = np.sqrt(np.sum(np.where(pair, a * a, 0.0)) * np.sum(np.where(pair, b * b, 0.0)))
    length = ok.sum(axis=1)
    return (float(num / den) if den > 0 else 0.0), float(np.mean(length[length > 0])) if (length > 0).any() else 0.0


def _demeaned_lag1(z: np.ndarray, ok: np.ndarray) -> float:
    """Lag-1 correlation of per-series demeaned data, corrected for the demeaning bias (E r = rho - (1 + 3 rho) / n)."""
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(ok, z, np.nan), axis=1, keepdims=True)
    r, n = _lag1(np.where(ok, z - np.nan_to_num(mean), 0.0), ok)
    if n <= 4:
        return r
    return float(np.clip((r * n + 1.0) / (n - 3.0), -0.99, 0.995))


def _tau_ms(rho: float, fps: float) -> float:
    return float(-1000.0 / (fps * np.log(rho))) if 0 < rho < 1 else 0.0


def error_statistics(errors_px: np.ndarray, conf: np.ndarray, size_px: np.ndarray, joint_names: Sequence[str],
                     fps: float, use: np.ndarray | None = None, min_frames: int = 10,
                     seed: int = 0) -> ErrorStatistics:
    """Fit the error model's parameters to errors ``errors_px`` (C, F, J, 2) with confidences ``conf`` (C, F, J).

    ``size_px`` (C, F) body sizes; ``use`` (C, F, J) the errors to fit (default:
    the finite ones); camera-joints with fewer than ``min_frames`` errors are
    left out.  Vectorised over everything; the t fit is one L-BFGS over
    (groups + 2) parameters.
    """
    err = np.asarray(errors_px, float)
    conf = np.asarray(conf, float)
    names = list(joint_names)
    n_c, n_f, n_j = conf.shape
    ok = np.isfinite(err).all(-1) & np.isfinite(conf) & np.isfinite(size_px)[:, :, None]
    if use is not None:
        ok &= np.asarray(use, bool)
    ok &= (ok.sum(axis=1, keepdims=True) >= min_frames)
    rel = np.where(ok[..., None], err / np.where(np.isfinite(size_px), size_px, 1.0)[:, :, None, None], np.nan)
    # per camera-joint-axis bias: the median (the errors are heavy-tailed)
    with np.errstate(invalid="ignore"):
        bias = np.nanmedian(rel, axis=1, keepdims=True)  # (C, 1, J, 2)
    d = rel - bias
    groups = sorted({joint_group(n) for n in names})
    gidx = np.array([groups.index(joint_group(n)) for n in names])
    sel = np.broadcast_to(ok[..., None], d.shape)
    x = d[sel]
    g = np.broadcast_to(gidx[None, None, :, None], d.shape)[sel]
    dc = 1.0 - np.clip(np.broadcast_to(conf[..., None], d.shape)[sel], 0, 1)
    present = np.bincount(g, minlength=len(groups)) > 0

    def unpack(theta):
        return theta[: len(groups)], theta[len(groups)], theta[len(groups) + 1]

    dc2 = dc * dc

    def nll(theta):
        logs, a, lognu = unpack(theta)
        f, d_ls, d_lognu = _t_nll_grad(x, logs[g] + np.log1p(a * dc2), np.exp(lognu))
        grad = np.concatenate([np.bincount(g, weights=d_ls, minlength=len(groups)),
                               [np.sum(d_ls * dc2 / (1.0 + a * dc2)), d_lognu]])
        return f, grad

    mad = np.median(np.abs(x)) / 0.6745 if x.size else 1.0
    theta0 = np.concatenate([np.full(len(groups), np.log(max(mad, 1e-9))), [1.0, np.log(4.0)]])
    bounds = [(None, None)] * len(groups) + [(0.0, 100.0), (np.log(0.5), np.log(1e4))]
    fit = optimize.minimize(nll, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    logs, gain, lognu = unpack(fit.x)
    nu = float(np.exp(lognu))
    counts = np.bincount(g, minlength=len(groups))
    mean_log = float(np.sum(logs[present] * counts[present]) / counts[present].sum())
    sigma = float(np.exp(mean_log))
    joint_scale = {grp: float(np.exp(logs[k] - mean_log)) for k, grp in enumerate(groups) if present[k]}
    joint_count = {grp: int(counts[k] // 2) for k, grp in enumerate(groups) if present[k]}

    # normal scores of the standardised errors -> the AR(1) of the Gaussian copula
    scale_all = np.exp(logs[gidx])[None, None, :] * (1.0 + gain * (1.0 - np.clip(np.nan_to_num(conf, nan=1.0), 0, 1)) ** 2)
    t = d / scale_all[..., None]
    z = special.ndtri(np.clip(stats.t.cdf(np.nan_to_num(t), nu), 1e-12, 1 - 1e-12))
    z_series = np.moveaxis(z, 1, -1).reshape(-1, n_f)
    ok_series = np.moveaxis(np.broadcast_to(ok[..., None], z.shape), 1, -1).reshape(-1, n_f)
    rho = _demeaned_lag1(z_series, ok_series)

    # bias: the estimates' rms, less what the noise alone gives (the same medians of simulated noise)
    bias_raw = float(np.sqrt(np.nanmean(np.where(ok.any(axis=1)[:, None, :, None], bias, np.nan) ** 2)))
    rng = np.random.default_rng(seed)
    floor = []
    for _ in range(2):
        sim = student_t_from_normal(ar1_normal(rng, d.shape, max(rho, 0.0)), nu, 1e6) * scale_all[..., None]
        with np.errstate(invalid="ignore"):
            m = np.nanmedian(np.where(ok[..., None], sim, np.nan), axis=1)
        floor.append(np.nanmean(m ** 2))
    bias_rel = float(np.sqrt(max(0.0, bias_raw ** 2 - float(np.mean(floor)))))

    # the confidences: distribution (every reported view) and autocorrelation of their normal scores
    seen = np.isfinite(conf)
    cvals = conf[seen]
    quantiles = tuple(float(v) for v in np.quantile(cvals, CONF_LEVELS)) if cvals.size else (1.0,) * len(CONF_LEVELS)
    ranks = np.full(conf.shape, np.nan)
    if cvals.size:
        ranks[seen] = (stats.rankdata(cvals) - 0.5) / cvals.size
    zc = special.ndtri(np.nan_to_num(ranks, nan=0.5))
    zc_series = np.moveaxis(zc, 1, -1).reshape(-1, n_f)
    conf_rho = _demeaned_lag1(zc_series, np.moveaxis(seen, 1, -1).reshape(-1, n_f))

    # measured vs model scale by confidence band (MLE scale of t with the fitted nu, per band)
    by_conf = []
    conf_b = np.broadcast_to(conf[..., None], d.shape)[sel]
    unit = x / np.exp(logs[g])  # errors in units of the joint group's scale at confidence 1
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 0.99), (0.99, 1.01)):
        band = (conf_b >= lo) & (conf_b < hi)
        if band.sum() < 20:
            continue
        s = optimize.minimize_scalar(lambda ls: _t_nll(unit[band], np.full(band.sum(), ls), nu),
                                     bounds=(-5, 5), method="bounded").x
        mid = float(np.mean(1 + gain * (1 - conf_b[band]) ** 2))
        by_conf.append((lo, min(hi, 1.0), float(np.exp(s)), mid, int(band.sum() // 2)))
    return ErrorStatistics(
        n_errors=int(x.size), sigma_rel=sigma, joint_scale=joint_scale, joint_count=joint_count,
        conf_gain=float(gain), tail_nu=nu, rho=rho, tau_ms=_tau_ms(rho, fps), bias_rel=bias_rel,
        bias_raw_rel=bias_raw, conf_levels=CONF_LEVELS, conf_quantiles=quantiles, conf_rho=conf_rho,
        conf_tau_ms=_tau_ms(conf_rho, fps), max_abs_t=float(np.nanmax(np.abs(t[np.broadcast_to(ok[..., None], t.shape)])))
        if ok.any() else 0.0, fps=float(fps), sigma_by_conf=by_conf)


@dataclass
class DetectorErrorFit:
    """:func:`measure_detector_error`'s answer: the statistics and what else the triangulation saw."""

    stats: ErrorStatistics
    swap_rate: float  # camera-frames whose left/right labels the triangulation repaired
    views: int  # views in the fit
    points: int  # 3D points they belong to
    body_size_px: np.ndarray  # (C,) median body size per camera
    leverage_factor: float  # median 1 / sqrt(1 - h) applied to the residuals
    camera_names: list[str]

    def model(self, source: str = "") -> RealDetectorError:
        return self.stats.model(swap_rate=self.swap_rate, source=source)


def view_leverage(lin, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, C) leverage of every view in a weighted least-squares point fit (mean over the two image axes).

    ``points`` (N, 3), ``weights`` (N, C) the row weights of the fit (their
    squares weigh the pixel residuals; 0 = view not used).  The residual of a
    view with leverage ``h`` has ``1 - h`` times the variance of its error.
    """
    ext = lin.extrinsics
    cam = lin.camera_coords(points)  # (N, C, 3)
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        iz = 1.0 / z
        # d(u, v)/dX in px: f / z [[1, 0, -x/z], [0, 1, -y/z]] R
        jx = (lin.fx * iz)[..., None] * (ext[None, :, 0, :3] - (cam[..., 0] * iz)[..., None] * ext[None, :, 2, :3])
        jy = (lin.fy * iz)[..., None] * (ext[None, :, 1, :3] - (cam[..., 1] * iz)[..., None] * ext[None, :, 2, :3])
    w2 = np.where(np.isfinite(weights), weights, 0.0) ** 2
    jx, jy = np.nan_to_num(jx), np.nan_to_num(jy)
    a = np.einsum("nc,nci,ncj->nij", w2, jx, jx) + np.einsum("nc,nci,ncj->nij", w2, jy, jy)
    with np.errstate(invalid="ignore"):
        ainv = np.linalg.pinv(a)
    h = w2 * (np.einsum("nci,nij,ncj->nc", jx, ainv, jx) + np.einsum("nci,nij,ncj->nc", jy, ainv, jy)) / 2.0
    return np.clip(h, 0.0, 0.95)


def measure_detector_error(rig, keypoints, min_views: int = 3) -> DetectorErrorFit:
    """Statistics of a detector's errors from its keypoints (a :class:`~triangulate.formats.Keypoints2D`) and a rig.

    The points are triangulated as ``rigcap triangulate`` does (auto
    threshold, swap repair, soft robust refit); every confident view of a
    point fitted on at least ``min_views`` views counts, far ones included
    (they are the tails).
    """
    from triangulate.engine import Triangulator, TriangulationConfig, match_cameras
    from triangulate.robust import robust_row_weights
    from triangulate.skeletons import skeleton_for_joints
    from triangulate.swap import permute_joints

    cameras = match_cameras(rig, keypoints.camera_names)
    names = list(keypoints.joint_names)
    cfg = TriangulationConfig(auto_threshold=True)
    tri = Triangulator(cameras, cfg, skeleton_for_joints(names))
    kp = np.asarray(keypoints.keypoints, float)
    res = tri.run(kp)
    n_c, n_f, n_j = kp.shape[:3]
    state = res.swap_state if res.swap_state is not None else np.broadcast_to(np.arange(n_j), (n_c, n_f, n_j))
    pix = permute_joints(kp[..., :2], state)
    conf = permute_joints(kp[..., 2], state)
    pts = res.points.reshape(-1, 3)
    proj = tri.lens.project(pts)  # (F*J, C, 2)
    resid = np.moveaxis(proj.reshape(n_f, n_j, n_c, 2), 2, 0)
    resid = pix - resid  # (C, F, J, 2)
    err_px = np.hypot(resid[..., 0], resid[..., 1])
    used = res.inliers  # (C, F, J) the views the fit used
    scale = tri.robust_scale(res.threshold_px, res.noise_px)
    row_w = np.where(used, np.nan_to_num(conf) * robust_row_weights(np.nan_to_num(err_px), scale, cfg.robust_loss), 0.0)
    h = view_leverage(tri.lin, pts, np.moveaxis(row_w, 0, 2).reshape(-1, n_c))
    h = np.moveaxis(h.reshape(n_f, n_j, n_c), 2, 0)
    factor = 1.0 / np.sqrt(1.0 - h)
    with np.errstate(invalid="ignore"):
        take = (np.isfinite(err_px) & (conf >= cfg.min_confidence)
                & (res.n_views >= min_views)[None] & np.isfinite(res.points).all(-1)[None])
    size = body_size_px(tri.lin.focal, tri.lin.extrinsics, res.points, names)
    st = error_statistics(resid * factor[..., None], conf, size, names, keypoints.fps or 30.0, use=take)
    return DetectorErrorFit(stats=st, swap_rate=float(res.swapped.mean()), views=int(take.sum()),
                            points=int((res.n_views >= min_views).sum()),
                            body_size_px=np.nanmedian(size, axis=1), leverage_factor=float(np.median(factor[take & used])),
                            camera_names=[c.name for c in cameras])


def compare_rows(measured: ErrorStatistics, model: RealDetectorError = MEDIAPIPE_POSE2SIM) -> list[tuple[str, str, str]]:
    """(name, measured, model) rows for a table of the statistics beside a model's parameters."""
    rows = [("sigma (t scale) / body size, conf 1", f"{measured.sigma_rel:.4f}", f"{model.sigma_rel:.4f}"),
            ("Student-t tail index nu", f"{measured.tail_nu:.2f}", f"{model.tail_nu:.2f}"),
            ("confidence gain a in 1 + a (1-c)^2", f"{measured.conf_gain:.2f}", f"{model.conf_gain:.2f}"),
            (f"lag-1 autocorrelation at {measured.fps:g} fps", f"{measured.rho:.3f}", f"{model.rho(measured.fps):.3f}"),
            ("AR(1) time constant ms", f"{measured.tau_ms:.0f}", f"{model.tau_ms:.0f}"),
            ("per camera-joint bias rms / body size", f"{measured.bias_rel:.4f}", f"{model.bias_rel:.4f}"),
            ("confidence: autocorrelation time ms", f"{measured.conf_tau_ms:.0f}", f"{model.conf_tau_ms:.0f}")]
    for grp in sorted(measured.joint_scale):
        rows.append((f"joint scale: {grp} ({measured.joint_count[grp]} views)", f"{measured.joint_scale[grp]:.2f}",
                     f"{model.joint_scale.get(grp, 1.0):.2f}"))
    for lvl in (0.01, 0.05, 0.1, 0.5):
        k = measured.conf_levels.index(lvl)
        rows.append((f"confidence quantile {lvl:g}", f"{measured.conf_quantiles[k]:.3f}",
                     f"{np.interp(lvl, model.conf_levels, model.conf_quantiles):.3f}"))
    return rows


def calibrated_model(model: RealDetectorError, target: ErrorStatistics, refit: ErrorStatistics) -> RealDetectorError:
    """One step of indirect inference: correct ``model`` so that measuring the studio it generates gives ``target``.

    Measuring through a triangulation is not neutral: every residual also
    holds a little of the other views' errors, which thins the tails (nu up)
    and widens the t scale.  ``refit`` is :func:`measure_detector_error` on
    a studio recording generated with ``model``; each parameter is scaled by
    ``target / refit`` (the tail index as ``1 / nu``), so the studio measured
    the same way looks like the real recording.  The confidence distribution
    is read directly and stays as measured, and so do the per-joint scales
    (the triangulation keeps their ratios: 1.02-1.10 measured for 1.06).
    """
    def ratio(a, b):
        return a / b if b > 0 else 1.0

    inv_nu = (1.0 / model.tail_nu) * ratio(1.0 / target.tail_nu, 1.0 / refit.tail_nu)
    return model.replace(
        sigma_rel=model.sigma_rel * ratio(target.sigma_rel, refit.sigma_rel),
        conf_gain=model.conf_gain * ratio(target.conf_gain, refit.conf_gain),
        tau_ms=model.tau_ms * ratio(target.tau_ms, refit.tau_ms),
        tail_nu=float(max(1.5, 1.0 / inv_nu)),
        bias_rel=model.bias_rel * ratio(target.bias_rel, refit.bias_rel),
        conf_levels=target.conf_levels, conf_quantiles=target.conf_quantiles, conf_tau_ms=target.conf_tau_ms)
