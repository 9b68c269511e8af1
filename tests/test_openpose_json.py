"""OpenPose-style JSON folders (Pose2Sim's layout) read into 2D keypoints and triangulate to the truth."""

import json

import numpy as np
import pytest

from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from rigcap.errors import InputFileError
from triangulate.engine import triangulate
from triangulate.openpose_json import load_openpose_json, read_camera_folder
from triangulate.skeletons import BODY25, HALPE26


def write_frame(folder, cam, frame, people):
    """One OpenPose file: ``people`` is a list of (J, 3) arrays, NaN written as OpenPose's 0, 0, 0."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1.3, "people": [
        {"person_id": [-1], "pose_keypoints_2d": np.nan_to_num(np.asarray(p, dtype=float)).ravel().tolist(),
         "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}
        for p in people]}
    (folder / f"{cam}_{frame:012d}_keypoints.json").write_text(json.dumps(doc))


def person(n_joints, x0, conf=0.9):
    kp = np.zeros((n_joints, 3))
    kp[:, 0] = x0 + 10.0 * np.arange(n_joints)
    kp[:, 1] = 500.0
    kp[:, 2] = conf
    return kp


def test_folder_layout_missing_joints_frames_and_people(tmp_path):
    root = tmp_path / "pose"
    n = BODY25.n_joints
    for f in range(4):
        a = person(n, 100.0 + f)
        if f == 1:
            a[3] = 0.0  # OpenPose writes 0, 0, 0 for a joint it did not find
        write_frame(root / "cam01_json", "cam01", f, [a])
    for f in (0, 1, 3):  # cam02 lacks frame 2; from frame 1 a more confident bystander appears
        subject = person(n, 110.0 + f, conf=0.6)
        people = [subject] if f == 0 else [person(n, 900.0, conf=0.95), subject]
        write_frame(root / "cam02_json", "cam02", f, people)
    (root / "cam02_json" / "notes.txt").write_text("not a keypoint file")

    kp = load_openpose_json(root, fps=60.0)
    assert kp.camera_names == ["cam01", "cam02"]
    assert kp.joint_names == list(BODY25.joint_names)
    assert kp.keypoints.shape == (2, 4, 25, 3) and kp.fps == 60.0
    assert np.isnan(kp.keypoints[0, 1, 3]).all() and np.isfinite(kp.keypoints[0, 1, 4]).all()
    assert np.isnan(kp.keypoints[1, 2]).all()  # missing frame
    # The subject is followed, not the more confident bystander.
    assert np.allclose(kp.keypoints[1, [0, 1, 3], 0, 0], [110.0, 111.0, 113.0])
    assert np.allclose(kp.keypoints[0, :, 0, 2], 0.9)
    # The camera folders can be given one by one, too.
    same = load_openpose_json([root / "cam01_json", root / "cam02_json"])
    assert np.array_equal(same.keypoints, kp.keypoints, equal_nan=True)


def test_bad_folders_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(InputFileError, match="no .*_keypoints.json"):
        load_openpose_json(tmp_path)
    write_frame(tmp_path / "c1_json", "c1", 0, [person(25, 0.0)])
    write_frame(tmp_path / "c1_json", "c1", 1, [person(17, 0.0)])
    with pytest.raises(InputFileError, match="disagree on the number of joints"):
        read_camera_folder(tmp_path / "c1_json")
    (tmp_path / "c2_json").mkdir()
    (tmp_path / "c2_json" / "c2_000000000000_keypoints.json").write_text("{not json")
    with pytest.raises(InputFileError, match="c2_000000000000_keypoints.json: not an OpenPose keypoint file"):
        read_camera_folder(tmp_path / "c2_json")
    write_frame(tmp_path / "c3_json", "c3", 0, [person(11, 0.0)])
    with pytest.raises(InputFileError, match="no known skeleton has 11 joints"):
        load_openpose_json(tmp_path / "c3_json")
    write_frame(tmp_path / "c4_json", "c4", 0, [])
    with pytest.raises(InputFileError, match="no person detected in any frame of any camera"):
        load_openpose_json(tmp_path / "c4_json")


def test_a_camera_that_never_saw_anyone_is_all_nan(tmp_path):
    for f in range(3):
        write_frame(tmp_path / "a_json", "a", f, [person(17, 0.0)])
        write_frame(tmp_path / "b_json", "b", f, [])
    kp = load_openpose_json(tmp_path)
    assert kp.camera_names == ["a", "b"] and kp.keypoints.shape == (2, 3, 17, 3)
    assert np.isnan(kp.keypoints[1]).all() and np.isfinite(kp.keypoints[0]).all()


def test_studio_detections_written_as_openpose_json_triangulate_to_the_truth(tmp_path):
    studio = SyntheticStudio(n_cameras=4, duration_s=0.3, seed=4, noise=DetectorNoise.none(), time_offsets_ms=None)
    kp = studio.keypoints2d().keypoints
    for c, cam in enumerate(studio.rig.names):
        for f in range(studio.n_frames):
            write_frame(tmp_path / f"{cam}_json", cam, f, [kp[c, f]])
    loaded = load_openpose_json(tmp_path, fps=studio.fps)
    assert loaded.joint_names == list(HALPE26.joint_names)  # 26 joints: Halpe-26
    assert np.allclose(loaded.keypoints, kp, equal_nan=True, atol=1e-3)
    res = triangulate(studio.rig, loaded)
    err = np.linalg.norm(res.points3d.points - studio.points3d, axis=-1)
    assert np.isfinite(err).all() and err.max() < 1e-5  # float32 pixels: well under 0.01 mm
