"""``rigcap fuse``: the standalone fusion node: ``kp2d.*`` in, ``kp3d`` out, over ZeroMQ.

Subscribes to every camera's ``kp2d.<camera>`` at the backbone's subscriber
endpoint (``rigcap capture`` runs the backbone), groups the messages of one
instant by capture time (within half a frame; a straggler is waited for at most
one frame period, a dead camera never blocks), triangulates them with the rig,
applies the causal One-Euro filter and publishes ``kp3d`` at the backbone's
publisher endpoint; ``--record DIR`` appends the 3D stream to DIR (readable
even after a kill; ``DIR/points3d.npz`` on a clean stop).  Prints live: fps in
and out, cameras present, grouping spread, drops and latency.

``kp3d`` message (same framing as ``kp2d``, see README / rigcap/wire/):
header ``t_capture_ns`` (the instant's median capture time), ``cameras``,
``frames`` ({camera: frame}), ``spread_ns``, ``t_last_arrival_ns``,
``t_publish_ns``, ``skeleton``, ``joints_sha1``, ``filtered``; arrays ``points``
<f4 [joints, 3] metres (NaN: not triangulated), ``error_px`` <f4 [joints],
``n_views`` <i2 [joints].
"""

from __future__ import annotations

import argparse
import signal
import threading

from rigcap.wire import DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT
from rigcap.argtypes import non_negative_float, positive_float
from rigcap.errors import check_output_folder

EXAMPLES = """examples:
  rigcap capture --config configs/studio.toml &       # cameras + backbone
  rigcap fuse --rig rig.toml                          # fuse them; Ctrl-C stops
  rigcap fuse --rig rig.toml --record sessions/take1 --seconds 60
  rigcap fuse --rig rig.toml --sub tcp://10.0.0.12:5556 --pub tcp://10.0.0.12:5555
"""


def register(sub) -> None:
    p = sub.add_parser("fuse", help="fuse live 2D keypoints into 3D joints (the fusion node)", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rig", required=True, help="calibrated rig file (TOML); camera names must match the kp2d topics")
    p.add_argument("--sub", action="append", metavar="ENDPOINT",
                   help=f"backbone subscriber endpoint to read kp2d from (default {DEFAULT_SUB_ENDPOINT}); "
                        "repeat for several backbones")
    p.add_argument("--pub", default=DEFAULT_PUB_ENDPOINT, metavar="ENDPOINT",
                   help="backbone publisher endpoint to publish kp3d to (default %(default)s)")
    p.add_argument("--record", metavar="DIR", help="append the 3D stream to this session folder")
    p.add_argument("--fps", type=positive_float, default=30.0, help="camera frame rate: sets grouping tolerance and deadline")
    p.add_argument("--tolerance-ms", type=positive_float, help="capture times within this belong to one instant (default: half a frame)")
    p.add_argument("--deadline-ms", type=non_negative_float, help="wait at most this for a straggler (default: one frame)")
    p.add_argument("--max-clock-skew-s", type=positive_float, default=2.0, metavar="S",
                   help="drop (and count as clock outliers) messages whose capture time, corrected by the host's "
                        "clock offset, is further than this from their arrival (default %(default)s s)")
    p.add_argument("--no-smoothing", action="store_true", help="publish the raw triangulation (no One-Euro filter)")
    p.add_argument("--seconds", type=positive_float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--interval", type=positive_float, default=2.0, help="seconds between stats lines (default 2)")
    p.set_defaults(func=run)


def stats_line(s: dict, prev: dict | None) -> str:
    """One line of live stats; rates over the interval since ``prev``."""
    dt = s["elapsed_s"] - (prev or {}).get("elapsed_s", 0.0)
    fps_in = (s["messages_in"] - (prev or {}).get("messages_in", 0)) / dt if dt > 0 else 0.0
    fps_out = (s["instants_out"] - (prev or {}).get("instants_out", 0)) / dt if dt > 0 else 0.0
    if not s["messages_in"]:
        return f"{s['elapsed_s']:7.1f} s  waiting for kp2d messages (none yet)"
    present = s.get("cameras_present", [])
    drops = s["late_dropped"] + s["malformed"] + s["wrong_skeleton"] + s["unknown_camera"] + s.get("clock_outlier", 0)
    return (f"{s['elapsed_s']:7.1f} s  in {fps_in:6.1f}/s  out {fps_out:5.1f}/s  cameras {len(present)} "
            f"[{','.join(present)}]  per instant {s['cameras_per_instant']:.2f}  spread p50 {s['spread_ms_p50']:.1f} ms  "
            f"latency added p50/p99 {s['added_latency_ms_p50']:.2f}/{s['added_latency_ms_p99']:.2f} ms  "
            f"capture->3D p50/p99 {s['latency_ms_p50']:.1f}/{s['latency_ms_p99']:.1f} ms  drops {drops}"
            + (f" (late {s['late_dropped']}, malformed {s['malformed']}, wrong skeleton {s['wrong_skeleton']}, "
               f"unknown camera {s['unknown_camera']}, clock outlier {s.get('clock_outlier', 0)})" if drops else ""))


def run(args) -> int:
    from calibration import load_rig
    from triangulate.fusion_node import FusionNode

    rig = load_rig(args.rig)
    if args.record:
        check_output_folder(args.record, "--record")
    subs = args.sub or [DEFAULT_SUB_ENDPOINT]
    node = FusionNode(rig, subs, args.pub, fps=args.fps, record_dir=args.record, smoothing=not args.no_smoothing,
                      tolerance_ms=args.tolerance_ms, deadline_ms=args.deadline_ms,
                      max_clock_skew_s=args.max_clock_skew_s)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"rigcap fuse: {len(rig)} cameras ({', '.join(rig.names)}); kp2d from {', '.join(subs)}; kp3d to {args.pub}"
          + (f"; recording to {args.record}" if args.record else "") + "; Ctrl-C stops", flush=True)
    prev: list = [None]

    def report(s):
        print(stats_line(s, prev[0]), flush=True)
        prev[0] = s

    summary = node.run(stop, duration_s=args.seconds, on_stats=report, stats_interval_s=args.interval,
                       recent=int(max(1.0, args.interval) * args.fps * 2))  # Ctrl-C: a clean stop
    print("total: " + stats_line(summary, None), flush=True)
    if args.record:
        print(f"recorded {summary['instants_out']} instants to {args.record}" if summary["instants_out"]
              else "nothing recorded: no 3D instant was fused")
    return 130 if node.interrupted else 0
