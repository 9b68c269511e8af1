"""``rigcap live``: the cameras of a capture config, the fusion node and the viewer, together.

Starts the backbone and one process per camera in the config (USB cameras,
video files or synthetic cameras: whatever the config lists), a fusion process
that triangulates their keypoints with the rig, and the viewer: a window when
there is a display, otherwise nothing to draw on (``--snapshot PNG`` renders
the last skeleton at the end).  Live stats are printed every few seconds;
Ctrl-C (or ``--seconds``) stops everything cleanly.  ``--record DIR`` records
the cameras (as ``rigcap capture --record``) and the 3D stream.

Cameras on other machines (``--hosts``)
    Run ``rigcap capture --config cams.toml`` on each camera host, with the
    endpoints this machine reads bound where it can reach them (``sub =
    "tcp://0.0.0.0:5556"``, ``clock = "tcp://0.0.0.0:5557"``; ``pub`` stays
    on 127.0.0.1: only the host's own cameras publish there); its supervisor
    runs the backbone and a clock server.  Here, ``--hosts`` names those machines: ``10.0.0.12`` (ports from
    this config's ``sub`` and ``clock`` endpoints) or
    ``tcp://10.0.0.12:5556@tcp://10.0.0.12:5557`` (subscriber endpoint @ clock
    endpoint).  The fusion node subscribes to each host's backbone as well as
    to the local one.

Clock offsets between hosts
    Every capture time is that host's wall clock.  Before starting, this
    command measures each host's offset to our clock, NTP-style
    (:func:`rigcap.wire.measure_clock_offset`): 20 request/reply
    exchanges with the host's clock server; each gives ``t0`` (our send),
    ``t1`` and ``t2`` (their receive and reply), ``t3`` (our receive), hence
    ``offset = ((t1 - t0) + (t2 - t3)) / 2`` and round trip ``(t3 - t0) - (t2 -
    t1)``; the exchange with the smallest round trip is kept, so the offset is
    uncertain by at most half of that round trip (printed; ~0.1 ms on a LAN).
    The fusion node subtracts the host's offset from the capture time of every
    message from that host before grouping.  The offset is then followed while
    running (:class:`rigcap.wire.ClockTracker` in the fusion process: re-measured
    every 2 s, a robust drift line over the last minute, extrapolated between
    rounds); each host's offset, uncertainty and drift are on the stats lines.
"""

from __future__ import annotations

from rigcap.argtypes import shipped_config

import argparse
import signal
import time
from urllib.parse import urlparse

from rigcap.errors import RigcapError
from rigcap.wire.security import require_keys, require_local
from rigcap.fusion_args import add_angle_arguments, add_fusion_arguments, fusion_options, instant_hooks

EXAMPLES = """examples:
  rigcap live --config configs/studio.toml --rig rig.toml
  rigcap live --config configs/studio.toml --record sessions/take1 --seconds 60
  rigcap live --config cams_a.toml --hosts 10.0.0.12,10.0.0.13          # plus cameras on two other machines
  rigcap live --config cams.toml --headless --seconds 10 --snapshot last.png
"""


def register(sub) -> None:
    p = sub.add_parser("live", help="cameras from a config + fusion + viewer, live", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=shipped_config("studio.toml"), help="capture config (default: %(default)s)")
    p.add_argument("--rig", help="calibrated rig file (default: the config's rig)")
    p.add_argument("--hosts", action="append", metavar="HOST[,HOST...]",
                   help="camera hosts running `rigcap capture`: IP/name, or SUB_ENDPOINT@CLOCK_ENDPOINT")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain (unauthenticated) links to --hosts when the config's [security] names no keys")
    p.add_argument("--record", metavar="DIR", help="record the cameras and the 3D stream into DIR")
    p.add_argument("--no-video", action="store_true", help="with --record: keypoints, timestamps and 3D only")
    p.add_argument("--seconds", type=float,
                   help="stop this many seconds after the first 3D skeleton (default: until Ctrl-C)")
    p.add_argument("--start-timeout", type=float, default=120.0, metavar="S",
                   help="give up when no 3D skeleton comes within S seconds of starting (default 120)")
    p.add_argument("--detector", help="override the config's detector (e.g. synthetic, mediapipe)")
    p.add_argument("--headless", action="store_true", help="no viewer window even when a display exists")
    p.add_argument("--snapshot", metavar="PNG", help="at the end, render the last 3D skeleton to this image")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between stats lines (default 2)")
    add_fusion_arguments(p)
    add_angle_arguments(p)
    p.set_defaults(func=run)


def parse_hosts(values: list[str] | None, sub_endpoint: str, clock_endpoint: str) -> list[tuple[str, str]]:
    """``--hosts`` entries -> [(subscriber endpoint, clock endpoint)]."""
    sub_port = urlparse(sub_endpoint).port
    clock_port = urlparse(clock_endpoint).port
    out = []
    for value in values or []:
        for item in filter(None, (v.strip() for v in value.split(","))):
            if "@" in item:
                sub, clock = item.split("@", 1)
            elif "://" in item:
                host = urlparse(item).hostname
                sub, clock = item, f"tcp://{host}:{clock_port}"
            else:
                sub, clock = f"tcp://{item}:{sub_port}", f"tcp://{item}:{clock_port}"
            for e in (sub, clock):
                u = urlparse(e)
                if u.scheme != "tcp" or not u.hostname or u.port is None:
                    raise RigcapError(f"--hosts {item}: {e!r} is not a tcp://HOST:PORT endpoint")
            out.append((sub, clock))
    return out


def measure_hosts(hosts: list[tuple[str, str]], timeout_ms: int = 1500, keys=None) -> list:
    """Each host's clock offset; ``keys`` (ServerKeys): the queries are CURVE (see measure_clock_offset)."""
    from rigcap.wire import measure_clock_offset
    from rigcap.wire.security import is_loopback

    offsets = []
    for sub, clock in hosts:
        k = None if is_loopback(clock) else keys
        refused = k.refused if k is not None else 0
        try:
            offsets.append(measure_clock_offset(clock, n=20, timeout_ms=timeout_ms, keys=k))
        except TimeoutError:
            why = ""
            if k is not None and k.refused > refused:
                why = (f"; {k.refused - refused} handshake(s) refused: its key is not in allowed_keys, or it runs "
                       "without [security] keys")
            raise RigcapError(f"--hosts: no clock server answers at {clock} (is `rigcap capture` running there, "
                              f"with its clock endpoint reachable from here?{why})") from None
    return offsets


def _status_line(stats: dict, prev: dict | None, statuses) -> str:
    from rigcap.commands.fuse import stats_line

    cams = "  ".join(f"{s.name}:{s.state}" + (f"({s.stats.get('fps', 0):.0f}fps)" if s.state == "running" else "")
                     for s in statuses)
    return (stats_line(stats, prev) if stats else "fusion starting") + "\n          " + cams


def run(args) -> int:
    import threading

    from calibration import load_rig
    from capture.config import load_config
    from rigcap.live_session import LiveSession, RemoteHosts, run_live
    from rigcap.commands.fuse import stats_line
    from viewer.live import launch_viewer
    from viewer.render import has_display

    config = load_config(args.config)
    rig_path = args.rig or config.rig_file
    if not rig_path:
        raise RigcapError(f"{args.config}: no rig: give --rig rig.toml or set rig = \"...\" in the config")
    rig = load_rig(rig_path)
    from calibration.rig import size_mismatch_warnings

    for line in size_mismatch_warnings(rig, {c.name: c.image_size() for c in config.cameras}, "its capture source"):
        print(f"warning: {line}", flush=True)
    hosts = parse_hosts(args.hosts, config.sub_endpoint, config.clock_endpoint)
    # One ServerKeys for this process (one ZAP handler per process): the hosts' links and the readers relay.
    server_keys = config.security.server_keys()
    keys = server_keys if hosts and config.security.allowed_keys else None
    require_local(config.pub_endpoint, "this machine's backbone publisher endpoint",
                  "bind it on 127.0.0.1 (the processes that publish run on this machine)", args.insecure)
    require_local(config.sub_endpoint, "this machine's backbone: kp2d, kp3d, angles, stats",
                  "keep it on 127.0.0.1 and let other machines read through [endpoints] readers, keyed by "
                  "[security] readers", args.insecure)
    reader_keys = config.reader_keys(server_keys, args.insecure)
    for sub, clock in hosts:
        require_keys(sub, keys, args.insecure)
        require_keys(clock, keys, args.insecure)
    offsets = measure_hosts(hosts, keys=keys)
    for (sub, clock), off in zip(hosts, offsets):
        print(f"host {sub}: clock offset {off.offset_ns / 1e6:+.3f} ms (theirs - ours), "
              f"uncertainty +-{off.round_trip_ns / 2e6:.3f} ms, best of {off.samples}", flush=True)
    detector, detector_options = config.detector_for(args.detector)
    fusion = fusion_options(args, config)
    remote = RemoteHosts([h[0] for h in hosts], [o.offset_ns for o in offsets],
                         clock_endpoints=[h[1] for h in hosts], initial=offsets)
    session = LiveSession(rig, config.cameras, config.pub_endpoint, config.sub_endpoint,
                          detector=detector, detector_options=detector_options,
                          record_dir=args.record, record_video=not args.no_video, fusion=fusion, remote=remote,
                          instant_hooks=instant_hooks(args), max_restarts=config.max_restarts, keys=keys,
                          readers_endpoint=config.readers_endpoint, reader_keys=reader_keys,
                          restart_delay_s=config.restart_delay_s,
                          session_info={"config_file": config.path, "rig_file": str(rig_path), "config": config.raw,
                                        "hosts": [h[0] for h in hosts],
                                        "clock_offsets_ns": [o.offset_ns for o in offsets]})
    window = has_display() and not args.headless

    def _interrupt(*_):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)

    def started():
        print(f"rigcap live: {len(config.cameras)} local camera(s) ({', '.join(c.name for c in config.cameras)})"
              + (f" + {len(hosts)} remote host(s)" if hosts else "")
              + f", detector '{session.supervisor.options.detector}', rig {rig_path}; kp3d at {config.sub_endpoint}"
              + (f"; recording to {args.record}" if args.record else "") + "; Ctrl-C stops", flush=True)

    prev: list = [None]

    def status(stats, statuses):
        print(_status_line(stats, prev[0], statuses)
              + (f"  readers refused {session.supervisor.readers_refused}" if reader_keys is not None else ""), flush=True)
        prev[0] = stats or None

    t0 = time.monotonic()
    live = run_live(session, seconds=args.seconds, start_timeout_s=args.start_timeout,
                    viewer=(lambda r, endpoint: launch_viewer(r, endpoint, 1e9)) if window else None,
                    on_start=started, on_status=status, status_interval_s=args.interval,
                    on_first=lambda msg: print(f"first 3D skeleton after {time.monotonic() - t0:.1f} s", flush=True),
                    stop_without_cameras=not hosts)
    if live.stop_reason:
        print(live.stop_reason, flush=True)
    if live.final:
        print("total: " + stats_line(live.final, None))
    for s in live.statuses:
        print(f"  {s.name}: {s.state}, {s.stats.get('frames', 0)} frames, {s.stats.get('dropped', 0)} dropped"
              + (f", restarts {s.restarts}" if s.restarts else "") + (f" ({s.message})" if s.message else ""))
    print(f"3D instants received here: {live.received}")
    if reader_keys is not None:
        print(f"readers relay {config.readers_endpoint}: {session.supervisor.readers_refused} refused")
    if server_keys is not None:
        server_keys.stop()
    if args.record:
        print(f"recorded to {args.record} (3D: {args.record}/points3d.npz)")
    if args.snapshot:
        if live.last is None:
            raise RigcapError("--snapshot: no 3D skeleton was received")
        from triangulate.skeletons import SKELETONS
        from viewer.render import render_snapshot

        last = live.last
        skeleton = SKELETONS.get(last.header.get("skeleton", ""))
        render_snapshot(rig, skeleton, last.arrays["points"], last.arrays["n_views"], args.snapshot, size=(1280, 720))
        print(f"wrote {args.snapshot}")
    return 130 if live.interrupted else 0
