"""Angles to files: the CSV (one row per person and frame) and the PNG of the curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rigcap.analysis.angles import DEFINITIONS, JointAngles


def write_angles_csv(path: str | Path, angles: JointAngles, fps: float | None, multi: bool) -> Path:
    """``angles.values`` (persons, frames, A) -> CSV ``[person,] frame, time_s, <angle>...``, degrees
    with 3 decimals, empty where NaN; ``time_s`` is empty without a frame rate."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(angles.values)
    n_p, n_f, _ = values.shape
    frames = np.arange(n_f)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow((["person"] if multi else []) + ["frame", "time_s", *angles.names])
        for p in range(n_p):
            text = np.where(np.isfinite(values[p]), np.char.mod("%.3f", values[p]), "")
            times = np.char.mod("%.4f", frames / fps) if fps else np.full(n_f, "")
            for f in range(n_f):
                w.writerow(([p] if multi else []) + [f, times[f], *text[f]])
    return path


# the PNG: one panel per angle family, left solid, right dashed
_PANELS = [d.name for d in DEFINITIONS]


def plot_angles(path: str | Path, angles: JointAngles, fps: float | None, title: str) -> Path:
    """One person's curves, ``angles.values`` (frames, A), one panel per angle family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(angles.values)
    t = np.arange(values.shape[0]) / fps if fps else np.arange(values.shape[0])
    cols = 3
    rows = int(np.ceil(len(_PANELS) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(15, 2.3 * rows), sharex=True, squeeze=False)
    for ax, family in zip(axes.ravel(), _PANELS):
        for i, name in enumerate(angles.names):
            if name == family or name.rsplit("_", 1)[0] == family:
                side = name.rsplit("_", 1)[-1]
                ax.plot(t, values[:, i], lw=1.0, ls="--" if side == "right" else "-",
                        label=side if side in ("left", "right") else None)
        ax.set_title(family.replace("_", " "), fontsize=9)
        ax.set_ylabel("deg", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    for ax in axes.ravel()[len(_PANELS):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)" if fps else "frame", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.985, top=0.93, bottom=0.06, hspace=0.35, wspace=0.16)  # tight_layout: +1 s
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_angle_files(points_path, out_csv: Path, up, plot: bool = True, title: str | None = None):
    """Angles of a 3D points file -> the CSV at ``out_csv`` and (``plot``) a PNG per person beside it;
    ``(points, angles, paths written)``.  Shared by ``rigcap angles`` and ``rigcap batch``; ``title``
    names the file in the plots (default: the points file's name)."""
    from rigcap.analysis.angles import JointAngles, joint_angles
    from rigcap.analysis.points import load_points

    data = load_points(points_path)
    angles = joint_angles(data.points, data.joint_names, up=up)
    written = [write_angles_csv(out_csv, angles, data.fps, data.multi)]
    if plot:
        title = title or Path(points_path).name
        for p in range(data.n_persons):
            png = out_csv.with_suffix(f".person{p}.png" if data.multi else ".png")
            one = JointAngles(angles.values[p], angles.names, angles.up)
            written.append(plot_angles(png, one, data.fps, title + (f"  person {p}" if data.multi else "")
                                       + "  joint angles (deg)"))
    return data, angles, written
