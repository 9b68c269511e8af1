"""Detection on rendered frames, the board self-check, and bad inputs reported by file name."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from calibration.board import BoardDefinition
from calibration.detect import detect_all
from calibration.pipeline import calibrate
from calibration.selfcheck import diagnose, sample_frames
from calibration.sync import read_timestamps
from rigcap.studio.board_motion import board_trajectory, floor_frame_mask
from rigcap.studio.board_video import STUDIO_BOARD, BoardRenderer, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.cli import main
from rigcap.errors import InputFileError, RigcapError

#: what the "wrong" print looks like: another dictionary, legacy layout, black and white swapped
ODD_PRINT = replace(STUDIO_BOARD, dictionary="DICT_5X5_100", legacy_pattern=True, inverted=True)


def _render_folders(root, board, n_cams=2, n_frames=3, seed=0):
    """PNG folders cam_i/ with the board well in view, and the true corners of those frames."""
    rig = make_studio_rig(n_cams, seed=seed)
    rvecs, tvecs = board_trajectory(120, seed=seed)
    truth = true_board_corners_2d(rig, board, rvecs, tvecs)
    # per camera, the frames where the board looks biggest (foreshortening counts: shoelace area)
    nx = board.squares_x - 1
    quad = truth[:, :, [0, nx - 1, board.n_corners - 1, board.n_corners - nx]]  # outer corners, in order
    x, y = quad[..., 0], quad[..., 1]
    area = np.nan_to_num(0.5 * np.abs((x * np.roll(y, -1, -1) - np.roll(x, -1, -1) * y).sum(-1)))
    area[:, floor_frame_mask(rvecs, tvecs)] = 0
    renderer = BoardRenderer(rig, board, seed=seed)
    folders, truths = [], []
    for c in range(n_cams):
        frames = np.sort(np.argsort(area[c])[::-1][:n_frames])
        folder = root / f"cam_{c}"
        folder.mkdir()
        for k, f in enumerate(frames):
            cv2.imwrite(str(folder / f"{k:03d}.png"), renderer.render(c, rvecs[f], tvecs[f], f))
        folders.append(folder)
        truths.append(truth[c, frames])
    return folders, np.array(truths)


@pytest.fixture(scope="module")
def odd_print(tmp_path_factory):
    return _render_folders(tmp_path_factory.mktemp("odd"), ODD_PRINT, n_cams=1, n_frames=3, seed=2)[0]


def test_detection_finds_corners_where_the_truth_says_in_parallel(tmp_path):
    folders, truth = _render_folders(tmp_path, STUDIO_BOARD, n_cams=2, n_frames=2)
    dets = detect_all(folders, STUDIO_BOARD, workers=2, progress=False)
    assert [d.name for d in dets] == ["cam_0", "cam_1"]
    for c, det in enumerate(dets):
        found = np.isfinite(det.corners[..., 0])
        assert found.sum() >= 40
        assert np.isfinite(truth[c][found][:, 0]).all()
        err = np.linalg.norm(det.corners[found] - truth[c][found], axis=-1)
        assert np.median(err) < 0.4, np.median(err)


def test_mismatched_board_definition_is_detected_and_explained(odd_print, tmp_path, capsys):
    board = STUDIO_BOARD.save(tmp_path / "board.toml")
    code = main(["calibrate", "--board", str(board), "--out", str(tmp_path / "rig.toml"), "--no-progress",
                 *map(str, odd_print)])
    msg = capsys.readouterr().err
    assert code == 2
    assert "does not match the print" in msg and "'cam_0'" in msg
    assert "DICT_5X5_" in msg and "legacy_pattern = true" in msg and "inverted" in msg
    assert "inverted = true" in msg and 'dictionary = "DICT_5X5_' in msg
    assert f"Set in {board}:" in msg  # names the file to edit


def test_diagnosis_recovers_every_key_of_the_print(odd_print):
    frames = sample_frames(odd_print[0])
    match = diagnose(frames, STUDIO_BOARD)
    assert match.board.inverted and match.board.legacy_pattern
    assert match.board.dictionary.startswith("DICT_5X5_")
    assert (match.board.squares_x, match.board.squares_y) == (STUDIO_BOARD.squares_x, STUDIO_BOARD.squares_y)
    assert match.corners >= 40
    # and the definition it names does detect the board
    fixed = replace(STUDIO_BOARD, dictionary=match.board.dictionary, legacy_pattern=True, inverted=True)
    det = detect_all(odd_print, fixed, progress=False)[0]
    assert (det.corner_counts() >= 20).all()


def _write_video(path, frames, fps=10.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_video_without_a_board_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (0, 0), 3) for _ in range(6)]
    video = _write_video(tmp_path / "cam_7.mp4", frames)
    with pytest.raises(InputFileError) as err:
        calibrate([video], STUDIO_BOARD, progress=False)
    assert str(video) in str(err.value) and "no ChArUco board" in str(err.value)


def test_corrupt_and_truncated_videos_are_reported_by_name(tmp_path, capsys):
    frames = [np.full((240, 320), 40 + 3 * i, np.uint8) for i in range(60)]
    good = _write_video(tmp_path / "good.mp4", frames)
    data = good.read_bytes()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video at all" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])  # mp4v from OpenCV: index at the end
    for bad in (garbage, truncated):
        with pytest.raises(InputFileError) as err:
            calibrate([good, bad], STUDIO_BOARD, progress=False)
        assert str(bad) in str(err.value)
    # and through the command line: one line naming the file, exit status 2
    board = STUDIO_BOARD.save(tmp_path / "board.toml")
    code = main(["calibrate", "--board", str(board), "--out", str(tmp_path / "rig.toml"), "--no-progress",
                 str(good), str(garbage)])
    assert code == 2
    assert str(garbage) in capsys.readouterr().err


def test_real_inverted_caliscope_print_is_explained_with_the_default_config(shared_data, repo_root):
    """OpenCV's defaults find no board in caliscope's recording: the self-check says why."""
    video = shared_data / "caliscope-charuco-4cam" / "extrinsic" / "cam_0.mp4"
    default = BoardDefinition.from_toml(repo_root / "configs" / "board.toml")
    match = diagnose(sample_frames(video, n=6), default)
    assert match.board.inverted
    assert (match.board.squares_x, match.board.squares_y) == (4, 5)  # caliscope's charuco.toml: 4 columns, 5 rows
    assert match.board.dictionary.startswith("DICT_4X4_")
    assert "printed inverted" in match.describe()


def test_caliscope_timestamps_group_frames(shared_data):
    csv = shared_data / "caliscope-charuco-4cam" / "extrinsic" / "timestamps.csv"
    frames = read_timestamps(csv, ["cam_0", "cam_1", "cam_2", "cam_3"])
    assert frames.shape[0] == 4
    for row in frames:
        used = row[row >= 0]
        assert used.min() == 0 and used.max() <= 110 and np.unique(used).size == used.size


def test_saddle_refinement_puts_corners_within_a_tenth_of_a_pixel():
    """Rendered frames (blur, noise, oblique views) against the exact corners: OpenCV's
    ChArUco corners alone are off by ~0.3 px RMS with a 1-2 px tail on oblique boards; the
    saddle fit brings them near 0.1 px and drops the few it cannot trust."""
    from calibration.detect import detect_frame, make_detector

    rig = make_studio_rig(2, seed=0)
    rvecs, tvecs = board_trajectory(120, seed=0)
    frames = np.arange(4, 120, 12)
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvecs[frames], tvecs[frames])
    renderer, detector = BoardRenderer(rig, STUDIO_BOARD, seed=0), make_detector(STUDIO_BOARD)
    err = {True: [], False: []}
    for c in range(2):
        for k, f in enumerate(frames):
            gray = cv2.cvtColor(renderer.render(c, rvecs[f], tvecs[f], f), cv2.COLOR_BGR2GRAY)
            for saddle in (True, False):
                found = detect_frame(detector, gray, STUDIO_BOARD.n_corners, saddle=saddle)[0]
                d = np.linalg.norm(found - truth[c, k], axis=1)
                err[saddle].append(d[np.isfinite(d)])
    ours, opencv = np.concatenate(err[True]), np.concatenate(err[False])
    assert len(ours) >= 100 and len(ours) >= 0.85 * len(opencv)  # few corners dropped
    rms = lambda d: float(np.sqrt(np.mean(d**2)))  # noqa: E731
    assert rms(ours) < 0.15 and np.median(ours) < 0.08 and ours.max() < 0.8, (rms(ours), np.median(ours), ours.max())
    assert rms(ours) < 0.6 * rms(opencv), (rms(ours), rms(opencv))
