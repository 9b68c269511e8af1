"""Write triangulated joints where biomechanics tools read them: TRC (OpenSim), CSV, C3D.

All three take a :class:`~triangulate.formats.Points3D` (metres, NaN where a
joint was not triangulated) and need its frame rate.

TRC (:func:`write_trc`)
    OpenSim's marker file, tab separated, the five header lines OpenSim's
    ``TRCFileAdapter`` expects (``PathFileType 4``; ``DataRate CameraRate
    NumFrames NumMarkers Units OrigDataRate OrigDataStartFrame
    OrigNumFrames``; their values; ``Frame# Time`` and the marker names, each
    over three columns; ``X1 Y1 Z1 ...``), a blank line, then one row per frame
    numbered from 1.  A missing marker is left empty, which OpenSim reads as
    NaN.  OpenSim's world is **Y up** while a rig is usually **Z up** (floor
    at z = 0): with ``up="y"`` (default) the axes are turned as Pose2Sim does
    (x, y, z) -> (y, z, x), a proper rotation, so a model stands upright.
    ``units`` ``"m"`` (Pose2Sim's choice) or ``"mm"``.

CSV (:func:`write_csv`)
    ``frame, time_s`` then ``<joint>_x, <joint>_y, <joint>_z`` in metres in the
    rig's frame, then ``<joint>_err_px`` and ``<joint>_views``; empty cells
    where missing.  For spreadsheets and pandas.

C3D (:func:`write_c3d`)
    Through ``ezc3d`` (maintained, on PyPI).  Millimetres in the rig's frame
    (C3D tools are Z up), ``POINT:RATE``, ``POINT:LABELS``, ``POINT:UNITS``;
    a missing marker has residual -1 (C3D's "invalid") and NaN coordinates.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from triangulate.formats import Points3D

TRC_UNITS = {"m": 1.0, "mm": 1000.0}
UP_AXES = ("y", "z")


def frame_rate(points: Points3D) -> float:
    """The file's frame rate: ``fps`` or, failing that, the median spacing of ``timestamps_ns``."""
    if points.fps and np.isfinite(points.fps) and points.fps > 0:
        return float(points.fps)
    ts = points.timestamps_ns
    if ts is not None and len(ts) > 1:
        step = np.median(np.diff(ts.astype(np.float64)))
        if step > 0:
            return 1e9 / step
    raise ValueError("exports need the frame rate: the 3D points carry no fps and no timestamps")


def frame_times(points: Points3D, fps: float) -> np.ndarray:
    """Seconds from the first frame: timestamps where known, else ``frame / fps``."""
    if points.timestamps_ns is not None:
        ts = points.timestamps_ns.astype(np.float64)
        return (ts - ts[0]) * 1e-9
    return np.arange(points.n_frames) / fps


def z_up_to_y_up(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) rig frame, Z up -> OpenSim frame, Y up: (x, y, z) -> (y, z, x) (a rotation, det +1)."""
    return np.asarray(xyz)[..., [1, 2, 0]]


def _rows(columns: list[tuple[np.ndarray, str]], sep: str) -> str:
    """Rows of text, one per frame, from (F, k) column blocks each with a printf format.

    Formatted by ``np.savetxt`` in one call (a Python step per cell took ~7 s
    for 10 minutes at 30 fps); non-finite cells become empty, which OpenSim,
    spreadsheets and pandas all read as missing.
    """
    table = np.concatenate([np.asarray(c, np.float64).reshape(len(c), -1) for c, _ in columns], axis=1)
    fmts = [fmt for c, fmt in columns for _ in range(np.asarray(c).reshape(len(c), -1).shape[1])]
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=fmts, delimiter=sep)
    token = re.escape(sep)
    return re.sub(rf"(^|{token})-?(nan|inf)(?={token}|$)", r"\1", buf.getvalue(), flags=re.M)


def write_trc(points: Points3D, path: str | Path, units: str = "m", up: str = "y") -> Path:
    """Write an OpenSim TRC marker file (see the module docstring)."""
    if units not in TRC_UNITS:
        raise ValueError(f"TRC units must be one of {', '.join(TRC_UNITS)}, got {units!r}")
    if up not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(UP_AXES)}, got {up!r}")
    path = Path(path)
    fps = frame_rate(points)
    n_f, n_j = points.points.shape[:2]
    xyz = points.points * TRC_UNITS[units]
    if up == "y":
        xyz = z_up_to_y_up(xyz)
    header = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{fps:g}\t{fps:g}\t{n_f}\t{n_j}\t{units}\t{fps:g}\t1\t{n_f}",
        "Frame#\tTime\t" + "\t".join(f"{name}\t\t" for name in points.joint_names),
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, n_j + 1)),
        "",
    ]
    times = frame_times(points, fps)
    body = _rows([(np.arange(1, n_f + 1), "%d"), (times, "%.6f"),
                  (xyz.reshape(n_f, -1), "%.6f" if units == "m" else "%.3f")], "\t")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    return path


def read_trc(path: str | Path) -> dict:
    """Parse a TRC file back: header fields, marker names, times and (F, M, 3) coordinates (NaN where empty).

    The inverse of :func:`write_trc` for tests and round trips (coordinates
    stay in the file's units and axes).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    keys = lines[1].split("\t")
    values = lines[2].split("\t")
    header = dict(zip(keys, values))
    names = [n for n in lines[3].split("\t")[2:] if n]
    n_f, n_m = int(header["NumFrames"]), int(header["NumMarkers"])
    rows = [ln.split("\t") for ln in lines[5:] if ln.strip()]
    frames = np.array([int(r[0]) for r in rows])
    times = np.array([float(r[1]) for r in rows])
    data = np.array([[float(v) if v else np.nan for v in (r[2:] + [""] * (3 * n_m - len(r) + 2))] for r in rows])
    return {"header": header, "path_line": lines[0], "names": names, "frames": frames, "times": times,
            "points": data.reshape(len(rows), n_m, 3), "n_frames": n_f, "axes_line": lines[4]}


def write_csv(points: Points3D, path: str | Path) -> Path:
    """Write the joints as CSV (metres, rig frame; see the module docstring)."""
    path = Path(path)
    fps = frame_rate(points)
    n_f, n_j = points.points.shape[:2]
    cols = ["frame", "time_s"] + [f"{j}_{a}" for j in points.joint_names for a in "xyz"]
    cols += [f"{j}_err_px" for j in points.joint_names] + [f"{j}_views" for j in points.joint_names]
    times = frame_times(points, fps)
    body = _rows([(np.arange(n_f), "%d"), (times, "%.6f"), (points.points.reshape(n_f, -1), "%.6f"),
                  (points.reprojection_error, "%.3f"), (points.n_views, "%d")], ",")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(cols) + "\n" + body, encoding="utf-8")
    return path


def write_c3d(points: Points3D, path: str | Path) -> Path:
    """Write a C3D file with ezc3d (millimetres, rig frame; see the module docstring)."""
    import ezc3d

    path = Path(path)
    fps = frame_rate(points)
    n_f, n_j = points.points.shape[:2]
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [fps]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(points.joint_names)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    data = np.ones((4, n_j, n_f))
    data[:3] = np.transpose(points.points * 1000.0, (2, 1, 0))
    c3d["data"]["points"] = data
    ok = np.isfinite(points.points).all(-1).T  # (J, F)
    c3d["data"]["meta_points"]["residuals"] = np.where(ok, 0.0, -1.0)[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return path


EXPORTERS = {"trc": write_trc, "csv": write_csv, "c3d": write_c3d}


def export_all(points: Points3D, npz_path: str | Path, formats=("trc", "csv", "c3d"), trc_units: str = "m",
               trc_up: str = "y") -> list[Path]:
    """Write the requested formats next to ``npz_path`` (same stem); returns the paths written.

    A multi-person file writes one set per person, ``<stem>_P<id>.trc`` etc.
    (``id`` from ``person_ids``): OpenSim and C3D tools expect one subject per file.
    """
    base = Path(npz_path).with_suffix("")
    if points.multi_person:
        out = []
        for i, pid in enumerate(points.person_ids):
            out += export_all(points.person(i), base.with_name(f"{base.name}_P{int(pid)}.npz"), formats,
                              trc_units, trc_up)
        return out
    out = []
    for fmt in formats:
        if fmt not in EXPORTERS:
            raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(EXPORTERS)}")
        target = base.with_suffix("." + fmt)
        if fmt == "trc":
            out.append(write_trc(points, target, units=trc_units, up=trc_up))
        else:
            out.append(EXPORTERS[fmt](points, target))
    return out
