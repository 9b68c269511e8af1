"""``rigcap board``: print the ChArUco board of a config at true scale (PDF or PNG)."""

from __future__ import annotations

from rigcap.argtypes import shipped_config


def register(subparsers) -> None:
    from calibration.board_print import PAPER_SIZES_MM

    p = subparsers.add_parser(
        "board",
        help="write the calibration board (PDF or PNG) at true scale, its definition in the margin",
        description="Write the ChArUco board described by a board config as a page to print at 100 % "
        "(actual size). The margin carries the full definition (squares, square and marker length, "
        "dictionary, legacy_pattern, inverted) and a 100 mm scale bar, so a print can be matched to "
        "its config and measured. Fails when the board does not fit the paper.",
    )
    p.add_argument("--config", "--board", dest="config", default=shipped_config("board.toml"),
                   help="board config (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="FILE", help="output file, .pdf or .png")
    p.add_argument("--paper", default=None, type=str.lower, choices=sorted(PAPER_SIZES_MM),
                   help="paper size (default: the smallest of a4, letter, a3, tabloid, a2, a1, a0 the board fits on)")
    p.add_argument("--orientation", default="auto", choices=("auto", "portrait", "landscape"),
                   help="page orientation (default: %(default)s: the one the board's shape fits)")
    p.add_argument("--dpi", type=float, default=300.0, help="PNG resolution in dots per inch (default: %(default)s)")
    p.add_argument("--margin-mm", type=float, default=10.0,
                   help="blank border the printer needs, millimetres (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from calibration.board import BoardDefinition
    from calibration.board_print import write_board

    board = BoardDefinition.from_toml(args.config)
    layout = write_board(board, args.out, args.paper, args.orientation, args.dpi, args.margin_mm, source=args.config)
    w, h = layout.board_mm
    print(f"wrote {args.out}: {board.squares_x} x {board.squares_y} squares of {board.square_length * 1000:g} mm "
          f"({w:g} x {h:g} mm) on {layout.paper} {'landscape' if layout.landscape else 'portrait'}; "
          f"print at 100 % (actual size) and measure the 100 mm bar")
    return 0
