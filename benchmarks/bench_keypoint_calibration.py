"""No board, no sync cable: a rig from keypoints, and cameras synchronised from motion.

    .venv/bin/python benchmarks/bench_keypoint_calibration.py              # everything (real parts when data exist)
    .venv/bin/python benchmarks/bench_keypoint_calibration.py --only calib --seeds 3
    .venv/bin/python benchmarks/bench_keypoint_calibration.py --only bias   # per camera-joint bias terms
    .venv/bin/python benchmarks/bench_keypoint_calibration.py --only realmodel  # the real error model, synthetic
    .venv/bin/python benchmarks/bench_keypoint_calibration.py --only speed  # 12 cameras, ~180 000 correspondences
    .venv/bin/python benchmarks/bench_keypoint_calibration.py --only sync

(a) **Keypoint calibration**, synthetic studio with its person (4 cameras, 2 px
    noise, 10 % missing, 3 % gross outliers, 2 % left/right swaps): start from
    the true rig perturbed by 8 cm / 4 deg per camera and 5 % focal error; the
    same keypoints bundle-adjusted from the true rig set the floor.  Camera
    centre error after rigid alignment (as written: scale from the start
    rig's size) and after similarity alignment (shape only), rotation, focal,
    median reprojection error, fraction of the planted outliers (> 15 px from
    the truth: gross errors, swapped joints) rejected, fraction of good
    keypoints kept.  Issue: centres within 2x of the from-truth floor.
(b) **Speed**: 12 cameras, ~180 000 correspondences, 2 threads.  Issue: < 2 min.
(c) **Real** (Pose2Sim demo): the Qualisys rig perturbed by 5 cm / 3 deg,
    refined on rigcap's MediaPipe keypoints of the four videos (detected once,
    cached in the temp dir); distance to the Qualisys rig, and where BA moves
    the Qualisys rig itself on the same keypoints, lever by lever (lenses,
    joint bias terms, joints, confidence, data, scale).  Issue goal: 1 cm / 0.5 deg.
(a2) **Joint bias terms** on the synthetic studio with a constant bias planted
    per camera and joint (what ``--joint-bias`` models).
(a3) **The real detector's error model** (``--noise real``: MediaPipe's errors as
    measured on the demo, with its constant per camera-joint bias, and without
    it): the studio's person for 1.7 s, and a replica of the real demo (the
    Qualisys rig, the person's motion triangulated from the demo, MediaPipe's 33
    joints), BA from a 5 cm / 3 deg start and from the true rig, with and
    without joint bias terms.  Does the bias reproduce the real failure, and
    does a remedy that fixes it on the model fix the real recording?
(c3) **The Qualisys-vs-video residual floor**: the demo's keypoints against
    their triangulation through the Qualisys rig, per camera (bias = mean
    residual of each camera-joint; common shift = its mean over the joints),
    and BA from Qualisys with those biases removed (an oracle: the best any
    per camera-joint bias model could do on this clip).
(d) **Sync from motion**: synthetic studio with known offsets (sub-frame to
    3.5 s) and a 29.97-vs-30 fps camera; the real demo with cam03 shifted by 7
    frames.  rigcap beside Pose2Sim-style whole-frame speed correlation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.keypoint_calibration import calibrate_from_keypoints, observations_from_keypoints, perturb_rig, scale_rig  # noqa: E402
from calibration.world import compare_rigs  # noqa: E402
from rigcap.studio.keypoints import DetectorNoise, synthesize_keypoints  # noqa: E402
from rigcap.studio.studio import SyntheticStudio  # noqa: E402
from triangulate.formats import Keypoints2D  # noqa: E402
from triangulate.motion_sync import sync_from_motion  # noqa: E402

console = Console(width=170)
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim-demo-single"


def _size(rig) -> float:
    c = rig.centers
    return float(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))


def _errors(rig, truth):
    """(rigid comparison, similarity comparison) against ``truth``."""
    return compare_rigs(rig, truth), compare_rigs(scale_rig(rig, _size(truth) / _size(rig)), truth)


def _outlier_stats(studio, kp, res):
    det = studio.detections
    obs, ids = observations_from_keypoints(kp.xy, kp.confidence)
    f, j = ids[obs.board, 0], ids[obs.board, 1]
    far = np.linalg.norm(obs.uv - det.true_pixels[obs.cam, f, j], axis=1) > 15.0
    wrong = (det.outlier | (det.swapped[..., None] & ~det.inlier))[obs.cam, f, j] & far
    good = det.inlier[obs.cam, f, j]
    return float((~res.bundle.inliers[wrong]).mean()), float(res.bundle.inliers[good].mean()), int(wrong.sum())


def bench_calibration(seeds: int, n_cams: int = 4, duration: float = 10.0) -> None:
    table = Table(title=f"(a) keypoint calibration, synthetic studio ({n_cams} cameras, {duration:g} s, start 8 cm / 4 deg / 5 % focal)")
    for col in ("seed", "start", "centre mm mean / max", "shape-only centre mm mean / max", "rotation deg max",
                "focal % max", "median reproj. px", "outliers rejected", "good kept", "time s"):
        table.add_column(col, justify="right")
    for seed in range(seeds):
        studio = SyntheticStudio(n_cameras=n_cams, duration_s=duration, seed=seed, time_offsets_ms=0,
                                 noise=DetectorNoise(time_jitter_ms=0.0))
        kp = studio.keypoints2d()
        rough = perturb_rig(studio.rig, 0.08, 4.0, 0.05, seed=100 + seed)
        for label, start in (("rough", rough), ("true rig (floor)", studio.rig), ("rough, not refined", None)):
            if start is None:
                rigid, shape = _errors(rough, studio.rig)
                table.add_row(str(seed), label, f"{rigid.center_mm.mean():.1f} / {rigid.center_mm.max():.1f}",
                              f"{shape.center_mm.mean():.1f} / {shape.center_mm.max():.1f}",
                              f"{rigid.rotation_deg.max():.2f}", f"{rigid.focal_pct.max():.2f}", "", "", "", "")
                continue
            t0 = time.perf_counter()
            res = calibrate_from_keypoints(start, kp.keypoints, kp.joint_names)
            secs = time.perf_counter() - t0
            rigid, shape = _errors(res.rig, studio.rig)
            rejected, kept, n_wrong = _outlier_stats(studio, kp, res)
            med = float(np.median(res.bundle.errors[res.bundle.inliers]))
            table.add_row(str(seed), label, f"{rigid.center_mm.mean():.1f} / {rigid.center_mm.max():.1f}",
                          f"{shape.center_mm.mean():.1f} / {shape.center_mm.max():.1f}",
                          f"{rigid.rotation_deg.max():.3f}", f"{rigid.focal_pct.max():.2f}", f"{med:.2f}",
                          f"{rejected:.1%} of {n_wrong}", f"{kept:.1%}", f"{secs:.1f}")
    console.print(table)


def bench_joint_bias(seeds: int, duration: float = 6.0, bias_px: float = 5.0) -> None:
    """(a2) what ``--joint-bias`` is for: a detector whose joints sit off the true point by a fixed
    amount per camera and joint (N(0, ``bias_px``) per axis), all recording long."""
    table = Table(title=f"(a2) joint bias terms, synthetic studio (4 cameras, {duration:g} s, start 8 cm / 4 deg, lenses held)")
    for col in ("seed", "planted bias", "bias terms", "shape-only centre mm mean / max", "rotation deg max",
                "offsets vs planted (corr.)", "time s"):
        table.add_column(col, justify="right")
    for seed in range(seeds):
        studio = SyntheticStudio(n_cameras=4, duration_s=duration, seed=seed, time_offsets_ms=0,
                                 noise=DetectorNoise(time_jitter_ms=0.0))
        kp = studio.keypoints2d()
        planted = np.random.default_rng(seed).normal(0, bias_px, (kp.n_cameras, len(kp.joint_names), 2))
        biased = kp.keypoints.astype(float).copy()
        biased[..., :2] += planted[:, None]
        rough = perturb_rig(studio.rig, 0.08, 4.0, 0.0, seed=100 + seed)
        for label, kps in (("none", kp.keypoints), (f"{bias_px:g} px", biased)):
            for prior in (None, bias_px):
                t0 = time.perf_counter()
                res = calibrate_from_keypoints(rough, kps, kp.joint_names, lens_model="held", joint_bias_px=prior)
                _, shape = _errors(res.rig, studio.rig)
                corr = (f"{np.corrcoef(res.joint_bias.ravel(), planted.ravel())[0, 1]:.2f}"
                        if prior and label != "none" else "")
                table.add_row(str(seed), label, "off" if prior is None else f"prior {prior:g} px",
                              f"{shape.center_mm.mean():.1f} / {shape.center_mm.max():.1f}",
                              f"{shape.rotation_deg.max():.3f}", corr, f"{time.perf_counter() - t0:.1f}")
    console.print(table)


def _cpu_calibrate(start, kps, names, **kw):
    """(result, process CPU seconds) of one keypoint calibration (the machine is shared: CPU, not wall time)."""
    t0 = time.process_time()
    res = calibrate_from_keypoints(start, kps, names, **kw)
    return res, time.process_time() - t0


def _demo_motion(rig, kp) -> np.ndarray:
    """(F, J, 3) the demo person's joints as rigcap triangulates them through ``rig``, gaps
    interpolated over time and smoothed (15 frames, cubic): a real motion for a replica."""
    from scipy.signal import savgol_filter

    from triangulate.engine import TriangulationConfig, Triangulator, match_cameras
    from triangulate.skeletons import skeleton_for_joints

    tri = Triangulator(match_cameras(rig, kp.camera_names), TriangulationConfig(auto_threshold=True),
                       skeleton_for_joints(kp.joint_names))
    pts = tri.run(np.asarray(kp.keypoints, float)).points.reshape(kp.n_frames, -1)
    f = np.arange(kp.n_frames)
    for k in range(pts.shape[1]):
        ok = np.isfinite(pts[:, k])
        pts[:, k] = np.interp(f, f[ok], pts[ok, k])
    return savgol_filter(pts, 15, 3, axis=0).reshape(kp.n_frames, -1, 3)


def bench_real_error_model(seeds: int) -> None:
    """(a3) the studio with the real detector's error model: does its per camera-joint bias reproduce
    the real demo's failure, and do joint bias terms fix it there?"""
    from triangulate.skeletons import MEDIAPIPE33

    table = Table(title="(a3) the real detector's error model (--noise real), synthetic, 60 fps, 1.7 s, start 5 cm / 3 deg, "
                        "lenses held: centres and rotations against the truth")
    for col in ("scene", "seed", "per camera-joint bias", "objective", "start", "centre mm mean / max",
                "rotation deg mean / max", "sigma px", "CPU s"):
        table.add_column(col, justify="right")
    scenes = [("studio person, 4 cameras", None)]
    if REAL.is_dir():
        rig, kp = _real()
        scenes.append(("replica of the real demo", (rig, _demo_motion(rig, kp))))
    for scene, replica in scenes:
        for seed in range(seeds):
            for biased in (True, False):
                noise = DetectorNoise.real_detector(time_jitter_ms=0.0, occlusion=replica is None)
                if not biased:
                    noise = noise.replace(real=noise.real.replace(bias_rel=0.0))
                if replica is None:
                    st = SyntheticStudio(n_cameras=4, fps=60.0, duration_s=1.7, seed=seed, time_offsets_ms=0, noise=noise)
                    truth, kps = st.rig, st.keypoints2d()
                else:
                    truth = replica[0]
                    kps = synthesize_keypoints(truth, replica[1], noise, seed=seed, fps=60.0, skeleton=MEDIAPIPE33).keypoints
                rough = perturb_rig(truth, 0.05, 3.0, 0.0, seed=seed)
                for objective, kw in (("default", {}), ("joint bias terms, prior 3 px", {"joint_bias_px": 3.0})):
                    if replica is None and kw:
                        continue  # the studio's case is (a2)'s
                    for label, start in (("5 cm / 3 deg", rough), ("true rig", truth)):
                        res, cpu = _cpu_calibrate(start, kps.keypoints, kps.joint_names, lens_model="held", **kw)
                        e = compare_rigs(res.rig, truth)
                        table.add_row(scene, str(seed), f"{noise.real.bias_rel:g} x body" if biased else "none", objective,
                                      label, f"{e.center_mm.mean():.1f} / {e.center_mm.max():.1f}",
                                      f"{e.rotation_deg.mean():.2f} / {e.rotation_deg.max():.2f}", f"{res.sigma_px:.2f}",
                                      f"{cpu:.0f}")
    console.print(table)


def bench_speed(n_cams: int = 12, duration: float = 24.0) -> None:
    studio = SyntheticStudio(n_cameras=n_cams, duration_s=duration, seed=7, time_offsets_ms=0,
                             noise=DetectorNoise(time_jitter_ms=0.0))
    kp = studio.keypoints2d()
    rough = perturb_rig(studio.rig, 0.08, 4.0, 0.05, seed=3)
    t0 = time.perf_counter()
    res = calibrate_from_keypoints(rough, kp.keypoints, kp.joint_names)
    secs = time.perf_counter() - t0
    rigid, shape = _errors(res.rig, studio.rig)
    console.print(f"(b) speed: {n_cams} cameras, {res.n_observations} correspondences of {res.n_points} points, "
                  f"{os.environ.get('OMP_NUM_THREADS')} BLAS threads: [bold]{secs:.1f} s[/bold] "
                  f"({', '.join(f'{k} {v:.1f} s' for k, v in res.seconds.items())}); centres {rigid.center_mm.mean():.1f} mm "
                  f"mean (shape only {shape.center_mm.mean():.1f}), rotation max {rigid.rotation_deg.max():.3f} deg")
    console.print("    " + "; ".join(res.bundle.log))


def _real():
    from calibration.importers.qualisys import load_qualisys
    from tests.real_keypoints import pose2sim_keypoints

    rig = load_qualisys(REAL / "calibration" / "Calib.qca.txt")
    return rig, pose2sim_keypoints(REAL, rig.names)


def _seen_cameras(rig):
    """(viewer, seen, pixel) for every camera whose centre ``rig`` projects inside another's image:
    a check free of the world frame (each rig projects its own centres)."""
    uv = rig.project(rig.centers)  # (C, C, 2)
    out = []
    for c, cam in enumerate(rig.cameras):
        for o in range(len(rig)):
            z = (cam.R @ rig.centers[o] + cam.tvec)[2]
            if o != c and z > 0 and 0 <= uv[c, o, 0] < cam.size[0] and 0 <= uv[c, o, 1] < cam.size[1]:
                out.append((c, o, uv[c, o]))
    return out


def _lens_shift_px(rig, reference) -> str:
    """How far ``rig`` puts each camera visible in another's image from where ``reference`` puts it."""
    ref = {(c, o): p for c, o, p in _seen_cameras(reference)}
    uv = rig.project(rig.centers)
    d = [np.linalg.norm(uv[c, o] - p) for (c, o), p in ref.items()]
    return f"{np.mean(d):.0f} / {np.max(d):.0f}" if d else ""


def bench_real_calibration(seeds: int) -> None:
    """(c) the real demo, lever by lever.  The rows started from the Qualisys rig itself say where
    each objective's optimum lies (no convergence question); the perturbed starts say what a user
    gets.  "cameras seen px": four cameras are visible in another's video and the Qualisys rig
    projects each onto its lens within about 10 px (checked by eye on the first frames): how far
    the refined rig projects them (mean / max over the 4), free of any world-frame alignment."""
    if not REAL.is_dir():
        console.print(f"(c) real: {REAL} not found, skipped")
        return
    from calibration.keypoint_calibration import lenses_calibrated

    rig, kp = _real()
    names = kp.joint_names
    face = [j for j, n in enumerate(names) if any(k in n for k in ("eye", "ear", "mouth", "nose"))]
    no_face = kp.keypoints.copy()
    no_face[:, :, face] = np.nan
    far = max(((a, b) for a in range(len(rig)) for b in range(a + 1, len(rig))),
              key=lambda ab: np.linalg.norm(rig.centers[ab[0]] - rig.centers[ab[1]]))
    baseline = (f"baseline:{rig.names[far[0]]},{rig.names[far[1]]},"
                f"{np.linalg.norm(rig.centers[far[0]] - rig.centers[far[1]]):.4f}")
    table = Table(title="(c) real Pose2Sim demo (treadmill walk, 4 x 100 frames at 60 fps): refined on rigcap's MediaPipe "
                        f"keypoints, against the Qualisys rig (lenses from a calibration: {lenses_calibrated(rig)})")
    for col in ("start", "objective", "centre mm mean / max vs Qualisys", "shape-only mm mean / max",
                "rotation deg mean / max", "focal % max", "cameras seen px", "median reproj. px", "outliers", "CPU s"):
        table.add_column(col, justify="right")

    def row(label, what, start, kps=None, **kw):
        res, cpu = _cpu_calibrate(start, kp.keypoints if kps is None else kps, names, **kw)
        rigid, shape = _errors(res.rig, rig)
        table.add_row(label, what, f"{rigid.center_mm.mean():.1f} / {rigid.center_mm.max():.1f}",
                      f"{shape.center_mm.mean():.1f} / {shape.center_mm.max():.1f}",
                      f"{rigid.rotation_deg.mean():.2f} / {rigid.rotation_deg.max():.2f}", f"{rigid.focal_pct.max():.2f}",
                      _lens_shift_px(res.rig, rig), f"{np.median(res.bundle.errors[res.bundle.inliers]):.2f}",
                      f"{res.outlier_fraction:.1%}", f"{cpu:.1f}")
        return res

    row("Qualisys itself", "default (lenses held)", rig)
    row("Qualisys itself", "focal refined", rig, lens_model="focal")
    row("Qualisys itself", "joint bias, prior 3 px", rig, joint_bias_px=3.0)
    row("Qualisys itself", "joint bias, prior 10 px", rig, joint_bias_px=10.0)
    row("Qualisys itself", "no face joints", rig, no_face)
    row("Qualisys itself", "min confidence 0.8", rig, min_confidence=0.8)
    row("Qualisys itself", "first 50 frames", rig, kp.keypoints[:, :50])
    row("Qualisys itself", "last 50 frames", rig, kp.keypoints[:, 50:])
    for s in range(seeds):
        start = perturb_rig(rig, 0.05, 3.0, 0.0, seed=s)
        rigid, shape = _errors(start, rig)
        table.add_row(f"perturbed, seed {s}", "(not refined)", f"{rigid.center_mm.mean():.1f} / {rigid.center_mm.max():.1f}",
                      f"{shape.center_mm.mean():.1f} / {shape.center_mm.max():.1f}",
                      f"{rigid.rotation_deg.mean():.2f} / {rigid.rotation_deg.max():.2f}", "",
                      _lens_shift_px(start, rig), "", "", "")
        row(f"perturbed, seed {s}", "default", start)
        row(f"perturbed, seed {s}", f"scale from the Qualisys {baseline.split(':')[1].rsplit(',', 1)[0]} baseline", start,
            scale_from=baseline)
        row(f"perturbed, seed {s}", "focal refined", start, lens_model="focal")
    console.print(table)
    _real_data_checks(rig, kp, no_face)
    _residual_floor(rig, kp)


def _qualisys_residuals(rig, kp):
    """(residuals (C, F, J, 2) px per true joint, NaN outside the triangulation's confident inlier views
    of points seen by 3+ cameras; swap state (C, F, J)): the keypoints against their triangulation
    through ``rig`` (swap repair and robust fit, as ``rigcap triangulate``)."""
    from triangulate.engine import TriangulationConfig, Triangulator, match_cameras
    from triangulate.skeletons import skeleton_for_joints
    from triangulate.swap import permute_joints

    k = np.asarray(kp.keypoints, float)
    tri = Triangulator(match_cameras(rig, kp.camera_names), TriangulationConfig(auto_threshold=True),
                       skeleton_for_joints(kp.joint_names))
    res = tri.run(k)
    state = res.swap_state if res.swap_state is not None else np.broadcast_to(np.arange(k.shape[2]), k.shape[:3])
    pix, conf = permute_joints(k[..., :2], state), permute_joints(k[..., 2], state)
    proj = rig.project(res.points.reshape(-1, 3)).reshape((len(rig),) + res.points.shape[:2] + (2,))
    with np.errstate(invalid="ignore"):
        use = (conf >= 0.3) & (res.n_views >= 3)[None] & res.inliers & np.isfinite(proj).all(-1)
    return np.where(use[..., None], pix - proj, np.nan), state


def _residual_floor(rig, kp) -> None:
    """(c3) what of the keypoints' disagreement with the Qualisys rig is a constant per camera-joint bias,
    and where BA from Qualisys lands with it removed (an oracle)."""
    from triangulate.swap import permute_joints

    r, state = _qualisys_residuals(rig, kp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bias = np.nanmean(r, axis=1)  # (C, J, 2)
        shift = np.nanmean(bias, axis=1)  # (C, 2)
        scatter = np.sqrt(np.nanmean((r - bias[:, None]) ** 2, axis=(1, 2, 3)))
        h1, h2 = np.nanmean(r[:, : kp.n_frames // 2], axis=1), np.nanmean(r[:, kp.n_frames // 2:], axis=1)
    table = Table(title="(c3) real demo: keypoints against their triangulation through the Qualisys rig (px per axis; "
                        "3+ views, confidence >= 0.3, inliers)")
    for col in ("camera", "camera-joint bias rms", "largest |bias| (joint)", "common shift x, y",
                "bias minus common shift rms", "scatter about the bias rms", "halves' biases corr."):
        table.add_column(col, justify="right")
    for c, name in enumerate(rig.names):
        mag = np.linalg.norm(bias[c], axis=-1)
        j = int(np.nanargmax(mag))
        ok = np.isfinite(h1[c]) & np.isfinite(h2[c])
        table.add_row(name, f"{np.sqrt(np.nanmean(bias[c] ** 2)):.1f}", f"{mag[j]:.1f} ({kp.joint_names[j]})",
                      f"{shift[c, 0]:+.1f}, {shift[c, 1]:+.1f}", f"{np.sqrt(np.nanmean((bias[c] - shift[c]) ** 2)):.1f}",
                      f"{scatter[c]:.1f}", f"{np.corrcoef(h1[c][ok], h2[c][ok])[0, 1]:.2f}")
    console.print(table)
    # remove them from the keypoints (by label: a swapped camera-frame carries the other side's bias)
    inv = np.argsort(state, axis=-1)
    by_label = permute_joints(np.broadcast_to(np.nan_to_num(bias)[:, None], r.shape).copy(), inv)
    out = Table(title="(c3) BA from the Qualisys rig on the real keypoints with Qualisys's view of their bias removed (oracle)")
    for col in ("keypoints", "centre mm mean / max vs Qualisys", "rotation deg mean / max", "sigma px", "CPU s"):
        out.add_column(col, justify="right")
    for label, sub in (("as detected", 0.0), ("each camera's common shift removed", shift[:, None, None]),
                       ("each camera-joint's bias removed", by_label)):
        kk = np.asarray(kp.keypoints, float).copy()
        kk[..., :2] -= sub
        res, cpu = _cpu_calibrate(rig, kk, kp.joint_names)
        e = compare_rigs(res.rig, rig)
        out.add_row(label, f"{e.center_mm.mean():.1f} / {e.center_mm.max():.1f}",
                    f"{e.rotation_deg.mean():.2f} / {e.rotation_deg.max():.2f}", f"{res.sigma_px:.2f}", f"{cpu:.0f}")
    console.print(out)


def _real_data_checks(rig, kp, no_face) -> None:
    """(c2) is the optimum the data's?  Sliding 60-frame windows (all joints against no face joints),
    the two halves against each other, and cam03 moved by the lag ``rigcap sync`` reports for it."""
    table = Table(title="(c2) real demo, from the Qualisys rig: what the data supports (centre mm mean / rotation deg max)")
    for col in ("case", "all joints", "no face joints"):
        table.add_column(col, justify="right")

    def err(kps, ref=rig):
        e = compare_rigs(calibrate_from_keypoints(rig, kps, kp.joint_names).rig, ref)
        return e, f"{e.center_mm.mean():.1f} / {e.rotation_deg.max():.2f}"

    for a in range(0, kp.n_frames - 59, 10):
        table.add_row(f"frames {a}-{a + 60} vs Qualisys", err(kp.keypoints[:, a:a + 60])[1], err(no_face[:, a:a + 60])[1])
    halves = [calibrate_from_keypoints(rig, kp.keypoints[:, sl], kp.joint_names).rig for sl in (slice(0, 50), slice(50, 100))]
    e = compare_rigs(halves[0], halves[1])
    table.add_row("first half vs last half", f"{e.center_mm.mean():.1f} / {e.rotation_deg.max():.2f}", "")
    for lag in (1.0, 2.82):
        moved = kp.keypoints.astype(float).copy()
        t = np.arange(kp.n_frames) + lag  # cam03 resampled at t + lag (linear)
        i0 = np.clip(np.floor(t).astype(int), 0, kp.n_frames - 2)
        w = (t - i0)[:, None, None]
        moved[2] = np.where((t < kp.n_frames - 1)[:, None, None], (1 - w) * moved[2, i0] + w * moved[2, i0 + 1], np.nan)
        table.add_row(f"cam03 moved {lag:g} frames vs Qualisys", err(moved)[1], "")
    console.print(table)


def _nominal(kp: Keypoints2D, fps: float) -> Keypoints2D:
    ts = (np.arange(kp.n_frames)[None, :] / fps * 1e9 * np.ones((kp.n_cameras, 1))).astype(np.int64)
    return Keypoints2D(kp.keypoints, kp.camera_names, kp.joint_names, ts, fps)


def bench_sync() -> None:
    table = Table(title="(d) sync from motion: error against the true offset, frames (camera 0 the reference)")
    for col in ("case", "camera", "true offset ms", "rigcap ms", "rigcap error frames", "drift ppm (true)",
                "confidence", "Pose2Sim-style ms", "Pose2Sim-style error frames", "time s"):
        table.add_column(col, justify="right")
    cases = []
    offsets = [0.0, 13.7, -1234.5, 3456.0]
    st = SyntheticStudio(n_cameras=4, duration_s=10.0, seed=2, time_offsets_ms=offsets, noise=DetectorNoise(time_jitter_ms=0.0))
    cases.append(("synthetic, offsets", st.rig, _nominal(st.keypoints2d(), st.fps), np.array(offsets) * 1e-3, np.zeros(4), st.fps))
    st = SyntheticStudio(n_cameras=3, duration_s=10.0, seed=5, time_offsets_ms=0, noise=DetectorNoise(time_jitter_ms=0.0))
    times = np.broadcast_to(np.arange(st.n_frames) / st.fps, (3, st.n_frames)).copy()
    times[2] = 0.2 + np.arange(st.n_frames) / 29.97
    joints = st.motion.joints(times)
    det = synthesize_keypoints(st.rig, st.points3d, DetectorNoise(time_jitter_ms=0.0), seed=5, fps=st.fps,
                               motion=lambda t: joints, time_offsets_ms=[0.0, 0.0, 1e-6])
    cases.append(("synthetic, cam_2 at 29.97 fps", st.rig, _nominal(det.keypoints, st.fps), np.array([0, 0, 0.2]),
                  np.array([0, 0, 30 / 29.97 - 1]), st.fps))
    if REAL.is_dir():
        rig, kp = _real()
        base = Keypoints2D(kp.keypoints, kp.camera_names, kp.joint_names, None, 60.0)
        b = sync_from_motion(rig, base, max_offset_s=1.0)
        moved = kp.keypoints.copy()
        moved[2, 7:] = kp.keypoints[2, :-7]
        moved[2, :7] = np.nan
        # truth: the published videos' own offsets (as rigcap finds them) + the 7 frames added
        cases.append(("real Pose2Sim, cam03 +7 frames (truth: unshifted result - 7)", rig,
                      Keypoints2D(moved, kp.camera_names, kp.joint_names, None, 60.0),
                      b.offsets_s + np.array([0, 0, -7 / 60.0, 0]), np.zeros(4), 60.0))
    for name, rig, kp, true_s, true_drift, fps in cases:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = sync_from_motion(rig, kp, max_offset_s=5.0 if "synthetic" in name else 1.0)
        secs = time.perf_counter() - t0
        for c in range(1, len(rig)):
            table.add_row(name if c == 1 else "", kp.camera_names[c], f"{true_s[c] * 1e3:+.1f}", f"{s.offsets_s[c] * 1e3:+.2f}",
                          f"{(s.offsets_s[c] - true_s[c]) * fps:+.3f}", f"{s.drift[c] * 1e6:+.0f} ({true_drift[c] * 1e6:+.0f})",
                          f"{s.confidence[c]:.2f}", f"{s.correlation_s[c] * 1e3:+.1f}",
                          f"{(s.correlation_s[c] - true_s[c]) * fps:+.2f}", f"{secs:.1f}" if c == 1 else "")
        for w in s.warnings:
            console.print(f"  [yellow]{w}[/yellow]")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("calib", "bias", "realmodel", "speed", "real", "floor", "sync"))
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    if args.only in (None, "calib"):
        bench_calibration(args.seeds)
    if args.only in (None, "bias"):
        bench_joint_bias(args.seeds)
    if args.only in (None, "realmodel"):
        bench_real_error_model(args.seeds)
    if args.only == "floor" and REAL.is_dir():
        _residual_floor(*_real())
    if args.only in (None, "speed"):
        bench_speed()
    if args.only in (None, "real"):
        bench_real_calibration(args.seeds)
    if args.only in (None, "sync"):
        bench_sync()


if __name__ == "__main__":
    main()
