"""Movement-analysis benchmark: joint angles and exercise reps against the synthetic studio's truth.

    .venv/bin/python benchmarks/bench_analysis.py                 # all, about a minute on two cores
    .venv/bin/python benchmarks/bench_analysis.py --seeds 0 1 2 3 --seconds 90

(a) **Angle error**: the studio's ``workout`` program (squats, lunges, lateral raises, walking,
    turning) seen by 4 cameras with the default detector errors (2 px noise, 10 % missing joints,
    3 % outliers, 2 % swaps, clock offsets), triangulated by rigcap (raw, and Butterworth 6 Hz
    with gaps up to 10 frames filled); every angle of :mod:`rigcap.analysis.angles` from the
    triangulated joints against the same angle from the true joints: RMS and 95th percentile
    (degrees), and the share of frames where both exist.
(b) **Reps**: ``rigcap analyze``'s counting (configs/exercises/*.toml) on the true joints and on
    the triangulated ones, against the repetitions the motion program made
    (``PersonMotion.exercise_reps``), per exercise; and how far each counted rep's peak lies from
    the true one (ms).
(c) **Time** per 10 000 frames: all angles, and one exercise's analysis (CPU time, one thread).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rigcap.analysis.angles import ANGLE_NAMES, joint_angles  # noqa: E402
from rigcap.analysis.exercises import analyze_exercise, known_exercises, load_exercise  # noqa: E402
from rigcap.studio.studio import SyntheticStudio  # noqa: E402
from triangulate.engine import TriangulationConfig, triangulate  # noqa: E402

console = Console(width=150)
Z_UP = np.array([0.0, 0.0, 1.0])


def angle_errors(truth, est) -> dict[str, np.ndarray]:
    out = {}
    for name in ANGLE_NAMES:
        d = est[name] - truth[name]
        if name == "pelvis_rotation":  # unwrapped from different starting frames: compare modulo 360
            d = (d + 180.0) % 360.0 - 180.0
        out[name] = d
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)

    errors = {"raw": {n: [] for n in ANGLE_NAMES}, "6 Hz": {n: [] for n in ANGLE_NAMES}}
    exercises = {name: load_exercise(name) for name in known_exercises()}
    reps = {name: {"true": 0, "on truth": 0, "triangulated": 0, "peak_ms": [], "hits_truth": 0, "hits_tri": 0,
                   "hits_both": 0} for name in exercises}
    for seed in args.seeds:
        studio = SyntheticStudio(n_cameras=4, fps=30.0, duration_s=args.seconds, seed=seed, program="workout")
        truth = joint_angles(studio.points3d, studio.skeleton.joint_names, up=Z_UP)
        est_by = {}
        for label, cfg in (("raw", TriangulationConfig()), ("6 Hz", TriangulationConfig(filter_hz=6.0, max_gap=10))):
            res = triangulate(studio.rig, studio.keypoints2d(), cfg)
            est_by[label] = joint_angles(res.points3d.points, res.points3d.joint_names)  # up from the body
            for name, d in angle_errors(truth, est_by[label]).items():
                errors[label][name].append(d)
        true_reps = studio.motion.exercise_reps(0.0, (studio.n_frames - 1) / studio.fps)
        for name, ex in exercises.items():
            reps[name]["true"] += len(true_reps[name])
            on_truth = analyze_exercise(truth, ex, studio.fps)
            reps[name]["on truth"] += len(on_truth.reps)
            tri = analyze_exercise(est_by["6 Hz"], ex, studio.fps)
            counted = tri.reps
            # a form-rule hit agrees when the same rule and angle fire in the rep with the same peak (+-0.2 s)
            key_t = {(h.rule, h.angle, on_truth.reps[h.rep - 1].peak) for h in on_truth.hits}
            key_e = {(h.rule, h.angle, tri.reps[h.rep - 1].peak) for h in tri.hits}
            reps[name]["hits_truth"] += len(key_t)
            reps[name]["hits_tri"] += len(key_e)
            reps[name]["hits_both"] += sum(any(r == r2 and a == a2 and abs(p - p2) <= 0.2 * studio.fps
                                               for r2, a2, p2 in key_e) for r, a, p in key_t)
            reps[name]["triangulated"] += len(counted)
            peaks = np.array([r.peak for r in counted]) / studio.fps
            for p in peaks:
                if len(true_reps[name]):
                    reps[name]["peak_ms"].append(1000 * np.min(np.abs(true_reps[name] - p)))

    table = Table(title=f"(a) angle error, triangulated vs truth: workout program, 4 cameras, default detector "
                        f"errors, seeds {args.seeds}, {args.seconds:g} s each (degrees)")
    table.add_column("angle")
    for label in errors:
        for col in ("RMS", "p95", "valid %"):
            table.add_column(f"{label} {col}", justify="right")
    for name in ANGLE_NAMES:
        row = [name]
        for label in errors:
            d = np.concatenate(errors[label][name])
            ok = np.isfinite(d)
            row += [f"{np.sqrt(np.mean(d[ok] ** 2)):.2f}", f"{np.percentile(np.abs(d[ok]), 95):.2f}",
                    f"{100 * ok.mean():.0f}"] if ok.any() else ["-", "-", "0"]
        table.add_row(*row)
    console.print(table)

    table = Table(title="(b) repetitions counted vs true (configs/exercises/*.toml; triangulated with 6 Hz filter)")
    for col in ("exercise", "true reps", "counted on truth", "counted triangulated", "peak offset ms median / max",
                "rule hits on truth", "on triangulated", "in both"):
        table.add_column(col, justify="left" if col == "exercise" else "right")
    for name, r in reps.items():
        pk = np.array(r["peak_ms"])
        table.add_row(name, str(r["true"]), str(r["on truth"]), str(r["triangulated"]),
                      f"{np.median(pk):.0f} / {np.max(pk):.0f}" if pk.size else "-",
                      str(r["hits_truth"]), str(r["hits_tri"]), str(r["hits_both"]))
    console.print(table)

    # (c) time per 10 000 frames
    studio = SyntheticStudio(n_cameras=1, fps=30.0, duration_s=10_000 / 30.0, seed=0, program="workout")
    pts = studio.points3d
    t0 = time.process_time()
    angles = joint_angles(pts, studio.skeleton.joint_names)
    t_angles = time.process_time() - t0
    t0 = time.process_time()
    for ex in exercises.values():
        analyze_exercise(angles, ex, 30.0)
    t_ex = (time.process_time() - t0) / len(exercises)
    table = Table(title=f"(c) time per 10 000 frames (CPU, one thread; {pts.shape[1]} joints)")
    table.add_column("step")
    table.add_column("ms", justify="right")
    table.add_row(f"all {len(ANGLE_NAMES)} angles", f"{1000 * t_angles * 10_000 / len(pts):.0f}")
    table.add_row("one exercise (reps + rules)", f"{1000 * t_ex * 10_000 / len(pts):.0f}")
    extra_rows(table, studio)
    console.print(table)
    return 0


def extra_rows(table, studio) -> None:
    """Timings of the exports (BVH), when present."""
    try:
        from rigcap.analysis.bvh import skeleton_motion, write_bvh
    except ImportError:
        return
    import tempfile

    pts = studio.points3d
    t0 = time.process_time()
    motion = skeleton_motion(pts, studio.skeleton.joint_names, fps=30.0)
    with tempfile.TemporaryDirectory() as tmp:
        write_bvh(Path(tmp) / "x.bvh", motion)
    table.add_row("BVH export (fit + write)", f"{1000 * (time.process_time() - t0) * 10_000 / len(pts):.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
