"""The studio window on Open3D's GUI: the 3D scene, labels, a side panel with stats, legend and timeline.

Same geometry as the headless renders (:class:`viewer.scene.SkeletonScene`),
drawn in a ``gui.SceneWidget`` with 3D labels (camera names on the frusta,
person ids above heads) and a panel on the right: a status line, live stats
(:func:`stats_lines`), the colour legend (:func:`viewer.legend.legend_entries`)
and, for replay, a timeline (play/pause, step, a scrub slider, speed).

Drawing: everything happens on the GUI's main thread, in the window's tick
callback (Open3D calls it there about every 10 ms): it asks ``poll()`` for the
newest update (never blocking) and moves the skeleton *in place*.  The joints
and bones are two fixed-topology triangle meshes, uploaded once; each update
only rewrites their vertex positions and colours
(``Scene.update_geometry``), and hidden joints collapse to zero-area
triangles.  A mesh is uploaded again only when its triangles change (another
skeleton, more people than the meshes have room for, which doubles the room).
Removing and re-adding the meshes every tick, as this module first did, made
Filament's Vulkan backend on Mesa's software device (lavapipe, under Xvfb)
deadlock within a few frames: the main thread waiting in
``ImguiFilamentBridge::SyncThreads`` for an engine thread blocked inside
lavapipe (seen with gdb), or segfault.

Colours are drawn exactly as the headless renders draw them: the view's
post-processing (tone mapping) is off, so a vertex colour reaches the screen
unchanged; Open3D linearises the background colour, so it is handed over
sRGB-encoded.

Open3D's GUI renders through Filament: on Linux it needs Vulkan (Debian
``libvulkan1 mesa-vulkan-drivers`` give the llvmpipe software device) and a
display (X11, or Xvfb).  Where it cannot start, :func:`open_window` falls back
to the plain OpenGL window (:class:`viewer.window.SceneWindow`).

Keys: space plays/pauses (replay), Left/Right step one frame, Q or Esc closes;
mouse drag rotates, wheel zooms.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

import numpy as np

from calibration.rig import Rig
from triangulate.skeletons import Skeleton
from viewer import views
from viewer.legend import legend_entries
from viewer.playback import SPEEDS, Playback
from rigcap.native_output import held_native_output
from viewer.render import RenderUnavailable
from viewer.scene import SceneStyle, SkeletonScene, person_colors

PANEL_WIDTH = 300
GUI_PACKAGES = "libvulkan1 mesa-vulkan-drivers"
_APP_STARTED = False
RING_SLOTS = 32  # vertex buffers per skeleton mesh, reused in turn (see _VertexRing)


def srgb_encode(rgb) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1): what Open3D's ``set_background`` undoes."""
    c = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1.0 / 2.4) - 0.055)


def stats_lines(cameras: dict[str, dict], instants_per_s: float | None, latency_ms: float | None,
                people: int | None) -> list[str]:
    """The live panel's text: one line per camera (fps, drops, grab-to-publish latency), then the fused stream.

    ``cameras``: camera name -> its latest ``stats.<camera>`` header (see
    :meth:`capture.stats.CameraStats.snapshot`).
    """
    out = []
    for name in sorted(cameras):
        s = cameras[name]
        out.append(f"{name}: {float(s.get('fps', 0)):5.1f} fps  drop {int(s.get('dropped', 0))}  "
                   f"lat {float(s.get('grab_to_publish_ms_p50', float('nan'))):.0f} ms")
    if not cameras:
        out.append("cameras: no stats received")
    out.append(f"instants/s: {instants_per_s:.1f}" if instants_per_s is not None else "instants/s: -")
    out.append(f"capture->view latency: {latency_ms:.0f} ms" if latency_ms is not None and np.isfinite(latency_ms)
               else "capture->view latency: -")
    out.append(f"people: {people}" if people is not None else "people: -")
    return out


class _VertexRing:
    """Vertex arrays for ``Scene.update_geometry``, in a fixed ring of buffers that live as long as the mesh.

    Open3D hands Filament a *pointer* to the point cloud's arrays; Filament
    copies them later, on its engine thread, which under load runs many
    updates behind (seen under Xvfb: the screen showed a frame about 35 ticks
    old).  Arrays freed by then would be drawn as garbage triangles, so each
    update writes into the next of ``slots`` buffers that are never freed while
    the mesh exists: a late copy reads another update's vertices, never freed
    memory."""

    def __init__(self, o3d, n_vertices: int, slots: int = RING_SLOTS):
        self.clouds, self.arrays = [], []
        for _ in range(slots):
            positions = o3d.core.Tensor(np.zeros((n_vertices, 3), np.float32))
            colors = o3d.core.Tensor(np.zeros((n_vertices, 3), np.float32))
            cloud = o3d.t.geometry.PointCloud(positions)  # shares the tensors' memory
            cloud.point.colors = colors
            self.clouds.append(cloud)
            self.arrays.append((positions.numpy(), colors.numpy()))  # views of that memory
        self.next = 0

    def fill(self, vertices: np.ndarray, colors: np.ndarray):
        """The next buffer, holding ``vertices`` and ``colors`` (V, 3)."""
        cloud, (pos, col) = self.clouds[self.next], self.arrays[self.next]
        pos[:] = vertices
        col[:] = colors
        self.next = (self.next + 1) % len(self.clouds)
        return cloud


class GuiWindow:
    """An Open3D GUI window with the rig, skeletons, labels and a side panel; :meth:`run` keeps it updated.

    ``playback`` (a :class:`viewer.playback.Playback`) adds the timeline and
    makes :meth:`run`'s ``poll`` receive the frame to show: ``poll(frame)``;
    without it (live) ``poll()`` returns the newest update or ``None``.
    ``stats()`` (optional) returns the panel's stats lines each tick.
    ``size`` is the 3D view's size; the panel adds :data:`PANEL_WIDTH`.
    """

    def __init__(self, rig: Rig, skeleton: Skeleton | None = None, size=(1280, 720), title: str = "rigcap",
                 style: SceneStyle | None = None, view_points=None, playback: Playback | None = None,
                 stats: Callable[[], list[str]] | None = None, status: Callable[[], str] | None = None):
        self.rig = rig
        self.skeleton = skeleton
        self.size = (int(size[0]), int(size[1]))
        self.title = title
        self.style = style
        self.view_points = view_points
        self.playback = playback
        self.stats = stats
        self.status = status
        self.view = None  # the viewer.views Camera the 3D view was set up with
        self.frames_drawn = 0
        self.updates = 0
        self.uploads = 0  # times a skeleton mesh was (re)uploaded whole: once per part unless its triangles change
        self.people_shown = 0
        self.shown_frame: int | None = None
        self._person_labels: list = []
        self._uploaded: dict[str, tuple] = {}  # part -> topology it was uploaded with
        self._rings: dict[str, _VertexRing] = {}
        self._retired: list[_VertexRing] = []  # rings of replaced meshes: late copies may still read them
        self._room = 0  # people the meshes have room for (several-people updates are padded to it)
        self._closed = False
        self._window = None
        self._open()

    # -------------------------------------------------------------- building
    def _open(self) -> None:
        global _APP_STARTED
        import open3d as o3d
        from open3d.visualization import gui, rendering

        self._o3d, self._gui, self._rendering = o3d, gui, rendering
        app = gui.Application.instance
        noise: list = []
        try:
            with held_native_output(2, noise), held_native_output(1, noise), \
                    o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                if not _APP_STARTED:
                    app.initialize()
                    _APP_STARTED = True
                w = app.create_window(self.title, self.size[0] + PANEL_WIDTH, self.size[1])
        except RuntimeError as exc:
            raise RenderUnavailable(f"Open3D's GUI could not open a window ({exc}); it needs Vulkan "
                                    f"(apt-get install {GUI_PACKAGES}) and a display") from None
        self._app, self._window = app, w
        em = w.theme.font_size
        self.scene = SkeletonScene(self.rig, self.skeleton, None if self.skeleton else 0, self.style)
        sw = gui.SceneWidget()
        sw.scene = rendering.Open3DScene(w.renderer)
        sw.scene.view.set_post_processing(False)  # no tone mapping: vertex colours reach the screen as given
        sw.scene.set_background(np.append(srgb_encode(self.scene.style.background), 1.0))
        sw.scene.show_axes(False)
        self._line_mat = rendering.MaterialRecord()
        self._line_mat.shader = "unlitLine"
        self._line_mat.line_width = 1.5
        self._mesh_mat = rendering.MaterialRecord()
        self._mesh_mat.shader = "defaultUnlit"
        for name, g in (("grid", self.scene.grid), ("frusta", self.scene.frusta), ("axes", self.scene.axes)):
            if not g.is_empty():
                sw.scene.add_geometry(name, g, self._line_mat if name != "axes" else self._mesh_mat)
        for cam in self.rig:
            label = sw.add_3d_label(cam.center, cam.name)
            label.color = gui.Color(*self._frustum_rgb(), 1.0)
        sw.set_on_key(self._on_key)
        self.widget = sw
        w.add_child(sw)

        panel = gui.ScrollableVert(0.25 * em, gui.Margins(0.6 * em, 0.5 * em, 0.6 * em, 0.5 * em))
        self._status = gui.Label(self.title)
        panel.add_child(self._status)
        if self.playback is not None:
            panel.add_child(self._timeline(gui, em))
        panel.add_fixed(0.4 * em)
        panel.add_child(self._heading("Stats"))
        self._stats = gui.Label("-")
        panel.add_child(self._stats)
        panel.add_fixed(0.4 * em)
        panel.add_child(self._heading("Colours"))
        self._side_rows = []
        for text, col in legend_entries(self.scene.max_views):
            row = gui.Horiz(0.4 * em)
            row.add_child(self._swatch(col, int(round(0.8 * em))))
            row.add_child(gui.Label(text))
            panel.add_child(row)
            if text.startswith("bone"):
                self._side_rows.append(row)
        self._person_row = gui.Label("bones: each person in their own colour,\nthe id above their head")
        self._person_row.visible = False
        panel.add_child(self._person_row)
        self._by_person = False
        self.panel = panel
        w.add_child(panel)
        w.set_on_layout(self._layout)
        w.set_on_close(self._on_close)

    def _swatch(self, rgb, side: int):
        """A solid square of ``rgb`` (an image: the GUI font has no block glyph)."""
        block = np.empty((side, side, 3), np.uint8)
        block[:] = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
        return self._gui.ImageWidget(self._o3d.geometry.Image(block))

    def _heading(self, text: str):
        label = self._gui.Label(text)
        label.text_color = self._gui.Color(0.62, 0.66, 0.74, 1.0)
        return label

    def _frustum_rgb(self):
        from viewer.scene import FRUSTUM_COLOR

        return tuple(float(c) for c in FRUSTUM_COLOR)

    def _timeline(self, gui, em):
        pb = self.playback
        box = gui.Vert(0.3 * em)
        row = gui.Horiz(0.3 * em)
        for text, action in (("|<", lambda: self.seek(0)), ("<", lambda: self.step(-1)),
                             ("play/pause", self.toggle), (">", lambda: self.step(1))):
            b = gui.Button(text)
            b.horizontal_padding_em, b.vertical_padding_em = 0.4, 0.1
            b.set_on_clicked(action)
            row.add_child(b)
        box.add_child(row)
        self._slider = gui.Slider(gui.Slider.INT)
        self._slider.set_limits(0, max(pb.n_frames - 1, 0))
        self._slider.set_on_value_changed(lambda v: self.seek(int(v)))
        box.add_child(self._slider)
        speed_row = gui.Horiz(0.3 * em)
        speed_row.add_child(gui.Label("speed"))
        self._speed = gui.Combobox()
        for s in SPEEDS:
            self._speed.add_item(f"{s:g}x")
        self._speed.selected_index = SPEEDS.index(1.0)
        self._speed.set_on_selection_changed(lambda _text, i: setattr(pb, "speed", SPEEDS[i]))
        speed_row.add_child(self._speed)
        box.add_child(speed_row)
        return box

    def _layout(self, ctx) -> None:
        gui = self._gui
        r = self._window.content_rect
        view_w = max(r.width - PANEL_WIDTH, 16)
        self.widget.frame = gui.Rect(r.x, r.y, view_w, r.height)
        self.panel.frame = gui.Rect(r.x + view_w, r.y, r.width - view_w, r.height)
        size = (view_w, r.height)
        if self.view is None or tuple(self.view.size) != size:
            self.view = views.overview(self.rig, self.view_points, size)
            bbox = self._o3d.geometry.AxisAlignedBoundingBox(*self._bounds())
            self.widget.setup_camera(self.view.matrix, self.view.extrinsic, size[0], size[1], bbox)
            self.widget.center_of_rotation = views.volume_center(self.rig)

    def _bounds(self):
        pts = views.scene_points(self.rig, self.view_points)
        return pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5

    # -------------------------------------------------------------- controls
    def toggle(self) -> None:
        if self.playback is not None:
            self.playback.toggle()

    def step(self, frames: int) -> None:
        if self.playback is not None:
            self.playback.step(frames)

    def seek(self, frame: int) -> None:
        if self.playback is not None:
            self.playback.seek(frame)

    def _on_key(self, event):
        gui = self._gui
        if event.type != gui.KeyEvent.Type.DOWN:
            return gui.Widget.EventCallbackResult.IGNORED
        if event.key == gui.KeyName.SPACE:
            self.toggle()
        elif event.key == gui.KeyName.RIGHT:
            self.step(1)
        elif event.key == gui.KeyName.LEFT:
            self.step(-1)
        elif event.key in (gui.KeyName.Q, gui.KeyName.ESCAPE):
            self.close()
        else:
            return gui.Widget.EventCallbackResult.IGNORED
        return gui.Widget.EventCallbackResult.CONSUMED

    def _on_close(self) -> bool:
        self._closed = True
        return True

    # -------------------------------------------------------------- drawing
    def show(self, update) -> None:
        """Draw ``(points, n_views[, person_ids])``: points (J, 3), or (P, J, 3) for several people
        (each person's bones in their own colour with ``style.color_by == "person"``, an id label
        above each in that colour: :class:`SkeletonScene`)."""
        points = np.asarray(update[0], dtype=np.float64)
        n_views = None if len(update) < 2 or update[1] is None else np.asarray(update[1])
        ids = None if len(update) < 3 else update[2]
        if points.ndim not in (2, 3) or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (joints, 3) or (persons, joints, 3), got {points.shape}")
        n_joints = points.shape[-2]
        s = self.scene
        if s.n_joints != n_joints:
            from viewer.window import skeleton_for_count

            if self.skeleton is None or self.skeleton.n_joints != n_joints:
                self.skeleton = skeleton_for_count(n_joints)
            s.set_skeleton(self.skeleton, n_joints)
        self.people_shown = int(np.isfinite(points.reshape(-1, n_joints, 3)).all(-1).any(-1).sum())
        if points.ndim == 3:
            points, n_views, ids = self._padded(points, n_views, ids)
        s.update(points, n_views, ids if points.ndim == 3 else None)
        for part, mesh in (("joints", s.joints), ("bones", s.bone_mesh)):
            self._draw_part(part, mesh)
        self._show_person_labels(s.labels if points.ndim == 3 else [])
        self._legend_by_person(points.ndim == 3 and s.style.color_by == "person")
        self.updates += 1

    def _show_person_labels(self, labels) -> None:
        """``P<id>`` above each person, in their colour; spare labels go blank."""
        while len(self._person_labels) < len(labels):
            self._person_labels.append(self.widget.add_3d_label([0.0, 0.0, 0.0], ""))
        for i, label in enumerate(self._person_labels):
            if i < len(labels):
                pos, text = labels[i]
                label.position, label.text = pos, text
                label.color = self._gui.Color(*map(float, person_colors([int(text[1:])])[0]), 1.0)
            else:
                label.text = ""

    def _legend_by_person(self, by_person: bool) -> None:
        """The legend's bone rows: left/right/middle, or one line saying each person has their colour."""
        if by_person == self._by_person:
            return
        self._by_person = by_person
        for row in self._side_rows:
            row.visible = not by_person
        self._person_row.visible = by_person
        self._window.set_needs_layout()

    def _padded(self, points, n_views, ids):
        """Several people padded with hidden ones to the meshes' room (a power of two), so the
        meshes keep their vertex count while people come and go."""
        n = len(points)
        if n > self._room:
            self._room = 1 << max(int(np.ceil(np.log2(max(n, 1)))), 0)
        pad = self._room - n
        ids = np.arange(1, n + 1) if ids is None else np.asarray(ids).reshape(-1)
        if pad:
            points = np.concatenate([points, np.full((pad,) + points.shape[1:], np.nan)])
            ids = np.concatenate([ids, np.zeros(pad, ids.dtype)])
            if n_views is not None:
                n_views = np.concatenate([n_views, np.full((pad,) + n_views.shape[1:], -1, n_views.dtype)])
        return points, n_views, ids

    def _draw_part(self, part: str, mesh) -> None:
        """Move one skeleton mesh in place; upload it whole only when its triangles changed."""
        o3d, scene3d = self._o3d, self.widget.scene
        topology = (self.scene.topology, len(mesh.vertices), len(mesh.triangles))
        verts = np.asarray(mesh.vertices, dtype=np.float32)
        colors = np.asarray(mesh.vertex_colors, dtype=np.float32)
        if self._uploaded.get(part) != topology:
            if scene3d.has_geometry(part):
                scene3d.remove_geometry(part)
            self._uploaded.pop(part, None)
            if part in self._rings:
                self._retired = self._retired[-3:] + [self._rings.pop(part)]
            if len(verts) and len(mesh.triangles):
                t = o3d.t.geometry.TriangleMesh()
                t.vertex.positions = o3d.core.Tensor(verts)
                t.vertex.colors = o3d.core.Tensor(colors)
                t.triangle.indices = o3d.core.Tensor(np.asarray(mesh.triangles, dtype=np.int32))
                scene3d.add_geometry(part, t, self._mesh_mat)
                # its bounding box is the one it was uploaded with (hidden joints sit at the origin)
                scene3d.scene.set_geometry_culling(part, False)
                self._uploaded[part] = topology
                self._rings[part] = _VertexRing(o3d, len(verts))
                self.uploads += 1
            return
        flags = self._rendering.Scene.UPDATE_POINTS_FLAG | self._rendering.Scene.UPDATE_COLORS_FLAG
        scene3d.scene.update_geometry(part, self._rings[part].fill(verts, colors), flags)

    def _refresh_panel(self) -> bool:
        """Update the panel's text; True when something in it changed."""
        changed = False
        if self.status is not None:
            text = self.status()
            changed |= text != self._status.text
            self._status.text = text
        if self.stats is not None:
            text = "\n".join(self.stats())
            if text != self._stats.text:
                if text.count("\n") != self._stats.text.count("\n"):
                    self._window.set_needs_layout()  # the label grows: move the legend down
                self._stats.text = text
                changed = True
        if self.playback is not None and self.shown_frame is not None and self._slider.int_value != self.shown_frame:
            self._slider.int_value = self.shown_frame
            changed = True
        return changed

    def run(self, poll: Callable, rate_hz: float = 60.0, max_seconds: float | None = None,
            on_tick: Callable[["GuiWindow"], None] | None = None) -> None:
        """Draw until the window closes (or ``max_seconds`` pass); blocks in Open3D's event loop.

        The window's tick event (Open3D calls it on the main thread about every
        10 ms) polls the source at most ``rate_hz`` times a second and asks for
        a redraw only when something changed.
        """
        period = 1.0 / rate_hz
        start = time.monotonic()
        clock = {"last": start, "poll": 0.0}
        interrupted: list = []  # Ctrl-C seen

        def tick_event() -> bool:
            tick = time.monotonic()
            if self._closed:
                return False
            if interrupted:
                self.close()
                return False
            if max_seconds is not None and tick - start >= max_seconds:
                self.close()
                return False
            if tick - clock["poll"] < period:
                return False
            clock["poll"] = tick
            changed = False
            if self.playback is not None:
                frame = self.playback.advance(tick - clock["last"])
                if frame != self.shown_frame:
                    self.show(poll(frame))
                    self.shown_frame = frame
                    changed = True
            else:
                update = poll()
                if update is not None:
                    self.show(update)
                    changed = True
            clock["last"] = tick
            self.frames_drawn += changed
            changed |= self._refresh_panel()
            if on_tick is not None:
                on_tick(self)
            return changed

        self._window.set_on_tick_event(tick_event)

        def on_sigint(_sig, _frame) -> None:  # runs inside some tick: the next tick closes the window
            interrupted.append(True)

        previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() \
            else None
        try:
            self._app.run()
        finally:
            self._closed = True
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            raise KeyboardInterrupt  # after the window is gone: the command says "interrupted", exit 130

    def request_view_image(self, callback: Callable[[np.ndarray], None]) -> None:
        """Open3D's own screenshot of the 3D view, uint8 RGB (h, w, 3), handed to ``callback`` once drawn."""
        self.widget.scene.scene.render_to_image(lambda img: callback(np.asarray(img)[..., :3].copy()))
        self._window.post_redraw()

    def close(self) -> None:
        """Close the window from the GUI's own queue: closing it inside a tick callback while it is
        playing crashed Open3D (segfault in ``Application.run``)."""
        if self._window is not None and not self._closed:
            self._app.post_to_main_thread(self._window, self._window.close)
        self._closed = True


#: ``RIGCAP_GUI=0`` picks the plain OpenGL window (no labels, panel or timeline) over the GUI one.
GUI_ENV = "RIGCAP_GUI"


def open_window(rig: Rig, skeleton=None, size=(1280, 720), title="rigcap", **kw):
    """The window a viewer opens: a :class:`GuiWindow` (labels, panel, timeline), or the plain OpenGL
    :class:`viewer.window.SceneWindow` with ``RIGCAP_GUI=0`` or where the GUI cannot start (no Vulkan;
    a note on stderr says so).  ``kw`` go to :class:`GuiWindow`."""
    from viewer.window import SceneWindow, require_display

    require_display()
    if os.environ.get(GUI_ENV) == "0":
        return SceneWindow(rig, skeleton, size, title=title, view_points=kw.get("view_points"), style=kw.get("style"))
    try:
        return GuiWindow(rig, skeleton, size, title, **kw)
    except RenderUnavailable as exc:
        print(f"rigcap view: note: {exc}; using the plain window (no labels, panel or timeline)", file=sys.stderr)
        return SceneWindow(rig, skeleton, size, title=title, view_points=kw.get("view_points"), style=kw.get("style"))
