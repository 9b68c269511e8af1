"""The interactive Open3D window that live view and replay share.

One loop: every tick ask ``poll()`` for the newest skeleton (``None`` when
nothing new), move the existing meshes, let Open3D handle mouse and keyboard,
redraw, and sleep to the tick rate.  ``poll`` must never block: the window
stays responsive, and a slow window only skips skeletons, it never holds up
their source.

Keys (besides Open3D's own: mouse drag rotates, wheel zooms, ``H`` prints help):
space pauses and resumes the source (replay), ``Q`` or Esc closes.

Several people: each one's id (``P<id>``) floats above their head in their
colour (Open3D text meshes facing the start view, built once per id and moved
with the person).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from calibration.rig import Rig
from rigcap.errors import RigcapError
from triangulate.skeletons import SKELETONS, Skeleton
from viewer import views
from viewer.render import has_display, open_gl_window
from viewer.scene import SceneStyle, SkeletonScene, person_colors

# points (J, 3) metres, n_views (J,) or None; several people: points (P, J, 3), n_views (P, J), person_ids (P,)
Update = tuple
KEY_SPACE = 32

NO_DISPLAY = ("no display to open a window on (DISPLAY/WAYLAND_DISPLAY unset); render without one: "
              "rigcap view ... --headless --snapshot out.png (or --video out.mp4)")


def skeleton_for_count(n_joints: int) -> Skeleton | None:
    """The built-in skeleton with this many joints (their counts differ), else ``None`` (no bones)."""
    for skel in SKELETONS.values():
        if skel.n_joints == n_joints:
            return skel
    return None


def require_display() -> None:
    if not has_display():
        raise RigcapError(NO_DISPLAY)


class SceneWindow:
    """An Open3D window showing a rig and one skeleton that :meth:`run` keeps updating.

    ``skeleton=None`` picks the built-in skeleton from the joint count of the
    first update (joints only, no bones, when none matches); so does an update
    whose joint count differs from the skeleton's.  ``visible=False`` runs the
    same loop offscreen (tests, benchmarks).
    """

    def __init__(self, rig: Rig, skeleton: Skeleton | None = None, size=(1280, 720), title: str = "rigcap",
                 style: SceneStyle | None = None, visible: bool = True, view_points=None):
        if visible:
            require_display()
        self.rig = rig
        self.skeleton = skeleton
        self.size = (int(size[0]), int(size[1]))
        self.title = title
        self.style = style
        self.visible = visible
        self.view_points = view_points
        self.scene: SkeletonScene | None = None
        self.paused = False
        self.frames_drawn = 0
        self.updates = 0
        self._vis = None
        self._added: set[int] = set()
        self._closed = False
        self._text_mesh = None  # the text beside the skeleton (set_text)
        self._text = ""
        self._camera_R = np.eye(3)
        self._last_points: np.ndarray | None = None
        self._labels: dict[str, tuple] = {}  # "P<id>" -> (text mesh, its vertices about the anchor)

    # -------------------------------------------------------------- window
    def _open(self) -> None:
        import open3d as o3d

        vis = o3d.visualization.VisualizerWithKeyCallback()
        open_gl_window(vis, self.title, self.size, self.visible)
        vis.register_key_callback(KEY_SPACE, self._toggle_pause)
        vis.register_key_callback(ord("Q"), self._close)
        self._vis = vis
        # the rig shows at once; the skeleton's meshes join with the first update
        self.scene = SkeletonScene(self.rig, self.skeleton, None if self.skeleton else 0, self.style)
        for g in self.scene.geometries:
            vis.add_geometry(g)
        self._added = set(map(id, self.scene.geometries))
        opt = vis.get_render_option()
        opt.background_color = self.scene.style.background
        opt.line_width = 1.5
        opt.mesh_show_back_face = True
        view = views.overview(self.rig, self.view_points, self.size)
        self._camera_R = np.asarray(view.R, dtype=np.float64)
        params = o3d.camera.PinholeCameraParameters()
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(self.size[0], self.size[1], view.matrix)
        params.extrinsic = view.extrinsic
        ctr = vis.get_view_control()
        # The framebuffer can differ from the requested size (HiDPI, window managers):
        # then fall back to the same look-at with Open3D's own framing.
        if not ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
            ctr.set_lookat(views.volume_center(self.rig))
            ctr.set_front(-view.R[2])
            ctr.set_up([0.0, 0.0, 1.0])
        ctr.set_constant_z_near(0.02)
        ctr.set_constant_z_far(1000.0)

    def _toggle_pause(self, _vis) -> bool:
        self.paused = not self.paused
        return False

    def _close(self, vis) -> bool:
        self._closed = True
        vis.close()
        return False

    # -------------------------------------------------------------- loop
    def show(self, update: Update) -> None:
        """Move the skeleton; the first update (or one with another joint count) sets its topology."""
        points = np.asarray(update[0], dtype=np.float64)
        ids = update[2] if len(update) > 2 else None
        if points.ndim not in (2, 3) or points.shape[-1] != 3:
            raise ValueError(f"points must have shape (joints, 3) or (persons, joints, 3), got {points.shape}")
        n_joints = points.shape[-2]
        if n_joints != self.scene.n_joints:
            skel = self.skeleton if self.skeleton is not None and self.skeleton.n_joints == n_joints \
                else skeleton_for_count(n_joints)
            self.skeleton = skel
            self.scene.set_skeleton(skel, n_joints)
        self.scene.update(points, update[1], ids)
        self._last_points = points.reshape(-1, 3)
        self._show_labels()
        for g in self.scene.dynamic_geometries:
            if id(g) in self._added:
                self._vis.update_geometry(g)
            else:  # meshes that were empty so far
                self._vis.add_geometry(g, reset_bounding_box=False)
                self._added.add(id(g))
        self.updates += 1

    def _build_text(self, lines: list[str], height_m: float):
        """One Open3D text mesh of ``lines`` facing the start view, and its vertices about its anchor
        (x to the view's right, y up, z towards the view), or None when there is no text."""
        import open3d as o3d

        meshes = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            m = o3d.t.geometry.TriangleMesh.create_text(line, depth=0.5).to_legacy()
            v = np.asarray(m.vertices) * (height_m / 14.0)  # glyphs are ~14 units tall
            v[:, 1] -= i * 1.4 * height_m
            m.vertices = o3d.utility.Vector3dVector(v)
            meshes.append(m)
        if not meshes:
            return None
        mesh = meshes[0]
        for m in meshes[1:]:
            mesh += m
        right, up = self._camera_R[0], -self._camera_R[1]  # camera x right, y down
        v = np.asarray(mesh.vertices)
        local = v[:, :1] * right + v[:, 1:2] * up + v[:, 2:3] * np.cross(right, up)
        return mesh, local

    def _show_labels(self, height_m: float = 0.15) -> None:
        """Each person's id above their head (:attr:`SkeletonScene.labels`), in their colour."""
        import open3d as o3d

        wanted = {text: pos for pos, text in self.scene.labels}
        for text in [t for t in self._labels if t not in wanted]:
            self._vis.remove_geometry(self._labels.pop(text)[0], reset_bounding_box=False)
        for text, pos in wanted.items():
            if text not in self._labels:
                mesh, local = self._build_text([text], height_m)
                local = local - [0.5 * np.ptp(local @ self._camera_R[0]) * self._camera_R[0]]  # centred
                mesh.paint_uniform_color(person_colors([int(text[1:])])[0])
                mesh.vertices = o3d.utility.Vector3dVector(local + pos)
                mesh.compute_vertex_normals()
                self._vis.add_geometry(mesh, reset_bounding_box=False)
                self._labels[text] = (mesh, local)
            else:
                mesh, local = self._labels[text]
                mesh.vertices = o3d.utility.Vector3dVector(local + pos)
                self._vis.update_geometry(mesh)

    def set_text(self, text: str, height_m: float = 0.12) -> None:
        """Show ``text`` (lines split by newlines) beside the skeleton, facing the start view:
        Open3D's text mesh, placed above the head and to the right, replaced when it changes."""
        import open3d as o3d

        if text == self._text or self._vis is None:
            return
        self._text = text
        if self._text_mesh is not None:
            self._vis.remove_geometry(self._text_mesh, reset_bounding_box=False)
            self._text_mesh = None
        points = self._last_points
        if not text or points is None or not np.isfinite(points).any():
            return
        built = self._build_text(text.splitlines(), height_m)
        if built is None:
            return
        mesh, local = built
        ok = np.isfinite(points).all(1)
        anchor = np.median(points[ok], axis=0) + 0.5 * self._camera_R[0]
        anchor[2] = points[ok, 2].max() + 0.1
        mesh.vertices = o3d.utility.Vector3dVector(anchor + local)
        mesh.paint_uniform_color((0.95, 0.85, 0.2))
        mesh.compute_vertex_normals()
        self._vis.add_geometry(mesh, reset_bounding_box=False)
        self._text_mesh = mesh

    def run(self, poll: Callable[[], Update | None], rate_hz: float = 60.0, max_seconds: float | None = None,
            on_tick: Callable[["SceneWindow"], None] | None = None) -> None:
        """Draw until the window closes (or ``max_seconds`` pass), at most ``rate_hz`` frames a second.

        ``poll()`` returns the newest update or ``None``; it is not called while paused.
        """
        if self._vis is None and not self._closed:
            self._open()
        period = 1.0 / rate_hz
        start = time.monotonic()
        try:
            while not self._closed:
                tick = time.monotonic()
                update = None if self.paused else poll()
                if update is not None:
                    self.show(update)
                if not self._vis.poll_events() and self.visible:
                    break
                self._vis.update_renderer()
                self.frames_drawn += 1
                if on_tick is not None:
                    on_tick(self)
                if max_seconds is not None and tick - start >= max_seconds:
                    break
                time.sleep(max(0.0, period - (time.monotonic() - tick)))
        finally:
            self.close()

    def capture(self) -> np.ndarray:
        """The window's current image, uint8 RGB (for tests)."""
        buf = np.asarray(self._vis.capture_screen_float_buffer(do_render=True))
        return (np.clip(buf, 0, 1) * 255 + 0.5).astype(np.uint8)

    def close(self) -> None:
        if self._vis is not None:
            self._vis.destroy_window()
            self._vis = None
        self._closed = True
