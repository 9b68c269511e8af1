"""`rigcap capture` end to end on synthetic cameras: publish the studio's keypoints, record, inspect."""

import subprocess
import sys

import numpy as np
import pytest

from rigcap.wire import free_tcp_endpoint
from capture.recording import open_session
from triangulate.formats import Keypoints2D

pytest.importorskip("rigcap.studio.studio")


def test_rigcap_capture_records_synthetic_cameras_and_inspects_the_session(tmp_path, repo_root):
    cfg = tmp_path / "synthetic.toml"
    cams = "".join(f'[[cameras]]\nname = "cam_{i}"\nsource = "synthetic"\ncamera_index = {i}\nn_cameras = 2\n'
                   f"duration_s = 2.0\n" for i in range(2))
    cfg.write_text(f'[detector]\nname = "synthetic"\n[endpoints]\npub = "{free_tcp_endpoint()}"\n'
                   f'sub = "{free_tcp_endpoint()}"\n' + cams)
    take = tmp_path / "take"
    proc = subprocess.run([sys.executable, "-m", "rigcap", "capture", "--config", str(cfg), "--record", str(take),
                           "--seconds", "9", "--no-video"], capture_output=True, text=True, timeout=120, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cam_0" in proc.stdout and "clean" in proc.stdout
    # stdout is a pipe here, as in a log: plain lines, no redrawn table, no terminal escapes
    assert "\x1b[" not in proc.stdout and "━" not in proc.stdout and "camera=cam_0  state=" in proc.stdout
    assert proc.stdout.count("grab spread") <= 3  # a block every 10 s and the final one, not 2 redraws a second
    session = open_session(take)
    assert session.clean and session.camera_names == ["cam_0", "cam_1"]
    kp = Keypoints2D.load(take / "keypoints2d.npz")
    assert kp.keypoints.shape[2:] == (26, 3) and kp.n_frames >= 30

    from rigcap.studio.studio import SyntheticStudio

    studio = SyntheticStudio(n_cameras=2, fps=30.0, duration_s=2.0, seed=0)
    epoch = session.info["session"]["epoch_ns"]
    for c, name in enumerate(session.camera_names):
        rec = session.cameras[name]
        for f, t, k in zip(rec.frames[:40], rec.times_ns[:40], rec.keypoints[:40]):
            s = int(f) % studio.n_frames
            np.testing.assert_array_equal(k, studio.keypoints(c, s))  # exactly what the studio detected
            assert t == epoch + (int(f) // studio.n_frames) * 2_000_000_000 + studio.capture_time_ns(c, s)

    inspect = subprocess.run([sys.executable, "-m", "rigcap", "capture", "--inspect", str(take)],
                             capture_output=True, text=True, timeout=60, cwd=repo_root)
    assert inspect.returncode == 0 and "clean stop" in inspect.stdout and "cam_1:" in inspect.stdout
