"""Viewer cost per frame: moving the skeleton's meshes, and headless rendering to an image.

    .venv/bin/python benchmarks/bench_viewer.py [--frames 200] [--cameras 4]

Scene: :mod:`viewer.samples` (a ring of distortion-free cameras, a Halpe-26
stick figure walking a circle).  Rows:

* ``scene update``: :meth:`SkeletonScene.update` (numpy spheres and tubes ->
  Open3D vertex arrays), no drawing;
* ``render WxH overview``: update + draw + read back the RGB image
  (:meth:`Renderer.render`), centred pinhole view, no warp;
* ``render from cam_0``: the same from a rig camera (off-centre principal
  point: drawn on a larger canvas and warped onto the camera's pixels);
* ``video WxH mp4``: render + encode (cv2 mp4v) per frame.

Each row reports the median and 95th percentile in ms per frame over
``--frames`` frames (after 5 warm-up frames) and frames per second from the
median.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triangulate.skeletons import HALPE26  # noqa: E402
from viewer import views  # noqa: E402
from viewer.render import FrameSink, Renderer, has_display  # noqa: E402
from viewer.samples import ring_rig, swaying_figure  # noqa: E402
from viewer.scene import SkeletonScene  # noqa: E402


def timed(fn, n: int, warmup: int = 5) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out[i] = time.perf_counter() - t
    return out * 1000.0


def row(name: str, ms: np.ndarray) -> None:
    med, p95 = np.median(ms), np.percentile(ms, 95)
    print(f"{name:<32} {med:8.2f} {p95:8.2f} {1000.0 / med:9.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--cameras", type=int, default=4)
    args = ap.parse_args(argv)

    rig = ring_rig(args.cameras, size=(1280, 720), focal=1000.0)
    seq = swaying_figure(args.frames + 5)
    n_views = np.tile(2 + np.arange(26) % (args.cameras - 1), (len(seq), 1))
    print(f"viewer benchmark: {args.cameras} cameras, Halpe-26, {args.frames} frames, "
          f"{'display' if has_display() else 'no display (EGL offscreen, Mesa llvmpipe)'}")
    print(f"{'':<32} {'ms med':>8} {'ms p95':>8} {'frames/s':>9}")

    sc = SkeletonScene(rig, HALPE26)
    row("scene update", timed(lambda i: sc.update(seq[i], n_views[i]), args.frames))

    for size in [(640, 480), (1280, 720), (1920, 1080)]:
        with Renderer(rig, HALPE26, views.overview(rig, seq, size)) as r:
            row(f"render {size[0]}x{size[1]} overview", timed(lambda i: r.render(seq[i], n_views[i]), args.frames))

    cam = views.from_camera(rig, 0)
    with Renderer(rig, HALPE26, cam) as r:
        row(f"render from cam_0 {cam.size[0]}x{cam.size[1]}", timed(lambda i: r.render(seq[i], n_views[i]), args.frames))

    size = (1280, 720)
    with tempfile.TemporaryDirectory() as tmp, Renderer(rig, HALPE26, views.overview(rig, seq, size)) as r, \
            FrameSink(Path(tmp) / "bench.mp4", 30.0, size) as sink:
        row(f"video {size[0]}x{size[1]} mp4", timed(lambda i: sink.write(r.render(seq[i], n_views[i])), args.frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
