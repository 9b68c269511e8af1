"""Synthetic board recordings: rendering is exact through lens distortion, files are complete."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.board import BoardDefinition
from calibration.rigfile import load_rig
from rigcap.studio.board_motion import board_faces_camera, board_trajectory, floor_frame_mask
from rigcap.studio.board_video import (STUDIO_BOARD, BoardRenderer, render_board_views, true_board_corners_2d,
                                           write_board_recording)
from rigcap.studio.studio_rig import make_studio_rig


def _detect(board, image):
    detector = cv2.aruco.CharucoDetector(board.cv_board())
    corners, ids, _, _ = detector.detectBoard(image)
    if ids is None or len(ids) == 0:
        return np.zeros((0, 2)), np.zeros(0, int)
    return corners.reshape(-1, 2), ids.reshape(-1)


def test_charuco_detector_finds_rendered_corners_where_the_truth_says():
    rig = make_studio_rig(4, seed=0)
    rvecs, tvecs = board_trajectory(60, seed=0)
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs)
    renderer = BoardRenderer(rig, STUDIO_BOARD, seed=0)  # blur, noise, uneven light, room background
    errors, n_images = [], 0
    visible = np.isfinite(truth[..., 0]).sum(-1)  # (C, F)
    for c, f in np.argwhere(visible >= 20)[::5][:12]:
        corners, ids = _detect(STUDIO_BOARD, renderer.render(c, rvecs[f], tvecs[f], f))
        if len(ids) == 0:
            continue
        n_images += 1
        assert np.isfinite(truth[c, f, ids]).all()  # nothing detected where the truth says invisible
        errors.append(np.linalg.norm(corners - truth[c, f, ids], axis=-1))
    errors = np.concatenate(errors)
    assert n_images >= 6 and errors.size >= 100
    assert np.median(errors) < 0.5, np.median(errors)
    assert np.percentile(errors, 90) < 1.0


def test_distortion_is_rendered_not_ignored():
    """The same board seen by a camera with strong distortion lands on the distorted truth."""
    rig = make_studio_rig(1, seed=2)
    rig[0].dist[:] = [-0.3, 0.1, 0.0, 0.0, 0.0]
    cam = rig[0]
    # board near the image corner, facing the camera, where distortion moves points by many pixels
    target = cam.center + cam.R.T @ np.array([0.36, 0.2, 1.0]) * 2.2
    face = cam.center - target
    from rigcap.studio.board_motion import board_rotation
    from scipy.spatial.transform import Rotation

    rot = board_rotation(face[None], np.zeros(1))[0]
    w, h = STUDIO_BOARD.size_m
    tvec = target - rot @ np.array([w / 2, h / 2, 0])
    rvec = Rotation.from_matrix(rot).as_rotvec()
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvec[None], tvec[None])[0, 0]
    pinhole = cam.normalized_to_pixels(cam.world_to_camera(
        STUDIO_BOARD.corner_points() @ rot.T + tvec)[:, :2] / cam.world_to_camera(STUDIO_BOARD.corner_points() @ rot.T + tvec)[:, 2:])
    assert np.isfinite(truth).all()  # the whole board is in view
    assert np.nanmax(np.linalg.norm(truth - pinhole, axis=-1)) > 15  # distortion moves it by many pixels
    img = next(render_board_views(rig, STUDIO_BOARD, rvec[None], tvec[None], seed=0))[0]
    corners, ids = _detect(STUDIO_BOARD, img)
    assert len(ids) >= 20
    assert np.median(np.linalg.norm(corners - truth[ids], axis=-1)) < 0.5


def test_board_facing_away_is_not_drawn():
    rig = make_studio_rig(4, seed=0)
    rvecs, tvecs = board_trajectory(40, seed=1)
    faces = board_faces_camera(rig.centers, rvecs, tvecs)
    c, f = np.argwhere(~faces)[0]
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs)
    assert np.isnan(truth[c, f]).all()
    r = BoardRenderer(rig, STUDIO_BOARD, seed=0, noise=False)
    empty = BoardRenderer(rig, STUDIO_BOARD, seed=0, noise=False)
    img = r.render(c, rvecs[f], tvecs[f], f)
    far = np.array([0.0, 0.0, 1000.0])  # board far behind the camera's back: background only
    assert np.array_equal(img, empty.render(c, rvecs[f], -rig[c].center * 0 + far, f)) or len(_detect(STUDIO_BOARD, img)[1]) == 0


def test_trajectories_cover_floor_partial_views_and_the_hard_layout():
    rig = make_studio_rig(4, seed=0)
    rvecs, tvecs = board_trajectory(150, seed=0)
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs)
    n = np.isfinite(truth[..., 0]).sum(-1)
    floor = floor_frame_mask(rvecs, tvecs)
    assert floor[:5].all() and floor.sum() >= 5 and np.allclose(tvecs[floor], 0)
    assert ((n > 0) & (n < STUDIO_BOARD.n_corners)).sum() >= 10  # partly in view
    assert (n >= 6).sum(axis=1).min() >= 30  # every camera sees it often
    rig8 = make_studio_rig(8, seed=0)
    rv, tv = board_trajectory(200, seed=0, mode="hard")
    t8 = true_board_corners_2d(rig8, STUDIO_BOARD, rv, tv)
    seen = np.isfinite(t8[..., 0]).sum(-1) >= 4  # (C, F)
    assert seen.sum(0).max() < 8  # no frame shows the board to every camera
    assert seen.sum(1).min() >= 20  # yet every camera gets views


def test_write_board_recording_files(tmp_path):
    paths = write_board_recording(tmp_path / "rec", n_frames=6, seed=3, n_cameras=2)
    assert [p.name for p in paths["videos"]] == ["cam_0.mp4", "cam_1.mp4"]
    rig = load_rig(paths["rig"])
    assert rig.names == ["cam_0", "cam_1"]
    assert BoardDefinition.from_toml(paths["board"]) == STUDIO_BOARD
    poses = np.load(paths["poses"])
    assert poses["rvecs"].shape == (6, 3) and poses["corners_2d"].shape == (2, 6, STUDIO_BOARD.n_corners, 2)
    cap = cv2.VideoCapture(str(paths["videos"][0]))
    ok, frame = cap.read()
    assert ok and frame.shape == (720, 1280, 3)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


def test_same_seed_same_frames():
    rig = make_studio_rig(2, seed=0)
    rv, tv = board_trajectory(3, seed=4)
    a = next(render_board_views(rig, STUDIO_BOARD, rv[2:], tv[2:], seed=1))
    b = next(render_board_views(rig, STUDIO_BOARD, rv[2:], tv[2:], seed=1))
    c = next(render_board_views(rig, STUDIO_BOARD, rv[2:], tv[2:], seed=2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    rv2, _ = board_trajectory(3, seed=5)
    assert not np.allclose(rv, rv2)
