"""Several people in the viewer: each in their own colour with their id, in snapshots, videos and the window."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import save_rig
from rigcap.cli import main
from triangulate.formats import Points3D
from triangulate.skeletons import HALPE26
from viewer import scene, views
from viewer.render import render_snapshot
from viewer.samples import ring_rig, stick_figure

from tests.people_pixels import bone_midpoints, chroma_match, share_near

IDS = np.array([7, 2, 5])


@pytest.fixture(scope="module")
def rig():
    return ring_rig(4, size=(640, 480), focal=480.0)


ACROSS = np.array([-np.sin(0.3), np.cos(0.3)])  # across camera 0's view (ring_rig: camera 0 at 0.3 rad)


def people(shift=0.0):
    """(3, 26, 3): three standing people 1.2 m apart side by side as camera 0 sees them, turned differently."""
    return np.stack([stick_figure(t * ACROSS + [shift, 0.0], yaw) for t, yaw in zip((-1.2, 0.0, 1.2), (0.0, 1.2, 2.4))])


def label_region(img: np.ndarray, view, pts: np.ndarray, colour: np.ndarray) -> int:
    """Pixels of exactly ``colour`` (text is drawn flat, unshaded) within 40 px of where the id label goes."""
    pos = scene.person_labels(pts[None], [1])[0][0]
    u, v = np.round(view.project(pos[None])[0]).astype(int)
    box = img[max(v - 40, 0):v + 40, max(u - 40, 0):u + 40].astype(int)
    return int((np.abs(box - np.round(colour * 255)).max(-1) <= 2).sum())


def check_people(img, view, pts, ids, by_person=True):
    """Each person's bones in their own colour (or not: colour by views), their id in it above the head."""
    colours = scene.person_colors(ids)
    for k, (p, colour) in enumerate(zip(pts, colours)):
        if not np.isfinite(p).all():
            assert label_region(img, view, np.nan_to_num(p), colour) == 0 if np.isfinite(p).any() else True
            continue
        own = share_near(chroma_match(img, colour), bone_midpoints(view, p))
        others = max(share_near(chroma_match(img, c), bone_midpoints(view, p), radius=1)
                     for j, c in enumerate(colours) if j != k)
        if by_person:
            assert own >= 0.7 and others < 0.2, (ids[k], own, others)  # the rest: under joint spheres
        else:
            assert own < 0.2, (ids[k], own)
        assert label_region(img, view, p, colour) > 15, ids[k]  # "P<id>" drawn in the person's colour


@pytest.mark.parametrize("color_by", ["person", "views"])
def test_snapshot_draws_everybody_in_their_colour_with_their_id(rig, color_by):
    view = views.from_camera(rig, 0)
    pts = people()
    img = render_snapshot(rig, HALPE26, pts, np.full((3, 26), 4), view=view, person_ids=IDS,
                          style=scene.SceneStyle(color_by=color_by))
    check_people(img, view, pts, IDS, by_person=color_by == "person")
    if color_by == "views":  # the one-person colours: left bones blue on everybody
        left = np.array([i for i, (a, b) in enumerate(HALPE26.bone_names) if "left" in a + b and "right" not in a + b])
        b = HALPE26.bones[left]
        mids = view.project(0.5 * (pts[:, b[:, 0]] + pts[:, b[:, 1]]).reshape(-1, 3))
        assert share_near(chroma_match(img, scene.BONE_LEFT), mids) > 0.7


def test_view_video_of_a_multi_person_file(rig, tmp_path):
    """`rigcap view --video` plays a multi-person file: everybody, each in their colour, ids drawn;
    someone who is not there in a frame has no bones and no label there."""
    n_f = 6
    pts = np.stack([people(0.1 * f) for f in range(n_f)], axis=1)  # (3, F, 26, 3)
    pts[1, 3:] = np.nan  # P2 leaves
    Points3D(pts, list(HALPE26.joint_names), n_views=np.full(pts.shape[:3], 3), fps=30.0,
             person_ids=IDS).save(tmp_path / "people.npz")
    save_rig(rig, tmp_path / "rig.toml")
    out = tmp_path / "frames"
    assert main(["view", "--rig", str(tmp_path / "rig.toml"), "--points", str(tmp_path / "people.npz"),
                 "--video", str(out), "--from-camera", "cam_0"]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == n_f
    view = views.from_camera(rig, 0)
    for f in (0, 4):
        img = cv2.imread(str(frames[f]))[..., ::-1]
        check_people(img, view, pts[:, f], IDS)
    gone = cv2.imread(str(frames[4]))[..., ::-1]
    assert share_near(chroma_match(gone, scene.person_colors([2])[0]), bone_midpoints(view, pts[1, 0] + [0.4, 0, 0])) < 0.1


def test_window_writes_each_id_above_its_person_and_drops_who_left(rig):
    from viewer.window import SceneWindow

    pts = people()
    stream = iter([(pts, np.full((3, 26), 4), IDS)] + [None] * 3 + [(pts[:2], np.full((2, 26), 4), IDS[:2])]
                  + [None] * 3)
    win = SceneWindow(rig, HALPE26, (640, 480), visible=False)
    seen = []

    def tick(w):
        if w.updates:
            labels = {t: np.asarray(m.vertices).mean(0) for t, (m, _) in w._labels.items()}
            colours = {t: np.asarray(m.vertex_colors)[0] for t, (m, _) in w._labels.items()}
            seen.append((w.updates, labels, colours))

    win.run(lambda: next(stream, None), rate_hz=200.0, max_seconds=0.4, on_tick=tick)
    first = next(s for s in seen if s[0] == 1)
    last = next(s for s in seen if s[0] == 2)
    assert set(first[1]) == {"P7", "P2", "P5"} and set(last[1]) == {"P7", "P2"}
    for (pos, text), p in zip(scene.person_labels(pts, IDS), pts):
        assert np.linalg.norm(first[1][text] - pos) < 0.15  # centred on the label's place above the head
        np.testing.assert_allclose(first[2][text], scene.person_colors([int(text[1:])])[0])
