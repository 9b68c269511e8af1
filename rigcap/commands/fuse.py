"""``rigcap fuse``: the standalone fusion node: ``kp2d.*`` in, ``kp3d`` out, over ZeroMQ.

Subscribes to every camera's ``kp2d.<camera>`` at the backbone's subscriber
endpoint (``rigcap capture`` runs the backbone), groups the messages of one
instant by capture time (within half a frame; a straggler is waited for at most
one frame period, a dead camera never blocks), triangulates them with the rig,
applies the causal One-Euro filter and publishes ``kp3d`` at the backbone's
publisher endpoint; ``--record DIR`` appends the 3D stream to DIR (readable
even after a kill; ``DIR/points3d.npz`` on a clean stop).  Prints live: fps in
and out, cameras present, grouping spread, drops and latency.

The ``kp3d`` message is documented in :mod:`rigcap.wire` (and README).
Fusion settings: ``--config``'s ``[fusion]`` table, then the flags.
"""

from __future__ import annotations

import argparse
import signal
import threading

from rigcap.wire import DEFAULT_PUB_ENDPOINT, DEFAULT_SUB_ENDPOINT
from rigcap.argtypes import positive_float
from rigcap.errors import check_output_folder
from rigcap.wire.security import require_keys, require_local
from rigcap.fusion_args import add_angle_arguments, add_fusion_arguments, fusion_options, instant_hooks
from triangulate.fusion_options import FusionOptions
from triangulate.skeletons import SKELETONS

EXAMPLES = """examples:
  rigcap capture --config configs/studio.toml &       # cameras + backbone
  rigcap fuse --rig rig.toml                          # fuse them; Ctrl-C stops
  rigcap fuse --rig rig.toml --record sessions/take1 --seconds 60
  rigcap fuse --rig rig.toml --config fusion.toml --sub tcp://10.0.0.12:5556   # a camera host's kp2d, keyed
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
    p.add_argument("--config", metavar="TOML", help="capture config: its [fusion] table, camera frame rate and "
                                                    "[security] keys (secret_key, allowed_keys)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain (unauthenticated) links to other machines when no keys are configured")
    p.add_argument("--fps", type=positive_float, help="camera frame rate: sets grouping tolerance and deadline "
                                                     f"(default: the config's cameras, else {FusionOptions.fps:g})")
    p.add_argument("--skeleton", choices=sorted(SKELETONS), help="the cameras' skeleton: messages with another one are "
                   "dropped (default: the --config detector's, else adopted once two rig cameras agree and re-voted "
                   "when most rig cameras disagree)")
    add_fusion_arguments(p)
    add_angle_arguments(p)
    p.add_argument("--seconds", type=positive_float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--interval", type=positive_float, default=2.0, help="seconds between stats lines (default 2)")
    p.set_defaults(func=run)


def stats_line(s: dict, prev: dict | None) -> str:
    """One line of live stats; rates over the interval since ``prev``."""
    dt = s["elapsed_s"] - (prev or {}).get("elapsed_s", 0.0)
    fps_in = (s["messages_in"] - (prev or {}).get("messages_in", 0)) / dt if dt > 0 else 0.0
    fps_out = (s["instants_out"] - (prev or {}).get("instants_out", 0)) / dt if dt > 0 else 0.0
    if not s["messages_in"]:
        return (f"{s['elapsed_s']:7.1f} s  waiting for kp2d messages (none yet)"
                + (f"; auth refused {s['auth_refused']}" if s.get("auth_refused") else ""))
    present = s.get("cameras_present", [])
    jumps = sum(s.get("clock_jumps", {}).values())
    drops = (s["late_dropped"] + s["malformed"] + s["wrong_skeleton"] + s["unknown_camera"] + s.get("clock_outlier", 0)
             + jumps)
    refused = f"  auth refused {s['auth_refused']}" if s.get("auth_refused") else ""
    return (f"{s['elapsed_s']:7.1f} s  in {fps_in:6.1f}/s  out {fps_out:5.1f}/s  cameras {len(present)} "
            f"[{','.join(present)}]  per instant {s['cameras_per_instant']:.2f}  spread p50 {s['spread_ms_p50']:.1f} ms  "
            f"latency added p50/p99 {s['added_latency_ms_p50']:.2f}/{s['added_latency_ms_p99']:.2f} ms  "
            f"capture->3D p50/p99 {s['latency_ms_p50']:.1f}/{s['latency_ms_p99']:.1f} ms  drops {drops}"
            + (f" (late {s['late_dropped']}, malformed {s['malformed']}, wrong skeleton {s['wrong_skeleton']}, "
               f"unknown camera {s['unknown_camera']}, clock outlier {s.get('clock_outlier', 0)}, clock jump {jumps})"
               if drops else "")
            + (f"  QUARANTINED (stamps jumped): {','.join(s['quarantined'])}" if s.get("quarantined") else "")
            + (f"  fusion stalled {s['fusion_stalls']}x ({s['fusion_stalled_s']:.1f} s, caught up)"
               if s.get("fusion_stalls") else "") + refused
            + clocks_text(s.get("clocks", {})) + motion_sync_text(s.get("motion_sync", {})))


def clocks_text(clocks: dict) -> str:
    """Followed host clocks: offset (theirs - ours) +- uncertainty, drift; failed re-measurements if any."""
    return "".join(f"  clock {host} {c['offset_ms']:+.3f}+-{c['uncertainty_ms']:.3f} ms drift {c['drift_ppm']:+.0f} ppm"
                   + (f" ({c['failures']} rounds unanswered, last {c['age_s']:.0f} s ago)" if c.get("failures") else "")
                   for host, c in clocks.items())


def motion_sync_text(ms: dict) -> str:
    """--motion-sync: each camera's latest offset estimate (ms, confidence) and the correction applied."""
    if not ms:
        return ""
    if not ms.get("cameras"):
        return f"  motion sync: {ms.get('error') or 'no estimate yet (needs a few seconds of motion)'}"
    return "  motion sync vs " + ms["reference"] + ":" + "".join(
        f" {name} {c['offset_ms']:+.1f} ms ({c['confidence']:.2f}){'' if c['applied_ms'] == c['offset_ms'] else ' applied %+.1f' % c['applied_ms']}"
        for name, c in ms["cameras"].items())


def _skeleton(args, config):
    """--skeleton, else the capture config's detector's skeleton when it declares one, else None (voted)."""
    if args.skeleton:
        return SKELETONS[args.skeleton]
    if config is None:
        return None
    from capture.pose import declared_skeleton

    return declared_skeleton(config.detector, config.detector_options)


def run(args) -> int:
    from calibration import load_rig
    from capture.config import load_config
    from triangulate.fusion_node import FusionNode

    rig = load_rig(args.rig)
    if args.record:
        check_output_folder(args.record, "--record")
    subs = args.sub or [DEFAULT_SUB_ENDPOINT]
    config = load_config(args.config, check_devices=False) if args.config else None
    keys = config.security.server_keys() if config is not None else None
    for endpoint in subs:
        require_keys(endpoint, keys, args.insecure)
    require_local(args.pub, "kp3d out, into a backbone's publisher endpoint",
                  "publish into this machine's backbone (rigcap capture or rigcap live here) and let other machines "
                  "read through its [endpoints] readers", args.insecure)
    node = FusionNode(rig, subs, args.pub, fusion_options(args, config, fps=args.fps), record_dir=args.record,
                      skeleton=_skeleton(args, config), instant_hooks=instant_hooks(args), keys=keys)
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
                       recent=int(max(1.0, args.interval) * node.fps * 2))  # Ctrl-C: a clean stop
    print("total: " + stats_line(summary, None), flush=True)
    if args.record:
        print(f"recorded {summary['instants_out']} instants to {args.record}" if summary["instants_out"]
              else "nothing recorded: no 3D instant was fused")
    return 130 if node.interrupted else 0
