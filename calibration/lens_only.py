"""Lens calibration alone: one camera per input, no extrinsics (``rigcap calibrate --intrinsics-only``).

Why a separate path: many labs calibrate each lens once with a plain checkerboard (or any
board) held close to that camera alone, then hold those lenses while the rig's poses are
calibrated (``--intrinsics``).  The inputs need not share instants, sizes or orientation (a
portrait camera next to landscape ones is fine).  The rig file written has zero poses and
``[metadata] intrinsics_only = true``; it lists, per camera, every image where the board was not
found (whole-board detection fails on a partial view, a blurred frame or a wrong definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.board import BoardDefinition
from calibration.detect import CameraDetections, detect_all
from calibration.intrinsics import calibrate_intrinsics
from calibration.rig import Rig
from calibration.video_io import open_source
from rigcap.errors import RigcapError

MIN_VIEWS = 3


@dataclass
class LensResult:
    rig: Rig  # poses zero; metadata["intrinsics_only"] = True
    rms_px: dict[str, float]
    not_found: dict[str, list[str]]  # camera -> images (file names, or "frame k" of a video) without the board
    warnings: list[str] = field(default_factory=list)


def _frame_names(source: str, n: int) -> list[str]:
    src = open_source(source)
    return [p.name for p in src.images] if src.images else [f"frame {k}" for k in range(n)]


def lenses_from_detections(per_camera: Sequence[CameraDetections], board: BoardDefinition,
                           max_views: int = 40) -> LensResult:
    cams, rms, not_found, warnings, meta = [], {}, {}, [], {}
    for det in per_camera:
        counts = det.corner_counts()
        names = _frame_names(det.source, det.n_frames)
        not_found[det.name] = [names[k] for k in np.flatnonzero(counts == 0)]
        if (counts >= 6).sum() < MIN_VIEWS:
            raise RigcapError(f"{det.source}: the board ({board.pattern} {board.squares_x} x {board.squares_y} squares) "
                              f"was found in {int((counts >= 6).sum())} of {det.n_frames} images; a lens needs "
                              f"{MIN_VIEWS} or more (check the board file against the print)")
        res = calibrate_intrinsics(det.name, det.corners, det.size, board, max_views=max_views)
        cams.append(res.camera)
        rms[det.name] = float(res.rms)
        warnings.extend(res.warnings)
        meta[det.name] = {"rms_px": round(float(res.rms), 4), "views": int(len(res.views)),
                          "images": int(det.n_frames), "board_not_found": len(not_found[det.name]),
                          "coverage": round(float(res.coverage), 3), "lens_model": res.lens_model}
    rig = Rig(cams, {"intrinsics_only": True,
                     "calibration": {"tool": "rigcap calibrate --intrinsics-only", "board": board.to_dict(),
                                     "cameras": meta}})
    return LensResult(rig, rms, not_found, warnings)


def calibrate_lenses(inputs: Sequence[str | Path], board: BoardDefinition, *, workers: int | None = None,
                     progress: bool = True, max_views: int = 40) -> LensResult:
    """Detect the board in every input and calibrate each input's lens on its own."""
    return lenses_from_detections(detect_all(inputs, board, workers=workers, progress=progress), board, max_views)
