"""Fusion throughput: sustained instants per second, fed as fast as possible.

    .venv/bin/python benchmarks/bench_fusion.py                  # 4, 8, 16 cameras
    .venv/bin/python benchmarks/bench_fusion.py --cameras 8 --seconds 10

What is timed is the fusion node's path for every message: ``decode`` of the
wire frames (``rigcap.wire``), grouping into instants
(``triangulate.live_grouping``), and for every completed instant the live
triangulation + One-Euro filter (``triangulate.fusion``).  Messages are the
synthetic studio's detections (26 joints, HALPE26, its noise, outliers and
swaps), pre-encoded in arrival order.  Two feeding modes:

* ``drained``: like the node under load -- take up to 256 queued messages,
  then triangulate every instant they completed in one batch;
* ``one by one``: triangulate each instant the moment its last message is in
  (the light-load path, what sets latency).

Shared machines: every row is the fastest of ``--runs`` runs, and "per CPU s"
divides by this process's CPU time (what other processes take does not count).

Also printed: the share of time per stage, and the MPJPE of the output against
the truth (the speed is not bought with accuracy); ``--engine`` adds the
offline engine (``method="engine"``) for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rigcap.wire import decode, encode_kp2d  # noqa: E402
from rigcap.studio.studio import SyntheticStudio, motion_cycle_ns  # noqa: E402
from triangulate.fusion import FusionEngine  # noqa: E402
from triangulate.fusion_options import FusionOptions  # noqa: E402

DRAIN = 256
EPOCH_NS = 10**12  # the studio's capture times start near 0 (a camera's offset may be negative); the wire wants >= 0


def messages(studio: SyntheticStudio, repeats: int):
    """Pre-encoded kp2d frames in arrival order, with (camera, frame) for each."""
    period = motion_cycle_ns(studio.n_frames, studio.fps)
    out = []
    for r in range(repeats):
        for f in range(studio.n_frames):
            for c in range(len(studio.rig)):
                t = EPOCH_NS + r * period + studio.capture_time_ns(c, f)
                out.append((t + 1_000_000 + c * 50_000, studio.rig.names[c], r * studio.n_frames + f, t,
                            studio.keypoints(c, f)[None]))
    out.sort(key=lambda m: m[0])
    skel = studio.skeleton
    return [(arr, encode_kp2d(cam, f, i, t, kp, skel.name, skel.joint_names)) for i, (arr, cam, f, t, kp) in enumerate(out)]


def run(studio, msgs, drained: bool, method: str = "live") -> dict:
    eng = FusionEngine(studio.rig, studio.skeleton, FusionOptions(fps=studio.fps), method=method)
    t_dec = t_grp = t_tri = 0.0
    out = []
    pending = []
    clock = time.perf_counter
    cpu0 = time.process_time()
    start = clock()
    for i, (arrival, frames) in enumerate(msgs):
        t0 = clock()
        m = decode(frames)
        t1 = clock()
        ready = eng.collect(m.camera, m.frame_index, m.capture_time_ns, m.keypoints, arrival)
        t2 = clock()
        t_dec += t1 - t0
        t_grp += t2 - t1
        if drained:
            pending += ready
            if (i + 1) % DRAIN and i + 1 < len(msgs):
                continue
            ready, pending = pending, []
        if ready:
            out += eng.fuse(ready)
            t_tri += clock() - t2
    t3 = clock()
    last = eng.grouper.poll(msgs[-1][0] + 10**10)
    out += eng.fuse(last)
    t_tri += clock() - t3
    total = clock() - start
    cpu = time.process_time() - cpu0
    # Truth at each instant's capture time within its repeat of the studio (from its frame numbers).
    period = motion_cycle_ns(studio.n_frames, studio.fps)
    times = np.array([o.time_ns - EPOCH_NS - (min(o.frames.values()) // studio.n_frames) * period for o in out])
    pts = np.stack([o.points for o in out])
    err = 1000 * np.linalg.norm(pts - studio.truth_at(times), axis=-1)
    return {"instants": len(out), "seconds": total, "rate": len(out) / total, "cpu_rate": len(out) / cpu,
            "decode_us": 1e6 * t_dec / len(msgs), "group_us": 1e6 * t_grp / len(msgs),
            "fuse_us": 1e6 * t_tri / max(1, len(out)), "share": (t_dec / total, t_grp / total, t_tri / total),
            "mpjpe_mm": float(np.nanmean(err)), "cams": float(np.mean([len(o.cameras) for o in out]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, nargs="*", default=[4, 8, 16])
    ap.add_argument("--seconds", type=float, default=4.0, help="studio length (data is replayed --repeats times)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--engine", action="store_true", help="also time the offline engine as the live triangulator")
    ap.add_argument("--runs", type=int, default=3, help="runs per row; the fastest is shown (shared machines)")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = Table(title="fusion throughput (decode + grouping + live triangulation + One-Euro), one thread; "
                        f"best of {args.runs} runs; load average {load:.1f} on {os.cpu_count()} CPUs")
    for col in ("cameras", "method", "feeding", "instants", "instants/s", "per CPU s", "decode us/msg", "group us/msg",
                "fuse us/instant", "time decode/group/fuse %", "cams/instant", "MPJPE mm"):
        table.add_column(col, justify="right")
    for n_cams in args.cameras:
        studio = SyntheticStudio(n_cameras=n_cams, fps=30.0, duration_s=args.seconds, seed=1)
        msgs = messages(studio, args.repeats)
        methods = ["live"] + (["engine"] if args.engine else [])
        for method in methods:
            for drained in (True, False):
                r = max((run(studio, msgs, drained, method) for _ in range(args.runs)), key=lambda x: x["rate"])
                share = "/".join(f"{100 * s:.0f}" for s in r["share"])
                table.add_row(str(n_cams), method, "drained" if drained else "one by one", str(r["instants"]),
                              f"{r['rate']:.0f}", f"{r['cpu_rate']:.0f}", f"{r['decode_us']:.0f}", f"{r['group_us']:.0f}",
                              f"{r['fuse_us']:.0f}", share, f"{r['cams']:.2f}", f"{r['mpjpe_mm']:.1f}")
    Console(width=200).print(table)
    print("target (issue 5): >= 1000 instants/s at 8 cameras")
    return 0


if __name__ == "__main__":
    sys.exit(main())
