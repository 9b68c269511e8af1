"""argparse types for values that must be checked (positive numbers, an up axis): a bad value
is a usage error at once, not a crash when the first message arrives or a worker starts; and the
arguments several commands read their input with (:func:`add_points_arguments`)."""

from __future__ import annotations

import argparse


def _bounded(text: str, ok, bound: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def positive_float(text: str) -> float:
    return _bounded(text, lambda v: v > 0, "> 0")


def non_negative_float(text: str) -> float:
    return _bounded(text, lambda v: v >= 0, ">= 0")


def up_axis(text: str) -> str:
    """``--up``: auto, x, y, z, -x, -y or -z, checked by the one parser (analysis.angles.parse_up).

    Returns the text, not the vector: batch passes it to its workers and records it with
    each session's results, so a rerun can tell whether the setting changed."""
    from rigcap.analysis.angles import parse_up

    try:
        parse_up(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip().lower()


def add_points_arguments(p, vertical: str = "world") -> None:
    """``--points``, ``--up``, ``--fps``: a 3D points file, its vertical and frame rate (rigcap analyze, bvh);
    :func:`load_points_arguments` reads them."""
    p.add_argument("--points", required=True, metavar="NPZ", help="3D points file (rigcap triangulate / fuse --record)")
    p.add_argument("--up", type=up_axis, default="auto",
                   help=f"the {vertical}'s vertical: x, y, z, -x, -y, -z or auto (default: %(default)s)")
    p.add_argument("--fps", type=positive_float, default=None, help="frame rate, when the file has none (default: the file's)")


def load_points_arguments(args):
    """-> (points file as rigcap.analysis.points.load_points reads it, the up vector or None for auto,
    the frame rate: ``--fps``, else the file's, else None)."""
    from rigcap.analysis.angles import parse_up
    from rigcap.analysis.points import load_points

    up = parse_up(args.up)
    data = load_points(args.points)
    return data, up, args.fps or data.fps


#: The configs/ folder rigcap ships (beside the packages in a checkout or an editable install).
SHIPPED_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def shipped_config(name: str) -> str:
    """A default config file: ``configs/NAME`` in the current folder if there is one, else the one rigcap ships.

    Defaults used to be relative to the current folder, so `rigcap calibrate` run
    anywhere but the checkout said "configs/board.toml: board definition not found".
    """
    from pathlib import Path

    here = Path("configs") / name
    return str(here) if here.is_file() else str(SHIPPED_CONFIGS / name)
