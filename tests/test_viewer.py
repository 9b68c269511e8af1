"""Viewer: scene geometry as plain arrays, views, and headless renders checked against the projection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from triangulate.skeletons import HALPE26
from viewer import scene, views
from viewer.render import Renderer, canvas_for, render_snapshot, render_video
from viewer.samples import ring_rig, stick_figure, swaying_figure

BG = np.round(scene.BACKGROUND * 255).astype(int)


@pytest.fixture(scope="module")
def rig():
    return ring_rig(4)


@pytest.fixture(scope="module")
def person():
    return stick_figure()


def n_views_pattern(n_joints=26, max_views=4):
    return 2 + np.arange(n_joints) % (max_views - 1)


# ------------------------------------------------------------------ colours
def test_n_views_colors_map_ends_and_special_values():
    cols = scene.n_views_colors(np.array([2, 4, 3, -1, 0, np.nan, 9, 1]), max_views=4)
    np.testing.assert_allclose(cols[0], scene.VIEWS_COLORMAP[0])
    np.testing.assert_allclose(cols[1], scene.VIEWS_COLORMAP[-1])
    np.testing.assert_allclose(cols[2], scene.VIEWS_COLORMAP[1])  # halfway: the middle anchor
    np.testing.assert_allclose(cols[3], scene.JOINT_UNKNOWN_VIEWS)
    np.testing.assert_allclose(cols[4], scene.JOINT_NO_VIEWS)
    np.testing.assert_allclose(cols[5], scene.JOINT_UNKNOWN_VIEWS)
    np.testing.assert_allclose(cols[6], scene.VIEWS_COLORMAP[-1])  # clipped
    np.testing.assert_allclose(cols[7], scene.VIEWS_COLORMAP[0])
    assert scene.n_views_colors(np.zeros((5, 7)), 4).shape == (5, 7, 3)


def test_bone_colors_follow_body_side():
    cols = scene.bone_colors(HALPE26)
    for (a, b), c in zip(HALPE26.bone_names, cols):
        side = {"left" in a + b, "right" in a + b}
        if "left" in a and "left" in b:
            np.testing.assert_allclose(c, scene.BONE_LEFT)
        elif "right" in a and "right" in b:
            np.testing.assert_allclose(c, scene.BONE_RIGHT)
        elif side == {False}:
            np.testing.assert_allclose(c, scene.BONE_CENTER)


# ------------------------------------------------------------------ skeleton geometry
def test_skeleton_lines_drop_bones_with_missing_joints(person):
    pts = person.copy()
    pts[HALPE26.index("left_knee")] = np.nan
    out, lines = scene.skeleton_lines(pts, HALPE26.bones)
    knee = HALPE26.index("left_knee")
    assert len(lines) == len(HALPE26.bones) - 2
    assert not (lines == knee).any()
    assert out is pts or np.array_equal(out, pts, equal_nan=True)


def test_tube_mesh_is_a_tube_of_the_given_radius():
    rng = np.random.default_rng(1)
    starts, ends = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    ends[2] = starts[2] + [0.0, 0.0, 1.0]  # axis along z
    ends[3] = starts[3] + [1.0, 0.0, 0.0]  # axis along x (the other helper axis)
    sides, r = 8, 0.02
    verts, normals = scene.tube_mesh(starts, ends, r, sides)
    verts, normals = verts.reshape(6, 2 * sides, 3), normals.reshape(6, 2 * sides, 3)
    axis = (ends - starts) / np.linalg.norm(ends - starts, axis=1, keepdims=True)
    rel = verts - np.concatenate([np.repeat(starts[:, None], sides, 1), np.repeat(ends[:, None], sides, 1)], 1)
    np.testing.assert_allclose(np.linalg.norm(rel, axis=-1), r, rtol=1e-9)
    np.testing.assert_allclose(np.einsum("bvk,bk->bv", rel, axis), 0.0, atol=1e-12)
    np.testing.assert_allclose(normals * r, rel, atol=1e-12)
    # triangles wind counter-clockwise seen from outside
    tris = scene.tube_triangles(6, sides)
    v = verts.reshape(-1, 3)
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    outward = normals.reshape(-1, 3)[tris].sum(axis=1)
    assert (np.einsum("tk,tk->t", n, outward) > 0).all()
    assert tris.max() == 6 * 2 * sides - 1


def test_tube_mesh_collapses_missing_bones():
    starts = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1.0, 1, 1]])
    ends = np.array([[0.0, 0, 1], [0.0, 0, 1], [1.0, 1, 1]])  # last: zero length
    verts, normals = scene.tube_mesh(starts, ends, 0.01, 6)
    assert np.isfinite(verts).all() and np.isfinite(normals).all()
    np.testing.assert_array_equal(verts.reshape(3, 12, 3)[1:], 0.0)


def test_unit_sphere_is_closed_and_outward():
    verts, tris = scene.unit_sphere(1)
    np.testing.assert_allclose(np.linalg.norm(verts, axis=1), 1.0)
    edges = {tuple(sorted(e)) for t in tris for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    assert len(verts) - len(edges) + len(tris) == 2  # Euler characteristic of a sphere
    n = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    assert (np.einsum("tk,tk->t", n, verts[tris].mean(axis=1)) > 0).all()


def test_spheres_mesh_places_and_hides_joints():
    unit, _ = scene.unit_sphere(0)
    centers = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 0.0]])
    v = scene.spheres_mesh(centers, 0.1, unit).reshape(2, len(unit), 3)
    np.testing.assert_allclose(np.linalg.norm(v[0] - centers[0], axis=1), 0.1)
    np.testing.assert_array_equal(v[1], 0.0)


# ------------------------------------------------------------------ rig geometry
def test_frusta_back_project_the_image_corners(rig):
    depth = 0.4
    pts, lines = scene.frustum_arrays(rig, depth)
    assert pts.shape == (6 * len(rig), 3) and lines.shape == (10 * len(rig), 2)
    for i, cam in enumerate(rig):
        p = pts[6 * i: 6 * i + 6]
        np.testing.assert_allclose(p[0], cam.center, atol=1e-9)
        np.testing.assert_allclose(cam.world_to_camera(p[1:])[:, 2], depth, atol=1e-9)
        w, h = cam.size
        np.testing.assert_allclose(cam.project(p[1:5]), [[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                                                         [-0.5, h - 0.5]], atol=1e-6)
        assert cam.project(p[5])[1] < -0.5  # the "up" marker sits above the image
    pts, lines = scene.frustum_arrays(rig, depth, skip={"cam_0"})
    assert len(pts) == 6 * (len(rig) - 1) and lines.max() == len(pts) - 1


def test_grid_lies_on_the_floor_and_covers_the_bounds():
    pts, lines = scene.grid_arrays((-1.2, -0.3), (2.1, 0.8), 0.5)
    assert (pts[:, 2] == 0).all()
    assert pts[:, 0].min() <= -1.2 and pts[:, 0].max() >= 2.1
    assert pts[:, 1].min() <= -0.3 and pts[:, 1].max() >= 0.8
    seg = pts[lines]
    assert any((s[:, 0] == 0).all() for s in seg) and any((s[:, 1] == 0).all() for s in seg)


def test_scene_update_changes_arrays_not_topology(rig, person):
    sc = scene.SkeletonScene(rig, HALPE26)
    tris = (len(sc.joints.triangles), len(sc.bone_mesh.triangles))
    sc.update(person, np.full(26, 4))
    v0 = np.asarray(sc.joints.vertices).copy()
    moved = person + [0.1, 0.0, 0.0]
    moved[3] = np.nan
    sc.update(moved, n_views_pattern())
    assert (len(sc.joints.triangles), len(sc.bone_mesh.triangles)) == tris
    v1 = np.asarray(sc.joints.vertices).reshape(26, -1, 3)
    np.testing.assert_allclose(v1[0] - v0.reshape(26, -1, 3)[0], [[0.1, 0.0, 0.0]] * v1.shape[1], atol=1e-12)
    np.testing.assert_array_equal(v1[3], 0.0)
    cols = np.asarray(sc.joints.vertex_colors).reshape(26, -1, 3)[:, 0]
    np.testing.assert_allclose(cols, scene.n_views_colors(n_views_pattern(), len(rig)))
    with pytest.raises(ValueError, match="shape"):
        sc.update(person[:17])


# ------------------------------------------------------------------ views
def test_look_at_puts_the_target_at_the_centre_with_z_up():
    cam = views.look_at((4.0, -3.0, 2.5), (0.0, 0.0, 1.0), (800, 600))
    assert np.isclose(np.linalg.det(cam.R), 1.0)
    np.testing.assert_allclose(cam.project(np.array([0.0, 0.0, 1.0])), [399.5, 299.5], atol=1e-9)
    above = cam.project(np.array([0.0, 0.0, 1.5]))
    assert above[1] < 299.5 and abs(above[0] - 399.5) < 1e-6
    np.testing.assert_allclose(cam.center, [4.0, -3.0, 2.5])


def test_volume_center_is_where_the_cameras_look(rig):
    np.testing.assert_allclose(views.volume_center(rig), [0.0, 0.0, 1.0], atol=1e-9)


@pytest.mark.parametrize("azimuth", [-60.0, 30.0, 170.0])
def test_overview_frames_every_camera_and_joint(rig, person, azimuth):
    cam = views.overview(rig, person, (1280, 720), azimuth_deg=azimuth, elevation_deg=25.0)
    uv = cam.project(np.vstack([rig.centers, person]))
    assert np.isfinite(uv).all()
    assert (uv >= 0).all() and (uv[:, 0] < 1280).all() and (uv[:, 1] < 720).all()
    assert cam.center[2] > 1.0  # elevated


def test_from_camera_rescales_consistently(rig, person):
    big = views.from_camera(rig, "cam_2")
    small = views.from_camera(rig, 2, (320, 240))
    np.testing.assert_allclose((small.project(person) + 0.5) * 2.0 - 0.5, big.project(person), atol=1e-9)


def test_canvas_warp_maps_canvas_pixels_onto_view_pixels(rig, person):
    for cam in rig:
        (cw, ch), k, warp = canvas_for(cam)
        assert warp is not None
        canvas_uv = cam.world_to_camera(person)
        canvas_uv = (canvas_uv[:, :2] / canvas_uv[:, 2:]) * k[[0, 1], [0, 1]] + k[:2, 2]
        view_uv = cam.project(person)
        np.testing.assert_allclose(np.c_[view_uv, np.ones(len(view_uv))] @ warp.T, canvas_uv, atol=1e-9)
        assert np.isclose(k[0, 2], cw / 2 - 0.5) and np.isclose(k[1, 2], ch / 2 - 0.5)
    centred = views.look_at((3, 0, 2), (0, 0, 1), (640, 480))
    assert canvas_for(centred)[2] is None


# ------------------------------------------------------------------ rendering
def skeleton_region(view, points, style=scene.SceneStyle(), bones=HALPE26.bones, margin_px=2.5):
    """Pixels where the drawn skeleton may appear: projected spheres and tubes, plus a margin."""
    h, w = view.size[1], view.size[0]
    mask = np.zeros((h, w), np.uint8)
    uv = view.project(points)
    z = view.world_to_camera(points)[:, 2]
    f = view.focal.max()
    r_joint = f * style.joint_radius / z * 1.15 + margin_px
    r_bone = f * style.bone_radius / z * 1.15 + margin_px
    scale = 16  # cv2 drawing with 4 fractional bits
    for (u, v), r in zip(uv, r_joint):
        cv2.circle(mask, (int(round(u * scale)), int(round(v * scale))), int(np.ceil(r * scale)), 1, -1, cv2.LINE_8, 4)
    for a, b in bones:
        t = int(np.ceil(2 * max(r_bone[a], r_bone[b])))
        cv2.line(mask, tuple(np.round(uv[a] * scale).astype(int)), tuple(np.round(uv[b] * scale).astype(int)),
                 1, t, cv2.LINE_8, 4)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def camera_renders(rig, person):
    """For each rig camera: the view, the render with the skeleton and the render with none."""
    out = []
    for i in range(len(rig)):
        view = views.from_camera(rig, i)
        with Renderer(rig, HALPE26, view) as r:
            with_skel = r.render(person, n_views_pattern())
            empty = r.render(np.full_like(person, np.nan))
        out.append((view, with_skel, empty))
    return out


def test_render_from_camera_puts_skeleton_pixels_where_the_projection_says(camera_renders, person):
    for view, img, empty in camera_renders:
        assert img.shape == (view.size[1], view.size[0], 3) and img.dtype == np.uint8
        changed = np.abs(img.astype(int) - empty).sum(axis=-1) > 0
        # every joint: a skeleton pixel within 2 px of where the camera model projects it
        dist = cv2.distanceTransform((~changed).astype(np.uint8), cv2.DIST_L2, 5)
        uv = view.project(person)
        near = dist[np.round(uv[:, 1]).astype(int), np.round(uv[:, 0]).astype(int)]
        assert (near <= 2.0).all(), f"{view.name}: joints without skeleton pixels nearby: {near.round(1)}"
        # and no skeleton pixel anywhere the projected skeleton is not
        allowed = skeleton_region(view, person)
        stray = changed & ~allowed
        assert stray.sum() <= 0.002 * changed.sum(), f"{view.name}: {stray.sum()} skeleton pixels off the projection"
        frac = changed.mean()
        assert 0.003 < frac < 0.1, f"{view.name}: skeleton covers {frac:.2%} of the image"


@pytest.mark.parametrize("size", [None, (320, 200)])
def test_rendered_joint_centres_match_the_projection_to_subpixel(rig, size):
    """A lone joint's sphere, seen from each rig camera (off-centre principal point, fx != fy,
    optionally rescaled), is centred on ``view.project`` to well under a pixel."""
    rng = np.random.default_rng(3)
    targets = rng.uniform([-1.0, -1.0, 0.2], [1.0, 1.0, 1.9], size=(6, 3))
    for i in range(len(rig)):
        view = views.from_camera(rig, i, size)
        with Renderer(rig, None, view, n_joints=1) as r:
            empty = r.render(np.full((1, 3), np.nan)).astype(int)
            for p in targets:
                diff = np.abs(r.render(p[None], np.array([4])).astype(int) - empty).sum(axis=-1)
                ys, xs = np.nonzero(diff)
                wgt = diff[ys, xs]
                centre = np.array([(xs * wgt).sum(), (ys * wgt).sum()]) / wgt.sum()
                err = np.linalg.norm(centre - view.project(p))
                assert err < 0.75, f"{view.name} {view.size}: sphere centre {err:.2f} px off the projection"


def test_render_from_camera_is_not_blank_and_mostly_background(camera_renders):
    for view, img, _ in camera_renders:
        is_bg = (img.astype(int) == BG).all(axis=-1)
        assert 0.3 < is_bg.mean() < 0.97, f"{view.name}: background fraction {is_bg.mean():.2f}"
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20  # grid, frusta, skeleton shading


def test_joint_colour_shows_the_number_of_views(rig):
    view = views.from_camera(rig, 0)
    joint = np.array([[0.0, 0.0, 1.0]])
    u, v = np.round(view.project(joint)[0]).astype(int)
    with Renderer(rig, None, view, n_joints=1) as r:
        few = r.render(joint, np.array([2]))[v, u].astype(int)
        many = r.render(joint, np.array([4]))[v, u].astype(int)
    assert few[0] > few[1] + 60 and few[0] > few[2] + 60  # red
    assert many[1] > many[0] + 60 and many[1] > many[2] + 60  # green


def test_missing_joints_draw_nothing(rig):
    view = views.from_camera(rig, 1)
    with Renderer(rig, HALPE26, view) as r:
        nan_skeleton = r.render(np.full((26, 3), np.nan))
    with Renderer(rig, None, view, n_joints=0) as r:
        no_skeleton = r.render(np.zeros((0, 3)))
    np.testing.assert_array_equal(nan_skeleton, no_skeleton)


def test_snapshot_overview_png(rig, person, tmp_path):
    out = tmp_path / "snap.png"
    img = render_snapshot(rig, HALPE26, person, n_views_pattern(), out, size=(960, 540))
    back = cv2.imread(str(out))[..., ::-1]
    np.testing.assert_array_equal(back, img)
    empty = render_snapshot(rig, HALPE26, np.full_like(person, np.nan), size=(960, 540))
    changed = np.abs(img.astype(int) - empty).sum(axis=-1) > 0
    view = views.overview(rig, person, (960, 540))
    uv = view.project(person)
    dist = cv2.distanceTransform((~changed).astype(np.uint8), cv2.DIST_L2, 5)
    assert (dist[np.round(uv[:, 1]).astype(int), np.round(uv[:, 0]).astype(int)] <= 2.0).all()
    assert not (changed & ~skeleton_region(view, person)).any()
    # the rig is drawn: frusta pixels near every camera centre
    frustum = np.abs(img.astype(int) - np.round(scene.FRUSTUM_COLOR * 255)).sum(-1) < 40
    fd = cv2.distanceTransform((~frustum).astype(np.uint8), cv2.DIST_L2, 5)
    cuv = view.project(rig.centers)
    assert (fd[np.round(cuv[:, 1]).astype(int), np.round(cuv[:, 0]).astype(int)] <= 3.0).all()


def test_snapshot_without_bones_for_unknown_skeleton(rig, person):
    img = render_snapshot(rig, None, person[:20], None, view="cam_0")
    empty = render_snapshot(rig, None, np.full((20, 3), np.nan), None, view="cam_0")
    changed = np.abs(img.astype(int) - empty).sum(axis=-1) > 0
    view = views.from_camera(rig, 0)
    assert not (changed & ~skeleton_region(view, person[:20], bones=np.zeros((0, 2), int))).any()
    assert changed.any()


def test_render_video_png_frames_and_mp4(rig, tmp_path):
    seq = swaying_figure(6)
    nv = np.tile(n_views_pattern(), (6, 1))
    frames_dir = render_video(rig, HALPE26, seq, nv, tmp_path / "frames", fps=10, size=(320, 180))
    pngs = sorted(frames_dir.glob("frame_*.png"))
    assert len(pngs) == 6
    first, last = cv2.imread(str(pngs[0])), cv2.imread(str(pngs[-1]))
    assert first.shape == (180, 320, 3) and np.abs(first.astype(int) - last).sum() > 0
    mp4 = render_video(rig, HALPE26, seq, None, tmp_path / "seq.mp4", fps=10, size=(320, 180),
                       view="cam_1", frames=[0, 2, 4])
    cap = cv2.VideoCapture(str(mp4))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 3
