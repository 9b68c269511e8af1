"""The 3D scene of a rig and a skeleton: pure numpy geometry, and the Open3D objects built from it.

World frame: metres, z up, the floor is the plane z = 0 (the rig file's frame).

Two layers:

* Pure functions (``*_arrays``, :func:`n_views_colors`, :func:`tube_mesh`, ...)
  return plain numpy arrays (points, line index pairs, triangle index triples,
  colours) so tests check the geometry without rendering anything.
* :class:`SkeletonScene` turns those arrays into Open3D geometries once;
  :meth:`SkeletonScene.update` then only rewrites vertex positions and colours
  of the existing skeleton meshes (fixed topology, no rebuild), which is what a
  live 30-60 fps viewer needs.

Bones are drawn as thin tubes and joints as small spheres (both triangle
meshes) rather than a ``LineSet``: line width is ignored by many OpenGL
contexts (Xvfb, macOS core profiles), and a single global width would also
thicken the floor grid and the frusta.  :func:`skeleton_lines` still gives the
plain line representation (points, bone index pairs, colours).

Colours: joints by the number of views that produced them (red = 2, yellow,
green = every camera), light grey when the count is unknown (``n_views == -1``,
what :class:`triangulate.formats.Points3D` stores when the file has none), dark
grey when 0 (e.g. a filter's prediction), not drawn when the point is NaN.
Bones: blue on the subject's left, pink on the right, white in the middle, so a
left/right swap shows at a glance.  A bone is drawn when both its joints are.
Several people (``SceneStyle.color_by``): ``"person"`` (default) draws each
person's bones in their own colour (:func:`person_colors`, by id) with the
joints still coloured by views; ``"views"`` keeps the one-person colours for
everybody.  Either way each person's id (``P<id>``) is drawn in their colour
above their head (:attr:`SkeletonScene.labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration.rig import Rig
from triangulate.skeletons import Skeleton

# ---------------------------------------------------------------- palette
BACKGROUND = np.array([0.10, 0.11, 0.13])
GRID_COLOR = np.array([0.30, 0.32, 0.36])
FRUSTUM_COLOR = np.array([0.72, 0.62, 0.98])
BONE_LEFT = np.array([0.30, 0.65, 1.00])
BONE_RIGHT = np.array([1.00, 0.42, 0.72])
BONE_CENTER = np.array([0.92, 0.92, 0.92])
JOINT_UNKNOWN_VIEWS = np.array([0.85, 0.85, 0.85])
JOINT_NO_VIEWS = np.array([0.45, 0.45, 0.45])
# n_views colour map anchors: fewest views (2) -> most views (all cameras).
VIEWS_COLORMAP = np.array([[0.92, 0.22, 0.16], [0.98, 0.84, 0.20], [0.25, 0.86, 0.35]])


# ------------------------------------------------------------- colours
def n_views_colors(n_views: np.ndarray, max_views: int) -> np.ndarray:
    """Colour (..., 3) in [0, 1] per joint from the number of views used.

    ``n_views`` >= 1 maps linearly from red (2 views or fewer) through yellow to
    green (``max_views``, normally the number of cameras); -1 (unknown) is light
    grey; 0 is dark grey.  NaN counts read as unknown.
    """
    nv = np.asarray(n_views, dtype=np.float64)
    top = max(float(max_views), 3.0)
    t = np.clip((np.nan_to_num(nv, nan=-1.0) - 2.0) / (top - 2.0), 0.0, 1.0)
    pos = t * (len(VIEWS_COLORMAP) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(VIEWS_COLORMAP) - 2)
    frac = (pos - lo)[..., None]
    out = VIEWS_COLORMAP[lo] * (1.0 - frac) + VIEWS_COLORMAP[lo + 1] * frac
    out = np.where((nv == 0)[..., None], JOINT_NO_VIEWS, out)
    unknown = ~(nv >= 1) & ~(nv == 0)  # negative (-1: not recorded) or NaN
    return np.where(unknown[..., None], JOINT_UNKNOWN_VIEWS, out)


def bone_colors(skeleton: Skeleton) -> np.ndarray:
    """(B, 3): left bones blue, right bones pink, the others white (by joint names)."""
    out = np.empty((len(skeleton.bone_names), 3))
    for i, (a, b) in enumerate(skeleton.bone_names):
        names = a + " " + b
        if "left" in names and "right" not in names:
            out[i] = BONE_LEFT
        elif "right" in names and "left" not in names:
            out[i] = BONE_RIGHT
        else:
            out[i] = BONE_CENTER
    return out


#: How several people are coloured (see the module docstring).
COLOR_MODES = ("person", "views")

#: Person colours by id (id 1 the first), distinct from the left/right and views colours.
PERSON_PALETTE = np.array([[0.98, 0.60, 0.10], [0.20, 0.80, 0.95], [0.85, 0.35, 0.95], [0.55, 0.95, 0.30],
                           [1.00, 0.35, 0.35], [0.95, 0.90, 0.35], [0.40, 0.50, 1.00], [0.30, 0.95, 0.75]])


def person_colors(person_ids) -> np.ndarray:
    """(P, 3): each person's own colour, from its id (the same id keeps its colour in every frame)."""
    ids = np.asarray(person_ids, dtype=np.int64).ravel()
    return PERSON_PALETTE[(ids - 1) % len(PERSON_PALETTE)]


def person_labels(points: np.ndarray, person_ids, lift_m: float = 0.25) -> list[tuple[np.ndarray, str]]:
    """``(position, "P<id>")`` per person seen: above their highest joint, where a label goes."""
    out = []
    for pts, pid in zip(np.asarray(points, dtype=np.float64), np.asarray(person_ids).ravel()):
        ok = np.isfinite(pts).all(-1)
        if ok.any():
            top = pts[ok][np.argmax(pts[ok, 2])]
            out.append((top + np.array([0.0, 0.0, lift_m]), f"P{int(pid)}"))
    return out


# ------------------------------------------------------------- skeleton
def skeleton_lines(points: np.ndarray, bones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bones whose both joints are finite, as ``(points (J, 3), lines (L, 2))``.

    ``lines`` indexes ``points`` (NaN rows stay in ``points`` but no line uses them).
    """
    points = np.asarray(points, dtype=np.float64)
    bones = np.asarray(bones, dtype=np.int64).reshape(-1, 2)
    finite = np.isfinite(points).all(axis=-1)
    keep = finite[bones[:, 0]] & finite[bones[:, 1]] if len(bones) else np.zeros(0, bool)
    return points, bones[keep]


def tube_triangles(n_tubes: int, sides: int) -> np.ndarray:
    """(n_tubes * 2 * sides, 3) triangle indices of open tubes (ring of ``sides`` at each end).

    Vertex layout per tube: ``sides`` vertices at the start, then ``sides`` at
    the end; triangles wind counter-clockwise seen from outside.
    """
    k = np.arange(sides)
    k1 = (k + 1) % sides
    one = np.concatenate([np.stack([k, k1, sides + k1], -1), np.stack([k, sides + k1, sides + k], -1)])
    base = (np.arange(n_tubes) * 2 * sides)[:, None, None]
    return (one[None] + base).reshape(-1, 3).astype(np.int32)


def tube_mesh(starts: np.ndarray, ends: np.ndarray, radius: float, sides: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and normals ``(n * 2 * sides, 3)`` of tubes from ``starts`` (n, 3) to ``ends`` (n, 3).

    Tubes with a non-finite or zero-length axis collapse to a single point at the
    origin (their triangles have zero area and draw nothing), so the vertex count,
    and the triangle list from :func:`tube_triangles`, never change.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 3)
    ends = np.asarray(ends, dtype=np.float64).reshape(-1, 3)
    axis = ends - starts
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    ok = (np.isfinite(length) & (length > 1e-12))[:, 0]
    u = np.where(ok[:, None], axis / np.where(ok[:, None], length, 1.0), [0.0, 0.0, 1.0])
    helper = np.where((np.abs(u[:, 0]) < 0.9)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    n1 = np.cross(u, helper)
    n1 /= np.linalg.norm(n1, axis=-1, keepdims=True)
    n2 = np.cross(u, n1)
    theta = 2.0 * np.pi * np.arange(sides) / sides
    ring = np.cos(theta)[None, :, None] * n1[:, None, :] + np.sin(theta)[None, :, None] * n2[:, None, :]
    verts = np.concatenate([starts[:, None] + radius * ring, ends[:, None] + radius * ring], axis=1)
    normals = np.concatenate([ring, ring], axis=1)
    verts[~ok] = 0.0
    return verts.reshape(-1, 3), normals.reshape(-1, 3)


def unit_sphere(subdivisions: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) on the unit sphere and outward triangles (T, 3): a subdivided icosahedron."""
    p = (1.0 + 5.0**0.5) / 2.0
    verts = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
                      [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], float)
    tris = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                     [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                     [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
    verts /= np.linalg.norm(verts, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mids = verts[uniq].mean(axis=1)
        mids /= np.linalg.norm(mids, axis=1, keepdims=True)
        m = len(verts) + inv.reshape(3, -1)  # mid-vertex of edges (a,b), (b,c), (c,a)
        a, b, c = tris.T
        tris = np.concatenate([np.stack([a, m[0], m[2]], 1), np.stack([b, m[1], m[0]], 1),
                               np.stack([c, m[2], m[1]], 1), np.stack([m[0], m[1], m[2]], 1)])
        verts = np.concatenate([verts, mids])
    return verts, tris.astype(np.int32)


def spheres_mesh(centers: np.ndarray, radius: float, unit: np.ndarray) -> np.ndarray:
    """Vertices (J * V, 3) of one sphere per centre (J, 3); non-finite centres collapse to the origin."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    ok = np.isfinite(centers).all(axis=-1)
    verts = np.where(ok[:, None, None], np.nan_to_num(centers)[:, None, :] + radius * unit[None], 0.0)
    return verts.reshape(-1, 3)


# ------------------------------------------------------------- cameras
def frustum_arrays(rig: Rig, depth: float, skip=()) -> tuple[np.ndarray, np.ndarray]:
    """Camera frusta as ``points (C * 6, 3)`` and ``lines (C * 10, 2)`` (C: cameras not named in ``skip``).

    Per camera: its centre, the four image corners (pixel-centre convention:
    the outer edges of the corner pixels) back-projected through ``K`` to the
    plane ``depth`` metres in front of it, and a small triangle above the top
    edge that tells image-up.  Lens distortion is left out (the pinhole
    frustum).
    """
    pts, lines = [], []
    for cam in rig:
        if cam.name in skip:
            continue
        i = len(pts)
        w, h = cam.size
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        top_mid = np.array([(w - 1) / 2.0, -0.5 - 0.25 * h])
        pix = np.vstack([corners, top_mid])
        ray = np.hstack([pix, np.ones((5, 1))]) @ np.linalg.inv(cam.matrix).T
        cam_pts = np.vstack([np.zeros(3), ray * depth])
        pts.append((cam_pts - cam.tvec) @ cam.R)  # camera -> world: R^T (x - t)
        b = 6 * i
        lines += [[b, b + 1], [b, b + 2], [b, b + 3], [b, b + 4],
                  [b + 1, b + 2], [b + 2, b + 3], [b + 3, b + 4], [b + 4, b + 1],
                  [b + 1, b + 5], [b + 5, b + 2]]
    return np.array(pts).reshape(-1, 3), np.array(lines, dtype=np.int32).reshape(-1, 2)


# ------------------------------------------------------------- floor
def grid_arrays(xy_min, xy_max, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Floor grid on z = 0 covering ``[xy_min, xy_max]`` (snapped outwards to ``spacing``).

    Returns ``points (2 * (nx + ny), 3)`` and ``lines (nx + ny, 2)``; one grid
    line always passes through the origin.
    """
    lo = np.floor(np.asarray(xy_min, float) / spacing) * spacing
    hi = np.ceil(np.asarray(xy_max, float) / spacing) * spacing
    xs = np.arange(round((hi[0] - lo[0]) / spacing) + 1) * spacing + lo[0]
    ys = np.arange(round((hi[1] - lo[1]) / spacing) + 1) * spacing + lo[1]
    a = np.stack([np.stack([xs, np.full_like(xs, lo[1])], 1), np.stack([xs, np.full_like(xs, hi[1])], 1)], 1)
    b = np.stack([np.stack([np.full_like(ys, lo[0]), ys], 1), np.stack([np.full_like(ys, hi[0]), ys], 1)], 1)
    seg = np.concatenate([a, b]).reshape(-1, 2)
    points = np.hstack([seg, np.zeros((len(seg), 1))])
    lines = np.arange(len(points), dtype=np.int32).reshape(-1, 2)
    return points, lines


# ------------------------------------------------------------- sizing
@dataclass
class SceneStyle:
    """Sizes in metres; ``None`` means derived from the rig's size."""

    joint_radius: float = 0.032
    bone_radius: float = 0.016
    tube_sides: int = 8
    sphere_subdivisions: int = 1
    frustum_depth: float | None = None
    grid_spacing: float | None = None
    axes_size: float | None = None
    background: np.ndarray = field(default_factory=lambda: BACKGROUND.copy())
    color_by: str = "person"  # several people: "person" (bones in each one's colour) or "views" (see COLOR_MODES)

    def __post_init__(self) -> None:
        if self.color_by not in COLOR_MODES:
            raise ValueError(f"color_by must be one of {', '.join(COLOR_MODES)}, got {self.color_by!r}")


def rig_extent(rig: Rig) -> float:
    """Typical size of the capture volume: the median camera distance from the cameras' centroid (m)."""
    c = rig.centers
    if len(c) < 2:
        return 3.0
    return float(max(np.median(np.linalg.norm(c - c.mean(axis=0), axis=1)), 0.5))


def floor_bounds(rig: Rig, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """xy bounds of the floor grid: the cameras' footprint (and the origin) plus ``margin``."""
    xy = np.vstack([rig.centers[:, :2], np.zeros((1, 2))])
    return xy.min(axis=0) - margin, xy.max(axis=0) + margin


# ------------------------------------------------------------- Open3D scene
class SkeletonScene:
    """Open3D geometries of one rig and one skeleton; :meth:`update` moves the skeleton.

    ``skeleton`` may be ``None`` (or have no bones): joints are then drawn
    without bones.  ``n_joints`` fixes the joint count when there is no
    skeleton (0: the rig only, until :meth:`set_skeleton`).  ``hide_frusta``
    names cameras whose frustum is left out (the one a view looks through
    would only outline the image border).
    """

    def __init__(self, rig: Rig, skeleton: Skeleton | None, n_joints: int | None = None,
                 style: SceneStyle | None = None, hide_frusta=()):
        import open3d as o3d

        self._o3d = o3d
        self.rig = rig
        self.style = style or SceneStyle()
        self.max_views = max(len(rig), 2)
        extent = rig_extent(rig)
        st = self.style

        # static: floor, axes, frusta
        spacing = st.grid_spacing or (0.5 if extent < 8 else 1.0)
        g_pts, g_lines = grid_arrays(*floor_bounds(rig, max(0.5, 0.25 * extent)), spacing)
        self.grid = self._lineset(g_pts, g_lines, GRID_COLOR)
        self.axes = o3d.geometry.TriangleMesh.create_coordinate_frame(size=st.axes_size or 0.12 * extent)
        f_pts, f_lines = frustum_arrays(rig, st.frustum_depth or 0.1 * extent, hide_frusta)
        self.frusta = self._lineset(f_pts, f_lines, FRUSTUM_COLOR)

        # dynamic: joints (spheres) and bones (tubes), fixed topology between set_skeleton calls
        self._unit_sphere, self._sphere_tris = unit_sphere(st.sphere_subdivisions)
        self.joints = o3d.geometry.TriangleMesh()
        self.bone_mesh = o3d.geometry.TriangleMesh()
        self.n_persons = 1
        self.person_ids = None  # (P,) with several people
        self.labels: list = []  # (position, text) per person shown, for a window that draws text
        self.topology = 0  # counts set_skeleton calls: a window re-uploads the meshes' triangles only when it moves
        self.set_skeleton(skeleton, n_joints)

    def set_skeleton(self, skeleton: Skeleton | None, n_joints: int | None = None, n_persons: int = 1) -> None:
        """(Re)build the skeleton meshes' topology, in the same Open3D objects, all joints hidden.

        ``n_persons`` copies of the skeleton (several people: see :meth:`update`)."""
        if skeleton is not None and n_joints is not None and n_joints != skeleton.n_joints:
            raise ValueError(f"skeleton {skeleton.name} has {skeleton.n_joints} joints, points have {n_joints}")
        vec3, vec3i = self._o3d.utility.Vector3dVector, self._o3d.utility.Vector3iVector
        self.topology += 1
        self.skeleton = skeleton
        self.n_persons = int(n_persons)
        self.n_joints = skeleton.n_joints if skeleton is not None else int(n_joints or 0)
        one = skeleton.bones if skeleton is not None else np.zeros((0, 2), np.int64)
        self._person_bones = len(one)
        self.bones = (one[None] + (np.arange(self.n_persons) * self.n_joints)[:, None, None]).reshape(-1, 2)
        nj, nv, sides = self.n_joints * self.n_persons, len(self._unit_sphere), self.style.tube_sides
        self.joints.vertices = vec3(np.zeros((nj * nv, 3)))
        self.joints.triangles = vec3i((self._sphere_tris[None] + (np.arange(nj) * nv)[:, None, None]).reshape(-1, 3))
        self.joints.vertex_normals = vec3(np.tile(self._unit_sphere, (nj, 1)))
        self.joints.vertex_colors = vec3(np.zeros((nj * nv, 3)))
        nb = len(self.bones)
        colors = bone_colors(skeleton) if skeleton is not None else np.zeros((0, 3))
        colors = np.tile(colors, (self.n_persons, 1))
        self.bone_mesh.vertices = vec3(np.zeros((nb * 2 * sides, 3)))
        self.bone_mesh.triangles = vec3i(tube_triangles(nb, sides))
        self.bone_mesh.vertex_colors = vec3(np.repeat(colors, 2 * sides, axis=0))
        self.bone_mesh.vertex_normals = vec3(np.zeros((nb * 2 * sides, 3)))

    def _lineset(self, points, lines, color):
        o3d = self._o3d
        ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points), o3d.utility.Vector2iVector(lines))
        ls.colors = o3d.utility.Vector3dVector(np.tile(color, (len(lines), 1)))
        return ls

    @property
    def static_geometries(self) -> list:
        return [g for g in (self.grid, self.axes, self.frusta) if not g.is_empty()]

    @property
    def dynamic_geometries(self) -> list:
        """The non-empty geometries :meth:`update` changes (hand these to ``update_geometry``)."""
        return [g for g in (self.joints, self.bone_mesh) if not g.is_empty()]

    @property
    def geometries(self) -> list:
        return self.static_geometries + self.dynamic_geometries

    def update(self, points: np.ndarray, n_views: np.ndarray | None = None, person_ids=None) -> None:
        """Move the skeleton to ``points`` (J, 3) coloured by ``n_views`` (J,): arrays only, no rebuild.

        Several people: ``points`` (P, J, 3), ``n_views`` (P, J), ``person_ids``
        (P,): joints keep their views colours, each person's bones take the
        person's own colour (:func:`person_colors`; with ``style.color_by ==
        "views"`` the one-person colours), and :attr:`labels` says where each
        id goes.  A change in the number of people rebuilds the topology (cheap)."""
        vec3 = self._o3d.utility.Vector3dVector
        points = np.asarray(points, dtype=np.float64)
        if points.ndim == 3:
            ids = np.arange(1, len(points) + 1) if person_ids is None else np.asarray(person_ids).ravel()
            if len(ids) != len(points):
                raise ValueError(f"person_ids has {len(ids)} ids for {len(points)} people")
            if len(points) != self.n_persons or self.person_ids is None:
                self.set_skeleton(self.skeleton, self.n_joints if self.skeleton is None else None, len(points))
            self.person_ids = ids
            self.labels = person_labels(points, ids)
            nv = None if n_views is None else np.asarray(n_views).reshape(-1)
            self._draw(points.reshape(-1, 3), nv)
            if self._person_bones and self.style.color_by == "person":
                colors = np.repeat(person_colors(ids), self._person_bones, axis=0)
                self.bone_mesh.vertex_colors = vec3(np.repeat(colors, 2 * self.style.tube_sides, axis=0))
            return
        if self.n_persons != 1 or self.person_ids is not None:
            self.person_ids, self.labels = None, []
            self.set_skeleton(self.skeleton, self.n_joints if self.skeleton is None else None, 1)
        self._draw(points, n_views)

    def _draw(self, points: np.ndarray, n_views: np.ndarray | None) -> None:
        vec3 = self._o3d.utility.Vector3dVector
        total = self.n_joints * self.n_persons
        if points.shape != (total, 3):
            raise ValueError(f"points must have shape ({self.n_joints}, 3), got {points.shape}")
        n_views = np.full(total, -1) if n_views is None else np.asarray(n_views)
        if n_views.shape != (total,):
            raise ValueError(f"n_views must have shape ({self.n_joints},), got {n_views.shape}")
        st = self.style
        self.joints.vertices = vec3(spheres_mesh(points, st.joint_radius, self._unit_sphere))
        self.joints.vertex_colors = vec3(np.repeat(n_views_colors(n_views, self.max_views), len(self._unit_sphere), axis=0))
        if len(self.bones):
            verts, normals = tube_mesh(points[self.bones[:, 0]], points[self.bones[:, 1]], st.bone_radius, st.tube_sides)
            self.bone_mesh.vertices = vec3(verts)
            self.bone_mesh.vertex_normals = vec3(normals)
