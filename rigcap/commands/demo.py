"""``rigcap demo``: the whole live pipeline on the synthetic studio, scored against its ground truth.

Synthetic cameras run as separate processes and publish 2D keypoints over
ZeroMQ; a fusion process groups, triangulates and filters them and publishes
``kp3d``; a viewer shows it (a window when there is a display, otherwise a
snapshot image, and a short video with --video, under --out).  The summary
compares the live 3D with the truth and with the offline engine run on the
same detections, and reports latency, rates and drops.  Nothing needs a
camera, a display or a network.
"""

from __future__ import annotations

import argparse
import math

from rigcap.fusion_args import add_fusion_arguments, fusion_options

EXAMPLES = """examples:
  rigcap demo                                   # 4 cameras, 30 fps, 10 s
  rigcap demo --cameras 8 --seconds 20 --out demo-out --video 5
  rigcap demo --kill-camera cam_2               # SIGKILL one camera 40 % into the run
  rigcap demo --persons 3                       # three people, tracked with stable ids, scored per person
"""

DEFAULT_OUT = "demo-out"  # README names it


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the live pipeline on the synthetic studio and score it against the truth",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=4, help="synthetic cameras, one process each (default 4)")
    p.add_argument("--fps", type=float, default=30.0, help="camera frame rate (default 30)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the scored run (default 10; start-up excluded)")
    p.add_argument("--seed", type=int, default=0, help="studio seed: rig, motion, detector noise (default 0)")
    p.add_argument("--persons", dest="studio_persons", type=int, default=1, metavar="N",
                   help="people in the studio, 1-6 (default 1); from 2 the fusion node associates and tracks "
                        "everybody and the score is per person: identity switches, missed, invented, MPJPE")
    p.add_argument("--kill-camera", metavar="NAME", help="SIGKILL this camera's process during the run (e.g. cam_2)")
    p.add_argument("--kill-after", type=float, metavar="S", help="seconds into the run for --kill-camera (default 40 %%)")
    p.add_argument("--out", metavar="DIR",
                   help=f"write points3d.npz, rig.toml, summary.json, snapshot.png here "
                        f"(default without a display: ./{DEFAULT_OUT})")
    p.add_argument("--video", type=float, default=0.0, metavar="S",
                   help="also render the last S seconds to DIR/demo.mp4 (headless)")
    p.add_argument("--headless", action="store_true", help="no viewer window even when a display exists")
    add_fusion_arguments(p, skip=("--persons",))
    p.set_defaults(func=run)


def _fmt(v, unit="", digits=1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}{unit}"


def summary_table(result, title="rigcap demo"):
    from rich.table import Table

    s = result.summary()
    t = Table(title=title, show_header=True)
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("cameras", str(s["cameras"]), f"{s['cameras_per_instant']:.2f} per instant on average")
    if "persons" in s:
        loops = (f"; the synthetic motion restarted {s['motion_cycles'] - 1}x, everybody jumping back "
                 "(new ids, not switches)" if s["motion_cycles"] > 1 else "")
        t.add_row("people", f"{s['persons']} in the studio",
                  f"{s['tracks']} ids published ({', '.join(f'P{i}' for i in s['person_ids'])}); "
                  f"offline: {s['offline_tracks']}{loops}")
        t.add_row("identity switches", str(s["switches"]), f"offline engine on the same data: {s['offline_switches']}")
        t.add_row("missed / invented", f"{s['missed']} / {s['invented']}",
                  f"person-instants, of {s['person_frames']} seen by >= 2 cameras (offline "
                  f"{s['offline_missed']} / {s['offline_invented']})")
        per = ", ".join(_fmt(v) for v in s["mpjpe_mm_per_person"])
        off = ", ".join(_fmt(v) for v in s["offline_mpjpe_mm_per_person"])
        t.add_row("MPJPE per person", f"{per} mm", f"offline: {off} mm")
    t.add_row("scored run", _fmt(s["seconds"], " s"), f"{s['instants']} instants (start-up excluded)")
    t.add_row("live MPJPE vs truth", _fmt(s["mpjpe_mm"], " mm"),
              f"published (filtered) joints, {s['triangulated_pct']:.0f} % triangulated")
    t.add_row("offline MPJPE, same data", _fmt(s["offline_mpjpe_mm"], " mm"),
              f"offline engine on the same instants: live = {s['live_over_offline']:.2f}x")
    t.add_row("added latency p50 / p99", f"{_fmt(s['added_latency_ms_p50'], '', 2)} / {_fmt(s['added_latency_ms_p99'], ' ms', 2)}",
              "last camera message received -> 3D published")
    t.add_row("capture -> 3D p50 / p99", f"{_fmt(s['latency_ms_p50'], '', 1)} / {_fmt(s['latency_ms_p99'], ' ms', 1)}",
              "grab time -> 3D published (includes waiting for the last camera)")
    t.add_row("capture -> subscriber p50 / p99",
              f"{_fmt(s['receive_latency_ms_p50'], '', 1)} / {_fmt(s['receive_latency_ms_p99'], ' ms', 1)}",
              "grab time -> kp3d received by this process")
    t.add_row("grab spread p50 / max", f"{_fmt(s['spread_ms_p50'])} / {_fmt(s['spread_ms_max'], ' ms')}",
              "capture times within one instant")
    t.add_row("fps in / out", f"{_fmt(s['fps_in'])} / {_fmt(s['fps_out'])}", "camera messages in, 3D instants out")
    drops = (f"camera frames {s['camera_frames_dropped']}, late messages {s['late_dropped']}, "
             f"kp3d missed {s['missed_kp3d']}, malformed {s['malformed']}")
    t.add_row("drops", str(s["camera_frames_dropped"] + s["late_dropped"] + s["missed_kp3d"] + s["malformed"]), drops)
    if "killed" in s:
        t.add_row(f"killed {s['killed']}", f"at {_fmt(s['kill_time_s'])} s",
                  f"after: {_fmt(s['cameras_per_instant_after_kill'], '', 2)} cameras per instant, "
                  f"MPJPE {_fmt(s['mpjpe_after_kill_mm'], ' mm')}")
    return t


def camera_table(result):
    from rich.table import Table

    t = Table(title="cameras")
    for col in ("camera", "state", "frames", "fps", "dropped", "exit", "in instants"):
        t.add_column(col, justify="left" if col in ("camera", "state") else "right")
    counts = {}
    for cams in result.instant_cameras:
        for c in cams:
            counts[c] = counts.get(c, 0) + 1
    for c in result.cameras:
        st = c.get("stats", {})
        t.add_row(c["name"], c["state"], str(st.get("frames", 0)), _fmt(st.get("fps")), str(st.get("dropped", 0)),
                  "-" if c.get("exitcode") is None else str(c["exitcode"]), str(counts.get(c["name"], 0)))
    return t


def render_outputs(result, options) -> dict:
    """snapshot.png [, demo.mp4] in ``options.out_dir``: the viewer's part of the demo's output.

    Rendering is a bonus: the numbers and files written by the run stand
    without it, so a failure is reported as ``render_error``, not raised.
    """
    from pathlib import Path

    from rigcap.demo import best_frame

    out = Path(options.out_dir)
    files = {}
    try:
        from viewer.render import render_snapshot, render_video

        frame = best_frame(result)
        at = result.per_instant
        render_snapshot(result.rig, result.skeleton, at(result.points)[frame], at(result.n_views)[frame],
                        out / "snapshot.png", size=(1280, 720), person_ids=result.person_ids)
        files["snapshot"] = str(out / "snapshot.png")
        if options.video_seconds > 0:
            n_instants = len(result.times_s)
            n = min(n_instants, int(round(options.video_seconds * options.fps)))
            frames = list(range(n_instants - n, n_instants))
            render_video(result.rig, result.skeleton, result.points, result.n_views, out / "demo.mp4",
                         fps=options.fps, size=(960, 540), frames=frames, person_ids=result.person_ids)
            files["video"] = str(out / "demo.mp4")
    except Exception as exc:
        files["render_error"] = f"{type(exc).__name__}: {exc}"
    return files


def run(args) -> int:
    from rich.console import Console

    from rigcap.demo import DemoOptions, run_demo
    from rigcap.errors import RigcapError, check_output_folder
    from viewer.live import launch_viewer
    from viewer.render import has_display

    if args.cameras < 2 or args.cameras > 64:
        raise RigcapError(f"--cameras must be between 2 and 64, got {args.cameras}")
    if not args.fps > 0 or not args.seconds > 0:
        raise RigcapError("--fps and --seconds must be > 0")
    window = has_display() and not args.headless
    out = args.out or (None if window else DEFAULT_OUT)
    if out:
        check_output_folder(out, "--out")
    console = Console()
    options = DemoOptions(n_cameras=args.cameras, fps=args.fps, seconds=args.seconds, seed=args.seed,
                          persons=args.studio_persons, kill_camera=args.kill_camera, kill_after_s=args.kill_after, out_dir=out,
                          video_seconds=args.video, fusion=fusion_options(args, fps=args.fps))
    people = f", {args.studio_persons} people" if args.studio_persons > 1 else ""
    console.print(f"rigcap demo: {args.cameras} synthetic cameras at {args.fps:g} fps{people}, one process each -> ZeroMQ -> "
                  f"fusion process -> {'viewer window' if window else 'headless snapshot'}; "
                  f"scoring {args.seconds:g} s once every camera is in")
    last = [-1]

    def progress(elapsed, total, stats, n):
        sec = int(elapsed)
        if sec != last[0] and sec % 2 == 0:
            last[0] = sec
            console.print(f"  {elapsed:5.1f}/{total:g} s  3D instants {n}  fusion in {stats.get('fps_in', 0):.0f}/s "
                          f"out {stats.get('fps_out', 0):.0f}/s  cameras {','.join(stats.get('cameras_present', []))}")

    try:
        result = run_demo(options, on_progress=progress, viewer=(
            lambda rig, endpoint: launch_viewer(rig, endpoint, options.seconds + options.start_timeout_s))
            if window else None)
    except RuntimeError as exc:
        raise RigcapError(str(exc)) from None
    if out:
        result.files.update(render_outputs(result, options))
    for ev in result.events:
        if ev.get("event") in ("died", "failed", "restart"):
            console.print(f"[yellow]{ev['camera']}: {ev['event']}"
                          + (f" (exit code {ev['exitcode']})" if ev.get("exitcode") is not None else "")
                          + (f" {ev['message']}" if ev.get("message") else "") + "[/]")
    console.print(camera_table(result))
    console.print(summary_table(result))
    for key, path in result.files.items():
        console.print(f"  {key}: {path}")
    return 0
