"""Joint angles: hand-built poses with known angles, every skeleton, missing joints, any
orientation of the world, and the synthetic studio's truth against its triangulation."""

from __future__ import annotations

import numpy as np
import pytest

from rigcap.analysis.angles import ANGLE_NAMES, joint_angles
from triangulate.skeletons import BODY25, COCO17, HALPE26, MEDIAPIPE33

# A person standing upright at the origin, facing +x, z up, left = +y.
NEUTRAL = {
    "left_hip": (0, 0.1, 0.9), "right_hip": (0, -0.1, 0.9),
    "left_knee": (0, 0.1, 0.5), "right_knee": (0, -0.1, 0.5),
    "left_ankle": (0, 0.1, 0.1), "right_ankle": (0, -0.1, 0.1),
    "left_heel": (-0.05, 0.1, 0.05), "right_heel": (-0.05, -0.1, 0.05),
    "left_big_toe": (0.15, 0.1, 0.05), "right_big_toe": (0.15, -0.1, 0.05),
    "left_small_toe": (0.12, 0.14, 0.05), "right_small_toe": (0.12, -0.14, 0.05),
    "left_shoulder": (0, 0.18, 1.4), "right_shoulder": (0, -0.18, 1.4),
    "left_elbow": (0, 0.18, 1.1), "right_elbow": (0, -0.18, 1.1),
    "left_wrist": (0, 0.18, 0.85), "right_wrist": (0, -0.18, 0.85),
    "nose": (0.1, 0, 1.6), "left_eye": (0.08, 0.03, 1.63), "right_eye": (0.08, -0.03, 1.63),
    "left_ear": (0, 0.07, 1.6), "right_ear": (0, -0.07, 1.6), "head": (0, 0, 1.75),
    "neck": (0, 0, 1.4), "hip": (0, 0, 0.9),
}
Z_UP = np.array([0.0, 0.0, 1.0])


def pose(**changes) -> dict:
    p = {k: np.array(v, float) for k, v in NEUTRAL.items()}
    p.update({k: np.array(v, float) for k, v in changes.items()})
    return p


def as_array(p: dict, skeleton=HALPE26) -> np.ndarray:
    alias = {"left_foot_index": "left_big_toe", "right_foot_index": "right_big_toe"}
    return np.array([p.get(alias.get(n, n), np.full(3, np.nan)) for n in skeleton.joint_names])


def angles_of(p: dict, up=Z_UP, skeleton=HALPE26):
    return joint_angles(as_array(p, skeleton), skeleton.joint_names, up=up)


def rot(axis: str, deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_neutral_pose_is_zero_everywhere():
    a = angles_of(pose())
    for name in ANGLE_NAMES:
        if name.startswith("shoulder_elevation_plane"):
            assert np.isnan(a[name]), "the plane of elevation is undefined with the arm down"
        else:
            assert a[name] == pytest.approx(0.0, abs=1e-9), name


@pytest.mark.parametrize("deg", [30.0, 60.0, 110.0])
def test_knee_flexion_and_hyperextension(deg):
    def shank(d):  # the shank rotated backwards by d degrees about the lateral axis
        return np.array([-np.sin(np.radians(d)), 0, -np.cos(np.radians(d))]) * 0.4
    a = angles_of(pose(left_ankle=np.array(NEUTRAL["left_knee"]) + shank(deg),
                       right_ankle=np.array(NEUTRAL["right_knee"]) + shank(-8.0)))
    assert a["knee_flexion_left"] == pytest.approx(deg)
    assert a["knee_flexion_right"] == pytest.approx(-8.0), "hyperextension is negative"
    assert a["hip_flexion_left"] == pytest.approx(0.0, abs=1e-9)


def test_seated_pose_hip_knee_ankle():
    knee = np.array([0.4, 0.1, 0.9])
    ankle = knee + [0, 0, -0.4]
    foot = dict(left_heel=ankle + [-0.05, 0, -0.05], left_big_toe=ankle + [0.15, 0, -0.05])
    a = angles_of(pose(left_knee=knee, left_ankle=ankle, **foot))
    assert a["hip_flexion_left"] == pytest.approx(90.0)
    assert a["knee_flexion_left"] == pytest.approx(90.0)
    assert a["ankle_dorsiflexion_left"] == pytest.approx(0.0, abs=1e-9)
    assert a["hip_abduction_left"] == pytest.approx(0.0, abs=1e-9)


def test_ankle_dorsi_and_plantarflexion():
    ankle = np.array(NEUTRAL["left_ankle"])
    toe = ankle + 0.2 * np.array([np.cos(np.radians(15)), 0, np.sin(np.radians(15))])  # toes lifted 15 deg
    heel = ankle - 0.05 * np.array([np.cos(np.radians(15)), 0, np.sin(np.radians(15))])
    r_ankle = np.array(NEUTRAL["right_ankle"])
    r_toe = r_ankle + 0.2 * np.array([np.cos(np.radians(-25)), 0, np.sin(np.radians(-25))])
    a = angles_of(pose(left_big_toe=toe, left_heel=heel, right_big_toe=r_toe, right_heel=r_ankle))
    assert a["ankle_dorsiflexion_left"] == pytest.approx(15.0)
    assert a["ankle_dorsiflexion_right"] == pytest.approx(-25.0)


def test_hip_abduction_is_positive_outwards_on_both_sides():
    d = np.radians(30)
    a = angles_of(pose(left_knee=np.array(NEUTRAL["left_hip"]) + 0.4 * np.array([0, np.sin(d), -np.cos(d)]),
                       right_knee=np.array(NEUTRAL["right_hip"]) + 0.4 * np.array([0, np.sin(d / 3), -np.cos(d / 3)])))
    assert a["hip_abduction_left"] == pytest.approx(30.0)
    assert a["hip_abduction_right"] == pytest.approx(-10.0), "right thigh towards the midline = adduction"


def test_knee_valgus_is_the_frontal_plane_projection_angle():
    d = 0.05  # both knees 5 cm towards the midline
    a = angles_of(pose(left_knee=(0, 0.1 - d, 0.5), right_knee=(0, -0.1 + d, 0.5)))
    expected = 2 * np.degrees(np.arctan2(d, 0.4))
    assert a["knee_valgus_left"] == pytest.approx(expected)
    assert a["knee_valgus_right"] == pytest.approx(expected)
    b = angles_of(pose(left_knee=(0, 0.1 + d, 0.5)))
    assert b["knee_valgus_left"] == pytest.approx(-expected), "knee outwards = varus, negative"


def test_shoulder_flexion_abduction_elevation():
    sh_l, sh_r = np.array(NEUTRAL["left_shoulder"]), np.array(NEUTRAL["right_shoulder"])
    a = angles_of(pose(left_elbow=sh_l + [0.3, 0, 0], right_elbow=sh_r + [0, -0.3, 0]))
    assert a["shoulder_flexion_left"] == pytest.approx(90.0)
    assert a["shoulder_elevation_left"] == pytest.approx(90.0)
    assert a["shoulder_elevation_plane_left"] == pytest.approx(90.0)
    assert np.isnan(a["shoulder_abduction_left"]), "arm straight forward: no frontal projection"
    assert a["shoulder_abduction_right"] == pytest.approx(90.0)
    assert a["shoulder_elevation_plane_right"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(a["shoulder_flexion_right"])
    up = angles_of(pose(left_elbow=sh_l + [0, 0.05, 0.3]))  # overhead, slightly out to the side
    assert up["shoulder_abduction_left"] == pytest.approx(180 - np.degrees(np.arctan2(0.05, 0.3)))
    assert up["shoulder_elevation_left"] == pytest.approx(180 - np.degrees(np.arctan2(0.05, 0.3)))
    back = angles_of(pose(left_elbow=sh_l + 0.3 * np.array([-np.sin(0.5), 0, -np.cos(0.5)])))
    assert back["shoulder_flexion_left"] == pytest.approx(-np.degrees(0.5)), "arm behind = extension"


def test_elbow_flexion():
    el = np.array(NEUTRAL["left_elbow"])
    a = angles_of(pose(left_wrist=el + [0.25, 0, 0]))
    assert a["elbow_flexion_left"] == pytest.approx(90.0)


def test_trunk_lean_rotation_and_hip_flexion_against_the_trunk():
    hip_mid = np.array(NEUTRAL["hip"])
    r = rot("y", 30)  # lean forward: +z towards +x
    upper = {k: hip_mid + r @ (np.array(NEUTRAL[k]) - hip_mid)
             for k in ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")}
    a = angles_of(pose(**upper))
    assert a["trunk_lean_forward"] == pytest.approx(30.0)
    assert a["trunk_lean_sideways"] == pytest.approx(0.0, abs=1e-9)
    assert a["hip_flexion_left"] == pytest.approx(30.0), "hip flexion is the thigh against the trunk"
    assert a["shoulder_flexion_left"] == pytest.approx(0.0, abs=1e-9), "shoulder angles are in the thorax frame"
    t = rot("z", 20)  # shoulders turned to the left
    twisted = {k: hip_mid + t @ (np.array(NEUTRAL[k]) - hip_mid) for k in ("left_shoulder", "right_shoulder")}
    b = angles_of(pose(**twisted))
    assert b["trunk_rotation"] == pytest.approx(20.0)
    s = rot("x", 10)  # +z towards -y: leaning to the person's right
    side = {k: hip_mid + s @ (np.array(NEUTRAL[k]) - hip_mid) for k in ("left_shoulder", "right_shoulder")}
    assert angles_of(pose(**side))["trunk_lean_sideways"] == pytest.approx(10.0)


def test_angles_do_not_depend_on_where_the_world_is_and_pelvis_rotation_is_the_heading():
    p = pose(left_knee=(0.2, 0.1, 0.55), left_ankle=(0.05, 0.12, 0.15), right_elbow=(0.1, -0.3, 1.2))
    ref = angles_of(p)
    world = rot("x", -90) @ rot("z", 70)  # turn the person 70 deg left, then make y the up axis
    moved = {k: world @ v + [1.0, 2.0, -3.0] for k, v in p.items()}
    for up in (world @ Z_UP, None):  # given, and estimated from the body
        a = angles_of(moved, up=up)
        for name in ANGLE_NAMES:
            if name == "pelvis_rotation":
                continue
            np.testing.assert_allclose(a[name], ref[name], atol=1e-9, err_msg=name)
    assert angles_of(moved, up=None).up == pytest.approx(world @ Z_UP)
    assert ref["pelvis_rotation"] == pytest.approx(0.0, abs=1e-9)
    turned = {k: rot("z", 70) @ v for k, v in p.items()}
    assert angles_of(turned)["pelvis_rotation"] == pytest.approx(70.0)


def test_every_skeleton_gives_the_same_angles():
    p = pose(left_knee=(0.2, 0.1, 0.55), left_ankle=(0.05, 0.12, 0.15), right_elbow=(0.1, -0.3, 1.2),
             right_wrist=(0.3, -0.3, 1.3))
    ref = angles_of(p)
    for skel in (COCO17, MEDIAPIPE33, BODY25):
        a = angles_of(p, skeleton=skel)
        for name in ANGLE_NAMES:
            if skel is COCO17 and name.startswith("ankle_"):
                assert np.isnan(a[name]), "COCO-17 has no heel or toe"
                continue
            np.testing.assert_allclose(a[name], ref[name], atol=1e-9, err_msg=f"{skel.name} {name}")


def test_missing_joint_gives_nan_only_where_it_is_needed():
    a = angles_of(pose(left_knee=(np.nan, np.nan, np.nan)))
    for name in ANGLE_NAMES:
        needs_left_knee = name in ("hip_flexion_left", "hip_abduction_left", "knee_flexion_left",
                                   "knee_valgus_left", "ankle_dorsiflexion_left")
        if needs_left_knee:
            assert np.isnan(a[name]), name
        elif not name.startswith("shoulder_elevation_plane"):
            assert np.isfinite(a[name]), name


def test_vectorised_over_frames_and_persons():
    poses = []
    for deg in (0.0, 20.0, 45.0, 90.0):
        ang = np.radians(deg)
        poses.append(as_array(pose(left_ankle=np.array(NEUTRAL["left_knee"]) + 0.4 * np.array([-np.sin(ang), 0, -np.cos(ang)]))))
    frames = np.stack(poses)  # (4, 26, 3)
    persons = np.stack([frames, frames[::-1]])  # (2, 4, 26, 3)
    a = joint_angles(persons, HALPE26.joint_names, up=Z_UP)
    assert a.values.shape == (2, 4, len(ANGLE_NAMES))
    np.testing.assert_allclose(a["knee_flexion_left"], [[0, 20, 45, 90], [90, 45, 20, 0]], atol=1e-9)


# ------------------------------------------------------------------ studio truth vs triangulated; the command
@pytest.fixture(scope="module")
def studio():
    from rigcap.studio.studio import SyntheticStudio

    return SyntheticStudio(n_cameras=4, fps=30.0, duration_s=12.0, seed=3)


def test_triangulated_angles_match_the_studio_truth(studio):
    from triangulate.engine import TriangulationConfig, triangulate

    res = triangulate(studio.rig, studio.keypoints2d(), TriangulationConfig(filter_hz=6.0, max_gap=10))
    truth = joint_angles(studio.points3d, studio.skeleton.joint_names, up=Z_UP)
    est = joint_angles(res.points3d.points, res.points3d.joint_names)  # up estimated from the body
    assert est.up == pytest.approx(Z_UP)
    for name, limit in (("knee_flexion_right", 3.0), ("knee_flexion_left", 3.0), ("hip_flexion_left", 3.0),
                        ("trunk_lean_forward", 2.0), ("shoulder_elevation_right", 3.0)):
        d = est[name] - truth[name]
        assert np.isfinite(d).mean() > 0.8, name
        rms = np.sqrt(np.nanmean(d ** 2))
        assert rms < limit, f"{name}: {rms:.2f} deg RMS against the truth"
    # and the angles move: a squat happens in these 12 s
    assert np.nanmax(truth["knee_flexion_left"]) > 90


def test_angles_command_csv_png_and_persons(tmp_path, studio, capsys):
    import csv

    from rigcap.cli import main

    pts = studio.points3d_true().save(tmp_path / "points3d.npz")
    out = tmp_path / "a" / "angles.csv"
    assert main(["angles", "--points", str(pts), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == studio.n_frames
    truth = joint_angles(studio.points3d, studio.skeleton.joint_names, up=Z_UP)
    col = np.array([float(r["knee_flexion_left"]) for r in rows])
    np.testing.assert_allclose(col, truth["knee_flexion_left"], atol=1e-3)
    assert float(rows[30]["time_s"]) == pytest.approx(1.0)
    assert (tmp_path / "a" / "angles.png").stat().st_size > 10_000
    # two persons: the same person and a copy 2 m away, 10 frames later
    short = studio.points3d[:90]
    two = np.stack([short, np.roll(short, 10, axis=0) + [2.0, 0, 0]])
    np.savez(tmp_path / "two.npz", points=two, joint_names=np.array(studio.skeleton.joint_names), fps=30.0)
    out2 = tmp_path / "two.csv"
    assert main(["angles", "--points", str(tmp_path / "two.npz"), "--out", str(out2)]) == 0
    rows2 = list(csv.DictReader(out2.open()))
    assert len(rows2) == 2 * len(short) and rows2[-1]["person"] == "1"
    p1 = np.array([float(r["knee_flexion_left"]) for r in rows2 if r["person"] == "1"])
    np.testing.assert_allclose(p1, np.roll(truth["knee_flexion_left"][:90], 10), atol=1e-3)
    assert (tmp_path / "two.person1.png").is_file()


def test_angles_command_bad_input_is_one_line(tmp_path, capsys):
    from rigcap.cli import main

    np.savez(tmp_path / "bad.npz", points=np.zeros((4, 3)), joint_names=np.array(["a", "b", "c", "d"]))
    assert main(["angles", "--points", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.npz" in err and "shape" in err
    assert main(["angles", "--points", str(tmp_path / "nothing.npz")]) == 2
    with pytest.raises(SystemExit) as usage:  # a bad --up is a usage error (rigcap.argtypes.up_axis)
        main(["angles", "--points", str(tmp_path / "bad.npz"), "--up", "w"])
    assert usage.value.code == 2
    assert main(["angles", "--list"]) == 0
