"""Keypoint bundle adjustment: exact Jacobian for free points, the optimum reached from a rough
start, outliers rejected, metric scale from a known distance, bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative

import calibration.bundle_adjust as ba
from calibration.keypoint_calibration import calibrate_from_keypoints, observations_from_keypoints, perturb_rig
from calibration.world import compare_rigs
from rigcap.studio.keypoints import DetectorNoise
from rigcap.studio.studio import SyntheticStudio
from rigcap.errors import RigcapError


@pytest.fixture(scope="module")
def studio():
    return SyntheticStudio(n_cameras=4, duration_s=4.0, seed=1, time_offsets_ms=0, noise=DetectorNoise(time_jitter_ms=0.0))


def test_point_jacobian_matches_finite_differences_with_the_scale_gauge(studio):
    kp = studio.keypoints2d()
    obs, ids = observations_from_keypoints(kp.xy[:, :6], kp.confidence[:, :6])
    pts = studio.points3d[ids[:, 0], ids[:, 1]]
    rig = studio.rig
    layout = ba._Layout(len(rig), len(pts), True, block=3, pose_free=ba.scale_gauge(rig.cameras))
    assert layout.n_pose == 6 * 3 - 1  # camera 0 and one centre coordinate held: the 7-dof similarity gauge
    cam_rt = np.array([np.concatenate([c.rvec, c.center]) for c in rig])
    intr = np.array([ba.intrinsics_vector(c) for c in rig])
    x = layout.pack(cam_rt, intr, pts) + np.random.default_rng(0).normal(0, 1e-4, layout.size)
    structure = ba.PointStructure()
    analytic = ba._jacobian_fn(layout, cam_rt, intr, structure, obs)(x).toarray()
    numeric = approx_derivative(ba._residual_fn(layout, cam_rt, intr, structure, obs), x, method="3-point")
    assert np.abs(analytic - numeric).max() < 1e-5 * np.abs(numeric).max()
    assert not np.any(analytic[layout.sparsity(obs).toarray() == 0])


def test_rough_start_reaches_what_the_true_rig_reaches_and_rejects_the_outliers(studio):
    kp = studio.keypoints2d()
    start = perturb_rig(studio.rig, 0.08, 4.0, 0.05, seed=3)  # 8 cm, 4 deg, 5 % focal per camera
    res = calibrate_from_keypoints(start, kp.keypoints, kp.joint_names)
    best = calibrate_from_keypoints(studio.rig, kp.keypoints, kp.joint_names)
    got, floor = compare_rigs(res.rig, studio.rig), compare_rigs(best.rig, studio.rig)
    before = compare_rigs(start, studio.rig)
    assert before.center_mm.mean() > 40 and before.focal_pct.max() > 4.9  # the start really was rough
    assert got.center_mm.mean() < 2.0 * floor.center_mm.mean() + 1.0, (got.center_mm, floor.center_mm)
    assert got.center_mm.max() < 40.0 and got.rotation_deg.max() < 0.6 and got.focal_pct.max() < 2.0, got.summary()
    # planted outliers (40-200 px) and left/right-swapped joints: nearly all rejected
    det = studio.detections
    obs, ids = observations_from_keypoints(kp.xy, kp.confidence)
    f, j = ids[obs.board, 0], ids[obs.board, 1]
    wrong = (det.outlier | (det.swapped[..., None] & ~det.inlier))[obs.cam, f, j]
    far = wrong & (np.linalg.norm(obs.uv - det.true_pixels[obs.cam, f, j], axis=1) > 15.0)
    assert (~res.bundle.inliers[far]).mean() > 0.95, (~res.bundle.inliers[far]).mean()
    assert res.bundle.inliers[~wrong].mean() > 0.85  # most good keypoints kept
    assert 1.0 < res.sigma_px < 2.5  # 2 px detector noise (4 px where occluded), trimmed


def test_scale_from_a_known_distance(studio):
    kp = studio.keypoints2d()
    names = list(kp.joint_names)
    a, b = names.index("left_hip"), names.index("left_knee")
    true_d = float(np.median(np.linalg.norm(studio.points3d[:, a] - studio.points3d[:, b], axis=1)))
    shrunk = perturb_rig(studio.rig, 0.0, 0.0)
    for cam in shrunk.cameras:
        cam.tvec = cam.tvec * 0.7  # the start rig's scale 30 % wrong
    res = calibrate_from_keypoints(shrunk, kp.keypoints, kp.joint_names, scale_from=f"distance:left_hip,left_knee,{true_d}",
                                   refine_intrinsics=False)
    size = lambda r: np.sqrt(((r.centers - r.centers.mean(0)) ** 2).sum(1).mean())  # noqa: E731
    assert abs(size(res.rig) / size(studio.rig) - 1.0) < 0.02, size(res.rig) / size(studio.rig)
    assert "left_hip-left_knee" in res.scale_source


def test_bad_inputs_are_named(studio, tmp_path):
    kp = studio.keypoints2d()
    with pytest.raises(RigcapError, match="--scale-from"):
        calibrate_from_keypoints(studio.rig, kp.keypoints, kp.joint_names, scale_from="inches")
    with pytest.raises(RigcapError, match="no joint named 'tail'"):
        calibrate_from_keypoints(studio.rig, kp.keypoints[:, :40], kp.joint_names, scale_from="distance:tail,nose,1",
                                 refine_intrinsics=False)
    lonely = kp.keypoints.copy()
    lonely[2] = np.nan
    with pytest.raises(RigcapError, match="cam_2: fewer than 20 keypoints"):
        calibrate_from_keypoints(studio.rig, lonely, kp.joint_names)


def test_calibrate_command_from_keypoints(studio, tmp_path, capsys):
    from calibration.rigfile import load_rig, save_rig
    from rigcap.cli import main

    kp = studio.keypoints2d()
    kp_path = kp.save(tmp_path / "kp.npz")
    rough = perturb_rig(studio.rig, 0.05, 3.0, 0.05, seed=5)
    start = save_rig(rough, tmp_path / "start.toml")
    assert main(["calibrate", "--keypoints", str(kp_path), "--start-rig", str(start), "--out", str(tmp_path / "rig.toml")]) == 0
    out = capsys.readouterr().out
    assert "rejected as outliers" in out and "scale from the start rig's size" in out
    got = compare_rigs(load_rig(tmp_path / "rig.toml"), studio.rig)
    before = compare_rigs(rough, studio.rig)
    # the scale comes from the rough start's size here (~1 % off), hence the centre error left
    assert got.center_mm.mean() < 0.6 * before.center_mm.mean() and got.rotation_deg.max() < 0.6, got.summary()
    assert got.focal_pct.max() < 2.0 < before.focal_pct.min()
    assert main(["calibrate", "--keypoints", str(kp_path), "--out", str(tmp_path / "x.toml")]) == 2
    assert "--start-rig" in capsys.readouterr().err


def test_scale_from_a_persons_height(studio):
    """The studio's person is 1.75 m tall (head top ~1.74 m standing): the rig's size comes out
    within 4 % though the start rig's scale was 30 % off (measured: the head-top-to-heel extent
    is ~2 % short of the stature)."""
    kp = studio.keypoints2d()
    shrunk = perturb_rig(studio.rig, 0.0, 0.0)
    for cam in shrunk.cameras:
        cam.tvec = cam.tvec * 0.7
    res = calibrate_from_keypoints(shrunk, kp.keypoints, kp.joint_names, scale_from="height:1.75", refine_intrinsics=False)
    size = lambda r: np.sqrt(((r.centers - r.centers.mean(0)) ** 2).sum(1).mean())  # noqa: E731
    assert abs(size(res.rig) / size(studio.rig) - 1.0) < 0.04, size(res.rig) / size(studio.rig)
    assert "height 1.75 m" in res.scale_source


def test_offsets_solve_the_same_objective_as_a_dense_least_squares():
    """Per-camera group offsets under their ridge: the Schur LM reaches the optimum scipy's
    least_squares finds on the same residuals plus sqrt(weight) * offsets."""
    from scipy.optimize import least_squares

    from calibration.camera import Camera

    rng = np.random.default_rng(4)
    cams = []
    for c in range(3):
        ang = 2 * np.pi * c / 3
        centre = np.array([3 * np.cos(ang), 3 * np.sin(ang), 1.5])
        z = -centre / np.linalg.norm(centre)
        x = np.cross(z, [0, 0, 1.0]); x /= np.linalg.norm(x)
        r = np.stack([x, np.cross(z, x), z])
        cams.append(Camera(f"c{c}", (800, 600), np.array([[700.0, 0, 400], [0, 700.0, 300], [0, 0, 1]]), np.zeros(5),
                           ba.matrix_to_rodrigues(r) if hasattr(ba, "matrix_to_rodrigues") else
                           __import__("calibration.camera", fromlist=["x"]).matrix_to_rodrigues(r), -r @ centre))
    pts = rng.normal(0, 0.4, (40, 3))
    groups = rng.integers(0, 4, 40)
    planted = rng.normal(0, 3.0, (3, 4, 2))
    c_idx, p_idx = np.meshgrid(np.arange(3), np.arange(40), indexing="ij")
    c_idx, p_idx = c_idx.ravel(), p_idx.ravel()
    from calibration.rig import Rig

    uv = Rig(cams).project(pts)[c_idx, p_idx] + planted[c_idx, groups[p_idx]] + rng.normal(0, 0.5, (c_idx.size, 2))
    obs = ba.Observations(c_idx, p_idx, groups[p_idx], uv)
    prior = ba.OffsetPrior(4, 2.0, noise_px=1.0)
    start = perturb_rig(Rig(cams), 0.02, 1.0, seed=1)
    res = ba.bundle_adjust_points(start.cameras, pts + rng.normal(0, 0.01, pts.shape), obs, refine_intrinsics=False,
                                  loss="linear", offsets=prior, ftol=1e-12)
    layout = ba._Layout(3, 40, False, block=3, pose_free=ba.scale_gauge(start.cameras), offset_groups=4)
    cam_rt0 = np.array([np.concatenate([c.rvec, c.center]) for c in start.cameras])
    intr0 = np.array([ba.intrinsics_vector(c) for c in start.cameras])
    residuals = ba._residual_fn(layout, cam_rt0, intr0, ba.PointStructure(), obs)
    w = np.sqrt(prior.weight(float("nan")))
    ref = least_squares(lambda x: np.concatenate([residuals(x), w * layout.offsets(x).ravel()]),
                        layout.pack(cam_rt0, intr0, pts), method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    assert np.abs(res.offsets - layout.offsets(ref.x)).max() < 1e-3
    got = Rig(res.cameras)
    _, _, ref_pts = layout.unpack(ref.x, cam_rt0, intr0)
    assert np.abs(res.points - ref_pts).max() < 1e-5
    assert np.abs(got.centers - np.array([c[3:] for c in layout.unpack(ref.x, cam_rt0, intr0)[0]])).max() < 1e-5


def test_joint_bias_terms_take_out_a_constant_per_camera_joint_bias():
    """A detector whose joints sit 5 px (per axis, per camera and joint) off the true point all
    recording long pulls the rig ~10 mm away; solved as offsets, it is back within a few mm, and
    the offsets found follow the planted ones (the limb joints only, to keep the test fast)."""
    st = SyntheticStudio(n_cameras=4, duration_s=3.0, seed=0, time_offsets_ms=0, noise=DetectorNoise(time_jitter_ms=0.0))
    kp = st.keypoints2d()
    k = kp.keypoints.astype(float).copy()
    limbs = [j for j, n in enumerate(kp.joint_names) if n.split("_")[-1] in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
    k[:, :, [j for j in range(k.shape[2]) if j not in limbs]] = np.nan
    planted = np.random.default_rng(0).normal(0, 5.0, (k.shape[0], k.shape[2], 2))
    k[..., :2] += planted[:, None]
    rough = perturb_rig(st.rig, 0.08, 4.0, seed=100)
    size = lambda r: np.sqrt(((r.centers - r.centers.mean(0)) ** 2).sum(1).mean())  # noqa: E731
    from calibration.keypoint_calibration import scale_rig

    errs = {}
    for sigma in (None, 5.0):
        res = calibrate_from_keypoints(rough, k, kp.joint_names, lens_model="held", joint_bias_px=sigma)
        errs[sigma] = compare_rigs(scale_rig(res.rig, size(st.rig) / size(res.rig)), st.rig).center_mm.mean()
    assert errs[None] > 8.0 and errs[5.0] < 0.4 * errs[None], errs
    assert np.corrcoef(res.joint_bias[:, limbs].ravel(), planted[:, limbs].ravel())[0, 1] > 0.8


def test_lenses_of_a_calibrated_start_rig_are_held_by_default(studio):
    """A start rig whose lenses come from a calibration (here: marked as an imported Qualisys file)
    keeps them; one that says nothing (a tape-measured layout) gets its focal lengths refined."""
    kp = studio.keypoints2d()
    start = perturb_rig(studio.rig, 0.02, 1.0, 0.03, seed=2)
    imported = start.copy()
    imported.metadata = {"format": "Qualisys qca"}
    res = calibrate_from_keypoints(imported, kp.keypoints[:, :40], kp.joint_names)
    assert [c.lens_model for c in res.cameras] == ["held"] * len(start)
    assert "Qualisys qca" in res.cameras[0].lens_reason
    assert np.allclose([c.focal for c in res.rig], [c.focal for c in start])
    plain = start.copy()
    plain.metadata = {}
    res = calibrate_from_keypoints(plain, kp.keypoints, kp.joint_names)
    assert [c.lens_model for c in res.cameras] == ["focal"] * len(start)
    assert compare_rigs(res.rig, studio.rig).focal_pct.max() < 0.5 * compare_rigs(start, studio.rig).focal_pct.min()


def test_scale_from_a_camera_baseline(studio):
    kp = studio.keypoints2d()
    true_d = float(np.linalg.norm(studio.rig[0].center - studio.rig[2].center))
    shrunk = perturb_rig(studio.rig, 0.0, 0.0)
    for cam in shrunk.cameras:
        cam.tvec = cam.tvec * 0.7
    names = studio.rig.names
    res = calibrate_from_keypoints(shrunk, kp.keypoints[:, :40], kp.joint_names, refine_intrinsics=False,
                                   scale_from=f"baseline:{names[0]},{names[2]},{true_d}")
    got = float(np.linalg.norm(res.rig[0].center - res.rig[2].center))
    assert abs(got - true_d) < 1e-6 and f"baseline {names[0]}-{names[2]}" in res.scale_source
    size = lambda r: np.sqrt(((r.centers - r.centers.mean(0)) ** 2).sum(1).mean())  # noqa: E731
    assert abs(size(res.rig) / size(studio.rig) - 1.0) < 0.01
    with pytest.raises(RigcapError, match="no camera named 'cam_9'"):
        calibrate_from_keypoints(shrunk, kp.keypoints[:, :40], kp.joint_names, refine_intrinsics=False,
                                 scale_from="baseline:cam_9,cam_0,3")


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_demo_from_a_perturbed_qualisys_rig(shared_data):
    """The Pose2Sim demo's MediaPipe keypoints, the Qualisys rig moved 5 cm / 3 deg per camera: its
    lenses are held (they come from a calibration) and the rig comes back to ~33 mm / 1.7 deg of
    Qualisys (measured 33.4 mm mean, 1.69 deg max; the issue's 1 cm / 0.5 deg is not reached on
    these 1.7 s, see README), where refining the focal lengths lands ~70 mm off."""
    pytest.importorskip("mediapipe")
    from calibration.importers.qualisys import load_qualisys
    from tests.real_keypoints import pose2sim_keypoints

    root = shared_data / "pose2sim-demo-single"
    rig = load_qualisys(root / "calibration" / "Calib.qca.txt")
    kp = pose2sim_keypoints(root, rig.names)
    start = perturb_rig(rig, 0.05, 3.0, seed=1)
    res = calibrate_from_keypoints(start, kp.keypoints, kp.joint_names)
    assert {c.lens_model for c in res.cameras} == {"held"}
    got, before = compare_rigs(res.rig, rig), compare_rigs(start, rig)
    assert got.center_mm.mean() < 40.0 < before.center_mm.mean(), (got.center_mm, before.center_mm)
    assert got.rotation_deg.max() < 2.0 < before.rotation_deg.max()
