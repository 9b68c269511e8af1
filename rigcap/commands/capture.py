"""``rigcap capture``: one process per camera, 2D keypoints over ZeroMQ, optional recording."""

from __future__ import annotations

import signal
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "capture",
        help="capture 2D keypoints from the configured cameras and publish them over ZeroMQ",
        description="Start one process per camera in the config: grab, run the 2D pose model, publish "
        "kp2d.<camera> over ZeroMQ, and with --record write the session. Ctrl-C stops everything cleanly. "
        "With --inspect, read a recorded session and say what was cut.",
    )
    p.add_argument("--config", default="configs/studio.toml", help="capture config (default: %(default)s)")
    p.add_argument("--record", metavar="DIR", help="record the session into DIR")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--detector", help="override the config's detector (e.g. mediapipe, synthetic)")
    p.add_argument("--no-video", action="store_true", help="with --record: keypoints and timestamps only")
    p.add_argument("--inspect", metavar="SESSION", help="read a recorded session folder and report it")
    p.set_defaults(func=run)


def _inspect(folder: str) -> int:
    from capture.recording import open_session

    session = open_session(folder)
    print(f"session {session.path}: {'clean stop' if session.clean else 'cut (some process did not stop cleanly)'}")
    for line in session.summary_lines():
        print(f"  {line}")
    return 0


def _table(statuses, spread: dict, elapsed: float, malformed: int):
    from rich.table import Table

    table = Table(title=f"rigcap capture  {elapsed:6.1f} s   rig grab spread p50 "
                  f"{spread.get('p50_ms', float('nan')):.2f} ms  p99 {spread.get('p99_ms', float('nan')):.2f} ms"
                  + (f"   malformed {malformed}" if malformed else ""))
    for col in ("camera", "state", "pid", "restarts", "fps", "frames", "dropped", "person %", "model ms",
                "grab→pub ms", "note"):
        table.add_column(col, justify="left" if col in ("camera", "state", "note") else "right")
    for s in statuses:
        st = s.stats
        frames = st.get("frames", 0)
        table.add_row(
            s.name, s.state, str(s.pid or "-"), str(s.restarts), f"{st.get('fps', 0):.1f}", str(frames),
            str(st.get("dropped", 0)), f"{100 * st.get('detected', 0) / frames:.0f}" if frames else "-",
            f"{st.get('detect_ms_p50', 0):.1f}", f"{st.get('grab_to_publish_ms_p50', 0):.1f}", s.message or "",
        )
    return table


def _interrupt(*_):
    raise KeyboardInterrupt


def run(args) -> int:
    if args.inspect:
        return _inspect(args.inspect)

    from rich.console import Console
    from rich.live import Live

    from capture.config import load_config
    from rigcap.wire import Subscriber
    from capture.stats import RigSpread
    from capture.supervisor import Supervisor

    config = load_config(args.config)
    detector, detector_options = config.detector_for(args.detector)
    console = Console()
    events = []
    sup = Supervisor.from_config(config, record_dir=args.record, record_video=not args.no_video,
                                 on_event=events.append, detector=detector, detector_options=detector_options)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops like Ctrl-C
    sub = Subscriber(config.sub_endpoint, topics="kp2d.")
    spread = RigSpread(len(config.cameras))
    t0 = time.monotonic()
    interrupted = False
    try:
        sup.start()
        console.print(f"capturing {len(config.cameras)} camera(s) with detector '{sup.options.detector}'; "
                      f"subscribers connect to {config.sub_endpoint}"
                      + (f"; recording to {args.record}" if args.record else "") + "; Ctrl-C stops")
        with Live(_table(sup.status(), {}, 0, 0), console=console, refresh_per_second=2,
                  auto_refresh=False, transient=False) as live:
            next_draw = 0.0
            while True:
                elapsed = time.monotonic() - t0
                if args.seconds is not None and elapsed >= args.seconds:
                    break
                msg = sub.recv(50)
                if msg is not None:
                    spread.add(msg.camera, msg.frame_index, msg.capture_time_ns)
                while events:
                    ev = events.pop(0)
                    if ev.get("event") in ("died", "restart", "failed", "error"):
                        live.console.print(f"[yellow]{ev['camera']}: {ev['event']}"
                                           + (f" ({ev['message']})" if ev.get("message") else "") + "[/]")
                if elapsed >= next_draw:
                    live.update(_table(sup.status(), spread.summary(), elapsed, sub.malformed), refresh=True)
                    next_draw = elapsed + 0.5
                if not sup.alive and elapsed > 1.0:
                    live.console.print("no camera left running")
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sub.close()
        statuses = sup.stop()
    console.print(_table(statuses, spread.summary(), time.monotonic() - t0, 0))
    if args.record:
        _inspect(args.record)
    failed = [s.name for s in statuses if s.state == "failed"]
    if failed:
        console.print(f"[red]left out after repeated failures: {', '.join(failed)}[/]")
    return 130 if interrupted else (1 if failed else 0)
