"""Board self-check (placeholder; filled in below)."""

from __future__ import annotations


def check_detections(per_camera, board) -> None:
    return None
