"""Measure the real detector's 2D errors and check the studio's real-detector model against them.

    .venv/bin/python benchmarks/fit_detector_noise.py              # measure + refit the studio (about a minute)
    .venv/bin/python benchmarks/fit_detector_noise.py --calibrate 2 # + indirect-inference steps (new parameters)

1. rigcap's MediaPipe detector on the Pose2Sim demo's four videos (cached:
   ``tests/real_keypoints.py``), triangulated through the demo's Qualisys
   calibration: :func:`rigcap.studio.noise_fit.measure_detector_error` --
   per-joint scale, confidence dependence, AR(1) time constant, Student-t
   tail index, per camera-joint bias, confidence distribution, swap rate.
2. The same measurement on a studio recording made with the stored model
   (:data:`rigcap.studio.detector_error.MEDIAPIPE_POSE2SIM`, 4 cameras,
   60 fps like the demo): where the two columns agree, the studio's
   detector looks like the real one to the same instrument.
3. ``--calibrate N``: N steps of :func:`rigcap.studio.noise_fit.calibrated_model`
   (the measurement through a triangulation is not neutral), printing the
   parameters to store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.rigfile import load_rig  # noqa: E402
from rigcap.studio.detector_error import MEDIAPIPE_POSE2SIM  # noqa: E402
from rigcap.studio.keypoints import DetectorNoise  # noqa: E402
from rigcap.studio.noise_fit import calibrated_model, measure_detector_error  # noqa: E402
from rigcap.studio.studio import SyntheticStudio  # noqa: E402

console = Console(width=200)
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "pose2sim-demo-single"


def real_fit():
    from tests.real_keypoints import pose2sim_keypoints

    names = [v.stem for v in sorted((REAL / "videos").glob("*.mp4"))]
    kp = pose2sim_keypoints(REAL, names)
    rig = load_rig(REAL / "calibration" / "Calib.qca.txt")
    return measure_detector_error(rig, kp), kp


def studio_fit(model, seconds: float, seed: int, fps: float):
    studio = SyntheticStudio(n_cameras=4, fps=fps, duration_s=seconds, seed=seed,
                             noise=DetectorNoise.real_detector(model), time_offsets_ms=None)
    return measure_detector_error(studio.rig, studio.keypoints2d())


def rows(fit):
    s = fit.stats
    out = {"sigma (t scale) / body size, conf 1": f"{s.sigma_rel:.4f}",
           "Student-t tail index nu": f"{s.tail_nu:.2f}",
           "conf gain a: scale x (1 + a (1-c)^2)": f"{s.conf_gain:.2f}",
           f"lag-1 autocorrelation at {s.fps:g} fps": f"{s.rho:.3f}",
           "AR(1) time constant ms": f"{s.tau_ms:.0f}",
           "per camera-joint bias rms / body size": f"{s.bias_rel:.4f}",
           "confidence autocorrelation time ms": f"{s.conf_tau_ms:.0f}",
           "left/right swapped camera-frames %": f"{100 * fit.swap_rate:.1f}",
           "largest |error| / scale": f"{s.max_abs_t:.0f}",
           "views (points) in the fit": f"{fit.views} ({fit.points})",
           "body size px per camera": " ".join(f"{v:.0f}" for v in fit.body_size_px),
           "leverage correction (median)": f"{fit.leverage_factor:.3f}"}
    for g in sorted(s.joint_scale):
        out[f"joint scale: {g}"] = f"{s.joint_scale[g]:.2f}"
    for lvl in (0.01, 0.05, 0.1, 0.5):
        out[f"confidence quantile {lvl:g}"] = f"{s.conf_quantiles[s.conf_levels.index(lvl)]:.3f}"
    return out


def params_rows(m):
    out = {"sigma (t scale) / body size, conf 1": f"{m.sigma_rel:.4f}", "Student-t tail index nu": f"{m.tail_nu:.2f}",
           "conf gain a: scale x (1 + a (1-c)^2)": f"{m.conf_gain:.2f}", "AR(1) time constant ms": f"{m.tau_ms:.0f}",
           "per camera-joint bias rms / body size": f"{m.bias_rel:.4f}",
           "confidence autocorrelation time ms": f"{m.conf_tau_ms:.0f}",
           "left/right swapped camera-frames %": f"{100 * m.swap_rate:.1f}", "largest |error| / scale": f"{m.tail_cap:.0f}"}
    for g, v in sorted(m.joint_scale.items()):
        out[f"joint scale: {g}"] = f"{v:.2f}"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="studio recording length (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calibrate", type=int, default=0, help="indirect-inference steps (default 0)")
    args = ap.parse_args(argv)
    if not (REAL / "videos").is_dir():
        console.print(f"no real recording at {REAL}: nothing to measure")
        return 1
    real, kp = real_fit()
    fps = kp.fps or 60.0
    stored = studio_fit(MEDIAPIPE_POSE2SIM, args.seconds, args.seed, fps)
    cols = {"real demo (measured)": rows(real), "stored model: parameters": params_rows(MEDIAPIPE_POSE2SIM),
            "studio with it (measured the same way)": rows(stored)}
    model = MEDIAPIPE_POSE2SIM
    refit = stored
    for k in range(args.calibrate):
        model = calibrated_model(model, real.stats, refit.stats)
        refit = studio_fit(model, args.seconds, args.seed, fps)
    if args.calibrate:
        cols[f"after {args.calibrate} step(s): parameters"] = params_rows(model)
        cols["studio with those (measured)"] = rows(refit)
    t = Table(title=f"2D detector errors: rigcap MediaPipe on {REAL.name} ({kp.n_cameras} cameras, "
                    f"{kp.keypoints.shape[1]} frames at {fps:g} fps) vs the studio's real-detector model")
    t.add_column("statistic")
    for c in cols:
        t.add_column(c, justify="right")
    keys = list(dict.fromkeys(k for c in cols.values() for k in c))
    for key in keys:
        t.add_row(key, *[c.get(key, "") for c in cols.values()])
    console.print(t)
    b = Table(title="Error scale by confidence band (real demo): measured t scale vs the model's 1 + a (1-c)^2")
    for col in ("confidence", "views", "measured", "model"):
        b.add_column(col, justify="right")
    for lo, hi, meas, mod, n in real.stats.sigma_by_conf:
        b.add_row(f"{lo:.2f}-{hi:.2f}", str(n), f"{meas:.2f}", f"{mod:.2f}")
    console.print(b)
    if args.calibrate:
        console.print(f"parameters after {args.calibrate} step(s): {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
