"""A killed `rigcap fuse --record` leaves fusion/points3d.bin: every 3D reader takes it (issue 17, case 10)."""

import numpy as np

from rigcap.cli import main
from triangulate.formats import Points3D
from triangulate.fusion import FusedInstant
from triangulate.fusion_node import FusedRecorder
from triangulate.skeletons import HALPE26


def killed_recording(session, n=12):
    rec = FusedRecorder(session, HALPE26, 30.0)
    rng = np.random.default_rng(1)
    truth = rng.uniform(-1, 1, (n, 26, 3)).astype(np.float32)
    for i in range(n):
        rec.write(FusedInstant(time_ns=1_000 + i, points=truth[i], raw_points=truth[i], error_px=np.full(26, 0.5, np.float32),
                               n_views=np.full(26, 3, np.int16), cameras=["a", "b", "c"], frames={}, spread_ns=0,
                               last_arrival_ns=0))
    rec._file.flush()  # what SIGKILL leaves: flushed records, no close(), no points3d.npz
    return truth


def test_points3d_bin_of_a_killed_node_loads_and_rebuilds_the_npz(tmp_path):
    truth = killed_recording(tmp_path)
    for path in (tmp_path / "fusion" / "points3d.bin", tmp_path / "fusion", tmp_path):
        points = Points3D.load(path)
        np.testing.assert_allclose(points.points, truth, atol=0)
        assert points.timestamps_ns.tolist() == list(range(1000, 1012)) and list(points.joint_names) == list(HALPE26.joint_names)
    rebuilt = Points3D.load(tmp_path / "points3d.npz")
    np.testing.assert_allclose(rebuilt.points, truth)


def test_capture_inspect_reports_the_3d_stream(tmp_path, capsys):
    from capture.recording import write_session_start

    write_session_start(tmp_path, [], {}, None, epoch_ns=0)
    killed_recording(tmp_path)
    assert main(["capture", "--inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3D stream: 12 instants" in out and (tmp_path / "points3d.npz").is_file()
