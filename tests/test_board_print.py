"""`rigcap board`: the printed board is detected, at the configured scale, with its definition on the page."""

from __future__ import annotations

import re
import zlib

import cv2
import numpy as np
import pytest

from calibration.board import BoardDefinition
from calibration.board_print import definition_lines, layout_page, write_board
from rigcap.errors import RigcapError

MM_PER_PT = 25.4 / 72.0


def _detect(board: BoardDefinition, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    detector = cv2.aruco.CharucoDetector(board.cv_board())
    corners, ids, _, _ = detector.detectBoard(gray)
    if ids is None:
        return np.zeros((0, 2)), np.zeros(0, int)
    return corners.reshape(-1, 2), ids.reshape(-1)


def _square_px(board: BoardDefinition, corners: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Distances between horizontally adjacent detected corners (pixels)."""
    nx = board.squares_x - 1
    pos = dict(zip(ids.tolist(), corners))
    return np.array([np.linalg.norm(pos[i + 1] - pos[i]) for i in pos if (i % nx) < nx - 1 and i + 1 in pos])


@pytest.mark.parametrize("dpi", [100.0, 150.0])
def test_png_detects_with_the_configured_square_size(tmp_path, dpi):
    board = BoardDefinition(7, 5, 0.030, 0.022, "DICT_4X4_50")
    out = tmp_path / "board.png"
    layout = write_board(board, out, paper="a4", dpi=dpi)
    assert layout.paper == "a4" and layout.landscape
    img = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    # the page is the paper at that dpi: 297 x 210 mm landscape
    assert abs(img.shape[1] - 297 / 25.4 * dpi) <= 1 and abs(img.shape[0] - 210 / 25.4 * dpi) <= 1
    corners, ids = _detect(board, img)
    assert len(ids) == board.n_corners  # every inner corner found
    expected = board.square_length * 1000 / 25.4 * dpi
    sq = _square_px(board, corners, ids)
    assert sq.size >= 20
    assert abs(np.median(sq) - expected) < 0.5, (np.median(sq), expected)
    # corner 0 sits one square in from the board's top-left corner on the page
    bx, by = layout.board_origin_mm
    top_mm = layout.page_mm[1] - (by + layout.board_mm[1])
    expect0 = np.array([bx + 30.0, top_mm + 30.0]) / 25.4 * dpi - 0.5
    assert np.linalg.norm(corners[ids == 0][0] - expect0) < 2.5  # page, offset and size each rounded to whole pixels


def test_inverted_board_needs_inverted_detection(tmp_path):
    board = BoardDefinition(5, 4, 0.030, 0.022, "DICT_4X4_50", inverted=True)
    out = tmp_path / "inv.png"
    write_board(board, out, paper="a4", dpi=100)
    img = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    normal = BoardDefinition(5, 4, 0.030, 0.022, "DICT_4X4_50")
    assert len(_detect(normal, img)[1]) == 0  # OpenCV's defaults find nothing: the print really is inverted
    assert len(_detect(normal, 255 - img)[1]) == board.n_corners


def test_legacy_pattern_is_printed_as_configured(tmp_path):
    legacy = BoardDefinition(6, 6, 0.025, 0.018, "DICT_5X5_100", legacy_pattern=True)
    out = tmp_path / "legacy.png"
    write_board(legacy, out, paper="a4", dpi=100)
    img = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert len(_detect(legacy, img)[1]) == legacy.n_corners
    modern = BoardDefinition(6, 6, 0.025, 0.018, "DICT_5X5_100", legacy_pattern=False)
    assert len(_detect(modern, img)[1]) < legacy.n_corners // 2  # the other pattern does not match


def test_pdf_page_and_board_have_exact_physical_size(tmp_path):
    board = BoardDefinition(7, 5, 0.040, 0.030, "DICT_4X4_50")
    out = tmp_path / "board.pdf"
    layout = write_board(board, out, paper="a3")
    data = out.read_bytes()
    box = [float(v) for v in re.search(rb"/MediaBox \[ ([\d. ]+) \]", data).group(1).split()]
    assert abs(box[2] * MM_PER_PT - layout.page_mm[0]) < 0.01 and abs(box[3] * MM_PER_PT - layout.page_mm[1]) < 0.01
    # the board image is drawn with a transform "w 0 0 -h x y cm /I1 Do": its size on paper, in mm
    placed = None
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            text = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        hit = re.search(rb"([\d.]+) 0 0\s+-([\d.]+) ([\d.]+) ([\d.]+) cm /I1 Do", text)
        if hit:
            placed = [float(v) * MM_PER_PT for v in hit.groups()]
    assert placed is not None
    assert abs(placed[0] - 280.0) < 0.01 and abs(placed[1] - 200.0) < 0.01  # 7 x 40 mm, 5 x 40 mm


def test_definition_text_names_every_field():
    board = BoardDefinition(4, 5, 0.054, 0.0405, "DICT_4X4_1000", legacy_pattern=False, inverted=True)
    text = "\n".join(definition_lines(board, "charuco.toml"))
    for needle in ("4 x 5 squares", "square_length = 54 mm", "marker_length = 40.5 mm", "DICT_4X4_1000",
                   "legacy_pattern = false", "inverted = true", "charuco.toml"):
        assert needle in text


def test_board_too_large_for_paper_is_an_error_saying_what_fits():
    board = BoardDefinition(7, 5, 0.040, 0.030, "DICT_4X4_50")  # 280 x 200 mm
    with pytest.raises(RigcapError, match=r"does not fit on a4.*--paper a3.*at most 34\.8 mm"):
        layout_page(board, "a4")
    assert layout_page(board, "a3").landscape
    with pytest.raises(RigcapError, match=r"does not fit on a3.*use --orientation landscape"):
        layout_page(board, "a3", "portrait")


def test_cli_writes_png_and_rejects_other_suffixes(tmp_path, repo_root):
    from rigcap.cli import main

    out = tmp_path / "b.png"
    assert main(["board", "--config", str(repo_root / "configs" / "board.toml"), "--out", str(out), "--dpi", "60"]) == 0
    assert out.is_file() and out.stat().st_size > 1000
    assert main(["board", "--config", str(repo_root / "configs" / "board.toml"), "--out", str(tmp_path / "b.jpg")]) == 2
    assert main(["board", "--config", str(repo_root / "configs" / "board_a3.toml"), "--out", str(out), "--paper", "a4"]) == 2


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_default_board_prints_on_a4_and_letter_with_margins(tmp_path, repo_root, paper):
    """The shipped default fits both common papers with room to spare; the A3 one is kept by name."""
    board = BoardDefinition.from_toml(repo_root / "configs" / "board.toml")
    out = tmp_path / "board.pdf"
    layout = write_board(board, out, paper=paper)
    box = [float(v) for v in re.search(rb"/MediaBox \[ ([\d. ]+) \]", out.read_bytes()).group(1).split()]
    assert abs(box[2] * MM_PER_PT - layout.page_mm[0]) < 0.01 and abs(box[3] * MM_PER_PT - layout.page_mm[1]) < 0.01
    pw, ph = layout.page_mm
    (bx, by), (bw, bh) = layout.board_origin_mm, layout.board_mm
    # at least 20 mm of white paper around the board (printers need ~5 mm), the text band below it
    assert min(bx, pw - bx - bw, ph - by - bh) >= 20.0 and by >= 20.0 + 16.0
    a3 = BoardDefinition.from_toml(repo_root / "configs" / "board_a3.toml")
    assert a3.size_m == pytest.approx((0.28, 0.20))
    with pytest.raises(RigcapError, match="does not fit"):
        layout_page(a3, paper)
