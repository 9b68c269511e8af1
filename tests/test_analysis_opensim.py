"""OpenSim scaling + IK (optional extra): knee angle agrees with rigcap's on the synthetic person,
it runs on the real demo's TRC, and without opensim the command says so in one line."""

from __future__ import annotations

import numpy as np
import pytest

from rigcap.analysis.opensim_ik import opensim_problem

needs_opensim = pytest.mark.skipif(opensim_problem() is not None, reason=f"{opensim_problem()}")


@needs_opensim
def test_opensim_knee_angle_agrees_with_rigcap_on_the_synthetic_person(tmp_path):
    from rigcap.analysis.angles import joint_angles
    from rigcap.analysis.opensim_ik import run_opensim
    from rigcap.studio.studio import SyntheticStudio
    from triangulate.exports import write_trc

    studio = SyntheticStudio(n_cameras=1, fps=30.0, duration_s=12.0, seed=4, program="workout")
    trc = write_trc(studio.points3d_true(), tmp_path / "person.trc")  # Y up, metres, rigcap's joint names
    result = run_opensim(trc, tmp_path / "os", height_m=1.75, mass_kg=70.0)
    assert len(result.times) == studio.n_frames
    assert result.marker_rms_m < 0.04, "the scaled model follows the markers"
    ours = joint_angles(studio.points3d, studio.skeleton.joint_names, up=[0, 0, 1.0])
    for side, s in (("right", "r"), ("left", "l")):
        os_knee, knee = result[f"knee_angle_{s}"], ours[f"knee_flexion_{side}"]
        assert knee.max() > 90, "squats in this clip"
        d = os_knee - knee
        assert np.sqrt(np.mean(d ** 2)) < 3.0 and np.abs(d).max() < 8.0, f"{side}: {np.sqrt(np.mean(d**2)):.2f} deg RMS"
    assert result.motion.is_file() and result.scaled_model.is_file()


@needs_opensim
@pytest.mark.slow
@pytest.mark.shared_data
def test_opensim_runs_on_the_real_demo_trc(tmp_path, shared_data, capsys):
    """MediaPipe on the demo's four videos, rigcap triangulate (Qualisys calibration), rigcap opensim."""
    import cv2

    from capture.pose import best_person, create_detector
    from rigcap.analysis.opensim_ik import read_mot
    from rigcap.cli import main
    from triangulate.formats import Keypoints2D

    demo = shared_data / "pose2sim-demo-single"
    videos = sorted((demo / "videos").glob("*.mp4"))
    per_cam = []
    for video in videos:
        with create_detector("mediapipe") as det:
            cap = cv2.VideoCapture(str(video))
            rows = []
            while len(rows) < 60:
                ok, img = cap.read()
                if not ok:
                    break
                people = det.detect(img)
                best = best_person(people)
                rows.append(people[best] if best is not None else np.full((det.skeleton.n_joints, 3), np.nan))
            cap.release()
            names = list(det.skeleton.joint_names)
        per_cam.append(np.asarray(rows, np.float32))
    n = min(len(r) for r in per_cam)
    kp = Keypoints2D(np.stack([r[:n] for r in per_cam]), [v.stem for v in videos], names, fps=60.0).save(tmp_path / "kp.npz")
    pts = tmp_path / "points3d.npz"
    assert main(["triangulate", "--rig", str(demo / "calibration" / "Calib.qca.txt"), "--keypoints", str(kp),
                 "--camera-order", "rig", "--out", str(pts), "--filter", "butterworth", "--max-gap", "10",
                 "--exports", "trc"]) == 0
    assert main(["opensim", "--trc", str(tmp_path / "points3d.trc"), "--height", "1.75", "--mass", "70",
                 "--out", str(tmp_path / "os")]) == 0
    out = capsys.readouterr().out
    assert "rigcap opensim" in out and "RMS" in out
    cols, times, values = read_mot(tmp_path / "os" / "points3d.mot")
    assert len(times) == n and np.isfinite(values).all()
    knee = values[:, cols.index("knee_angle_r")]
    assert 0 <= np.median(knee) <= 60 and knee.max() - knee.min() > 15, "a walking knee bends and straightens"
    err_cols, _, err = read_mot(tmp_path / "os" / "_ik_marker_errors.sto")
    assert np.sqrt(np.mean(err[:, err_cols.index("marker_error_RMS")] ** 2)) < 0.06  # m


def test_without_opensim_the_command_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import rigcap.analysis.opensim_ik as ik
    from rigcap.cli import main

    monkeypatch.setattr(ik, "opensim_problem", lambda: "the opensim package cannot run here (test)")
    (tmp_path / "x.trc").write_text("x")
    assert main(["opensim", "--trc", str(tmp_path / "x.trc"), "--height", "1.75", "--mass", "70"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rigcap opensim: error: the opensim package cannot run here (test)"


@needs_opensim
def test_opensim_bad_trc_is_one_line(tmp_path, capsys):
    from rigcap.cli import main

    (tmp_path / "bad.trc").write_text("not a trc\n")
    assert main(["opensim", "--trc", str(tmp_path / "bad.trc"), "--height", "1.75", "--mass", "70"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.trc" in err and "\n" not in err
    assert main(["opensim", "--trc", str(tmp_path / "bad.trc"), "--height", "175", "--mass", "70"]) == 2
