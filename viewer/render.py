"""Headless rendering of the scene to images and videos, with no display needed.

How: Open3D's legacy ``Visualizer`` with ``create_window(visible=False)``.  With
no display it falls back to an EGL offscreen context on Mesa's software
rasteriser (llvmpipe); with a display it uses a hidden window.  The newer
``open3d.visualization.rendering.OffscreenRenderer`` would need Vulkan packages
and is about 100x slower here.  Debian packages the EGL path loads:
``libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri`` (see :data:`MESA_PACKAGES`).

Views are :class:`calibration.Camera` objects (see :mod:`viewer.views`).  The
legacy visualizer only knows square pixels and a centred principal point, so
the renderer draws on a canvas with ``f = fy`` centred on the view's principal
point and then maps it onto the view's pixels with one affine warp: a rendered
point lands where ``view.project`` says, to a fraction of a pixel, for any
``fx, fy, cx, cy``.  Lens distortion is not rendered (views are pinhole).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from calibration.camera import Camera
from calibration.rig import Rig
from rigcap.errors import RigcapError
from rigcap.native_output import held_native_output
from triangulate.skeletons import Skeleton
from viewer import views
from viewer.legend import annotate, draw_labels
from viewer.scene import SceneStyle, SkeletonScene, person_colors

MESA_PACKAGES = "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
# The legacy visualizer clamps its vertical field of view to [5, 90] degrees
# (5 switches it to an orthographic projection).
_FOV_MIN_DEG, _FOV_MAX_DEG = 5.2, 89.8


class RenderUnavailable(RigcapError):
    """No OpenGL context could be created (no display, and no working EGL)."""


def has_display() -> bool:
    """True where a window can open: an X11 or Wayland display on Linux, always elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def open_gl_window(vis, title: str, size, visible: bool) -> None:
    """``vis.create_window`` quietly; a :class:`RenderUnavailable` saying why when it fails."""
    import open3d as o3d

    noise: list = []
    with held_native_output(2, noise), o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        ok = vis.create_window(window_name=title, width=int(size[0]), height=int(size[1]), visible=visible)
    if not ok:
        detail = "".join(noise).strip()
        raise RenderUnavailable(
            "Open3D could not create an OpenGL context"
            + ("" if has_display() else f" (no display; its EGL fallback needs Mesa: apt-get install {MESA_PACKAGES})")
            + (f"; it said: {detail}" if detail else ""))


def canvas_for(view: Camera) -> tuple[tuple[int, int], np.ndarray, np.ndarray | None]:
    """How to render ``view`` with Open3D's centred, square-pixel pinhole.

    Returns ``(canvas_size, canvas_K, warp)``: the canvas is drawn with
    ``canvas_K`` (``f = fy``, principal point at the canvas centre); ``warp`` is
    the 2x3 affine map from view pixels to canvas pixels (for
    ``cv2.warpAffine(..., WARP_INVERSE_MAP)``), or ``None`` when the canvas
    already is the view.
    """
    w, h = view.size
    fx, fy = view.focal
    cx, cy = view.principal_point
    centred = np.isclose(cx, (w - 1) / 2.0) and np.isclose(cy, (h - 1) / 2.0) and np.isclose(fx, fy)
    if centred:
        cw, ch = w, h
    else:
        half_x = max(cx + 0.5, w - 0.5 - cx) * fy / abs(fx)  # fx < 0: a mirrored image, the warp flips it
        half_y = max(cy + 0.5, h - 0.5 - cy)
        cw, ch = 2 * int(np.ceil(half_x)) + 2, 2 * int(np.ceil(half_y)) + 2
    # keep the vertical field of view inside what the visualizer accepts
    ch_min = int(np.ceil(2 * fy * np.tan(np.radians(_FOV_MIN_DEG) / 2)))
    ch_max = int(np.floor(2 * fy * np.tan(np.radians(_FOV_MAX_DEG) / 2)))
    if ch < ch_min:
        ch = ch_min
    elif ch > ch_max:
        warnings.warn(f"view {view.name!r}: vertical field of view over 90 degrees; top and bottom are cut off",
                      stacklevel=3)
        ch = ch_max
    if (cw, ch) == (w, h) and centred:
        return (w, h), view.matrix.copy(), None
    k = np.array([[fy, 0.0, cw / 2.0 - 0.5], [0.0, fy, ch / 2.0 - 0.5], [0.0, 0.0, 1.0]])
    s = fy / fx
    warp = np.array([[s, 0.0, k[0, 2] - s * cx], [0.0, 1.0, k[1, 2] - cy]])
    return (cw, ch), k, warp


def resolve_view(rig: Rig, view, size=None, points=None, **overview_kw) -> Camera:
    """A view from ``None`` (the overview), a rig camera's index or name, or a :class:`Camera`.

    ``size`` (w, h): the overview's image size (default 1280x720); for a rig
    camera, the size to rescale it to (default its own); ignored for a Camera.
    """
    if isinstance(view, Camera):
        return view
    if view is None or view == "overview":
        return views.overview(rig, points, size or (1280, 720), **overview_kw)
    if isinstance(view, str) and view.isdigit() and view not in rig.names:
        view = int(view)
    try:
        return views.from_camera(rig, view, size)
    except (KeyError, IndexError):
        raise RigcapError(f"no camera {view!r} in the rig (cameras: {', '.join(rig.names)})") from None


class Renderer:
    """One offscreen OpenGL canvas drawing a :class:`SkeletonScene` from a fixed view.

    Reuse one renderer for many frames (a video, a benchmark): only the
    skeleton's vertex arrays change between frames.  Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, rig: Rig, skeleton: Skeleton | None, view: Camera, n_joints: int | None = None,
                 style: SceneStyle | None = None):
        import open3d as o3d

        self._o3d = o3d
        inside = [c.name for c in rig if np.linalg.norm(c.center - view.center) < 1e-3]
        self.scene = SkeletonScene(rig, skeleton, n_joints, style, hide_frusta=inside)
        self.view = view
        (cw, ch), self._canvas_k, self._warp = canvas_for(view)
        self._vis = o3d.visualization.Visualizer()
        open_gl_window(self._vis, "rigcap", (cw, ch), visible=False)
        for g in self.scene.geometries:
            self._vis.add_geometry(g)
        opt = self._vis.get_render_option()
        opt.background_color = self.scene.style.background
        opt.line_width = 1.5
        opt.mesh_show_back_face = True
        params = o3d.camera.PinholeCameraParameters()
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(cw, ch, self._canvas_k)
        params.extrinsic = view.extrinsic
        ctr = self._vis.get_view_control()
        if not ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
            raise RuntimeError("Open3D refused the view parameters")
        ctr.set_constant_z_near(0.02)
        ctr.set_constant_z_far(1000.0)

    def render(self, points: np.ndarray, n_views: np.ndarray | None = None, person_ids=None) -> np.ndarray:
        """Draw the skeleton at ``points`` (J, 3) (or people (P, J, 3), each one's id written above their
        head in their colour); returns the image, uint8 RGB (h, w, 3)."""
        self.scene.update(points, n_views, person_ids)
        for g in self.scene.dynamic_geometries:
            self._vis.update_geometry(g)
        # do_render=True draws once and reads back; poll_events/update_renderer would draw a second time
        buf = np.asarray(self._vis.capture_screen_float_buffer(do_render=True))
        img = (np.clip(buf, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if self._warp is not None:
            import cv2

            bg = tuple(int(round(c * 255)) for c in self.scene.style.background)
            img = cv2.warpAffine(img, self._warp, self.view.size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=bg)
        return self._draw_labels(img)

    def _draw_labels(self, img: np.ndarray) -> np.ndarray:
        """The scene's id labels (several people) written where the view sees their 3D positions."""
        labels = self.scene.labels
        if not labels:
            return img
        pos = np.array([p for p, _ in labels], dtype=np.float64)
        ids = [int(t[1:]) for _, t in labels]
        pix = self.view.project(pos)
        pix[self.view.world_to_camera(pos)[:, 2] <= 0] = np.nan  # behind the view
        return draw_labels(np.ascontiguousarray(img), pix, [t for _, t in labels], person_colors(ids))

    def close(self) -> None:
        if self._vis is not None:
            self._vis.destroy_window()
            self._vis = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def check_image_path(path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise RigcapError(f"{path}: unknown image type {path.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    return path


def check_video_path(path) -> Path:
    """A video file with a known suffix, or a folder (no suffix) for PNG frames."""
    path = Path(path)
    if path.suffix and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise RigcapError(f"{path}: unknown video type {path.suffix!r}; use one of "
                          f"{', '.join(VIDEO_SUFFIXES)} or a folder (PNG frames)")
    return path


def write_image(path, rgb: np.ndarray) -> Path:
    import cv2

    path = check_image_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise RigcapError(f"{path}: could not write the image")
    return path


def render_snapshot(rig: Rig, skeleton: Skeleton | None, points: np.ndarray, n_views: np.ndarray | None = None,
                    out_png=None, size=None, view=None, style: SceneStyle | None = None, person_ids=None,
                    title: str | None = None, legend: bool = False, **overview_kw) -> np.ndarray:
    """Render one skeleton (J, 3) -- or several people (P, J, 3) with ``person_ids``, each in their
    own colour -- and the rig to ``out_png`` (if given); returns the RGB image.

    ``view``: ``None`` for the overview (``azimuth_deg``, ``elevation_deg``,
    ``fov_deg`` go to :func:`viewer.views.overview`), a rig camera's index or
    name for the view from that camera, or any :class:`Camera`; ``size`` as in
    :func:`resolve_view`.  ``title`` (a line at the top) and ``legend`` (what the
    colours mean, bottom left) are drawn into the image after rendering.
    """
    points = np.asarray(points, dtype=np.float64)
    cam = resolve_view(rig, view, size, points.reshape(-1, 3), **overview_kw)
    with Renderer(rig, skeleton, cam, n_joints=points.shape[-2], style=style) as r:
        img = r.render(points, n_views, person_ids)
        if title or legend:
            img = annotate(img, title, r.scene.max_views if legend else None, person_ids, r.scene.style.color_by)
    if out_png is not None:
        write_image(out_png, img)
    return img


class FrameSink:
    """Writes RGB frames to a video file (by suffix: .mp4, .avi, .mkv, .mov) or to a folder of PNGs."""

    def __init__(self, out, fps: float, size):
        import cv2

        self.out = check_video_path(out)
        self.count = 0
        self._writer = None
        suffix = self.out.suffix.lower()
        if suffix:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.out), cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[suffix]),
                                           float(fps), tuple(int(s) for s in size))
            if not self._writer.isOpened():
                raise RigcapError(f"{self.out}: OpenCV cannot write this video format here; "
                                  "give a folder instead to write PNG frames")
        else:
            self.out.mkdir(parents=True, exist_ok=True)

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is not None:
            self._writer.write(np.ascontiguousarray(rgb[..., ::-1]))
        else:
            write_image(self.out / f"frame_{self.count:06d}.png", rgb)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> "FrameSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_video(rig: Rig, skeleton: Skeleton | None, points: np.ndarray, n_views: np.ndarray | None = None,
                 out="out.mp4", fps: float = 30.0, size=None, view=None, frames=None,
                 style: SceneStyle | None = None, progress=None, title=None, person_ids=None,
                 **overview_kw) -> Path:
    """Render a sequence ``points`` (F, J, 3) to a video (``out`` with a video suffix) or PNG folder.

    Several people: ``points`` (P, F, J, 3), ``n_views`` (P, F, J) and
    ``person_ids`` (P,), everybody in every frame, each in their own colour
    with their id.  One fixed view for the whole sequence (the overview frames
    every finite point of every frame); ``frames`` picks a subset of frame
    indices; ``progress(i, n)`` is called after each frame.  ``title(i)``, if
    given, returns frame ``i``'s title line; the frames then carry it and the legend.
    """
    points = np.asarray(points, dtype=np.float64)
    people = person_ids is not None
    if points.ndim != (4 if people else 3) or points.shape[-1] != 3:
        raise ValueError(f"points must have shape {'(persons, ' if people else '('}frames, joints, 3), got {points.shape}")
    by_frame = np.moveaxis(points, 1, 0) if people else points  # (F, [P,] J, 3)
    views = None if n_views is None else (np.moveaxis(np.asarray(n_views), 1, 0) if people else n_views)
    idx = np.arange(len(by_frame)) if frames is None else np.asarray(frames, dtype=int)
    fit = by_frame[idx][:: max(1, len(idx) // 200)].reshape(-1, 3)  # enough frames to frame the motion
    cam = resolve_view(rig, view, size, fit, **overview_kw)
    with Renderer(rig, skeleton, cam, n_joints=points.shape[-2], style=style) as r, FrameSink(out, fps, cam.size) as sink:
        for n, i in enumerate(idx):
            img = r.render(by_frame[i], None if views is None else views[i], person_ids)
            sink.write(img if title is None else annotate(img, title(int(i)), r.scene.max_views, person_ids,
                                                          r.scene.style.color_by))
            if progress is not None:
                progress(n + 1, len(idx))
    return Path(out)
