"""Pixel checks for rendered people: a colour (whatever the shading) near projected bones."""

from __future__ import annotations

import cv2
import numpy as np

from triangulate.skeletons import HALPE26


def chroma_match(img: np.ndarray, colour: np.ndarray, tol: float = 0.06) -> np.ndarray:
    """(h, w) bool: pixels with the colour's chromaticity (shading changes brightness, not the mix) and lit."""
    rgb = img.astype(np.float64)
    total = rgb.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        chroma = rgb / total
    target = colour / colour.sum()
    return (np.abs(chroma - target).max(-1) < tol) & (total[..., 0] > 120)


def share_near(mask: np.ndarray, pixels: np.ndarray, radius: int = 3) -> float:
    """Share of ``pixels`` (N, 2) with a ``mask`` pixel within ``radius``."""
    h, w = mask.shape
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    pixels = np.asarray(pixels, float)
    pixels = pixels[np.isfinite(pixels).all(-1)]
    uv = np.round(pixels).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    return float(grown[uv[inside, 1], uv[inside, 0]].mean()) if inside.any() else 0.0


def bone_midpoints(view, pts: np.ndarray) -> np.ndarray:
    b = HALPE26.bones
    return view.project(0.5 * (pts[b[:, 0]] + pts[b[:, 1]]))
