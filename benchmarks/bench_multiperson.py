"""Several people: association + tracking + triangulation against the crowd studio's truth.

Prints, side by side, per scene (4 and 8 cameras; 2, 4, 6 people; 10 s at 30 fps; the standard
detector noise: 2 px, 10 % missing, 3 % outliers, 2 % left/right swaps, +-4 ms clock offsets):

* MPJPE per person (mm, mean and worst person) against the single-person oracle: the same
  engine on each person's own detections, as if association were perfect;
* identity switches (goal 0), person-frames missed and track-frames invented, coverage;
* association + tracking speed (frames/s, one thread; the target is >= 1000 at 4 people x 4
  cameras) and the whole offline run's time.

``--live``: the fusion engine with ``persons = auto`` fed every camera's messages in arrival
order (4 people x 8 cameras, 30 fps): time added per completed instant (grouping excluded is
not possible to separate: this is the whole push that completes an instant), p50/p99, target
p99 <= 5 ms; plus identity switches and MPJPE of the live output.

``--node``: the same, but the real fusion node (``triangulate.fusion_node.FusionNode``) in this
process over real ZeroMQ sockets, fed at capture pace (30 fps) by a second process that holds the
backbone and every camera's sender: the node's own added latency (last camera message received ->
kp3d published), drops and clock faults, instants out.  Two processes on the machine's cores.

``--real`` also runs the project's MediaPipe detector over the Pose2Sim demo's four videos
(../shared/data/pose2sim-demo-single; cached in out/bench_multiperson/) and triangulates them
with ``--persons auto``: the demo's one subject must come out as one track.

    PYTHONPATH=. python benchmarks/bench_multiperson.py [--quick] [--real]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from rigcap.studio.crowd import CrowdStudio  # noqa: E402
from rigcap.studio.crowd_score import score_crowd  # noqa: E402
from triangulate.engine import triangulate  # noqa: E402
from triangulate.people import triangulate_people  # noqa: E402

console = Console(width=200)
REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "pose2sim-demo-single"
CACHE = REPO / "out" / "bench_multiperson" / "pose2sim_demo_mediapipe_kp2d.npz"


def scene(n_cams: int, n_persons: int, seconds: float, seed: int) -> dict:
    s = CrowdStudio(n_persons=n_persons, n_cameras=n_cams, duration_s=seconds, seed=seed)
    t0 = time.perf_counter()
    r = triangulate_people(s.rig, s.keypoints2d())
    total = time.perf_counter() - t0
    seen = (s.found.sum(0) >= 2).T
    sc = score_crowd(r.points3d.points, r.points3d.person_ids, s.points3d, seen)
    oracle = []
    for p in range(n_persons):
        o = triangulate(s.rig, s.oracle_keypoints2d(p)).points3d.points
        oracle.append(1000 * np.nanmean(np.linalg.norm(o - s.points3d[p], axis=-1)))
    close = s.crowd.closest_approach(s.frame_times_s)
    return dict(cams=n_cams, persons=n_persons, tracks=r.points3d.n_persons, score=sc, oracle=np.array(oracle),
                fps=s.n_frames / r.association_s, total=total, frames=s.n_frames,
                close=int((close < 0.8).sum()), closest=float(close.min()))


def warm_up() -> None:
    """Compile the numba kernels (cached after a first run, seconds on a fresh clone) outside any timing."""
    from triangulate.fusion import FusionEngine
    from triangulate.fusion_options import FusionOptions

    s = CrowdStudio(n_persons=2, n_cameras=4, duration_s=1.0, seed=0)
    triangulate_people(s.rig, s.keypoints2d())
    engine = FusionEngine(s.rig, s.skeleton, FusionOptions(fps=s.fps, persons=0))
    for f in range(s.n_frames):
        for c in range(len(s.rig)):
            engine.push(s.rig.names[c], f, int(s.timestamps_ns[c, f]), s.keypoints(c, f), int(s.timestamps_ns[c, f]))


def bench_synthetic(args) -> None:
    table = Table(title=f"Several people, synthetic studio ({args.seconds:g} s at 30 fps, standard detector noise, "
                        f"seed {args.seed})")
    for col in ("cams", "people", "tracks", "id switches", "missed", "invented", "coverage %",
                "MPJPE mm mean / worst", "oracle mm mean / worst", "frames < 0.8 m apart", "assoc+track frames/s",
                "whole run s"):
        table.add_column(col, justify="right")
    persons = (2, 4) if args.quick else (2, 4, 6)
    for n_cams in (4, 8):
        for n_p in persons:
            r = scene(n_cams, n_p, args.seconds, args.seed)
            sc = r["score"]
            table.add_row(str(n_cams), str(n_p), str(r["tracks"]), str(sc.switches),
                          f"{sc.missed} / {sc.person_frames}", str(sc.invented), f"{100 * sc.coverage:.1f}",
                          f"{np.nanmean(sc.mpjpe_mm):.1f} / {np.nanmax(sc.mpjpe_mm):.1f}",
                          f"{r['oracle'].mean():.1f} / {r['oracle'].max():.1f}",
                          f"{r['close']} (min {r['closest']:.2f} m)", f"{r['fps']:.0f}", f"{r['total']:.1f}")
    console.print(table)


def detect_real() -> Path:
    """MediaPipe over the demo videos, every person the detector reports, multi-person 2D form."""
    import cv2

    from capture.pose import create_detector
    from triangulate.formats import Keypoints2D

    if CACHE.exists():
        return CACHE
    videos = sorted((REAL / "videos").glob("*.mp4"))
    per_cam, skeleton = [], None
    for video in videos:
        with create_detector("mediapipe") as det:
            skeleton = det.skeleton
            cap = cv2.VideoCapture(str(video))
            rows = []
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                rows.append(det.detect(img))
            cap.release()
        per_cam.append(rows)
    n_f = min(len(r) for r in per_cam)
    n_p = max(1, max(len(p) for rows in per_cam for p in rows))
    kp = np.full((len(videos), n_f, n_p, skeleton.n_joints, 3), np.nan, np.float32)
    for c, rows in enumerate(per_cam):
        for f in range(n_f):
            kp[c, f, : len(rows[f])] = rows[f]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    return Keypoints2D(kp, [v.stem for v in videos], list(skeleton.joint_names), fps=60.0).save(CACHE)


def bench_real() -> None:
    from calibration.rigfile import load_rig
    from triangulate.formats import Keypoints2D

    if not (REAL / "videos").is_dir():
        console.print(f"real: {REAL} not found: skipped")
        return
    kp = Keypoints2D.load(detect_real())
    rig = load_rig(REAL / "calibration" / "Calib.qca.txt")
    r = triangulate_people(rig, kp, persons=None)
    single = triangulate(rig, Keypoints2D(kp.persons_form()[:, :, 0], kp.camera_names, kp.joint_names, fps=kp.fps))
    p3 = r.points3d
    lines = [f"real (Pose2Sim demo, {kp.n_cameras} cameras, {kp.n_frames} frames, MediaPipe, up to "
             f"{kp.persons_form().shape[2]} detections per image): {p3.n_persons} track(s), ids {list(p3.person_ids)}"]
    for i, pid in enumerate(p3.person_ids):
        ok = np.isfinite(p3.points[i]).all(-1)
        d = np.linalg.norm(p3.points[i] - single.points3d.points, axis=-1)
        lines.append(f"  P{pid}: {int(ok.any(-1).sum())} frames, {100 * ok.mean():.1f} % joints, reprojection "
                     f"{np.nanmean(p3.reprojection_error[i]):.2f} px; vs single-person triangulation: median "
                     f"{1000 * np.nanmedian(d):.2f} mm, {int(np.isfinite(d).sum())} joints compared")
    lines.append(f"  association + tracking {kp.n_frames / r.association_s:.0f} frames/s")
    console.print("\n".join(lines), markup=False)


def bench_live(args) -> None:
    from triangulate.fusion import FusionEngine
    from triangulate.fusion_options import FusionOptions

    table = Table(title="Several people live: FusionEngine(persons=auto), messages in arrival order, one thread")
    for col in ("cams", "people", "instants", "added ms p50", "added ms p99", "max ms", "CPU ms p50 / p99", "id switches",
                "missed", "invented", "MPJPE mm raw mean / worst", "filtered mean"):
        table.add_column(col, justify="right")
    for n_cams, n_p in ((4, 4), (8, 4), (8, 6)):
        s = CrowdStudio(n_persons=n_p, n_cameras=n_cams, duration_s=args.seconds, seed=args.seed)
        engine = FusionEngine(s.rig, s.skeleton, FusionOptions(fps=s.fps, persons=0))
        msgs = sorted((int(s.timestamps_ns[c, f]) + 1_500_000 + c * 100_000, c, f)
                      for c in range(n_cams) for f in range(s.n_frames))
        fused, cost, cpu = [], [], []  # wall and process CPU time (on a shared machine, CPU is ours alone)
        for arrival, c, f in msgs:
            kp = s.keypoints(c, f)
            t0, c0 = time.perf_counter(), time.process_time()
            out = engine.push(s.rig.names[c], f, int(s.timestamps_ns[c, f]), kp, arrival)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if out:
                cost.append(dt / len(out))
                cpu.append(dc / len(out))
                fused += out
        ids = sorted({int(i) for inst in fused for i in inst.person_ids})
        raw = np.full((len(ids), s.n_frames, s.skeleton.n_joints, 3), np.nan)
        filt = raw.copy()
        for inst in fused:
            f = int(round(inst.time_ns * 1e-9 * s.fps))
            for k, pid in enumerate(inst.person_ids):
                raw[ids.index(int(pid)), f] = inst.raw_points[k]
                filt[ids.index(int(pid)), f] = inst.points[k]
        seen = (s.found.sum(0) >= 2).T
        sc = score_crowd(raw, np.array(ids), s.points3d, seen)
        sf = score_crowd(filt, np.array(ids), s.points3d, seen)
        ms, cpu_ms = 1000 * np.array(cost), 1000 * np.array(cpu)
        table.add_row(str(n_cams), str(n_p), str(len(fused)), f"{np.percentile(ms, 50):.2f}",
                      f"{np.percentile(ms, 99):.2f}", f"{ms.max():.2f}",
                      f"{np.percentile(cpu_ms, 50):.2f} / {np.percentile(cpu_ms, 99):.2f}", str(sc.switches),
                      f"{sc.missed} / {sc.person_frames}", str(sc.invented),
                      f"{np.nanmean(sc.mpjpe_mm):.1f} / {np.nanmax(sc.mpjpe_mm):.1f}", f"{np.nanmean(sf.mpjpe_mm):.1f}")
    console.print(table)


def _paced_sender(pub: str, sub: str, n_persons: int, n_cams: int, seconds: float, seed: int) -> None:
    """Child process: the backbone plus every camera's messages, each sent at its capture time + 1.5 ms
    (+0.1 ms per camera: detectors finish one after another), as camera hosts would.  The clock starts
    once the studio is built and the sockets have met (a message sent before that is lost, not late)."""
    from rigcap.wire import Backbone, Publisher

    s = CrowdStudio(n_persons=n_persons, n_cameras=n_cams, duration_s=seconds, seed=seed)
    msgs = sorted((int(s.timestamps_ns[c, f]) + 1_500_000 + c * 100_000, c, f)
                  for c in range(n_cams) for f in range(s.n_frames))
    with Backbone(pub, sub):
        sender = Publisher(pub)
        time.sleep(1.0)
        t0_ns = time.time_ns()
        for due, c, f in msgs:
            wait = (t0_ns + due - time.time_ns()) * 1e-9
            if wait > 0:
                time.sleep(wait)
            sender.publish_kp2d(s.rig.names[c], f, t0_ns + int(s.timestamps_ns[c, f]), s.keypoints(c, f), s.skeleton)
        time.sleep(1.0)
        sender.close()


def bench_node(args) -> None:
    """The fusion node over real ZeroMQ, alone in this process; the cameras' messages come from a
    second process at capture pace (30 fps): added latency as the node measures it (last camera
    message received -> kp3d published), drops, instants out."""
    import multiprocessing as mp

    from rigcap.wire import free_tcp_endpoint
    from triangulate.fusion_node import FusionNode
    from triangulate.fusion_options import FusionOptions

    table = Table(title="Several people live over ZeroMQ: fusion node in its own process, cameras sent at 30 fps "
                        "from another (2 processes)")
    for col in ("cams", "people", "instants out / frames", "added ms p50", "added ms p99", "max ms",
                "node CPU ms / instant", "late / clock / jumps / malformed", "ids"):
        table.add_column(col, justify="right")
    for n_cams, n_p in ((4, 4), (8, 4), (8, 6)):
        s = CrowdStudio(n_persons=n_p, n_cameras=n_cams, duration_s=args.seconds, seed=args.seed)
        pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
        node = FusionNode(s.rig, sub, pub, FusionOptions(fps=s.fps, persons=0), skeleton=s.skeleton)
        child = mp.get_context("fork").Process(target=_paced_sender,
                                               args=(pub, sub, n_p, n_cams, args.seconds, args.seed))
        child.start()
        ids: set[int] = set()
        c0 = c1 = None  # process CPU from the first instant out to the last (the child's set-up excluded)
        while child.is_alive():
            out = node.step(5)
            if out:
                c1 = time.process_time()
                c0 = c0 if c0 is not None else c1
            for inst in out:
                ids.update(int(i) for i in inst.person_ids)
        cpu = (c1 - c0) if c0 is not None else float("nan")
        child.join()
        st = node.stats
        node.close()
        ms = np.array(st.added_latency_ns) / 1e6
        table.add_row(str(n_cams), str(n_p), f"{st.instants_out} / {s.n_frames}", f"{np.percentile(ms, 50):.2f}",
                      f"{np.percentile(ms, 99):.2f}", f"{ms.max():.2f}", f"{1000 * cpu / max(st.instants_out, 1):.2f}",
                      f"{st.late_dropped} / {st.clock_outlier} / {sum(st.clock_jumps.values())} / {st.malformed}",
                      str(len(ids)))
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2 and 4 people only")
    ap.add_argument("--real", action="store_true", help="also the Pose2Sim demo (runs MediaPipe once, cached)")
    ap.add_argument("--live", action="store_true", help="also the live fusion engine's latency and identities")
    ap.add_argument("--node", action="store_true", help="also the fusion node over real ZeroMQ, cameras paced at 30 fps "
                                                         "from a second process")
    ap.add_argument("--no-synthetic", action="store_true")
    args = ap.parse_args()
    warm_up()
    if not args.no_synthetic:
        bench_synthetic(args)
    if args.live:
        bench_live(args)
    if args.node:
        bench_node(args)
    if args.real:
        bench_real()


if __name__ == "__main__":
    main()
