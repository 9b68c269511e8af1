"""BVH export: round trip through a BVH reader from PyPI (bvhio), offsets = median bone lengths,
gaps and other skeletons, the command."""

from __future__ import annotations

import numpy as np
import pytest

from rigcap.analysis.bvh import BVH_JOINTS, skeleton_motion, to_bvh_world, write_bvh
from rigcap.studio.motion import PersonMotion
from triangulate.skeletons import COCO17, HALPE26, joint_mapping

bvhio = pytest.importorskip("bvhio", reason="bvhio (the BVH reader of the round-trip test) is in the test extra")
FPS = 30.0


@pytest.fixture(scope="module")
def person():
    motion = PersonMotion(12.0, seed=2, program="workout")
    return motion.joints(np.arange(0, 12.0, 1 / FPS))


def read_back(path, frames):
    """World positions (len(frames), 18, 3) of the joints as bvhio's forward kinematics places them."""
    root = bvhio.readAsHierarchy(str(path))
    joints = {j.Name: j for j, _, _ in root.layout()}
    assert set(BVH_JOINTS) <= set(joints)
    out = []
    for f in frames:
        root.loadPose(int(f))
        out.append([list(joints[n].PositionWorld) for n in BVH_JOINTS])
    return np.array(out)


def seen_joints(points_z_up, frames):
    """The BVH joints' true positions in BVH world (Y up, cm), straight from the input."""
    names = list(HALPE26.joint_names)
    p = np.einsum("ij,fkj->fki", to_bvh_world([0, 0, 1.0]), points_z_up[frames]) * 100
    mid = lambda a, b: 0.5 * (p[:, names.index(a)] + p[:, names.index(b)])  # noqa: E731
    point = {"Hips": mid("left_hip", "right_hip"), "Spine": mid("left_hip", "right_hip"),
             "Neck": mid("left_shoulder", "right_shoulder"), "Head": p[:, names.index("head")]}
    for side, s in (("Left", "left"), ("Right", "right")):
        for bvh, joint in (("Arm", "shoulder"), ("ForeArm", "elbow"), ("Hand", "wrist"), ("UpLeg", "hip"),
                           ("Leg", "knee"), ("Foot", "ankle"), ("ToeBase", "big_toe")):
            point[side + bvh] = p[:, names.index(f"{s}_{joint}")]
    return np.stack([point[n] for n in BVH_JOINTS], axis=1)


def test_round_trip_through_bvhio_puts_every_joint_back(tmp_path, person):
    motion = skeleton_motion(person, HALPE26.joint_names, fps=FPS, up=[0, 0, 1.0])
    path = write_bvh(tmp_path / "p.bvh", motion)
    container = bvhio.readAsBvh(str(path))
    assert container.FrameCount == len(person) and container.FrameTime == pytest.approx(1 / FPS)
    frames = np.arange(0, len(person), 17)  # squats, lunges, raises: every joint moves
    got = read_back(path, frames)
    err = np.linalg.norm(got - seen_joints(person, frames), axis=-1)  # cm
    head = BVH_JOINTS.index("Head")
    # the studio's bones are rigid: everything but the head comes back to < 0.1 mm; the head
    # sits on the shoulder midpoint here, not on the studio's neck joint, so its bone varies
    assert np.delete(err, head, axis=1).max() < 0.01
    assert err[:, head].max() < 1.5


def test_offsets_are_the_median_bone_lengths(person):
    motion = skeleton_motion(person, HALPE26.joint_names, fps=FPS, up=[0, 0, 1.0])
    off = dict(zip(BVH_JOINTS, motion.offsets))
    np.testing.assert_allclose(off["LeftLeg"], [0, -43.0, 0], atol=1e-6)  # thigh 0.43 m
    np.testing.assert_allclose(off["RightFoot"], [0, -43.0, 0], atol=1e-6)  # shank
    np.testing.assert_allclose(off["LeftForeArm"], [0, -30.0, 0], atol=1e-6)  # upper arm
    np.testing.assert_allclose(off["LeftUpLeg"], [9.5, 0, 0], atol=1e-6)  # half the hip width, person's left = +X
    assert off["RightArm"][0] == pytest.approx(-18.0, abs=1e-6)
    in_m = skeleton_motion(person, HALPE26.joint_names, fps=FPS, up=[0, 0, 1.0], units="m")
    np.testing.assert_allclose(in_m.offsets * 100, motion.offsets, atol=1e-9)


def test_gaps_other_skeletons_and_other_up_axes(tmp_path, person):
    coco = joint_mapping(HALPE26, COCO17).apply(person)  # no toes, no head top
    y_up = coco @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0.0]]).T  # rig with y up
    y_up[100:110, COCO17.index("left_knee")] = np.nan  # a 10-frame gap
    motion = skeleton_motion(y_up, COCO17.joint_names, fps=FPS)  # up estimated
    path = write_bvh(tmp_path / "coco.bvh", motion)
    frames = np.array([50, 105])
    got = read_back(path, frames)
    want = seen_joints(person, frames)
    knee, ankle = BVH_JOINTS.index("LeftLeg"), BVH_JOINTS.index("LeftFoot")
    assert np.linalg.norm(got[0, ankle] - want[0, ankle]) < 0.01
    assert np.linalg.norm(got[1, knee] - want[1, knee]) < 5.0, "the gap is interpolated"
    assert np.isfinite(np.loadtxt(path, skiprows=path.read_text().splitlines().index("MOTION") + 3)).all()


def test_bvh_command(tmp_path, person, capsys):
    from rigcap.cli import main

    np.savez(tmp_path / "two.npz", points=np.stack([person[:40], person[:40] + [1.0, 0, 0]]),
             joint_names=np.array(HALPE26.joint_names), fps=FPS)
    assert main(["bvh", "--points", str(tmp_path / "two.npz"), "--out", str(tmp_path / "m.bvh")]) == 0
    for p in (0, 1):
        assert bvhio.readAsBvh(str(tmp_path / f"m.person{p}.bvh")).FrameCount == 40
    np.savez(tmp_path / "nofps.npz", points=person[:5], joint_names=np.array(HALPE26.joint_names))
    capsys.readouterr()
    assert main(["bvh", "--points", str(tmp_path / "nofps.npz")]) == 2
    assert "--fps" in capsys.readouterr().err
