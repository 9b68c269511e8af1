"""A ChArUco board seen in the same session makes a keypoint rig metric and puts its world
origin on the board lying on the floor: scale and origin against the synthetic studio's truth."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.keypoint_board import board_gauge, with_board
from calibration.keypoint_calibration import calibrate_from_keypoints, perturb_rig, scale_rig
from calibration.world import compare_rigs, kabsch, pose_anchors, transform_rig
from rigcap.errors import RigcapError
from rigcap.studio.board_motion import board_trajectory, floor_frame_mask
from rigcap.studio.board_video import STUDIO_BOARD, true_board_corners_2d
from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio


def _size(rig) -> float:
    c = rig.centers
    return float(np.sqrt(((c - c.mean(0)) ** 2).sum(1).mean()))


def origin_error(rig, truth) -> tuple[float, float]:
    """(mm, deg): where ``rig``'s world origin and axes lie in the true world (the rigid map of
    its camera poses onto the truth's; identity when the two worlds agree)."""
    a, b = kabsch(pose_anchors(rig), pose_anchors(truth, radius=_size(rig)))
    return float(np.linalg.norm(b) * 1000.0), float(np.degrees(np.arccos(np.clip((np.trace(a) - 1) / 2, -1, 1))))


def wrong_world_start(rig, seed=3):
    """The true rig perturbed 5 cm / 3 deg, 30 % too small, in a world turned 25 deg and moved 1.2 m."""
    rough = scale_rig(perturb_rig(rig, 0.05, 3.0, seed=seed), 0.7)
    turn = np.array([[np.cos(0.44), -np.sin(0.44), 0], [np.sin(0.44), np.cos(0.44), 0], [0, 0, 1.0]])
    return transform_rig(rough, turn, np.array([1.2, -0.4, 0.3]))


@pytest.fixture(scope="module")
def session():
    studio = SyntheticStudio(n_cameras=4, duration_s=4.0, seed=1, time_offsets_ms=0, noise=DetectorNoise(time_jitter_ms=0.0))
    kp = studio.keypoints2d()
    res = calibrate_from_keypoints(wrong_world_start(studio.rig), kp.keypoints, kp.joint_names, refine_intrinsics=False)
    rvecs, tvecs = board_trajectory(60, seed=1)
    corners = true_board_corners_2d(studio.rig, STUDIO_BOARD, rvecs, tvecs)
    corners = corners + np.random.default_rng(0).normal(0, 0.2, corners.shape)  # ~ detected corners
    return studio, res, corners, floor_frame_mask(rvecs, tvecs)


def test_board_fixes_scale_and_origin_of_a_keypoint_rig(session):
    studio, res, corners, floor = session
    before = origin_error(res.rig, studio.rig)
    assert abs(_size(res.rig) / _size(studio.rig) - 0.7) < 0.02 and before[0] > 1000  # wrong scale, wrong world
    gauge = board_gauge(res.rig, corners, STUDIO_BOARD)
    assert gauge.floor_instant is not None and floor[gauge.floor_instant]  # found the board on the floor
    out = with_board(res, gauge)
    scale_err = abs(_size(out.rig) / _size(studio.rig) - 1.0)
    mm, deg = origin_error(out.rig, studio.rig)
    shape = compare_rigs(scale_rig(out.rig, _size(studio.rig) / _size(out.rig)), studio.rig).center_mm.mean()
    absolute = compare_rigs(out.rig, studio.rig, align=False).center_mm
    assert scale_err < 0.003, scale_err
    assert mm < 10.0 and deg < 0.3, (mm, deg)
    assert absolute.mean() < shape + 12.0, (absolute, shape)  # no frame alignment needed any more
    assert gauge.corner_rms_mm < 2.0 and gauge.scale_spread < 0.01
    assert "ChArUco board" in out.rig.metadata["calibration"]["scale_from"]
    # the points follow the rig: a true joint lands where the calibrated rig puts it
    err = np.linalg.norm(out.points - studio.points3d, axis=-1)
    assert np.nanmedian(err) < 0.02


def test_a_floor_frame_given_or_missing(session):
    studio, res, corners, floor = session
    k = int(np.flatnonzero(floor)[-1])
    assert board_gauge(res.rig, corners, STUDIO_BOARD, floor_instant=k).floor_instant == k
    moving = corners.copy()
    moving[:, floor] = np.nan  # no sighting on the floor: scale only, origin kept, said so
    gauge = board_gauge(res.rig, moving, STUDIO_BOARD)
    assert gauge.floor_instant is None and "kept from the start rig" in gauge.note
    assert np.allclose(gauge.r_new_old, np.eye(3)) and abs(_size(with_board(res, gauge).rig) / _size(studio.rig) - 1) < 0.003
    with pytest.raises(RigcapError, match="--floor-frame 2"):
        board_gauge(res.rig, moving, STUDIO_BOARD, floor_instant=2)
    with pytest.raises(RigcapError, match="never seen by two cameras"):
        board_gauge(res.rig, np.full_like(corners, np.nan), STUDIO_BOARD)


@pytest.mark.slow
def test_calibrate_command_with_board_videos(session, tmp_path, capsys):
    """End to end: rendered board videos (the studio's cameras, the board on the floor first),
    detected by the board calibration's own detector, scale and origin the keypoint rig."""
    from calibration.rigfile import load_rig, save_rig
    from rigcap.cli import main
    from rigcap.studio.board_video import write_board_recording

    studio, _, _, _ = session
    rec = write_board_recording(tmp_path / "board", rig=studio.rig, n_frames=36, seed=1)
    kp_path = studio.keypoints2d().save(tmp_path / "kp.npz")
    start = save_rig(wrong_world_start(studio.rig), tmp_path / "start.toml")
    out = tmp_path / "rig.toml"
    args = ["calibrate", "--keypoints", str(kp_path), "--start-rig", str(start), *map(str, rec["videos"]),
            "--board", str(rec["board"]), "--out", str(out), "--no-progress", "--fix-intrinsics"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "board: scale" in text and "world origin at the board's origin corner" in text
    rig = load_rig(out)
    mm, deg = origin_error(rig, studio.rig)
    assert abs(_size(rig) / _size(studio.rig) - 1.0) < 0.003 and mm < 10.0 and deg < 0.3, (_size(rig) / _size(studio.rig), mm, deg)
    assert main(args[:-1] + ["--scale-from", "height:1.75"]) == 2
    assert "both fix the scale" in capsys.readouterr().err
