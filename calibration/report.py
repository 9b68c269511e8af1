"""How good is a calibration, in numbers a person can check.

Pixel error alone hides metric mistakes (a wrong focal length and a wrong
distance trade off and leave a tiny reprojection error), so the report adds
**board rigidity**: the board's corners are triangulated from all cameras
that saw them at each instant (linear DLT on undistorted coordinates, no
board model involved), and every corner-to-corner distance within an
instant is compared with the printed board's.  The RMSE of those
differences, in millimetres, is what a 3D point measured with this rig gets
wrong over a board's size.

Outputs: a dict for the rig file's ``[metadata]``, a rich table, and a PNG
(matplotlib, Agg backend) with the error per camera and a top view of the
cameras and the board sightings.
"""

from __future__ import annotations

import datetime

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.board import BoardDefinition
from calibration.rig import Rig


# ------------------------------------------------------------ triangulation
def triangulate_views(rig: Rig, pixels: np.ndarray, min_views: int = 2) -> np.ndarray:
    """Linear (DLT) triangulation of ``pixels (C, ..., 2)`` (NaN = unseen) -> points (..., 3).

    Each view contributes two rows ``x P3 - P1``, ``y P3 - P2`` on
    undistorted normalised coordinates; a point seen by fewer than
    ``min_views`` cameras is NaN.  Vectorised over all points (batched SVD).
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    shape = pixels.shape[1:-1]
    c_n = pixels.shape[0]
    xn = rig.undistort(pixels).reshape(c_n, -1, 2)  # (C, P, 2)
    ext = rig.extrinsics  # (C, 3, 4)
    seen = np.isfinite(xn[..., 0])
    xz = np.where(seen[..., None], xn, 0.0)
    rows1 = xz[..., 0:1] * ext[:, None, 2] - ext[:, None, 0]  # (C, P, 4)
    rows2 = xz[..., 1:2] * ext[:, None, 2] - ext[:, None, 1]
    a = np.concatenate([rows1, rows2], axis=0) * np.concatenate([seen, seen], axis=0)[..., None]
    a = np.transpose(a, (1, 0, 2))  # (P, 2C, 4)
    out = np.full((a.shape[0], 3), np.nan)
    ok = seen.sum(axis=0) >= min_views
    if ok.any():
        _, _, vt = np.linalg.svd(a[ok])
        h = vt[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[ok] = h[:, :3] / h[:, 3:4]
    return out.reshape(shape + (3,))


def rigidity_errors(points: np.ndarray, board: BoardDefinition) -> np.ndarray:
    """Corner-to-corner distance errors (metres) of triangulated boards ``points (K, N, 3)``.

    Every pair of corners triangulated at the same instant gives one error
    ``|p_i - p_j| - |q_i - q_j|`` against the printed board ``q``.
    """
    q = board.corner_points()
    true_d = np.linalg.norm(q[:, None] - q[None], axis=-1)  # (N, N)
    iu, ju = np.triu_indices(q.shape[0], k=1)
    d = np.linalg.norm(points[:, iu] - points[:, ju], axis=-1)  # (K, pairs)
    err = d - true_d[iu, ju]
    return err[np.isfinite(err)]


def board_rigidity_mm(rig: Rig, corners: np.ndarray, board: BoardDefinition) -> tuple[float, int]:
    """Rigidity RMSE in mm over all instants of ``corners (C, K, N, 2)``, and the number of pairs."""
    pts = triangulate_views(rig, corners)
    err = rigidity_errors(pts, board)
    if err.size == 0:
        return float("nan"), 0
    return float(np.sqrt(np.mean(err**2)) * 1000.0), int(err.size)


# ------------------------------------------------------------------ report
@dataclass
class CameraReport:
    name: str
    rmse_px: float  # bundle-adjustment reprojection RMSE over this camera's inlier corners
    views: int  # instants this camera saw the board in (with corners)
    corners: int  # corner observations used (inliers)
    outliers: int  # corner observations trimmed
    coverage: float  # fraction of the image grid holding a detected corner
    intrinsics_rms_px: float  # single-camera calibrateCamera RMS (before bundle adjustment)
    warnings: list[str] = field(default_factory=list)
    lens_model: str = "full"  # calibration.intrinsics.LENS_MODELS, "held" when given and not refined
    lens_reason: str = ""  # why that model (one line)
    image_mirrored: bool = False  # its image is mirrored left-right: the rig file holds fx < 0 (calibration.mirror)
    back_views: int = 0  # views in which it sees the board from behind (a transparent board)
    # 1-sigma uncertainty from the bundle adjustment's covariance (calibration.uncertainty), relative
    # to the first camera, along the worst-determined direction
    sigma_position_mm: float = float("nan")
    sigma_orientation_deg: float = float("nan")
    sigma_focal_pct: float = float("nan")  # nan when the focal length was held


def metadata(cameras: list[CameraReport], rigidity_mm: float, extra: dict | None = None) -> dict:
    """The ``[metadata]`` table of the rig file: a ``calibration`` sub-table, plain numbers only."""
    per_cam = {
        c.name: {
            "rmse_px": round(float(c.rmse_px), 4), "views": int(c.views), "corners": int(c.corners),
            "outliers": int(c.outliers), "coverage": round(float(c.coverage), 3),
            "lens_model": c.lens_model, **({"lens_model_reason": c.lens_reason} if c.lens_reason else {}),
            **{k: round(float(v), 5) for k, v in (("sigma_position_mm", c.sigma_position_mm),
                                                  ("sigma_orientation_deg", c.sigma_orientation_deg),
                                                  ("sigma_focal_pct", c.sigma_focal_pct)) if np.isfinite(v)},
            **({"image_mirrored": True} if c.image_mirrored else {}),
            **({"board_seen_from_behind_views": int(c.back_views)} if c.back_views else {}),
        }
        for c in cameras
    }
    rmse_all = [c.rmse_px for c in cameras if np.isfinite(c.rmse_px)]
    out = {
        "tool": "rigcap calibrate",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rmse_px_max": round(float(max(rmse_all)), 4) if rmse_all else float("nan"),
        **({"board_rigidity_rmse_mm": round(float(rigidity_mm), 4)} if np.isfinite(rigidity_mm) else {}),
        "cameras": per_cam,
    }
    if extra:
        out.update(extra)
    return out


def print_table(cameras: list[CameraReport], rigidity_mm: float, console=None) -> None:
    """The per-camera table and the rigidity line, on a rich console."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="calibration report")
    for col in ("camera", "RMSE px", "views", "corners", "outliers", "coverage", "lens model", "σ pos mm",
                "σ rot deg", "σ focal %"):
        table.add_column(col, justify="right" if col not in ("camera", "lens model") else "left")

    def sig(v, spec):
        return "-" if not np.isfinite(v) else format(v, spec)

    for c in cameras:
        table.add_row(c.name + (" (mirrored image)" if c.image_mirrored else ""), f"{c.rmse_px:.3f}", str(c.views),
                      str(c.corners), str(c.outliers), f"{c.coverage:.0%}", c.lens_model,
                      sig(c.sigma_position_mm, ".2f"), sig(c.sigma_orientation_deg, ".3f"), sig(c.sigma_focal_pct, ".2f"))
    console.print(table)
    console.print("σ: one standard deviation from the bundle adjustment's covariance, relative to the first camera, "
                  "along the worst-determined direction; too small when the lens model is simpler than the lens.")
    for c in cameras:
        if c.lens_model not in ("full", "held") and c.lens_reason:
            console.print(f"lens model of {c.name}: {c.lens_model}; {c.lens_reason}")
    if np.isfinite(rigidity_mm):
        console.print(f"board rigidity RMSE: [bold]{rigidity_mm:.3f} mm[/bold] "
                      "(triangulated corner-to-corner distances vs the printed board)")
    else:
        console.print("board rigidity: n/a (it needs board corners seen by two or more cameras at once)")
    for c in cameras:
        for w in c.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}")


def save_png(path: str | Path, rig: Rig, cameras: list[CameraReport], rigidity_mm: float,
             board_points_world: np.ndarray | None = None, title: str = "rigcap calibration",
             z_up: bool = True) -> Path:
    """Error per camera (bar chart) and a top view of the rig with the board sightings.

    ``z_up``: the world's z axis is up (a floor sighting set the frame), so the
    top view is the x-y plane; otherwise the world is camera 0's frame (y
    down) and the top view is its x-z plane.
    """
    ax2 = 1 if z_up else 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_err, ax_top) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1, 1.3]})
    names = [c.name for c in cameras]
    ax_err.bar(names, [c.rmse_px for c in cameras], color="tab:blue")
    ax_err.set_ylabel("reprojection RMSE (px)")
    ax_err.set_title("error per camera; board rigidity RMSE " + (f"{rigidity_mm:.2f} mm" if np.isfinite(rigidity_mm) else "n/a"))
    ax_err.tick_params(axis="x", rotation=45)
    for i, c in enumerate(cameras):  # the sigmas above each bar
        if np.isfinite(c.sigma_position_mm):
            ax_err.annotate(f"σ {c.sigma_position_mm:.1f} mm\n{c.sigma_orientation_deg:.2f}°"
                            + (f"\nf {c.sigma_focal_pct:.2f} %" if np.isfinite(c.sigma_focal_pct) else ""),
                            (i, c.rmse_px if np.isfinite(c.rmse_px) else 0.0), textcoords="offset points",
                            xytext=(0, 3), ha="center", va="bottom", fontsize=7)
    if board_points_world is not None and np.isfinite(board_points_world).any():
        pts = board_points_world.reshape(-1, 3)
        pts = pts[np.isfinite(pts[:, 0])]
        ax_top.scatter(pts[:, 0], pts[:, ax2], s=1, c="0.6", label="board corners")
    centers = rig.centers
    for cam, c in zip(rig.cameras, centers):
        look = cam.R[2] * 0.4  # optical axis in world coordinates
        ax_top.plot([c[0], c[0] + look[0]], [c[ax2], c[ax2] + look[ax2]], color="tab:red")
        ax_top.annotate(cam.name, (c[0], c[ax2]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax_top.scatter(centers[:, 0], centers[:, ax2], color="tab:red", marker="^", label="cameras")
    ax_top.set_aspect("equal", adjustable="datalim")
    ax_top.set_xlabel("x (m)")
    ax_top.set_ylabel("y (m)" if z_up else "z (m), camera 0 looking up the page")
    ax_top.set_title("top view" + ("" if z_up else " (camera 0's frame)"))
    ax_top.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def as_dict(cam: CameraReport) -> dict:
    return asdict(cam)
