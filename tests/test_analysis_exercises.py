"""Exercises: reps counted against the synthetic person's known reps, hysteresis, form rules with
frame numbers, exercise files, and ``rigcap analyze``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rigcap.analysis.angles import ANGLE_NAMES, JointAngles, joint_angles
from rigcap.analysis.exercises import analyze_exercise, known_exercises, load_exercise
from rigcap.studio.motion import PersonMotion
from triangulate.skeletons import HALPE26

Z_UP = np.array([0.0, 0.0, 1.0])
FPS = 30.0


@pytest.fixture(scope="module")
def workout():
    motion = PersonMotion(60.0, seed=4, program="workout")
    t = np.arange(int(60 * FPS)) / FPS
    return motion, motion.joints(t)


def test_the_three_exercises_ship():
    assert {"squat", "lunge", "arm_raise"} <= set(known_exercises())


@pytest.mark.parametrize("name", ["squat", "lunge", "arm_raise"])
def test_counted_reps_equal_the_true_reps(workout, name):
    motion, joints = workout
    truth = motion.exercise_reps(0.0, 60.0 - 1 / FPS)[name]
    assert len(truth) >= 3, "the workout program makes sets of every exercise"
    result = analyze_exercise(joint_angles(joints, HALPE26.joint_names, up=Z_UP), load_exercise(name), FPS)
    assert len(result.reps) == len(truth)
    peaks = np.array([r.peak for r in result.reps]) / FPS
    np.testing.assert_allclose(peaks, truth, atol=0.1)  # each rep found where it happened
    for rep in result.reps:
        assert rep.start < rep.peak < rep.end and rep.rom > 30


def test_mixed_program_reps_and_no_lunges():
    motion = PersonMotion(40.0, seed=0)
    t = np.arange(int(40 * FPS)) / FPS
    angles = joint_angles(motion.joints(t), HALPE26.joint_names, up=Z_UP)
    truth = motion.exercise_reps(0.0, t[-1])
    for name in ("squat", "lunge", "arm_raise"):
        assert len(analyze_exercise(angles, load_exercise(name), FPS).reps) == len(truth[name]), name
    assert len(truth["lunge"]) == 0 and len(truth["squat"]) >= 2


def test_depth_rule_hits_exactly_the_shallow_squats(workout):
    motion, joints = workout
    angles = joint_angles(joints, HALPE26.joint_names, up=Z_UP)
    result = analyze_exercise(angles, load_exercise("squat"), FPS)
    depth_at_true_bottom = np.array([
        0.5 * (angles["knee_flexion_left"] + angles["knee_flexion_right"])[int(round(t * FPS))]
        for t in motion.exercise_reps(0.0, 60.0 - 1 / FPS)["squat"]])
    shallow = {i + 1 for i, d in enumerate(depth_at_true_bottom) if d < 90.0}
    assert 0 < len(shallow) < len(result.reps), "the program varies the depth"
    hits = {h.rep for h in result.hits if h.rule == "depth"}
    assert hits == shallow
    for h in result.hits:
        if h.rule == "depth":
            assert h.frame == result.reps[h.rep - 1].peak and h.value < 90


def test_valgus_rule_names_the_rep_the_side_and_the_frame(workout):
    motion, joints = workout
    angles = joint_angles(joints, HALPE26.joint_names, up=Z_UP)
    clean = analyze_exercise(angles, load_exercise("squat"), FPS)
    assert not [h for h in clean.hits if h.rule == "knee valgus"]
    rep = clean.reps[1]
    caved = joints.copy()
    k, lh, la = HALPE26.index("left_knee"), HALPE26.index("left_hip"), HALPE26.index("left_ankle")
    frames = np.arange(rep.peak - 5, rep.peak + 6)
    medial = caved[frames, HALPE26.index("right_hip")] - caved[frames, lh]
    medial[:, 2] = 0
    caved[frames, k] += 0.12 * medial / np.linalg.norm(medial, axis=-1, keepdims=True)  # left knee 12 cm inwards
    result = analyze_exercise(joint_angles(caved, HALPE26.joint_names, up=Z_UP), load_exercise("squat"), FPS)
    hits = [h for h in result.hits if h.rule == "knee valgus"]
    assert hits and {h.rep for h in hits} == {2} and {h.angle for h in hits} == {"knee_valgus_left"}
    assert frames[0] <= hits[0].frame <= frames[-1] and hits[0].value > 10
    assert la != k  # (the ankle stays: only the knee caves in)


def _driving_only(curve: np.ndarray) -> JointAngles:
    values = np.zeros((curve.size, len(ANGLE_NAMES)))
    for side in ("left", "right"):
        values[:, ANGLE_NAMES.index(f"knee_flexion_{side}")] = curve
        values[:, ANGLE_NAMES.index(f"hip_flexion_{side}")] = curve
    return JointAngles(values, ANGLE_NAMES, Z_UP)


def test_hysteresis_does_not_count_noise_at_a_threshold():
    rng = np.random.default_rng(0)
    t = np.arange(0, 20, 1 / FPS)
    # 4 deep reps, then 6 s hovering around the enter threshold (65) with 3 deg noise
    curve = np.where(t < 14, 20 + 80 * np.sin(np.pi * t / 3.5) ** 2, 65 + 3 * rng.standard_normal(t.size))
    result = analyze_exercise(_driving_only(curve), load_exercise("squat"), FPS)
    assert len(result.reps) == 4
    assert result.in_progress, "hovering above the exit line: a rep still going on"
    # a short gap (missing joints) inside a rep is bridged, the rep still counts once
    gappy = curve.copy()
    gappy[50:56] = np.nan
    assert len(analyze_exercise(_driving_only(gappy), load_exercise("squat"), FPS).reps) == 4


def test_bad_exercise_files_are_one_line_errors(tmp_path):
    from rigcap.errors import RigcapError

    bad = tmp_path / "bad.toml"
    bad.write_text('[driving]\nangles = ["knee_flex"]\nenter = 60\nexit = 30\n')
    with pytest.raises(RigcapError, match=r"bad\.toml.*unknown angle.*knee_flex"):
        load_exercise(bad)
    bad.write_text('[driving]\nangles = "knee_flexion_left"\nenter = 60\n')
    with pytest.raises(RigcapError, match=r"bad\.toml.*missing 'exit'"):
        load_exercise(bad)
    bad.write_text('[driving]\nangles = "knee_flexion_left"\nenter = 60\nexit = 30\n[[rules]]\nname = "x"\n'
                   'angles = "knee_valgus_left"\n')
    with pytest.raises(RigcapError, match=r"'x'.*min.*max"):
        load_exercise(bad)
    with pytest.raises(RigcapError, match="unknown exercise 'burpee'.*squat"):
        load_exercise("burpee")


def test_analyze_command_on_triangulated_synthetic_person(tmp_path, capsys):
    from calibration.rigfile import save_rig
    from rigcap.cli import main
    from rigcap.studio.studio import SyntheticStudio

    studio = SyntheticStudio(n_cameras=4, fps=FPS, duration_s=24.0, seed=4, program="workout")
    true_reps = studio.exercise_reps()
    assert true_reps["squat"] >= 3
    rig = save_rig(studio.rig, tmp_path / "rig.toml")
    kp = studio.keypoints2d().save(tmp_path / "kp2d.npz")
    pts = tmp_path / "points3d.npz"
    assert main(["triangulate", "--rig", str(rig), "--keypoints", str(kp), "--out", str(pts), "--filter",
                 "butterworth", "--max-gap", "10", "--exports", "none"]) == 0
    capsys.readouterr()
    assert main(["analyze", "--points", str(pts), "--exercise", "squat", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["reps"] == true_reps["squat"]
    assert f"squat: {true_reps['squat']} reps" in out
    for rep in summary["rep_list"]:
        for hit in rep["hits"]:
            assert f"rep {rep['rep']}: {hit['rule']}" in out and f"at frame {hit['frame']}" in out
    assert (tmp_path / "points3d.squat.png").stat().st_size > 10_000
    assert main(["analyze", "--points", str(pts), "--exercise", "nope"]) == 2


def test_synth_person_workout_writes_the_true_reps(tmp_path):
    from rigcap.cli import main
    from rigcap.studio.studio import SyntheticStudio

    assert main(["synth", "person", "--program", "workout", "--seconds", "14", "--cameras", "2",
                 "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "reps_true.json").read_text())
    assert written == SyntheticStudio(n_cameras=2, duration_s=14.0, program="workout").exercise_reps()
    assert written["squat"] >= 2
