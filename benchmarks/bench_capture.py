"""Capture benchmark: N synthetic camera processes -> ZeroMQ -> one subscriber, plus the model's speed.

    .venv/bin/python benchmarks/bench_capture.py                 # 4 cameras, 30 fps, 60 s
    .venv/bin/python benchmarks/bench_capture.py --seconds 10 --record /tmp/take

Prints: messages received per camera and how many were lost (gaps in sequence
numbers after the first one received), per-hop latency p50/p99
(grab -> publish inside the camera process, publish -> receive through the
backbone, grab -> receive), the rig's grab-time spread per instant, and the
real 2D pose model's ms/frame on this CPU on real frames of
``../shared/data/pose2sim-demo-single/videos``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capture.config import CameraConfig  # noqa: E402
from rigcap.wire import Subscriber, free_tcp_endpoint  # noqa: E402
from capture.stats import RigSpread  # noqa: E402
from capture.supervisor import Supervisor  # noqa: E402


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run_pipeline(n_cameras: int, fps: float, seconds: float, detector: str, record: str | None) -> dict:
    pub, sub_ep = free_tcp_endpoint(), free_tcp_endpoint()
    cams = [CameraConfig(f"cam_{i}", "synthetic", camera_index=i, n_cameras=n_cameras, fps=fps, duration_s=10.0)
            for i in range(n_cameras)]
    sup = Supervisor(cams, pub, sub_ep, record_dir=record, detector=detector, start_delay_s=5.0,
                     record_video=record is not None)
    sub = Subscriber(sub_ep, topics="kp2d.")
    spread = RigSpread(n_cameras)
    seqs: dict[str, list[int]] = {}
    frames: dict[str, list[int]] = {}
    grab_pub, pub_recv, grab_recv = [], [], []
    sup.start()
    try:
        start = sup.epoch_ns
        end_ns = start + int(seconds * 1e9)
        while time.time_ns() < end_ns:
            msg = sub.recv(100)
            if msg is None or msg.capture_time_ns < start:
                continue
            seqs.setdefault(msg.camera, []).append(msg.seq)
            frames.setdefault(msg.camera, []).append(msg.frame_index)
            grab_pub.append((msg.publish_time_ns - msg.capture_time_ns) / 1e6)
            pub_recv.append((msg.t_receive_ns - msg.publish_time_ns) / 1e6)
            grab_recv.append((msg.t_receive_ns - msg.capture_time_ns) / 1e6)
            spread.add(msg.camera, msg.frame_index, msg.capture_time_ns)
    finally:
        sub.close()
        status = sup.stop()
    per_cam = {}
    for name in sorted(seqs):
        s = np.asarray(seqs[name])
        expected = int(s[-1] - s[0] + 1)
        f = np.asarray(frames[name])
        per_cam[name] = {"received": int(s.size), "lost": expected - int(s.size),
                         "first_frame": int(f[0]), "last_frame": int(f[-1]),
                         "fps": (s.size - 1) / ((f[-1] - f[0]) / fps) if f[-1] > f[0] else float("nan")}
    return {
        "cameras": per_cam,
        "status": {s.name: {"state": s.state, "restarts": s.restarts, "dropped_at_source": s.stats.get("dropped"),
                            "frames": s.stats.get("frames")} for s in status},
        "malformed": sub.malformed,
        "latency_ms": {
            "grab_to_publish": {"p50": pct(grab_pub, 50), "p99": pct(grab_pub, 99)},
            "publish_to_receive": {"p50": pct(pub_recv, 50), "p99": pct(pub_recv, 99)},
            "grab_to_receive": {"p50": pct(grab_recv, 50), "p99": pct(grab_recv, 99)},
        },
        "rig_spread_ms": spread.summary(),
    }


def model_speed(video_dir: Path, frames: int) -> dict:
    import cv2

    from capture.pose import create_detector

    out = {}
    for video in sorted(video_dir.glob("cam*.mp4")):
        cap = cv2.VideoCapture(str(video))
        images = []
        while len(images) < frames:
            ok, img = cap.read()
            if not ok:
                break
            images.append(img)
        cap.release()
        with create_detector("mediapipe") as det:
            det.detect(images[0])  # first call builds the graph
            times, found = [], 0
            for img in images:
                t0 = time.perf_counter()
                people = det.detect(img)
                times.append((time.perf_counter() - t0) * 1e3)
                found += people.shape[0] > 0
        out[video.name] = {"frames": len(images), "size": f"{images[0].shape[1]}x{images[0].shape[0]}",
                           "ms_p50": pct(times, 50), "ms_mean": float(np.mean(times)), "ms_p99": pct(times, 99),
                           "person_found": found}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--detector", default="synthetic", help="detector in the camera processes (default: %(default)s)")
    ap.add_argument("--record", help="also record the session here")
    ap.add_argument("--model-frames", type=int, default=100, help="real frames per video for the model timing (0: skip)")
    ap.add_argument("--videos", default=str(REPO.parent / "shared" / "data" / "pose2sim-demo-single" / "videos"))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    print(f"{args.cameras} synthetic camera processes at {args.fps:g} fps for {args.seconds:g} s, "
          f"detector '{args.detector}'{', recording' if args.record else ''} ...", flush=True)
    result = {"pipeline": run_pipeline(args.cameras, args.fps, args.seconds, args.detector, args.record)}
    p = result["pipeline"]
    print(f"\n{'camera':8} {'received':>9} {'lost':>5} {'frames':>12} {'fps':>6} {'dropped at source':>18}")
    for name, c in p["cameras"].items():
        print(f"{name:8} {c['received']:9d} {c['lost']:5d} {c['first_frame']:5d}..{c['last_frame']:<5d} {c['fps']:6.2f} "
              f"{str(p['status'][name]['dropped_at_source']):>18}")
    total_lost = sum(c["lost"] for c in p["cameras"].values())
    print(f"lost at the subscriber: {total_lost} (sequence-number gaps); malformed: {p['malformed']}")
    print("\nlatency (ms)            p50      p99")
    for hop, v in p["latency_ms"].items():
        print(f"  {hop:20} {v['p50']:7.3f}  {v['p99']:7.3f}")
    s = p["rig_spread_ms"]
    if s.get("instants"):
        print(f"rig grab spread over {s['instants']} instants: p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, "
              f"max {s['max_ms']:.2f} ms (the studio's simulated camera clock offsets and jitter)")
    videos = Path(args.videos)
    if args.model_frames and videos.is_dir():
        print(f"\nMediaPipe pose (model complexity 1, tracking mode) on real frames of {videos}:")
        result["model"] = model_speed(videos, args.model_frames)
        for name, m in result["model"].items():
            print(f"  {name} {m['size']:>10}: {m['ms_p50']:6.1f} ms/frame p50, {m['ms_mean']:6.1f} mean, "
                  f"{m['ms_p99']:6.1f} p99; person in {m['person_found']}/{m['frames']} frames")
    elif args.model_frames:
        print(f"\n(model timing skipped: {videos} not found)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if total_lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
