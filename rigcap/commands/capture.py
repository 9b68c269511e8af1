"""``rigcap capture``: one process per camera, 2D keypoints over ZeroMQ, optional recording."""

from __future__ import annotations

from rigcap.argtypes import shipped_config

import contextlib
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
    p.add_argument("--config", default=shipped_config("studio.toml"), help="capture config (default: %(default)s)")
    p.add_argument("--record", metavar="DIR", help="record the session into DIR")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--detector", help="override the config's detector (e.g. mediapipe, synthetic)")
    p.add_argument("--no-video", action="store_true", help="with --record: keypoints and timestamps only")
    p.add_argument("--insecure", action="store_true",
                   help="allow a plain (unauthenticated) backbone on a non-loopback address when the config's "
                        "[security] names no keys")
    p.add_argument("--inspect", metavar="SESSION", help="read a recorded session folder and report it")
    p.set_defaults(func=run)


def _inspect(folder: str) -> int:
    from capture.recording import open_session

    session = open_session(folder)
    print(f"session {session.path}: {'clean stop' if session.clean else 'cut (some process did not stop cleanly)'}")
    for line in session.summary_lines():
        print(f"  {line}")
    from triangulate.fused_recording import POINTS_FILE, rebuild_points_npz, session_of

    if session_of(session.path) is not None:
        had_npz = (session.path / POINTS_FILE).is_file()
        points = rebuild_points_npz(session.path)
        note = "" if had_npz else f" ({POINTS_FILE} rebuilt from fusion/points3d.bin)"
        people = (f", {points.n_persons} people ({', '.join(f'P{i}' for i in points.person_ids)})"
                  if points.multi_person else "")
        print(f"  3D stream: {points.n_frames} instants{people}{note}")
    return 0


def _spread_text(spread: dict | None) -> str:
    """Rig grab spread, or n/a where it means nothing (unpaced video files are read as fast as they decode)."""
    if spread is None:
        return "grab spread n/a (unpaced video)"
    return f"grab spread p50 {spread.get('p50_ms', float('nan')):.1f} ms p99 {spread.get('p99_ms', float('nan')):.1f} ms"


def grab_spread_applies(cameras) -> bool:
    """Unpaced video files are read as fast as they decode: their grab times say nothing about the rig."""
    return not any(c.source == "video" and not c.pace for c in cameras)


def _rows(statuses):
    """One tuple per camera, the columns of the status table (fits 80 columns with a short note)."""
    for s in statuses:
        st = s.stats
        frames = st.get("frames", 0)
        yield (s.name, s.state, f"{st.get('fps', 0):.1f}", str(frames), str(st.get("dropped", 0)),
               f"{100 * st.get('detected', 0) / frames:.0f}" if frames else "-", f"{st.get('detect_ms_p50', 0):.1f}",
               f"{st.get('grab_to_publish_ms_p50', 0):.1f}", str(s.restarts), s.message or "")


COLUMNS = ("camera", "state", "fps", "frames", "drop", "pers%", "model", "g->pub", "rst", "note")


def _table(statuses, spread: dict | None, elapsed: float, malformed: int):
    from rich import box
    from rich.table import Table

    table = Table(title=f"rigcap capture {elapsed:6.1f} s  {_spread_text(spread)}"
                  + (f"  malformed {malformed}" if malformed else ""),
                  box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0), pad_edge=False,
                  caption="model, g->pub: ms (p50); rst: restarts")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("camera", "state", "note") else "right", no_wrap=True,
                         overflow="ellipsis", min_width=12 if col == "note" else None)
    for row in _rows(statuses):
        table.add_row(*row)
    return table


def _plain_lines(statuses, spread: dict | None, elapsed: float, malformed: int) -> list[str]:
    """The status as plain lines, for a log file or a pipe (no redrawing)."""
    head = f"{elapsed:7.1f} s  {_spread_text(spread)}" + (f"  malformed {malformed}" if malformed else "")
    return [head] + ["  " + "  ".join(f"{c}={v}" for c, v in zip(COLUMNS, row) if v) for row in _rows(statuses)]


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
    from rigcap.wire.security import require_keys, require_local

    keys = config.security.client_keys()  # this host's backbone and clock are CURVE clients of the fusion machine
    require_keys(config.sub_endpoint, keys, args.insecure)
    require_keys(config.clock_endpoint, keys, args.insecure)
    require_local(config.pub_endpoint, "the backbone's publisher endpoint, where this host's cameras publish",
                  "bind it on 127.0.0.1 (the camera processes run on this machine)", args.insecure)
    reader_keys = config.reader_keys(config.security.server_keys(), args.insecure)
    detector, detector_options = config.detector_for(args.detector)
    console = Console()
    events = []
    sup = Supervisor.from_config(config, record_dir=args.record, record_video=not args.no_video,
                                 on_event=events.append, detector=detector, detector_options=detector_options,
                                 keys=keys, reader_keys=reader_keys)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops like Ctrl-C
    sub = Subscriber(config.sub_endpoint, topics="kp2d.")
    spread = RigSpread(len(config.cameras))
    rig_spread = (lambda: spread.summary()) if grab_spread_applies(config.cameras) else (lambda: None)
    terminal = console.is_terminal
    t0 = time.monotonic()
    interrupted = False

    def show(status, elapsed, malformed):
        if terminal:
            live.update(_table(status, rig_spread(), elapsed, malformed), refresh=True)
        else:
            for line in _plain_lines(status, rig_spread(), elapsed, malformed):
                print(line, flush=True)

    def say(text):
        (live.console.print if terminal else print)(text)

    live = None
    try:
        sup.start()
        console.print(f"capturing {len(config.cameras)} camera(s) with detector '{sup.options.detector}'; "
                      f"subscribers connect to {config.sub_endpoint}"
                      + (f"; recording to {args.record}" if args.record else "") + "; Ctrl-C stops")
        with contextlib.ExitStack() as stack:
            if terminal:
                live = stack.enter_context(Live(_table(sup.status(), rig_spread(), 0, 0), console=console,
                                                refresh_per_second=2, auto_refresh=False, transient=False))
            next_draw, draw_every = 0.0, (0.5 if terminal else 10.0)  # a log gets a block every 10 s, not redraws
            while True:
                elapsed = time.monotonic() - t0
                if args.seconds is not None and elapsed >= args.seconds:
                    break
                msg = sub.recv(50)
                if msg is not None:
                    spread.add(msg.camera, msg.frame_index, msg.capture_time_ns)
                while events:
                    ev = events.pop(0)
                    if ev.get("event") in ("died", "restart", "failed", "error", "warning"):
                        text = f"{ev['camera']}: {ev['event']}" + (f" ({ev['message']})" if ev.get("message") else "")
                        say(f"[yellow]{text}[/]" if terminal else text)
                if elapsed >= next_draw:
                    show(sup.status(), elapsed, sub.malformed)
                    next_draw = elapsed + draw_every
                if not sup.alive and elapsed > 1.0:
                    say("no camera left running")
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sub.close()
        statuses = sup.stop()
    if terminal:
        console.print(_table(statuses, rig_spread(), time.monotonic() - t0, 0))
    else:
        print("\n".join(_plain_lines(statuses, rig_spread(), time.monotonic() - t0, 0)), flush=True)
    if reader_keys is not None:
        print(f"readers relay {config.readers_endpoint}: {sup.readers_refused} refused", flush=True)
        reader_keys.keys.stop()
    if args.record:
        _inspect(args.record)
    failed = [s.name for s in statuses if s.state == "failed"]
    if failed:
        console.print(f"[red]left out after repeated failures: {', '.join(failed)}[/]")
    return 130 if interrupted else (1 if failed else 0)
