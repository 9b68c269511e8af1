"""argparse types for numbers that must be positive: a bad value is a usage error at once,
not a crash when the first message arrives."""

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
