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
