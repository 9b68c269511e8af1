"""Importers: caliscope camera arrays and Qualisys .qca.txt files land in rigcap's conventions.

Synthetic round trips pin the arithmetic; the real files pin the conventions (a wrong rotation
direction, axis flip or unit shows up as pixels and millimetres, asserted below).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tomli_w

from calibration.board import BoardDefinition
from calibration.importers import detect_format, load_any_rig, load_caliscope, load_qualisys
from calibration.rigfile import save_rig
from rigcap.studio.studio_rig import make_studio_rig
from rigcap.errors import InputFileError
from triangulate.dlt import dlt_svd

CALISCOPE_BOARD = BoardDefinition(4, 5, 0.054, 0.0405, "DICT_4X4_1000", inverted=True)


def _points_in_volume(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([-1, -1, 0.2], [1, 1, 1.8], size=(n, 3))


# ------------------------------------------------------------------ caliscope
def _caliscope_dict(rig) -> dict:
    cams = {}
    for i, cam in enumerate(rig):
        cams[str(i)] = {"cam_id": i, "size": list(cam.size), "matrix": cam.matrix.tolist(),
                        "distortions": cam.dist.tolist(), "rotation": cam.R.tolist(),
                        "translation": cam.tvec.tolist(), "error": 0.3, "rotation_count": 0, "ignore": False}
    return {"cameras": cams}


def test_caliscope_round_trip_projects_identically(tmp_path):
    rig = make_studio_rig(4, seed=3)
    path = tmp_path / "camera_array.toml"
    path.write_text(tomli_w.dumps(_caliscope_dict(rig)))
    got = load_caliscope(path)
    assert got.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    pts = _points_in_volume()
    assert np.nanmax(np.abs(got.project(pts) - rig.project(pts))) < 1e-6
    assert np.abs(got.centers - rig.centers).max() < 1e-9
    assert detect_format(path) == "caliscope" and load_any_rig(path).names == got.names


def test_caliscope_ignored_camera_left_out_and_bad_rotation_refused(tmp_path):
    rig = make_studio_rig(3, seed=1)
    data = _caliscope_dict(rig)
    data["cameras"]["1"]["ignore"] = True
    path = tmp_path / "a.toml"
    path.write_text(tomli_w.dumps(data))
    got = load_caliscope(path)
    assert got.names == ["cam_0", "cam_2"] and got.metadata["ignored"] == ["cam_1"]
    data["cameras"]["0"]["rotation"] = (2 * np.eye(3)).tolist()
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(InputFileError, match="camera 0: 'rotation' is not a rotation matrix"):
        load_caliscope(path)
    del data["cameras"]["2"]["translation"]
    data["cameras"]["0"]["rotation"] = np.eye(3).tolist()
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(InputFileError, match="camera 2: missing translation"):
        load_caliscope(path)


def _read_frames(video, indices):
    cap = cv2.VideoCapture(str(video))
    out, i = {}, 0
    want = set(indices)
    while len(out) < len(want):
        ok, img = cap.read()
        assert ok, f"{video}: frame {i} unreadable"
        if i in want:
            out[i] = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        i += 1
    cap.release()
    return out


@pytest.mark.shared_data
def test_caliscope_real_array_triangulates_the_real_board_in_metres(shared_data):
    """caliscope's rotation/translation are world->camera in metres: the board's corners,
    detected in its own recording and triangulated with the imported rig, reproject within
    ~1 px and sit 54 mm apart (the printed square)."""
    from calibration.detect import detect_frame, make_detector
    from calibration.sync import frames_from_caliscope

    root = shared_data / "caliscope-charuco-4cam"
    rig = load_any_rig(root / "camera_array.toml")
    assert rig.names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    frames = frames_from_caliscope(root / "extrinsic" / "timestamps.csv", rig.names)
    instants = [96, 100, 108]  # the board is seen by all four cameras there
    det = make_detector(CALISCOPE_BOARD)
    n = CALISCOPE_BOARD.n_corners
    corners = np.full((4, len(instants), n, 2), np.nan)
    for c, name in enumerate(rig.names):
        imgs = _read_frames(root / "extrinsic" / f"{name}.mp4", frames[c, instants])
        for k, inst in enumerate(instants):
            corners[c, k] = detect_frame(det, imgs[frames[c, inst]], n, inverted=True)[0]
    assert np.isfinite(corners[..., 0]).sum() >= 4 * 3 * 10
    pts = dlt_svd(rig.undistort(corners), rig.extrinsics)  # (3, 12, 3)
    err = rig.reprojection_error(pts, corners)
    rmse = float(np.sqrt(np.nanmean(err**2)))
    assert rmse < 2.0, rmse  # measured 1.2 px; a transposed rotation gives hundreds
    nx = CALISCOPE_BOARD.squares_x - 1
    pairs = [i for i in range(n - 1) if i % nx < nx - 1]
    d = np.linalg.norm(pts[:, 1:] - pts[:, :-1], axis=-1)[:, pairs]
    assert abs(np.nanmedian(d) - 0.054) < 0.001, np.nanmedian(d)  # metres, measured 54.05 mm
    # every camera is in front of the board it sees
    centre = np.nanmean(pts.reshape(-1, 3), axis=0)
    assert all(cam.world_to_camera(centre)[2] > 0.3 for cam in rig)


# ------------------------------------------------------------------- qualisys
def _qca_xml(rig, video_window=None) -> str:
    """Write a rig the way QTM does (inverse of the importer's documented conventions)."""
    cams = []
    for cam in rig:
        m = (np.diag([1.0, -1.0, -1.0]) @ cam.R).tolist()
        x, y, z = (cam.center * 1000.0).tolist()
        w, h = video_window or cam.size
        k = (cam.matrix * 64.0).tolist()
        d = (cam.dist * 64.0).tolist()
        rot = " ".join(f'r{i + 1}{j + 1}="{m[i][j]!r}"' for i in range(3) for j in range(3))
        cams.append(
            f'<camera active="1" avg-residual="0.4" model="none" serial="{cam.name}" viewrotation="0">'
            f'<fov_video bottom="{h - 1}" left="0" right="{w - 1}" top="0"/>'
            f'<transform {rot} x="{x!r}" y="{y!r}" z="{z!r}"/>'
            f'<intrinsic centerPointU="{k[0][2]!r}" centerPointV="{k[1][2]!r}" focalLengthU="{k[0][0]!r}" '
            f'focalLengthV="{k[1][1]!r}" radialDistortion1="{d[0]!r}" radialDistortion2="{d[1]!r}" '
            f'radialDistortion3="{d[4]!r}" tangentalDistortion1="{d[2]!r}" tangentalDistortion2="{d[3]!r}" skew="0"/>'
            "</camera>")
    return "<?xml version='1.0' encoding='ASCII'?>\n<calibration type=\"regular\"><cameras>" + "".join(cams) + "</cameras></calibration>"


def test_qualisys_round_trip_projects_identically(tmp_path):
    rig = make_studio_rig(4, seed=5)
    for i, cam in enumerate(rig):
        cam.name = f"cam{i + 1:02d}"
    path = tmp_path / "Calib.qca.txt"
    path.write_text(_qca_xml(rig))
    got = load_qualisys(path)
    assert got.names == rig.names
    pts = _points_in_volume()
    assert np.nanmax(np.abs(got.project(pts) - rig.project(pts))) < 1e-6
    assert np.abs(got.centers - rig.centers).max() < 1e-9
    assert detect_format(path) == "qualisys"


def test_qualisys_malformed_files_are_named(tmp_path):
    bad = tmp_path / "bad.qca.txt"
    bad.write_text("<calibration><cameras><camera serial='c1'><fov_video left='0' top='0' right='9' bottom='9'/>"
                   "<transform r11='x'/></camera></cameras></calibration>")
    with pytest.raises(InputFileError, match=r"bad\.qca\.txt: Qualisys camera c1: missing element for 'focalLengthU'"):
        load_qualisys(bad)
    trunc = tmp_path / "trunc.qca.txt"
    trunc.write_text("<calibration><cameras><camera ")
    with pytest.raises(InputFileError, match="not a valid Qualisys"):
        load_qualisys(trunc)


@pytest.mark.shared_data
def test_qualisys_real_calibration_layout_is_a_lab(shared_data):
    """Pose2Sim demo lab: four cameras around a walkway, ~1.7-2.1 m up, looking down at it."""
    rig = load_any_rig(shared_data / "pose2sim-demo-single" / "calibration" / "Calib.qca.txt")
    assert rig.names == ["cam01", "cam02", "cam03", "cam04"]
    assert all(cam.size == (1088, 1920) for cam in rig)  # the video window; portrait
    heights = rig.centers[:, 2]
    assert np.all((heights > 1.6) & (heights < 2.2)), heights  # mm -> m: 1.69 .. 2.09
    spread = np.linalg.norm(rig.centers[:, :2] - rig.centers[:, :2].mean(0), axis=1)
    assert np.all((spread > 2.0) & (spread < 5.0)), spread  # a lab, not a desk, not a stadium
    for cam in rig:
        axis = cam.R[2]  # optical axis in the world
        assert -0.5 < axis[2] < -0.2  # looking down 12..30 degrees
        assert 0.4 * cam.size[0] < cam.principal_point[0] < 0.6 * cam.size[0]
        assert 0.4 * cam.size[1] < cam.principal_point[1] < 0.6 * cam.size[1]
    # a point 1 m above the walkway (where the subject walks) is in front of and inside every camera
    uv = rig.project(np.array([-1.1, 0.0, 1.0]))
    for cam, p in zip(rig, uv):
        assert 0 < p[0] < cam.size[0] and 0 < p[1] < cam.size[1], (cam.name, p)


@pytest.mark.shared_data
def test_qualisys_real_calibration_triangulates_the_real_person(shared_data):
    """The pose model's joints in frame 30 of the four real videos, triangulated with the imported
    rig: they reproject within MediaPipe's accuracy and land where a person stands (feet on the
    floor z = 0, nose ~1.4-1.7 m, hips ~0.3 m apart). A transposed rotation, a missing axis flip
    or millimetres taken as metres fails every one of these."""
    pytest.importorskip("mediapipe")
    from capture.pose import best_person, create_detector
    from triangulate.skeletons import MEDIAPIPE33

    root = shared_data / "pose2sim-demo-single"
    rig = load_qualisys(root / "calibration" / "Calib.qca.txt")
    images = []
    for name in rig.names:
        cap = cv2.VideoCapture(str(root / "videos" / f"{name}.mp4"))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 30)
        ok, img = cap.read()
        cap.release()
        assert ok
        images.append(img)
    with create_detector("mediapipe", static_image_mode=True) as det:
        kp = []
        for img in images:
            people = det.detect(img)
            kp.append(people[best_person(people)])
    kp = np.array(kp, dtype=np.float64)  # (4, 33, 3)
    w = (kp[..., 2] > 0.5).astype(float)

    def solve(r):
        pts = dlt_svd(r.undistort(kp[..., :2]), r.extrinsics, w)
        err = r.reprojection_error(pts, kp[..., :2])
        return pts, np.nanmedian(np.where(w > 0, err, np.nan))

    pts, med = solve(rig)
    assert med < 25.0, med  # px on 1920-px-high frames; measured 13.9
    j = {n: pts[i] for i, n in enumerate(MEDIAPIPE33.joint_names)}
    assert -0.1 < min(j["left_heel"][2], j["right_heel"][2]) < 0.25  # measured 0.10 m
    assert 1.3 < j["nose"][2] < 1.8, j["nose"]  # measured 1.42 m
    assert 0.15 < np.linalg.norm(j["left_hip"] - j["right_hip"]) < 0.45
    # the wrong conventions are measurably wrong on the same detections
    wrong = rig.copy()
    for cam in wrong:
        cam.R = np.diag([1.0, -1.0, -1.0]) @ cam.R  # Qualisys axes taken as OpenCV's
    assert solve(wrong)[1] > 5 * med


def test_rig_toml_still_loads_through_load_any_rig(tmp_path):
    rig = make_studio_rig(2, seed=0)
    path = save_rig(rig, tmp_path / "rig.toml")
    assert detect_format(path) == "rig_toml"
    assert np.abs(load_any_rig(path).centers - rig.centers).max() < 1e-9


def test_load_rig_reads_every_importer_format(tmp_path):
    """Every command's rig loader (calibration.rigfile.load_rig) takes caliscope and Qualisys files as they are."""
    from calibration.rigfile import load_rig

    rig = make_studio_rig(3, seed=4)
    cal = tmp_path / "camera_array.toml"
    cal.write_text(tomli_w.dumps(_caliscope_dict(rig)))
    for i, cam in enumerate(rig):
        cam.name = f"cam{i + 1:02d}"
    qca = tmp_path / "Calib.qca.txt"
    qca.write_text(_qca_xml(rig))
    pts = _points_in_volume()
    for path in (cal, qca):
        got = load_rig(path)
        assert len(got) == 3 and np.nanmax(np.abs(got.project(pts) - rig.project(pts))) < 1e-6, path.name
