"""Print a ChArUco board at true scale, with its definition in the margin.

Why a dedicated module: the most common calibration failure is a print that
does not match the config (wrong dictionary, legacy pattern, inverted
colours, or a printer that "fit to page" and shrank every square).  So the
page carries the full definition as text (the TOML lines to paste into
``board.toml``) and a 100 mm scale bar to measure with a ruler, and the board
is placed at its exact physical size:

* PDF: the page is the paper size in points, and the board image is placed
  with an extent in millimetres, so a viewer printing at "actual size"
  reproduces ``square_length`` exactly, whatever the embedded raster size.
* PNG: the page is rasterised at ``dpi``; the board image is drawn by OpenCV
  at exactly ``round(size_mm / 25.4 * dpi)`` pixels and pasted unscaled
  (``figimage``), so a detector run on the PNG measures
  ``square_length / 25.4 * dpi`` pixels per square.

A board that does not fit the paper (after the printer margin and the text
band) is an error naming the largest square length that would fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.board import BoardDefinition
from rigcap.errors import RigcapError

MM_PER_INCH = 25.4

#: Paper sizes (width, height) in millimetres, portrait.
PAPER_SIZES_MM: dict[str, tuple[float, float]] = {
    "a5": (148.0, 210.0),
    "a4": (210.0, 297.0),
    "a3": (297.0, 420.0),
    "a2": (420.0, 594.0),
    "a1": (594.0, 841.0),
    "a0": (841.0, 1189.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "tabloid": (279.4, 431.8),
}

TEXT_BAND_MM = 16.0  # below the board: definition text and scale bar
SCALE_BAR_MM = 100.0


@dataclass(frozen=True)
class PageLayout:
    """Where the board sits on the page, all in millimetres from the page's bottom-left corner."""

    paper: str
    page_mm: tuple[float, float]  # width, height (after orientation)
    board_mm: tuple[float, float]  # width, height of the board (outer squares)
    board_origin_mm: tuple[float, float]  # bottom-left corner of the board on the page
    margin_mm: float

    @property
    def landscape(self) -> bool:
        return self.page_mm[0] > self.page_mm[1]


def paper_size_mm(paper: str) -> tuple[float, float]:
    key = paper.lower()
    if key not in PAPER_SIZES_MM:
        raise RigcapError(f"unknown paper size {paper!r}; choose one of {', '.join(PAPER_SIZES_MM)}")
    return PAPER_SIZES_MM[key]


def _fits(page: tuple[float, float], board: tuple[float, float], margin: float) -> bool:
    return board[0] + 2 * margin <= page[0] + 1e-9 and board[1] + 2 * margin + TEXT_BAND_MM <= page[1] + 1e-9


#: Papers tried, smallest first, when none is named.
AUTO_PAPERS = ("a4", "letter", "a3", "tabloid", "a2", "a1", "a0")


def smallest_paper(board: BoardDefinition, orientation: str = "auto", margin_mm: float = 10.0) -> str:
    """The first paper of :data:`AUTO_PAPERS` the board fits on (error when none)."""
    for paper in AUTO_PAPERS:
        try:
            layout_page(board, paper, orientation, margin_mm)
            return paper
        except RigcapError:
            continue
    return layout_page(board, AUTO_PAPERS[-1], orientation, margin_mm).paper  # raises, saying why


def layout_page(board: BoardDefinition, paper: str = "a4", orientation: str = "auto",
                margin_mm: float = 10.0) -> PageLayout:
    """Choose the orientation and place the board centred above the text band.

    Raises :class:`RigcapError` when the board does not fit, saying which
    square length (at the same marker ratio) or which paper would fit.
    """
    if orientation not in ("auto", "portrait", "landscape"):
        raise RigcapError(f"orientation must be auto, portrait or landscape, got {orientation!r}")
    pw, ph = paper_size_mm(paper)
    board_mm = (board.size_m[0] * 1000.0, board.size_m[1] * 1000.0)
    candidates = {"portrait": (pw, ph), "landscape": (ph, pw)}
    if orientation == "auto":
        order = ["landscape", "portrait"] if board_mm[0] > board_mm[1] else ["portrait", "landscape"]
    else:
        order = [orientation]
    for name in order:
        page = candidates[name]
        if _fits(page, board_mm, margin_mm):
            x0 = (page[0] - board_mm[0]) / 2.0
            free_h = page[1] - TEXT_BAND_MM - margin_mm  # space above the text band
            y0 = margin_mm + TEXT_BAND_MM + (free_h - margin_mm - board_mm[1]) / 2.0
            return PageLayout(paper.lower(), page, board_mm, (x0, y0), margin_mm)
    # does not fit: say what would
    best_scale = 0.0
    for name in order:
        page = candidates[name]
        sx = (page[0] - 2 * margin_mm) / board_mm[0]
        sy = (page[1] - 2 * margin_mm - TEXT_BAND_MM) / board_mm[1]
        best_scale = max(best_scale, min(sx, sy))
    def fits_paper(p: str, orients) -> bool:
        w, h = PAPER_SIZES_MM[p]
        return any(_fits((w, h) if o == "portrait" else (h, w), board_mm, margin_mm) for o in orients)

    other = [o for o in ("portrait", "landscape") if o not in order]
    if other and fits_paper(paper.lower(), other):
        hint = f"use --orientation {other[0]}"
    else:
        fitting = [p for p in AUTO_PAPERS if fits_paper(p, order)]
        hint = f"use --paper {fitting[0]}" if fitting else "no listed paper is large enough"
    max_square = np.floor(board.square_length * 1000.0 * best_scale * 10) / 10
    raise RigcapError(
        f"the board ({board.squares_x} x {board.squares_y} squares of {board.square_length * 1000:g} mm = "
        f"{board_mm[0]:g} x {board_mm[1]:g} mm) does not fit on {paper} ({pw:g} x {ph:g} mm) with "
        f"{margin_mm:g} mm margins and the {TEXT_BAND_MM:g} mm text band; {hint}, or reduce square_length "
        f"to at most {max_square:g} mm (and marker_length in proportion) in the board config"
    )


def definition_lines(board: BoardDefinition, source: str | None = None) -> list[str]:
    """The text printed in the margin: enough to rebuild the exact board config."""
    b = board
    if b.is_checkerboard:
        first = (f"Checkerboard {b.squares_x} x {b.squares_y} squares ({b.squares_x - 1} x {b.squares_y - 1} inner corners)"
                 f"   square_length = {b.square_length * 1000:g} mm   inverted = {str(b.inverted).lower()}")
        second = (f"board.toml: pattern = \"checkerboard\", squares_x = {b.squares_x}, squares_y = {b.squares_y}, "
                  f"square_length = {b.square_length:g}, inverted = {str(b.inverted).lower()}")
        return [first, second, _print_advice(source)]
    first = (f"ChArUco {b.squares_x} x {b.squares_y} squares   square_length = {b.square_length * 1000:g} mm   "
             f"marker_length = {b.marker_length * 1000:g} mm   dictionary = {b.dictionary}   "
             f"legacy_pattern = {str(b.legacy_pattern).lower()}   inverted = {str(b.inverted).lower()}")
    second = (f"board.toml: squares_x = {b.squares_x}, squares_y = {b.squares_y}, square_length = {b.square_length:g}, "
              f"marker_length = {b.marker_length:g}, dictionary = \"{b.dictionary}\", "
              f"legacy_pattern = {str(b.legacy_pattern).lower()}, inverted = {str(b.inverted).lower()}")
    return [first, second, _print_advice(source)]


def _print_advice(source: str | None) -> str:
    return (f"Print at 100 % / actual size (no 'fit to page'); the bar is {SCALE_BAR_MM:g} mm: measure it and a "
            f"square, and put the measured square_length in the config." + (f"   config: {source}" if source else ""))


def board_image_px(board: BoardDefinition, width_px: int, height_px: int) -> np.ndarray:
    """OpenCV's board image at an exact pixel size (grey uint8), colours swapped when inverted."""
    if board.is_checkerboard:
        from calibration.board import checker_image

        image = checker_image(board.squares_x, board.squares_y, int(width_px), int(height_px))
    else:
        image = board.cv_board().generateImage((int(width_px), int(height_px)), marginSize=0, borderBits=1)
    return 255 - image if board.inverted else image


def make_board_figure(board: BoardDefinition, layout: PageLayout, dpi: float, raster: bool,
                      source: str | None = None):
    """A matplotlib figure of the page (paper size in inches).

    ``raster=True`` (PNG) pastes the board pixel-exact with ``figimage``;
    ``raster=False`` (PDF) places a high-resolution board image by its extent
    in millimetres.
    """
    from matplotlib.figure import Figure

    pw, ph = layout.page_mm
    fig = Figure(figsize=(pw / MM_PER_INCH, ph / MM_PER_INCH), dpi=dpi, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, pw)
    ax.set_ylim(0, ph)
    ax.set_axis_off()
    bx, by = layout.board_origin_mm
    bw, bh = layout.board_mm
    if raster:
        w_px = int(round(bw / MM_PER_INCH * dpi))
        h_px = int(round(bh / MM_PER_INCH * dpi))
        img = board_image_px(board, w_px, h_px)
        x_px = int(round(bx / MM_PER_INCH * dpi))
        y_px = int(round(by / MM_PER_INCH * dpi))
        # figimage's origin is the figure's bottom-left; origin="upper" keeps row 0 at the top
        fig.figimage(img, xo=x_px, yo=y_px, cmap="gray", vmin=0, vmax=255, origin="upper", resize=False)
    else:
        pps = 200  # pixels per square in the embedded image: exact marker bits, scaled by the extent
        img = board_image_px(board, board.squares_x * pps, board.squares_y * pps)
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, extent=(bx, bx + bw, by, by + bh),
                  interpolation="none", origin="upper", aspect="auto")
    # definition text and the scale bar in the band below the board
    m = layout.margin_mm
    lines = definition_lines(board, source)
    size_pt = 7.0 if pw >= 200 else 5.5
    for i, line in enumerate(lines):
        ax.text(m, m + TEXT_BAND_MM - 3.0 - i * 3.6, line, fontsize=size_pt, family="monospace",
                va="top", ha="left", color="black")
    bar = min(SCALE_BAR_MM, pw - 2 * m)
    ax.plot([m, m + bar], [m + 1.0, m + 1.0], color="black", lw=1.2, solid_capstyle="butt")
    for x in (m, m + bar):
        ax.plot([x, x], [m, m + 2.0], color="black", lw=1.0)
    ax.text(m + bar + 2.0, m + 1.0, f"{bar:g} mm", fontsize=size_pt, va="center", ha="left")
    return fig


def write_board(board: BoardDefinition, out: str | Path, paper: str | None = None, orientation: str = "auto",
                dpi: float = 300.0, margin_mm: float = 10.0, source: str | None = None) -> PageLayout:
    """Write the board page to ``out`` (``.pdf`` or ``.png``); returns the layout used.

    ``paper=None`` takes the smallest common paper the board fits on.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise RigcapError(f"{out}: the output must end in .pdf or .png")
    if dpi <= 0:
        raise RigcapError(f"dpi must be positive, got {dpi}")
    if paper is None:
        paper = smallest_paper(board, orientation, margin_mm)
    layout = layout_page(board, paper, orientation, margin_mm)
    fig = make_board_figure(board, layout, dpi if suffix == ".png" else 72.0, raster=suffix == ".png", source=source)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Title": f"checkerboard {board.squares_x}x{board.squares_y}" if board.is_checkerboard
            else f"ChArUco board {board.squares_x}x{board.squares_y} {board.dictionary}"}
    if suffix == ".pdf":
        fig.savefig(out, format="pdf", metadata=meta)
    else:
        fig.savefig(out, format="png", dpi=dpi)
    return layout
