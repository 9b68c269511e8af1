"""``rigcap calibrate`` end to end on a few rendered frames of two cameras."""

from __future__ import annotations

import cv2
import numpy as np

from calibration.rigfile import load_rig
from rigcap.studio.board_motion import board_trajectory
from rigcap.studio.board_video import STUDIO_BOARD, BoardRenderer, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.cli import main


def test_calibrate_command_writes_rig_report_and_png(tmp_path, capsys):
    rig = make_studio_rig(4, seed=0).subset(["cam_1", "cam_2"])  # neighbours on the ring
    rvecs, tvecs = board_trajectory(240, seed=2)  # a take where these two share big views
    truth = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs)
    nx = STUDIO_BOARD.squares_x - 1
    quad = truth[:, :, [0, nx - 1, STUDIO_BOARD.n_corners - 1, STUDIO_BOARD.n_corners - nx]]
    x, y = quad[..., 0], quad[..., 1]
    area = np.nan_to_num(0.5 * np.abs((x * np.roll(y, -1, -1) - np.roll(x, -1, -1) * y).sum(-1)))
    frames = np.flatnonzero((area > 15000).all(axis=0))[:8]  # both cameras see the board big
    assert frames.size >= 6
    renderer = BoardRenderer(rig, STUDIO_BOARD, seed=0)
    inputs = []
    for c, cam in enumerate(rig.cameras):
        folder = tmp_path / cam.name
        folder.mkdir()
        for k, f in enumerate(frames):
            cv2.imwrite(str(folder / f"{k:03d}.png"), renderer.render(c, rvecs[f], tvecs[f], f))
        inputs.append(str(folder))
    board = STUDIO_BOARD.save(tmp_path / "board.toml")
    out = tmp_path / "out" / "rig.toml"
    code = main(["calibrate", "--board", str(board), "--out", str(out), "--no-progress", *inputs])
    printed = capsys.readouterr().out
    assert code == 0
    assert "board rigidity RMSE" in printed and "cam_1" in printed
    calibrated = load_rig(out)
    assert calibrated.names == ["cam_1", "cam_2"]
    np.testing.assert_allclose(calibrated[0].center, 0.0, atol=1e-9)  # world = camera 0's frame
    baseline = np.linalg.norm(calibrated[1].center)
    true_baseline = np.linalg.norm(rig[1].center - rig[0].center)
    assert abs(baseline - true_baseline) < 0.03 * true_baseline, (baseline, true_baseline)
    meta = calibrated.metadata["calibration"]
    assert meta["rmse_px_max"] < 1.0 and meta["board_rigidity_rmse_mm"] < 5.0
    assert (tmp_path / "out" / "rig.png").stat().st_size > 10_000
