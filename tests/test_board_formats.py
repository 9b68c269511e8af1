"""Other tools' board files (caliscope's charuco.toml, anipose's config.toml) read unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.board import BoardDefinition
from rigcap.errors import InputFileError

CALISCOPE_PRINT = BoardDefinition(4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)


@pytest.mark.shared_data
def test_caliscope_charuco_toml_is_the_real_print(shared_data):
    """The real recording's charuco.toml (square 5.4 cm by override, aruco_scale 0.75, inverted, no legacy key)
    gives the board that finds corners in its video."""
    from calibration.detect import detect_frame, make_detector
    from calibration.selfcheck import sample_frames

    root = shared_data / "caliscope-charuco-4cam"
    board = BoardDefinition.from_toml(root / "charuco.toml")
    assert board == CALISCOPE_PRINT
    frames = sample_frames(root / "extrinsic" / "cam_0.mp4", n=6)
    found = [np.isfinite(detect_frame(make_detector(board), g, board.n_corners, board.inverted)[0][:, 0]).sum()
             for g in frames]
    assert sum(found) >= 30, found


def test_caliscope_square_from_paper_size_and_cm_units(tmp_path):
    """Without square_size_override_cm caliscope sizes the squares to fit the paper (inches or cm)."""
    path = tmp_path / "charuco.toml"
    path.write_text('columns = 4\nrows = 5\nboard_height = 11.0\nboard_width = 8.5\nunits = "inch"\n'
                    'dictionary = "DICT_4X4_50"\naruco_scale = 0.7\n')
    b = BoardDefinition.from_toml(path)
    square = min(11.0 * 2.54 / 5, 8.5 * 2.54 / 4) / 100  # 5.397 cm: the width limits it
    assert (b.squares_x, b.squares_y) == (4, 5) and b.square_length == pytest.approx(square)
    assert b.marker_length == pytest.approx(0.7 * square) and not b.inverted and not b.legacy_pattern
    path.write_text('[charuco]\ncolumns = 6\nrows = 4\nboard_width = 36.0\nboard_height = 24.0\nunits = "cm"\n'
                    'legacy_pattern = true\n')
    b = BoardDefinition.from_toml(path)
    assert (b.squares_x, b.squares_y, b.square_length, b.legacy_pattern) == (6, 4, 0.06, True)
    path.write_text('columns = 4\nrows = 5\nunits = "furlong"\n')
    with pytest.raises(InputFileError, match="units"):
        BoardDefinition.from_toml(path)


def test_anipose_charuco_config_matches_aniposelib_board(tmp_path):
    """anipose's [calibration] table (lengths in mm as in its docs) -> the same corners and markers as
    aniposelib's own CharucoBoard built from it."""
    aniposelib = pytest.importorskip("aniposelib.boards")
    path = tmp_path / "config.toml"
    path.write_text('project = "x"\n[calibration]\nboard_type = "charuco"\nboard_size = [7, 5]\n'
                    'board_marker_bits = 5\nboard_marker_dict_number = 100\nboard_marker_length = 22.5\n'
                    'board_square_side_length = 30\nanimal_calibration = false\nfisheye = false\n'
                    '[triangulation]\ncam_regex = "cam([0-9])"\n')
    b = BoardDefinition.from_toml(path)
    assert (b.squares_x, b.squares_y, b.dictionary) == (7, 5, "DICT_5X5_100")
    assert b.square_length == pytest.approx(0.030) and b.marker_length == pytest.approx(0.0225)
    theirs = aniposelib.CharucoBoard(7, 5, 30, 22.5, marker_bits=5, dict_size=100)
    np.testing.assert_allclose(b.corner_points() * 1000, np.asarray(theirs.board.getChessboardCorners()).reshape(-1, 3),
                               atol=1e-4)
    img = b.render(60, 20)  # their detector finds every corner of our rendering, same ids
    corners, ids = theirs.detect_image(img)
    assert ids is not None and len(ids) == b.n_corners


def test_anipose_checkerboard_counts_inner_corners(tmp_path):
    aniposelib = pytest.importorskip("aniposelib.boards")
    path = tmp_path / "config.toml"
    path.write_text('[calibration]\nboard_type = "checkerboard"\nboard_size = [9, 6]\nboard_square_side_length = 0.025\n')
    b = BoardDefinition.from_toml(path)
    assert b.is_checkerboard and (b.squares_x, b.squares_y) == (10, 7) and b.inner_corners == (9, 6)
    theirs = aniposelib.Checkerboard(9, 6, 0.025)
    # the same grid, rigcap's origin one square in from the board's corner
    np.testing.assert_allclose(b.corner_points() - [0.025, 0.025, 0], theirs.get_object_points(), atol=1e-12)
    path.write_text('[calibration]\nboard_type = "aruco"\nboard_size = [4, 4]\nboard_square_side_length = 30\n')
    with pytest.raises(InputFileError, match="aruco"):
        BoardDefinition.from_toml(path)


def test_unknown_board_file_names_rigcaps_keys(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text("width = 3\n")
    with pytest.raises(InputFileError, match="squares_x"):
        BoardDefinition.from_toml(path)
