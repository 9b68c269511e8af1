"""What the colours mean, and the text drawn onto headless snapshots.

One list of legend entries (:func:`legend_entries`) serves both the window's
side panel (:mod:`viewer.gui`) and the images written without a display
(:func:`annotate`: a title line and the legend drawn into the rendered RGB
image with OpenCV, after Open3D rendered it), so the two never disagree.
"""

from __future__ import annotations

import numpy as np

from viewer.scene import (BONE_CENTER, BONE_LEFT, BONE_RIGHT, JOINT_NO_VIEWS, JOINT_UNKNOWN_VIEWS,
                          n_views_colors, person_colors)


def legend_entries(max_views: int, person_ids=None, color_by: str = "person") -> list[tuple[str, np.ndarray]]:
    """``(text, rgb in [0, 1])`` for every colour the scene uses: joints by views used, then bones by
    side -- or, with several people (``person_ids``) coloured by person, one entry per person."""
    top = max(int(max_views), 2)
    counts = sorted({2, (2 + top) // 2, top})
    cols = n_views_colors(np.array(counts), top)
    out = [(f"joint: {n} views" + (" (all cameras)" if n == top else ""), c) for n, c in zip(counts, cols)]
    out += [("joint: views unknown", JOINT_UNKNOWN_VIEWS), ("joint: 0 views (predicted)", JOINT_NO_VIEWS)]
    if person_ids is not None and color_by == "person":
        ids = [int(i) for i in np.asarray(person_ids).ravel()]
        return out + [(f"bones: person P{i}", c) for i, c in zip(ids, person_colors(ids))]
    return out + [("bone: left side", BONE_LEFT), ("bone: right side", BONE_RIGHT), ("bone: middle", BONE_CENTER)]


def title_line(source: str, frame: int | None = None, n_frames: int | None = None,
               seconds: float | None = None) -> str:
    """``"points3d.npz  frame 40/300  t 1.333 s"`` (the parts that are known)."""
    parts = [str(source)]
    if frame is not None:
        parts.append(f"frame {frame}" + (f"/{n_frames}" if n_frames else ""))
    if seconds is not None and np.isfinite(seconds):
        parts.append(f"t {seconds:.3f} s")
    return "  ".join(parts)


def _text(img, text, org, scale, color, thickness=1):
    import cv2

    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def _text_scale(h: int) -> float:
    return float(np.clip(h / 1400.0, 0.35, 1.2))


def draw_labels(rgb: np.ndarray, pixels: np.ndarray, texts, colors) -> np.ndarray:
    """``rgb`` (h, w, 3) uint8, in place: each text centred on its pixel (N, 2) in its colour (N, 3) in [0, 1]
    (people's ids above their heads); non-finite pixels are skipped.  Returns ``rgb``."""
    import cv2

    scale = _text_scale(rgb.shape[0]) * 1.6
    thick = max(2, int(round(2.5 * scale)))
    for (x, y), text, col in zip(np.asarray(pixels, float), texts, np.asarray(colors, float)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        org = (int(round(x - w / 2)), int(round(y + h / 2)))
        _text(rgb, text, org, scale, tuple(int(round(255 * c)) for c in col), thick)
    return rgb


def annotate(rgb: np.ndarray, title: str | None, max_views: int | None, person_ids=None,
             color_by: str = "person") -> np.ndarray:
    """A copy of ``rgb`` (h, w, 3) uint8 with ``title`` at the top left and the legend at the bottom left.

    Text scales with the image height (readable from 240 to 2160 rows);
    ``max_views=None`` leaves the legend out; ``person_ids``: the people shown
    (their colours in the legend, see :func:`legend_entries`).
    """
    import cv2

    img = np.ascontiguousarray(rgb).copy()
    h = img.shape[0]
    scale = _text_scale(h)
    line = int(round(34 * scale)) + 4
    pad = int(round(12 * scale)) + 2
    if title:
        _text(img, title, (pad, pad + line - 8), scale * 1.05, (240, 240, 240))
    if max_views is not None:
        entries = legend_entries(max_views, person_ids, color_by)
        y0 = h - pad - line * len(entries)
        box = line - 10
        for i, (text, col) in enumerate(entries):
            y = y0 + i * line
            rgb255 = tuple(int(round(255 * c)) for c in col)
            cv2.rectangle(img, (pad, y + 4), (pad + box, y + 4 + box), rgb255, -1)
            _text(img, text, (pad + box + pad, y + box + 2), scale * 0.85, (230, 230, 230))
    return img
