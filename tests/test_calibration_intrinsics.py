"""Held lens parameters (``intrinsics=`` / ``rigcap calibrate --intrinsics RIG``) and the coverage-aware lens model."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.pipeline import calibrate_from_detections
from calibration.world import compare_rigs
from rigcap.studio.board_motion import board_trajectory
from rigcap.studio.board_video import STUDIO_BOARD, true_board_corners_2d
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.cli import main
from rigcap.errors import RigcapError


@pytest.fixture(scope="module")
def studio():
    rig = make_studio_rig(4, seed=3)
    rvecs, tvecs = board_trajectory(40, seed=4)
    corners = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
    corners = corners + np.random.default_rng(4).normal(0, 0.2, corners.shape)
    return rig, corners


def test_held_true_intrinsics_reach_the_oracle(studio):
    """Holding the true lenses (given as a rig in another camera order, matched by name) leaves only
    the extrinsics to find: errors drop to those of bundle adjustment started from the true rig with
    its intrinsics held, and well below a calibration that has to find the lenses too."""
    rig, corners = studio
    sizes, names = [c.size for c in rig], rig.names
    shuffled = rig.subset(names[::-1])
    held = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names, intrinsics=shuffled, refine_intrinsics=False)
    oracle = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names, initial_rig=rig, refine_intrinsics=False)
    free = calibrate_from_detections(corners, STUDIO_BOARD, sizes, names)
    c_held, c_oracle, c_free = (compare_rigs(r.rig, rig) for r in (held, oracle, free))
    for c, cam in enumerate(held.rig):
        np.testing.assert_allclose(cam.matrix, rig[names[c]].matrix)  # held, in the right camera
        np.testing.assert_allclose(cam.dist[:5], rig[names[c]].dist[:5])
    assert c_held.center_mm.max() < 1.1 * c_oracle.center_mm.max() + 0.1, (c_held.center_mm, c_oracle.center_mm)
    assert c_held.rotation_deg.max() < 1.1 * c_oracle.rotation_deg.max() + 0.005
    assert c_held.center_mm.max() < 0.7 * c_free.center_mm.max(), (c_held.center_mm, c_free.center_mm)


def test_intrinsics_rig_missing_a_camera_is_named(studio):
    rig, corners = studio
    partial = rig.subset(["cam_0", "cam_2"])
    with pytest.raises(RigcapError, match=r"no camera named 'cam_1', 'cam_3'"):
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, intrinsics=partial,
                                  refine_intrinsics=False)
    other = rig.copy()
    other.cameras[1].size = (640, 480)
    with pytest.raises(RigcapError, match=r"another image size: 'cam_1'"):
        calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, intrinsics=other)


def test_intrinsics_a_few_pixels_off_in_size_warn_naming_camera_and_sizes(studio):
    """A Qualisys export says 1088 where the video is 1080: padding, not another resolution: a warning."""
    rig, corners = studio
    padded = rig.copy()
    w, h = rig[2].size
    padded.cameras[2].size = (w + 8, h)
    res = calibrate_from_detections(corners, STUDIO_BOARD, [c.size for c in rig], rig.names, intrinsics=padded,
                                    refine_intrinsics=False, max_instants=60)
    lines = [x for x in res.warnings if "image size" in x]
    assert lines == [f"camera 'cam_2': the rig's image size is {w + 8}x{h} but the recording is {w}x{h} "
                     "(intrinsics used as they are)"]
    assert lines[0] in res.cameras[2].warnings


def test_rig_meeting_images_or_keypoints_of_another_size_warns():
    from calibration.rig import keypoint_extent_warnings, size_mismatch_warnings

    rig = make_studio_rig(3, seed=0)
    w, h = rig[0].size
    assert size_mismatch_warnings(rig, {"cam_0": (w, h), "cam_1": (w, h + 2), "nope": (1, 1)}) == [
        f"camera 'cam_1': the rig's image size is {w}x{h} but the video is {w}x{h + 2}"]
    pts = np.random.default_rng(0).uniform(0, 1, (3, 50, 2)) * [w, h]
    pts[2] *= 1.5  # as if detected on images 1.5 times larger
    lines = keypoint_extent_warnings(rig, pts, rig.names)
    assert len(lines) == 1 and lines[0].startswith(f"camera 'cam_2': the rig's image size is {w}x{h}")


def test_calibrate_command_reports_an_unreadable_intrinsics_rig(tmp_path, capsys):
    board = STUDIO_BOARD.save(tmp_path / "board.toml")
    (tmp_path / "cam_0").mkdir()
    code = main(["calibrate", "--board", str(board), "--intrinsics", str(tmp_path / "nope.toml"), "--no-progress",
                 "--out", str(tmp_path / "rig.toml"), str(tmp_path / "cam_0")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.toml" in err and "rig file not found" in err


def test_board_only_in_the_image_centre_gets_a_simpler_lens_model():
    """Corners only in the central 40 % x 50 % of every image (as on the real caliscope recording):
    the full k1 k2 p1 p2 k3 model fits noise there (k3 of tens, true 0) and places the cameras worse;
    the coverage-chosen model holds k3 (and tangential terms when narrower) at zero in calibrateCamera
    and in bundle adjustment, says why, and places the cameras better."""
    from calibration.intrinsics import point_coverage

    rig = make_studio_rig(4, seed=3)
    rvecs, tvecs = board_trajectory(200, seed=4)
    corners = true_board_corners_2d(rig, STUDIO_BOARD, rvecs, tvecs, margin_px=5)
    corners = corners + np.random.default_rng(3).normal(0, 0.2, corners.shape)
    w, h = rig[0].size
    inside = (np.abs(corners[..., 0] - w / 2) < 0.2 * w) & (np.abs(corners[..., 1] - h / 2) < 0.25 * h)
    corners = np.where(inside[..., None], corners, np.nan)
    cov = [point_coverage(corners[c], rig[c].size)[0] for c in range(4)]
    assert max(cov) < 0.3
    args = (corners, STUDIO_BOARD, [c.size for c in rig], rig.names)
    auto = calibrate_from_detections(*args)
    full = calibrate_from_detections(*args, lens_model="full")
    assert all(c.lens_model in ("no-k3", "radial") for c in auto.cameras), [c.lens_model for c in auto.cameras]
    assert all("cover only" in c.lens_reason for c in auto.cameras)
    assert all(c.dist[4] == 0.0 for c in auto.rig)  # k3 held at zero through bundle adjustment
    for cam, rep in zip(auto.rig, auto.cameras):
        if rep.lens_model == "radial":
            assert cam.dist[2] == 0.0 and cam.dist[3] == 0.0
    assert max(abs(c.dist[4]) for c in full.rig) > 5.0  # the overfit the simpler model avoids
    meta = auto.rig.metadata["calibration"]["cameras"]
    assert meta["cam_1"]["lens_model"] == auto.cameras[1].lens_model
    c_auto, c_full = compare_rigs(auto.rig, rig), compare_rigs(full.rig, rig)
    assert c_auto.center_mm.max() < 0.8 * c_full.center_mm.max(), (c_auto.center_mm, c_full.center_mm)
    assert c_auto.rotation_deg.max() < 0.8 * c_full.rotation_deg.max(), (c_auto.rotation_deg, c_full.rotation_deg)


def test_lens_model_thresholds():
    from calibration.intrinsics import choose_lens_model, lens_free_mask

    assert choose_lens_model(0.6)[0] == "full"  # the synthetic studio recordings: 51-85 %
    assert choose_lens_model(0.3)[0] == "no-k3"
    assert choose_lens_model(0.19)[0] == "radial"  # caliscope cam_0
    assert choose_lens_model(0.08)[0] == "radial-centred"  # caliscope cam_1..3: 8-11 %
    assert lens_free_mask("radial-centred").tolist() == [1, 1, 0, 0, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown lens model"):
        lens_free_mask("fisheye")
