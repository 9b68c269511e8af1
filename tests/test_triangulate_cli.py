"""``rigcap triangulate`` end to end: synthetic keypoints and Pose2Sim-style inputs to 3D files near the truth."""

import json

import numpy as np
import pytest

from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from calibration.rigfile import save_rig
from rigcap.cli import main
from triangulate.exports import read_trc
from triangulate.formats import Points3D


@pytest.fixture(scope="module")
def studio():
    noise = DetectorNoise(time_jitter_ms=0.0)
    return SyntheticStudio(n_cameras=4, duration_s=2.0, seed=7, noise=noise, time_offsets_ms=None)


@pytest.fixture
def files(tmp_path, studio):
    rig = save_rig(studio.rig, tmp_path / "rig.toml")
    kp = studio.keypoints2d().save(tmp_path / "kp2d.npz")
    return rig, kp


def mpjpe_mm(points, truth):
    return 1000.0 * np.nanmean(np.linalg.norm(points - truth, axis=-1))


def test_npz_in_npz_trc_csv_c3d_out_with_summary(tmp_path, files, studio, capsys):
    rig, kp = files
    out = tmp_path / "res" / "points3d.npz"
    assert main(["triangulate", "--rig", str(rig), "--keypoints", str(kp), "--out", str(out),
                 "--filter", "butterworth", "--cutoff-hz", "8", "--max-gap", "5", "--trc-units", "mm"]) == 0
    p3d = Points3D.load(out)
    assert p3d.fps == studio.fps and p3d.points.shape == studio.points3d.shape
    assert np.isfinite(p3d.points).all(-1).mean() > 0.95
    assert mpjpe_mm(p3d.points, studio.points3d) < 15.0
    trc = read_trc(out.with_suffix(".trc"))
    assert trc["header"]["Units"] == "mm" and float(trc["header"]["DataRate"]) == studio.fps
    assert np.allclose(trc["points"][..., 1] / 1000.0, p3d.points[..., 2], equal_nan=True, atol=1e-5)  # Y up
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".c3d").is_file()
    text = capsys.readouterr().out
    for word in ("triangulated %", "reproj. error px", "views", "all (60 frames)", "left_knee"):
        assert word in text


def test_filtering_smooths_the_raw_result(tmp_path, files, studio):
    rig, kp = files
    raw, smooth = tmp_path / "raw.npz", tmp_path / "smooth.npz"
    assert main(["triangulate", "--rig", str(rig), "--keypoints", str(kp), "--out", str(raw), "--exports", "none",
                 "--threshold-px", "auto"]) == 0
    assert main(["triangulate", "--rig", str(rig), "--keypoints", str(kp), "--out", str(smooth), "--exports", "none",
                 "--filter", "butterworth", "--cutoff-hz", "6", "--max-gap", "10"]) == 0
    a, b = Points3D.load(raw).points, Points3D.load(smooth).points
    assert np.isfinite(b).all(-1).sum() >= np.isfinite(a).all(-1).sum()  # gaps filled
    assert mpjpe_mm(b, studio.points3d) < mpjpe_mm(a, studio.points3d)  # noise filtered
    assert not (tmp_path / "raw.trc").exists()


def pose2sim_calib(rig, names) -> str:
    """A Calib.toml as Pose2Sim writes it (section names differ from the JSON folders)."""
    out = []
    for cam, name in zip(rig.cameras, names):
        fmt = lambda a: "[ " + ", ".join(repr(float(v)) for v in np.ravel(a)) + "]"
        k = cam.matrix
        out.append(f'[{name}]\nname = "{name}"\nsize = [ {float(cam.size[0])}, {float(cam.size[1])}]\n'
                   f"matrix = [ {fmt(k[0])}, {fmt(k[1])}, {fmt(k[2])}]\n"
                   f"distortions = {fmt(cam.dist[:4])}\nrotation = {fmt(cam.rvec)}\n"
                   f"translation = {fmt(cam.tvec)}\nfisheye = false\n")
    out.append("[metadata]\nadjusted = false\nerror = 0.0\n")
    return "\n".join(out)


def test_pose2sim_calib_and_openpose_json_folders(tmp_path, capsys):
    clean = SyntheticStudio(n_cameras=4, duration_s=0.3, seed=2, noise=DetectorNoise.none(), time_offsets_ms=None)
    for cam in clean.rig.cameras:  # Pose2Sim's Calib.toml holds k1 k2 p1 p2
        cam.dist = cam.dist[:4].copy()
    kp = clean.keypoints2d().keypoints
    kp = np.stack([np.stack([c.project(clean.points3d[f]) for f in range(clean.n_frames)]) for c in clean.rig.cameras])
    calib = tmp_path / "Calib.toml"
    calib.write_text(pose2sim_calib(clean.rig, [f"int_cam{i + 1:02d}_img" for i in range(4)]))
    for c in range(4):
        folder = tmp_path / "pose" / f"cam{c + 1:02d}_json"
        folder.mkdir(parents=True)
        for f in range(clean.n_frames):
            xyc = np.concatenate([np.nan_to_num(kp[c, f]), np.isfinite(kp[c, f, :, :1]) * 0.9], axis=1)
            doc = {"people": [{"pose_keypoints_2d": xyc.ravel().tolist()}]}
            (folder / f"cam{c + 1:02d}_{f:012d}_keypoints.json").write_text(json.dumps(doc))
    out = tmp_path / "p3d.npz"
    args = ["triangulate", "--rig", str(calib), "--keypoints", str(tmp_path / "pose"), "--out", str(out), "--fps", "30"]
    # Folder names do not match Pose2Sim's camera names: a one-line error says so ...
    assert main(args) == 2
    assert "rig lacks" in capsys.readouterr().err
    # ... and Pose2Sim's own rule (sorted order) is one option away.
    assert main(args + ["--camera-order", "rig"]) == 0
    p3d = Points3D.load(out)
    err = np.linalg.norm(p3d.points - clean.points3d, axis=-1)
    seen = (np.isfinite(kp[..., 0]).sum(axis=0) >= 2)
    assert np.isfinite(err[seen]).all() and err[seen].max() < 1e-4
    assert float(read_trc(out.with_suffix(".trc"))["header"]["DataRate"]) == 30.0


@pytest.mark.parametrize("extra, message", [
    (["--cutoff-hz", "6", "--filter", "butterworth", "--fps", "4"], "Nyquist"),
    (["--exports", "trc,fbx"], "unknown format"),
    (["--min-views", "1"], "min_views must be >= 2"),
    (["--threshold-px", "wide"], "number of pixels or 'auto'"),
])
def test_bad_options_are_one_line_errors(tmp_path, files, capsys, extra, message):
    rig, kp = files
    assert main(["triangulate", "--rig", str(rig), "--keypoints", str(kp), "--out", str(tmp_path / "o.npz")] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_rig_with_other_cameras_is_a_clear_error(tmp_path, files, studio, capsys):
    _, kp = files
    small = save_rig(studio.rig.subset(studio.rig.names[:3]), tmp_path / "three.toml")
    assert main(["triangulate", "--rig", str(small), "--keypoints", str(kp), "--out", str(tmp_path / "o.npz")]) == 2
    assert "'cam_3'" in capsys.readouterr().err
    missing = tmp_path / "nothing.npz"
    assert main(["triangulate", "--rig", str(small), "--keypoints", str(missing), "--out", str(tmp_path / "o.npz")]) == 2
