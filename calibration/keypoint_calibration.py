"""A rig from 2D correspondences: bundle adjustment on keypoints, starting from a rough rig.

No board: anything several cameras see at once -- a person's joints, a wand's
markers, an animal -- gives correspondences.  Every joint at every instant
is a free 3D point (:class:`calibration.bundle_adjust.PointStructure`) and
the same Schur-complement Levenberg-Marquardt as the board calibration
refines the cameras and all points together
(:func:`calibration.bundle_adjust.bundle_adjust_points`): robust soft-L1
passes (the second at the noise level the first leaves), trimming of the
observations beyond ``max(1 px, 4 sigma)``, and a final squared-loss pass on
the inliers.  Correspondences are full of outliers (wrong detections,
left/right swaps, a second person): the robust passes carry them, the trim
drops them, and no camera needs to see every point (2+ views per point).

Start: the given rig's poses and lenses.  Points start from a DLT of all
views, then again without the views that disagree with it by more than
three times the median (a swap or a wrong detection would drag the linear
solution).  Intrinsics (:func:`keypoint_lens_model`): held when the start
rig's lenses come from a calibration (a board, a Qualisys wand: far better
than keypoints pin them), else the focal lengths alone are refined;
``refine_intrinsics=False`` holds them always.

Gauge and scale: camera 0's pose and one centre coordinate of the camera
farthest from it are held during the solve (free points carry no scale),
then the result is moved by the similarity that best maps its camera poses
onto the start rig's: the world frame (floor, origin) stays the start rig's,
and its errors average over the cameras.  The scale then comes from
``scale_from``:

* ``"rig"`` (default): the start rig's size (RMS distance of the camera
  centres from their centroid) -- right when the start is a previous
  calibration, or a tape-measured layout;
* ``"distance:A,B,METRES"``: the median over instants of the distance
  between joints ``A`` and ``B`` (a wand's two markers, a tape-measured bone);
* ``"baseline:CAM_A,CAM_B,METRES"``: the distance between two cameras'
  centres (tape-measured, or read off an existing rig);
* ``"height:METRES"``: a person's stature, from the 95th percentile over
  instants of the vertical extent (world z up) of its joints, with the
  fraction of stature the top joint sits at (1.0 for a head-top joint,
  :data:`TOP_JOINT_STATURE` for the eyes/nose/ears).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle_adjust import Observations, OffsetPrior, PointBundleResult, bundle_adjust_points
from calibration.intrinsics import lens_free_mask, point_coverage
from calibration.report import CameraReport, metadata, triangulate_views
from calibration.rig import Rig
from calibration.world import _rms_radius, kabsch, pose_anchors, transform_rig
from rigcap.errors import RigcapError

#: height of a joint as a fraction of stature (anthropometric averages; Drillis & Contini 1966
#: give the eye at 0.936 and the chin at 0.870 of stature); the top joint found is used.
TOP_JOINT_STATURE = {"head": 1.0, "head_top": 1.0, "left_eye": 0.936, "right_eye": 0.936, "nose": 0.925,
                     "left_ear": 0.93, "right_ear": 0.93}
#: the lowest joints of a standing person, with the height of each above the floor as a fraction
#: of stature (heel and toe at the floor; the ankle ~4 %)
FOOT_JOINT_STATURE = {"left_heel": 0.0, "right_heel": 0.0, "left_foot_index": 0.0, "right_foot_index": 0.0,
                      "left_big_toe": 0.0, "right_big_toe": 0.0, "left_small_toe": 0.0, "right_small_toe": 0.0,
                      "left_ankle": 0.039, "right_ankle": 0.039}


@dataclass
class KeypointCalibrationResult:
    rig: Rig  # the refined rig, in the start rig's world frame, metric by ``scale_source``
    points: np.ndarray  # (F, J, 3) adjusted points (NaN where not in the problem or dropped)
    cameras: list[CameraReport]
    scale_source: str  # what fixed the scale, in words
    scale_factor: float  # metres per unit of the solve (the start rig's baseline along the gauge axis)
    sigma_px: float  # per-axis noise of the inliers after adjustment
    n_observations: int
    n_points: int
    bundle: PointBundleResult
    seconds: dict = field(default_factory=dict)
    joint_bias: np.ndarray | None = None  # (C, J, 2) px, each camera's offset per joint (``joint_bias_px``)

    @property
    def outlier_fraction(self) -> float:
        return float(1.0 - self.bundle.inliers.mean()) if self.bundle.inliers.size else float("nan")


def observations_from_keypoints(xy: np.ndarray, confidence: np.ndarray | None = None, min_confidence: float = 0.3,
                                min_views: int = 2) -> tuple[Observations, np.ndarray]:
    """Observations of every (frame, joint) seen by ``min_views`` cameras or more.

    ``xy (C, F, J, 2)`` pixels, NaN where missing; ``confidence (C, F, J)``.
    Returns the observations (``obs.board`` = point index, ``obs.corner`` = joint) and ``point_ids (P, 2)``
    = (frame, joint) of each point.
    """
    xy = np.asarray(xy, dtype=np.float64)
    seen = np.isfinite(xy).all(axis=-1)
    if confidence is not None:
        seen &= np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0) >= min_confidence
    n_views = seen.sum(axis=0)  # (F, J)
    usable = n_views >= min_views
    point_ids = np.argwhere(usable)  # (P, 2)
    index = np.full(usable.shape, -1, dtype=np.int64)
    index[usable] = np.arange(point_ids.shape[0])
    c, f, j = np.nonzero(seen & usable[None])
    obs = Observations(c.astype(np.int64), index[f, j], j.astype(np.int64), xy[c, f, j])
    return obs, point_ids


def initial_points(rig: Rig, obs: Observations, n_points: int, reject: float = 3.0) -> np.ndarray:
    """(P, 3) DLT of each point from all its views, then again without the views whose
    reprojection error exceeds ``reject`` x the median (kept when that leaves fewer than 2)."""
    pix = np.full((len(rig), n_points, 2), np.nan)
    pix[obs.cam, obs.board] = obs.uv
    pts = triangulate_views(rig, pix)
    err = np.linalg.norm(rig.project(pts) - pix, axis=-1)  # (C, P)
    med = np.nanmedian(err)
    if np.isfinite(med) and med > 0:
        clean = np.where((err <= reject * med)[..., None], pix, np.nan)
        again = triangulate_views(rig, clean)
        ok = np.isfinite(again).all(axis=-1)
        pts[ok] = again[ok]
    return pts


def _similarity_to(rig: Rig, target: Rig, scale: float | None):
    """(s, a, b): ``X -> s a X + b`` mapping ``rig``'s camera poses onto ``target``'s (``scale``
    given, or from the ratio of the two rigs' sizes)."""
    s = _rms_radius(target) / _rms_radius(rig) if scale is None else float(scale)
    scaled = scale_rig(rig, s)
    a, b = kabsch(pose_anchors(scaled), pose_anchors(target, radius=_rms_radius(scaled)))
    return s, a, b


def scale_rig(rig: Rig, s: float) -> Rig:
    """The rig with every distance multiplied by ``s`` (camera centres scaled about the origin)."""
    out = rig.copy()
    for cam in out.cameras:
        cam.tvec = cam.tvec * s
    return out


def _joint(joint_names: list[str], name: str, what: str) -> int:
    if name not in joint_names:
        raise RigcapError(f"{what}: no joint named {name!r} (joints: {', '.join(joint_names)})")
    return joint_names.index(name)


def parse_scale_from(text: str) -> tuple[str, tuple]:
    """``rig`` | ``distance:A,B,METRES`` | ``baseline:CAM_A,CAM_B,METRES`` | ``height:METRES`` -> (kind, values);
    a clear error otherwise."""
    text = str(text).strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    try:
        if kind == "rig" and not rest:
            return "rig", ()
        if kind == "distance":
            a, b, metres = [p.strip() for p in rest.split(",")]
            value = float(metres)
            if not value > 0:
                raise ValueError
            return "distance", (a, b, value)
        if kind == "height":
            value = float(rest)
            if not 0.3 < value < 3.0:
                raise ValueError
            return "height", (value,)
        if kind == "baseline":
            a, b, metres = [p.strip() for p in rest.split(",")]
            value = float(metres)
            if not value > 0 or a == b:
                raise ValueError
            return "baseline", (a, b, value)
    except ValueError:
        pass
    raise RigcapError(f"--scale-from {text!r}: give 'rig' (the start rig's size), 'distance:JOINT_A,JOINT_B,METRES', "
                      "'baseline:CAMERA_A,CAMERA_B,METRES' (two camera centres) or 'height:METRES' (a person's stature, "
                      "0.3-3 m)")


def baseline_scale(rig: Rig, a: str, b: str, metres: float) -> tuple[float, str]:
    """Factor that puts cameras ``a`` and ``b`` of ``rig`` ``metres`` apart, and its source in words."""
    for name in (a, b):
        if name not in rig.names:
            raise RigcapError(f"--scale-from baseline: no camera named {name!r} (cameras: {', '.join(rig.names)})")
    d = float(np.linalg.norm(rig[a].center - rig[b].center))
    return metres / d, f"baseline {a}-{b} = {metres:g} m (distance between the two camera centres)"


def metric_scale(points: np.ndarray, joint_names: list[str], kind: str, values: tuple) -> tuple[float, str]:
    """Factor that makes ``points (F, J, 3)`` (z up) metric, and what it came from, in words."""
    if kind == "distance":
        a, b, metres = values
        ia, ib = _joint(joint_names, a, "--scale-from distance"), _joint(joint_names, b, "--scale-from distance")
        d = np.linalg.norm(points[:, ia] - points[:, ib], axis=-1)
        d = d[np.isfinite(d)]
        if d.size < 3:
            raise RigcapError(f"--scale-from distance: joints {a!r} and {b!r} are reconstructed together at only "
                              f"{d.size} instants (need 3)")
        med = float(np.median(d))
        return metres / med, f"distance {a}-{b} = {metres:g} m (median over {d.size} instants)"
    if kind == "height":
        (metres,) = values
        tops = [(j, f) for j, f in TOP_JOINT_STATURE.items() if j in joint_names]
        feet = [(j, f) for j, f in FOOT_JOINT_STATURE.items() if j in joint_names]
        if not tops or not feet:
            raise RigcapError("--scale-from height: the skeleton needs a head joint (head, eyes, nose or ears) and a "
                              f"foot joint (heels, toes or ankles); it has {', '.join(joint_names)}")
        top_z = np.stack([points[:, joint_names.index(j), 2] for j, _ in tops], axis=1)
        top_frac = np.array([f for _, f in tops])
        foot_z = np.stack([points[:, joint_names.index(j), 2] for j, _ in feet], axis=1)
        foot_frac = np.array([f for _, f in feet])
        # per instant: the highest head joint and the lowest foot joint found, each with its fraction
        ti = np.nanargmax(np.where(np.isfinite(top_z), top_z, -np.inf), axis=1)
        fi = np.nanargmin(np.where(np.isfinite(foot_z), foot_z, np.inf), axis=1)
        rows = np.arange(points.shape[0])
        extent = top_z[rows, ti] - foot_z[rows, fi]
        frac = top_frac[ti] - foot_frac[fi]
        est = extent / frac
        est = est[np.isfinite(est) & (est > 0)]
        if est.size < 3:
            raise RigcapError("--scale-from height: head and feet are reconstructed together at fewer than 3 instants")
        stature = float(np.percentile(est, 95))
        return metres / stature, (f"person's height {metres:g} m (95th percentile of head-to-foot extent over "
                                  f"{est.size} instants, world z up)")
    raise ValueError(kind)


#: which of fx fy cx cy k1 k2 p1 p2 k3 keypoint bundle adjustment refines, beyond the board models
KEYPOINT_LENS_MODELS = {"focal": np.array([1, 1, 0, 0, 0, 0, 0, 0, 0], bool), "held": np.zeros(9, bool)}


def keypoint_lens_mask(model: str) -> np.ndarray:
    if model in KEYPOINT_LENS_MODELS:
        return KEYPOINT_LENS_MODELS[model].copy()
    return lens_free_mask(model)


def lenses_calibrated(rig: Rig) -> str | None:
    """What calibrated ``rig``'s lenses, in words, or None when nothing says they were (a
    tape-measured layout, a synthetic rig, a hand-written TOML).

    A rigcap calibration (board, keypoints, ``--intrinsics-only``) writes its report into
    ``[metadata]``; the importers name the format they read (a Qualisys ``.qca``, a caliscope
    array): those lenses came from a board or a wand, far better than keypoints can pin them.
    """
    meta = rig.metadata or {}
    if isinstance(meta.get("calibration"), dict):
        return f"a {meta['calibration'].get('tool', 'rigcap')} calibration"
    if meta.get("intrinsics_only"):
        return "rigcap's lens calibration (--intrinsics-only)"
    if meta.get("format"):
        return f"a {meta['format']} calibration"
    return None


def keypoint_lens_model(coverage: float, asked: str = "auto", calibrated: str | None = None) -> tuple[str, str]:
    """(model, reason) for one camera.  ``auto``: the start rig's lenses held when they come from
    a calibration (``calibrated`` says which, :func:`lenses_calibrated`), else focal lengths only,
    whatever the coverage.

    Held when calibrated: on the real Pose2Sim demo (Qualisys lenses, MediaPipe keypoints, BA
    started from the Qualisys rig itself) the camera centres land 31 mm from Qualisys with the
    lenses held and 72 mm with the focal lengths refined (6.6 % focal change): keypoint errors
    pull the focal lengths as far as they pull the poses.

    Keypoints are ~20x noisier than board corners (2-10 px against 0.1 px) and a person fills a
    small depth range, so the distortion and principal point they can pin are far looser than
    the start rig's own: measured on the synthetic studio (4 cameras, 4 s, 2 px noise, started
    from the true rig), camera centres land 3.7 mm (mean) off with the lenses held, 14 mm with
    k1 k2 and focal refined, 300 mm with the full model -- the coverage ladder of the board path
    (:func:`calibration.intrinsics.choose_lens_model`) would pick the full model here.  Focal
    lengths alone are well determined and are what a rough start gets wrong most.
    """
    if asked == "auto" and calibrated:
        return "held", f"lenses held from the start rig ({calibrated}); keypoints pin them worse"
    if asked == "auto":
        return "focal", (f"keypoints cover {coverage:.0%} of the image; keypoint noise pins focal length only "
                         "(principal point and distortion held from the start rig)")
    keypoint_lens_mask(asked)  # validates the name
    return asked, f"lens model {asked} as asked"


def calibrate_from_keypoints(
    start: Rig,
    keypoints: np.ndarray,
    joint_names: list[str],
    *,
    scale_from: str = "rig",
    refine_intrinsics: bool = True,
    lens_model: str = "auto",
    min_confidence: float = 0.3,
    joint_bias_px: float | None = None,
    progress=None,
) -> KeypointCalibrationResult:
    """Refine ``start`` (cameras in ``keypoints``' order) on ``keypoints (C, F, J, 3)`` (x, y,
    confidence; NaN missing).  See the module docstring; ``progress(pass, iteration, cost)``.

    ``lens_model``: ``"auto"`` holds the start rig's lenses when they come from a calibration
    (:func:`lenses_calibrated`), else refines the focal lengths; or a model by name.
    ``joint_bias_px``: also solve a 2D offset per camera and joint under a zero-mean Gaussian
    prior of that many pixels (:class:`calibration.bundle_adjust.OffsetPrior`), for a detector
    whose "joint" sits at a different anatomical point in each view by the same amount all
    recording long.  Measured (``benchmarks/bench_keypoint_calibration.py``): with such a bias
    planted on the synthetic studio (5 px per camera-joint) camera centres 14-20 -> 2-4 mm; with
    MediaPipe on the real Pose2Sim demo worse, 31 -> 48 mm (3 px) and 76 mm (10 px): its errors
    drift over the gait (per camera-joint means of the two halves of the recording correlate
    0.57; 0.73-0.78 in cam01/cam04, 0.08-0.12 in cam02/cam03) instead of staying put.  On a
    replica of that demo with the studio's real-detector model, whose bias is constant (Qualisys
    rig, the demo's own motion, 1.7 s), they work: 55-60 -> 17-21 mm, 1.1-1.2 -> 0.27 deg; so the real
    detector's bias is not the model's.  Off by default; 5-10x slower."""
    t0 = time.perf_counter()
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 3 or kp.shape[0] != len(start):
        raise RigcapError(f"keypoints of shape {kp.shape} for a rig of {len(start)} cameras "
                          "(need (cameras, frames, joints, 3))")
    kind, values = parse_scale_from(scale_from)
    obs, point_ids = observations_from_keypoints(kp[..., :2], kp[..., 2], min_confidence)
    n_points = point_ids.shape[0]
    if n_points < 10:
        raise RigcapError(f"only {n_points} keypoints are seen by two or more cameras at once (above confidence "
                          f"{min_confidence:g}); a rig needs many more (a person walking through the volume)")
    per_cam = np.bincount(obs.cam, minlength=len(start))
    lost = [start[c].name for c in range(len(start)) if per_cam[c] < 20]
    if lost:
        raise RigcapError(f"camera {', '.join(lost)}: fewer than 20 keypoints shared with another camera; "
                          "nothing ties it to the rig")
    cams = [c.copy() for c in start.cameras]
    coverage = np.array([point_coverage(kp[c, ..., :2].reshape(-1, 2), cams[c].size)[0] for c in range(len(cams))])
    calibrated = lenses_calibrated(start)
    models = [keypoint_lens_model(float(cov), lens_model, calibrated) for cov in coverage]
    free = np.array([keypoint_lens_mask(m) for m, _ in models])
    pts0 = initial_points(start, obs, n_points)
    ok = np.isfinite(pts0).all(axis=1)
    if not ok.all():  # a degenerate DLT (all views on one ray): leave those points out
        keep_obs = ok[obs.board]
        remap = np.cumsum(ok) - 1
        obs = Observations(obs.cam[keep_obs], remap[obs.board[keep_obs]], obs.corner[keep_obs], obs.uv[keep_obs])
        point_ids, pts0 = point_ids[ok], pts0[ok]
    seconds = {"initialisation": time.perf_counter() - t0}
    t1 = time.perf_counter()
    prior, ba_obs = None, obs
    if joint_bias_px:  # offsets only for the joints observed (each is 2 unknowns per camera)
        joints_seen, compact = np.unique(obs.corner, return_inverse=True)
        prior = OffsetPrior(joints_seen.size, float(joint_bias_px))
        ba_obs = Observations(obs.cam, obs.board, compact.astype(np.int64), obs.uv)
    with _one_blas_thread(prior is not None):
        res = bundle_adjust_points(cams, pts0, ba_obs, refine_intrinsics=refine_intrinsics, intrinsics_free=free,
                                   progress=progress, offsets=prior)
    joint_bias = None
    if prior is not None:
        joint_bias = np.zeros((len(cams), kp.shape[2], 2))
        joint_bias[:, joints_seen] = res.offsets
    seconds["bundle_adjustment"] = time.perf_counter() - t1

    # world frame of the start rig; then the metric scale
    solved = Rig(res.cameras)
    s, a, b = _similarity_to(solved, start, None if kind == "rig" else 1.0)
    rig = transform_rig(scale_rig(solved, s), a, b)
    pts = np.full(kp.shape[1:3] + (3,), np.nan)
    pts[point_ids[:, 0], point_ids[:, 1]] = (s * res.points) @ a.T + b
    if kind == "rig":
        source = "the start rig's size (RMS distance of the camera centres from their centroid)"
        factor = s
    else:
        if kind == "baseline":
            k, source = baseline_scale(rig, *values)
        else:
            k, source = metric_scale(pts, list(joint_names), kind, values)
        rig, pts = scale_rig(rig, k), pts * k
        # keep the start rig's world origin where it was: scale about the start rig's centroid
        centroid = start.centers.mean(axis=0)
        shift = centroid - k * centroid
        rig = transform_rig(rig, np.eye(3), shift)
        pts = pts + shift
        factor = k
    reports = []
    for c, cam in enumerate(rig.cameras):
        mine = obs.cam == c
        inl = mine & res.inliers
        rmse = float(np.sqrt(np.mean(res.errors[inl] ** 2))) if inl.any() else float("nan")
        model, reason = models[c] if refine_intrinsics else ("held", "lens parameters of the start rig held")
        reports.append(CameraReport(cam.name, rmse, int(np.unique(point_ids[obs.board[mine], 0]).size), int(inl.sum()),
                                    int((mine & ~res.inliers).sum()), float(coverage[c]), float("nan"), [], model, reason))
    rig.metadata = dict(start.metadata)
    rig.metadata["calibration"] = metadata(reports, float("nan"), {
        "tool": "rigcap calibrate --keypoints",
        "source": "2D keypoint correspondences",
        "scale_from": source,
        "refine_intrinsics": bool(refine_intrinsics),
        "points": int(len(res.points)),
        "observations": int(len(obs)),
        "outlier_fraction": round(float(1.0 - res.inliers.mean()), 4),
        "sigma_px": round(float(res.sigma_px), 3),
        "units": "metres",
    })
    seconds["total"] = time.perf_counter() - t0
    return KeypointCalibrationResult(rig, pts, reports, source, float(factor), res.sigma_px, len(obs), len(res.points),
                                     res, seconds, joint_bias)


def _one_blas_thread(on: bool):
    """BLAS on one thread while the joint offsets widen every camera's block (6 -> 6 + 2 x joints
    columns): OpenBLAS splits those mid-sized products over threads that, on a loaded 2-core
    machine, spin against each other -- measured 155 s with its default threads, 10 s with one,
    for the same 4-camera, 3 s, 12-joint problem."""
    from contextlib import nullcontext

    if not on:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def perturb_rig(rig: Rig, centre_m: float, rotation_deg: float, focal: float = 0.0, seed: int = 0) -> Rig:
    """A copy with every camera moved by ``centre_m``, turned by ``rotation_deg`` (random axes)
    and its focal length scaled by ``1 +- focal``: the rough start benchmarks and tests use."""
    from calibration.camera import matrix_to_rodrigues, rodrigues_to_matrix

    rng = np.random.default_rng(seed)
    out = rig.copy()
    for cam in out.cameras:
        centre = cam.center
        d = rng.normal(size=3)
        centre = centre + centre_m * d / np.linalg.norm(d)
        axis = rng.normal(size=3)
        turn = rodrigues_to_matrix(np.radians(rotation_deg) * axis / np.linalg.norm(axis))
        r = turn @ cam.R
        cam.rvec = matrix_to_rodrigues(r)
        cam.tvec = -r @ centre
        if focal:
            cam.matrix[:2, :2] *= 1.0 + focal * rng.choice([-1.0, 1.0])
    return out

