"""Scaling and inverse kinematics in OpenSim, from a rigcap TRC (the optional ``rigcap[opensim]``).

The ``opensim`` wheel (4.6 on PyPI) ships no musculoskeletal model, so rigcap carries the
generic full-body model and setups Pose2Sim uses for Halpe-26 markers (``opensim_setup/``,
BSD-3-Clause, copied unchanged from the pose2sim 0.10.49 wheel; licence beside them):
``Model_Pose2Sim_simple.osim`` (pelvis 6 DOF, 3-DOF hips, knees, ankles and subtalar, lumbar,
neck, 3-DOF shoulders, elbows, wrists; no muscles), ``Markers_Halpe26.xml`` (a marker at each
Halpe-26 joint), and the scaling and IK setups (which marker pairs scale which body, the marker
weights).  Nothing is downloaded.

:func:`run_opensim`: the TRC's joints (any skeleton rigcap reads, any up axis and unit) are
renamed onto those markers (``left_knee`` -> ``LKnee``; MediaPipe/COCO/BODY-25 through the
Halpe-26 mapping) and written as a metre, Y-up TRC; the ScaleTool scales the model to the
subject (mass, height; body scale factors from the marker distances averaged over the trial);
the InverseKinematicsTool then fits every frame and writes the ``.mot`` of joint angles
(degrees; ``knee_angle_r`` etc., OpenSim's names and signs).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigcap.analysis.angles import estimate_up, to_halpe26
from rigcap.analysis.bvh import to_bvh_world
from rigcap.errors import InputFileError, RigcapError
from triangulate.exports import read_trc, write_trc
from triangulate.formats import Points3D
from triangulate.skeletons import HALPE26

SETUP_DIR = Path(__file__).resolve().parent / "opensim_setup"
MODEL = SETUP_DIR / "Model_Pose2Sim_simple.osim"
MARKERS = SETUP_DIR / "Markers_Halpe26.xml"
SCALING = SETUP_DIR / "Scaling_Setup_Pose2Sim_Halpe26.xml"
IK = SETUP_DIR / "IK_Setup_Pose2Sim_Halpe26.xml"

# Halpe-26 joint -> the model's marker (eyes and ears have none)
MARKER_NAMES = {
    "nose": "Nose", "head": "Head", "neck": "Neck", "hip": "Hip",
    **{f"{side}_{j}": f"{side[0].upper()}{k}" for side in ("left", "right") for j, k in (
        ("shoulder", "Shoulder"), ("elbow", "Elbow"), ("wrist", "Wrist"), ("hip", "Hip"), ("knee", "Knee"),
        ("ankle", "Ankle"), ("big_toe", "BigToe"), ("small_toe", "SmallToe"), ("heel", "Heel"))},
}
TRC_SCALE = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}


def opensim_problem() -> str | None:
    """None when the ``opensim`` package imports here, else why not (one line)."""
    try:
        import opensim  # noqa: F401
    except ImportError as exc:
        return (f"the opensim package is not installed or cannot load on this platform ({exc}); "
                f"install it with: pip install 'rigcap[opensim]'")
    except Exception as exc:  # a broken binary (missing shared library) raises anything
        return f"the opensim package cannot run here ({type(exc).__name__}: {exc})"
    return None


@dataclass
class OpenSimResult:
    scaled_model: Path
    motion: Path
    markers_trc: Path
    coordinates: list[str]
    values: np.ndarray  # (F, C) the .mot columns (degrees for rotations, metres for translations)
    times: np.ndarray
    marker_rms_m: float  # IK marker error, RMS over markers and frames (metres)
    marker_max_m: float

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[:, self.coordinates.index(name)]


def opensim_markers(trc_path: str | Path, out_trc: str | Path) -> tuple[Path, float]:
    """The TRC as the model's markers: metres, Y up, model marker names.  Returns (path, fps)."""
    trc_path = Path(trc_path)
    if not trc_path.is_file():
        raise InputFileError(trc_path, "TRC file not found")
    try:
        trc = read_trc(trc_path)
        fps = float(trc["header"]["DataRate"])
        units = trc["header"].get("Units", "m").strip().lower()
    except (KeyError, ValueError, IndexError) as exc:
        raise InputFileError(trc_path, f"not a readable TRC file ({type(exc).__name__}: {exc})") from None
    if units not in TRC_SCALE:
        raise InputFileError(trc_path, f"unknown TRC units {units!r} (m, mm or cm)")
    pts = to_halpe26(trc["points"] * TRC_SCALE[units], trc["names"])
    if not np.isfinite(pts[:, [HALPE26.index(j) for j in ("left_hip", "right_hip", "left_knee", "right_knee")]]).any():
        raise InputFileError(trc_path, f"no hip or knee markers (markers: {', '.join(trc['names'][:8])}...); "
                             "rigcap opensim reads the TRC rigcap triangulate writes")
    # Y up, whatever the file's vertical was
    pts = np.einsum("ij,fkj->fki", to_bvh_world(estimate_up(pts)), pts)
    keep = [HALPE26.index(j) for j in MARKER_NAMES]
    p3d = Points3D(pts[:, keep], list(MARKER_NAMES.values()), fps=fps)
    return write_trc(p3d, out_trc, units="m", up="z"), fps  # up="z": written as given (already Y up)


@contextlib.contextmanager
def _quiet_opensim_log(log_path: Path):
    """OpenSim's log into ``log_path``; its C++ prints (a model summary per load) too."""
    import sys

    import opensim as osim

    osim.Logger.removeFileSink()
    osim.Logger.addFileSink(str(log_path))
    # the model's bone meshes are not shipped: a warning per mesh unless RIGCAP_OPENSIM_LOG=warn
    osim.Logger.setLevelString(os.environ.get("RIGCAP_OPENSIM_LOG", "error"))
    sys.stdout.flush()
    saved = os.dup(1)
    with open(log_path.with_suffix(".stdout.log"), "ab") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            osim.Logger.removeFileSink()


def run_opensim(trc_path: str | Path, out_dir: str | Path, height_m: float, mass_kg: float,
                name: str | None = None) -> OpenSimResult:
    """Scale the generic model to the subject and run inverse kinematics on the TRC."""
    problem = opensim_problem()
    if problem:
        raise RigcapError(problem)
    import opensim as osim

    if not 0.5 <= height_m <= 2.6:
        raise RigcapError(f"--height must be the subject's height in metres (0.5-2.6), got {height_m}")
    if not 10 <= mass_kg <= 300:
        raise RigcapError(f"--mass must be the subject's mass in kg (10-300), got {mass_kg}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or Path(trc_path).stem
    markers, fps = opensim_markers(trc_path, out_dir / f"{name}_markers.trc")
    table = osim.TimeSeriesTableVec3(str(markers))
    t0, t1 = table.getIndependentColumn()[0], table.getIndependentColumn()[-1]
    scaled = out_dir / f"{name}_scaled.osim"
    mot = out_dir / f"{name}.mot"
    for stale in (scaled, mot):
        stale.unlink(missing_ok=True)
    with _quiet_opensim_log(out_dir / "opensim.log"):
        if True:  # noqa: SIM108 - one block for the log
            scale = osim.ScaleTool(str(SCALING))
            scale.setPathToSubject("")  # our paths are absolute, not relative to the setup file
            scale.setSubjectMass(mass_kg)
            scale.setSubjectHeight(height_m * 1000.0)  # OpenSim's ScaleTool stores it in mm
            scale.getGenericModelMaker().setModelFileName(str(MODEL))
            scale.getGenericModelMaker().setMarkerSetFileName(str(MARKERS))
            ms = scale.getModelScaler()
            ms.setMarkerFileName(str(markers))
            ms.setTimeRange(_range(osim, t0, t1))
            ms.setPreserveMassDist(True)
            ms.setOutputModelFileName(str(scaled))
            ms.setOutputScaleFileName(str(out_dir / f"{name}_scale_factors.xml"))
            mp = scale.getMarkerPlacer()
            mp.setApply(False)
            scale.run()  # returns False whenever marker placement is off, even when scaling worked
            if not scaled.is_file():
                raise RigcapError(f"OpenSim scaling failed (see {out_dir / 'opensim.log'})")
            ik = osim.InverseKinematicsTool(str(IK))
            model = osim.Model(str(scaled))
            ik.setModel(model)
            ik.set_model_file(str(scaled))
            ik.setMarkerDataFileName(str(markers))
            ik.setStartTime(t0)
            ik.setEndTime(t1)
            ik.setOutputMotionFileName(str(mot))
            ik.set_report_errors(True)
            ik.setResultsDir(str(out_dir))
            if not ik.run():
                raise RigcapError(f"OpenSim inverse kinematics failed (see {out_dir / 'opensim.log'})")
    coords, times, values = read_mot(mot)
    err_file = out_dir / "_ik_marker_errors.sto"
    rms, worst = np.nan, np.nan
    if err_file.is_file():
        ec, _, ev = read_mot(err_file)
        if "marker_error_RMS" in ec:
            rms = float(np.sqrt(np.nanmean(ev[:, ec.index("marker_error_RMS")] ** 2)))
            worst = float(np.nanmax(ev[:, ec.index("marker_error_max")]))
    return OpenSimResult(scaled, mot, markers, coords, values, times, rms, worst)


def _range(osim, t0: float, t1: float):
    a = osim.ArrayDouble()
    a.append(t0)
    a.append(t1)
    return a


def read_mot(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """An OpenSim .mot/.sto file: (column names without time, times (F,), values (F, C))."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    cols = lines[end + 1].split("\t")
    data = np.loadtxt(lines[end + 2:], ndmin=2)
    return [c.strip() for c in cols[1:]], data[:, 0], data[:, 1:]
