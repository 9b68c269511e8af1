"""``rigcap view``: show a recorded 3D points file or a live ``kp3d`` stream with the rig.

Replay a file in a window, or render it without a display (``--snapshot``,
``--video``); or follow a live stream (``--live ENDPOINT``, window only).
"""

from __future__ import annotations

import argparse
import sys
import warnings

from rigcap.argtypes import positive_float
from pathlib import Path

from rigcap.errors import RigcapError

DEFAULT_SIZE = (1280, 720)

EXAMPLES = """examples:
  rigcap view --rig rig.toml --points points3d.npz                      # replay in a window
  rigcap view --rig rig.toml --points points3d.npz --headless --snapshot out.png --frame 40
  rigcap view --rig rig.toml --points points3d.npz --snapshot cam0.png --from-camera cam_0
  rigcap view --rig rig.toml --points points3d.npz --video out.mp4      # or a folder: PNG frames
  rigcap view --rig rig.toml --live tcp://127.0.0.1:5556                # follow the fusion node
  rigcap view --rig rig.toml --live tcp://10.0.0.11:5558 --secret-key keys/viewer.key_secret --server-key keys/fusion.key
"""


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {text!r}") from None
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise argparse.ArgumentTypeError(f"size {w}x{h} out of range (16..8192 per side)")
    return w, h


def register(sub) -> None:
    p = sub.add_parser("view", help="view 3D joints with the rig: replay, snapshot, video or live",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rig", required=True, type=Path, help="rig file (TOML)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--points", type=Path, help="3D points file (.npz) to replay")
    src.add_argument("--live", metavar="ENDPOINT",
                     help="subscribe to kp3d at this ZeroMQ endpoint (e.g. tcp://127.0.0.1:5556); window only")
    p.add_argument("--frame", type=int, help="frame for --snapshot (default: the first with any joint)")
    p.add_argument("--headless", action="store_true", help="no window: needs --snapshot and/or --video")
    p.add_argument("--snapshot", type=Path, metavar="PNG", help="render one frame to this image")
    p.add_argument("--video", type=Path, metavar="OUT",
                   help="render every frame: a .mp4/.avi/.mkv/.mov file, or a folder for PNG frames")
    p.add_argument("--from-camera", metavar="CAM", help="render from this rig camera (name or index), pinhole")
    p.add_argument("--size", type=_size, metavar="WxH",
                   help="image/window size (default 1280x720; --from-camera defaults to that camera's size)")
    p.add_argument("--azimuth", type=float, default=-60.0, help="overview: degrees around z from +x (default -60)")
    p.add_argument("--elevation", type=float, default=25.0, help="overview: degrees above the floor (default 25)")
    p.add_argument("--fps", type=positive_float, help="playback / video frame rate (default: the file's, else 30)")
    p.add_argument("--skeleton", help="skeleton name (default: from the joint names or the stream)")
    p.add_argument("--color-by", choices=("person", "views"), default="person",
                   help="several people: 'person' (default) each one's bones in their own colour, joints by views "
                        "used; 'views' everybody in the one-person colours (joints by views, bones by side); "
                        "ids are written above the heads either way (snapshot, video, plain window)")
    p.add_argument("--secret-key", type=Path, metavar="FILE",
                   help="--live from another machine: this viewer host's secret key (rigcap keys); with --server-key")
    p.add_argument("--server-key", type=Path, metavar="FILE",
                   help="--live: the fusion machine's public key (its readers relay lists this host in [security] readers)")
    p.add_argument("--insecure", action="store_true",
                   help="--live: allow a plain (unauthenticated) stream from another machine")
    p.add_argument("--angles", metavar="NAMES",
                   help="--live: show these joint angles (comma-separated, rigcap angles --list; 'all' = the first "
                   "four) and the rep count from the 'angles' topic (rigcap fuse --angles) beside the skeleton")
    p.set_defaults(func=run)


def run(args) -> int:
    from calibration import load_rig
    from triangulate.skeletons import get_skeleton

    rig = load_rig(args.rig)
    skeleton = None
    if args.skeleton:
        try:
            skeleton = get_skeleton(args.skeleton)
        except KeyError as exc:
            raise RigcapError(exc.args[0]) from None
    if args.live:
        return _live(args, rig, skeleton)
    return _points(args, rig, skeleton)


def _live(args, rig, skeleton) -> int:
    if args.headless or args.snapshot or args.video or args.frame is not None:
        raise RigcapError("--live draws in a window only; record the stream and replay it with "
                          "--points FILE --headless --snapshot/--video")
    from rigcap.wire.security import ClientKeys, require_keys
    from viewer.live import view_live
    from viewer.window import require_display

    if (args.secret_key is None) != (args.server_key is None):
        raise RigcapError("--secret-key and --server-key go together (this host's secret key, the fusion machine's public key)")
    keys = ClientKeys(args.secret_key, args.server_key) if args.secret_key else None
    require_keys(args.live, keys, args.insecure)
    require_display()
    chosen = None if not args.angles else tuple(a.strip() for a in args.angles.split(",") if a.strip() != "all")
    window, source = view_live(rig, args.live, skeleton, size=args.size or DEFAULT_SIZE, angles=chosen, keys=keys)
    print(f"live: {source.received} skeletons received, {window.updates} drawn, {source.skipped} published "
          f"but not drawn (a newer one was ready), {source.malformed} malformed")
    return 0


def _points(args, rig, skeleton) -> int:
    from triangulate.formats import Points3D
    from viewer import render, replay

    if args.headless and not (args.snapshot or args.video):
        raise RigcapError("--headless needs --snapshot PNG and/or --video OUT")
    if args.snapshot:
        render.check_image_path(args.snapshot)
    if args.video:
        render.check_video_path(args.video)
    points3d = Points3D.load(args.points)
    if points3d.n_frames == 0:
        raise RigcapError(f"{args.points}: no frames")
    if skeleton is not None and skeleton.n_joints != points3d.points.shape[1]:
        raise RigcapError(f"--skeleton {skeleton.name} has {skeleton.n_joints} joints; "
                          f"{args.points} has {points3d.points.shape[1]}")
    if skeleton is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            skeleton = replay.skeleton_of(points3d)
        for w in caught:
            print(f"rigcap view: note: {args.points}: {w.message}", file=sys.stderr)
    from viewer.rig_check import rig_mismatch_warnings

    for line in rig_mismatch_warnings(rig, points3d.points):
        print(f"rigcap view: warning: {args.points} with {args.rig}: {line}", file=sys.stderr)
    view = args.from_camera
    if view is not None:
        render.resolve_view(rig, view)  # fails early, naming the rig's cameras
    size = args.size or (None if view is not None else DEFAULT_SIZE)  # a camera view: that camera's size
    from viewer.scene import SceneStyle

    style = SceneStyle(color_by=args.color_by)
    overview = dict(azimuth_deg=args.azimuth, elevation_deg=args.elevation)
    if args.snapshot:
        frame = replay.first_populated_frame(points3d) if args.frame is None else args.frame
        if not -points3d.n_frames <= frame < points3d.n_frames:
            raise RigcapError(f"--frame {frame} out of range: {args.points} has {points3d.n_frames} frames")
        if points3d.multi_person:  # everybody at that frame, each in their own colour
            pts, views, ids = points3d.points[:, frame], points3d.n_views[:, frame], points3d.person_ids
        else:
            pts, views, ids = points3d.points[frame], points3d.n_views[frame], None
        cam = render.resolve_view(rig, view, size, pts.reshape(-1, 3), **overview)
        title = replay.frame_title(points3d, args.points.name, frame, args.fps)
        render.render_snapshot(rig, skeleton, pts, views, args.snapshot, view=cam, person_ids=ids,
                               title=title, legend=True, style=style)
        print(f"wrote {args.snapshot} (frame {frame % points3d.n_frames}, {cam.size[0]}x{cam.size[1]})")
    if args.video:
        out = replay.replay_to_video(rig, points3d, args.video, skeleton, size=size, view=view,
                                     fps=args.fps, source=args.points.name, style=style, **overview)
        print(f"wrote {out} ({points3d.n_frames} frames)")
    if not (args.snapshot or args.video):
        from viewer.window import require_display

        require_display()
        replay.replay_window(rig, points3d, skeleton, fps=args.fps, size=args.size or DEFAULT_SIZE,
                             source=args.points.name, style=style)
    return 0
