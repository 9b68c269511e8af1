"""Capturing several synthetic people records everybody; `rigcap triangulate --persons auto`
on that session gives the studio's people back under stable ids."""

import numpy as np

from calibration import save_rig
from capture.recording import open_session
from rigcap.cli import main
from rigcap.studio.crowd import CrowdStudio
from rigcap.studio.crowd_score import score_by_cycle
from rigcap.wire import free_tcp_endpoint
from triangulate.formats import Points3D

PERSONS, CAMERAS, DURATION = 2, 3, 6.0


def test_recorded_session_keeps_everybody_and_triangulates_to_the_truth(tmp_path):
    """Three synthetic camera processes (config ``persons = 2``) recording until each delivered 2 s."""
    import time

    from capture.config import CameraConfig
    from capture.supervisor import Supervisor

    cameras = [CameraConfig(f"cam_{i}", "synthetic", camera_index=i, n_cameras=CAMERAS, duration_s=DURATION,
                            persons=PERSONS) for i in range(CAMERAS)]
    take = tmp_path / "take"
    sup = Supervisor(cameras, free_tcp_endpoint(), free_tcp_endpoint(), record_dir=take, detector="synthetic",
                     max_restarts=0, start_delay_s=1.0, record_video=False)
    try:
        sup.start()
        deadline = time.monotonic() + 150  # each process builds the crowd studio first (seconds, more under load)
        while time.monotonic() < deadline and not all(s.stats.get("frames", 0) >= 60 for s in sup.status()):
            time.sleep(0.2)
    finally:
        statuses = sup.stop()
    assert all(s.stats.get("frames", 0) >= 60 for s in statuses), [(s.name, s.state, s.stats) for s in statuses]
    studio = CrowdStudio(n_persons=PERSONS, n_cameras=CAMERAS, duration_s=DURATION, seed=0)
    session = open_session(take)
    kp = session.keypoints2d()
    assert kp.multi_person and kp.keypoints.shape[2] == PERSONS and kp.n_frames >= 30
    first = min(int(c.frames.min()) for c in session.cameras.values())
    frames = (first + np.arange(kp.n_frames)) % studio.n_frames
    # every camera-frame recorded as many people as the studio's detector listed, in its order
    for ci, cam in enumerate(session.cameras.values()):
        for row, f in zip(cam.frames - first, cam.frames % studio.n_frames):
            listed = studio.keypoints(ci, int(f))
            np.testing.assert_array_equal(kp.keypoints[ci, row, : len(listed)], listed)
            assert np.isnan(kp.keypoints[ci, row, len(listed):]).all()

    save_rig(studio.rig, tmp_path / "rig.toml")
    out = tmp_path / "people.npz"
    assert main(["triangulate", "--rig", str(tmp_path / "rig.toml"), "--keypoints", str(take / "keypoints2d.npz"),
                 "--persons", "auto", "--out", str(out), "--exports", "none"]) == 0
    points = Points3D.load(out)
    truth = studio.points3d[:, frames]  # (P, N, J, 3) at the nominal frame times
    recorded = kp.timestamps_ns >= 0  # (C, N): the camera delivered that frame
    seen = ((studio.found[:, frames] & recorded[..., None]).sum(0) >= 2).T  # (P, N): in >= 2 recorded cameras
    # the studio's motion repeats after DURATION (how far the recording gets depends on the start-up):
    # identities are scored within each repeat, where everybody jumps back
    cycle = (first + np.arange(kp.n_frames)) // studio.n_frames
    score = score_by_cycle(points.points, points.person_ids, truth, seen, cycle)
    print("ids", points.person_ids.tolist(), "cycles", np.unique(cycle).tolist(), "MPJPE per person mm",
          np.round(score["mpjpe_mm_per_person"], 1).tolist(), "missed", score["missed"], "of",
          score["person_frames"], "invented", score["invented"])
    assert score["switches"] == 0 and PERSONS <= points.n_persons <= PERSONS * len(np.unique(cycle))
    # measured: 1-3 person-frames of 120-230 missed, 1 track-frame 0.5 m off (invented)
    assert score["missed"] <= 0.05 * score["person_frames"] and score["invented"] <= 0.02 * score["person_frames"]
    assert np.all(np.array(score["mpjpe_mm_per_person"]) < 20.0), score["mpjpe_mm_per_person"]
