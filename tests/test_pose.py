"""The real 2D pose model finds the real person in a real video frame, with no download."""

import urllib.request

import cv2
import numpy as np
import pytest

from capture.pose import DetectorError, available_detectors, best_person, create_detector
from capture.pose.mediapipe_pose import mediapipe_model_files
from triangulate.skeletons import MEDIAPIPE33

pytest.importorskip("mediapipe")


def frame(shared_data, cam="cam01", index=30):
    cap = cv2.VideoCapture(str(shared_data / "pose2sim-demo-single" / "videos" / f"{cam}.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, img = cap.read()
    cap.release()
    assert ok
    return img


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the pose model tried to download something")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_weights_ship_inside_the_wheel():
    for path in mediapipe_model_files(1):
        assert path.is_file() and path.stat().st_size > 1_000_000, path


def test_complexities_whose_model_is_not_shipped_are_refused_not_downloaded(no_network):
    for complexity in (0, 2):
        if all(p.is_file() for p in mediapipe_model_files(complexity)):
            continue
        with pytest.raises(DetectorError, match="never downloads"):
            create_detector("mediapipe", model_complexity=complexity)


def test_joint_order_matches_mediapipe():
    from mediapipe.python.solutions.pose import PoseLandmark

    assert [lm.name.lower() for lm in PoseLandmark] == list(MEDIAPIPE33.joint_names)
    assert {"mediapipe", "synthetic", "none"} <= set(available_detectors())


@pytest.mark.shared_data
@pytest.mark.parametrize("cam", ["cam01", "cam03"])
def test_mediapipe_finds_the_person_where_the_person_is(shared_data, no_network, cam):
    img = frame(shared_data, cam)
    h, w = img.shape[:2]
    with create_detector("mediapipe", static_image_mode=True) as det:
        people = det.detect(img)
    assert people.shape == (1, 33, 3) and people.dtype == np.float32
    p = people[best_person(people)]
    j = {name: p[i] for i, name in enumerate(MEDIAPIPE33.joint_names)}
    body = ["left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee",
            "left_ankle", "right_ankle", "nose"]
    xy = np.array([j[n][:2] for n in body])
    assert (xy >= 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] < h).all()
    assert np.mean([j[n][2] for n in body]) > 0.5
    # Upright person: head above shoulders above hips above knees above ankles (image y grows downwards).
    shoulders = (j["left_shoulder"][1] + j["right_shoulder"][1]) / 2
    hips = (j["left_hip"][1] + j["right_hip"][1]) / 2
    knees = (j["left_knee"][1] + j["right_knee"][1]) / 2
    ankles = (j["left_ankle"][1] + j["right_ankle"][1]) / 2
    assert j["nose"][1] < shoulders < hips < knees < ankles
    # A person-sized figure: at least a quarter of the image height from nose to ankles.
    assert ankles - j["nose"][1] > 0.25 * h
    # Joints sit on the person: inside the box of what moves in the clip (the subject; the
    # bystander in the background barely moves), with a margin of a tenth of the image height.
    cap = cv2.VideoCapture(str(shared_data / "pose2sim-demo-single" / "videos" / f"{cam}.mp4"))
    frames = [cap.read()[1] for _ in range(100)]
    cap.release()
    background = np.median(np.stack(frames[::5]), axis=0)
    ys, xs = np.nonzero(np.abs(img.astype(float) - background).sum(axis=2) > 40)
    m = 0.1 * h
    x0, x1 = np.percentile(xs, [1, 99]) + [-m, m]
    y0, y1 = np.percentile(ys, [1, 99]) + [-m, m]
    inside = (xy[:, 0] > x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] < y1)
    assert inside.sum() >= 8, (xy, (x0, x1, y0, y1))


@pytest.mark.shared_data
def test_video_mode_tracks_the_person_through_the_clip(shared_data, no_network):
    cap = cv2.VideoCapture(str(shared_data / "pose2sim-demo-single" / "videos" / "cam02.mp4"))
    found = 0
    with create_detector("mediapipe") as det:
        for _ in range(30):
            ok, img = cap.read()
            found += det.detect(img).shape[0] == 1
    cap.release()
    assert found >= 28


def test_empty_image_finds_no_one(no_network):
    with create_detector("mediapipe", static_image_mode=True) as det:
        people = det.detect(np.zeros((240, 320, 3), np.uint8))
    assert people.shape == (0, 33, 3)
