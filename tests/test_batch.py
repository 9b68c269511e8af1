"""rigcap batch: on a real Dask local cluster, per-session results equal the commands run one by one;
a broken session is reported and the others finish; a rerun skips what is done; writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed", reason="rigcap batch needs dask[distributed] (pip install 'rigcap[batch]')")

from calibration.rigfile import save_rig  # noqa: E402
from capture.recording import CameraRecorder, write_session_start  # noqa: E402
from capture.sources import Frame  # noqa: E402
from rigcap import batch  # noqa: E402
from rigcap.cli import build_parser, main  # noqa: E402
from rigcap.commands.triangulate import engine_settings  # noqa: E402
from rigcap.studio.sessions import write_synthetic_session  # noqa: E402
from rigcap.studio.studio import SyntheticStudio  # noqa: E402
from triangulate.formats import Points3D  # noqa: E402
from triangulate.skeletons import HALPE26  # noqa: E402


def write_recorded_session(folder: Path, rig_file: Path, seed: int = 7, seconds: float = 2.0) -> SyntheticStudio:
    """A rigcap session folder as `rigcap capture --record` leaves it when killed: segments, no keypoints2d.npz;
    its session.toml names a rig file elsewhere."""
    studio = SyntheticStudio(n_cameras=3, duration_s=seconds, seed=seed)
    save_rig(studio.rig, rig_file)
    write_session_start(folder, [{"name": n} for n in studio.rig.names], {}, str(rig_file), epoch_ns=0)
    kp = studio.keypoints2d()
    for ci, name in enumerate(studio.rig.names):
        rec = CameraRecorder(folder, name, HALPE26, studio.fps, video=False)
        for f in range(studio.n_frames):
            people = kp.keypoints[ci, f][None]
            if not np.isfinite(people[..., 2]).any():
                people = people[:0]
            rec.write(Frame(f, int(kp.timestamps_ns[ci, f]), 0), people)
        rec.close()
    return studio


def npz_equal(a: Path, b: Path) -> None:
    da, db = np.load(a), np.load(b)
    assert sorted(da.files) == sorted(db.files)
    for k in da.files:
        np.testing.assert_array_equal(da[k], db[k], err_msg=f"{a.name}:{k}")


def mpjpe_mm(points: Path, truth: Path) -> float:
    p, t = Points3D.load(points).points, Points3D.load(truth).points
    ok = np.isfinite(p).all(-1)
    return float(1000 * np.linalg.norm(p - t, axis=-1)[ok].mean())


def test_batch_equals_one_by_one_isolates_failures_and_skips_on_rerun(tmp_path, capsys):
    root = tmp_path / "sessions"
    for i in range(3):
        write_synthetic_session(root / f"s{i}", seed=i, seconds=3.0, cameras=4)
    recorded = root / "lab" / "rec"
    write_recorded_session(recorded, tmp_path / "elsewhere_rig.toml")
    broken = root / "broken"
    broken.mkdir()
    (broken / "keypoints2d.npz").write_bytes(b"not an npz")
    (broken / "rig.toml").write_text((root / "s0" / "rig.toml").read_text())

    rc = main(["batch", str(root), "--steps", "angles,triangulate", "--workers", "2", "--no-plot"])
    out = capsys.readouterr().out
    assert rc == 1  # one session failed
    assert "4 done, 0 already done (skipped), 1 failed" in out
    assert "broken: " in out and "keypoints2d.npz" in out  # its error, naming the file
    assert (broken / "batch" / batch.ERROR_FILE).is_file()

    # One by one with the commands: identical files.
    for name in ("s0", "s1", "s2", "lab/rec"):
        folder = root / name
        ref = tmp_path / "ref" / name
        ref.mkdir(parents=True)
        keypoints = folder / "keypoints2d.npz"
        rig = folder / "rig.toml"
        if name == "lab/rec":  # never finalised: the batch rebuilt the keypoints without writing into it
            assert not keypoints.exists()
            from capture.recording import open_session

            keypoints = ref / "kp.npz"
            open_session(folder, write_keypoints=False).keypoints2d().save(keypoints)
            rig = tmp_path / "elsewhere_rig.toml"
        assert main(["triangulate", "--rig", str(rig), "--keypoints", str(keypoints), "--out",
                     str(ref / "points3d.npz")]) == 0
        assert main(["angles", "--points", str(ref / "points3d.npz"), "--no-plot"]) == 0
        got = folder / "batch"
        npz_equal(got / "points3d.npz", ref / "points3d.npz")
        for f in ("points3d.trc", "points3d.csv", "points3d.angles.csv"):
            assert (got / f).read_bytes() == (ref / f).read_bytes(), f"{name}/{f}"
        assert not list(got.glob(".staging-*")) and not (got / batch.ERROR_FILE).exists()
    for i in range(3):  # and the result is right, not only equal
        assert mpjpe_mm(root / f"s{i}" / "batch" / "points3d.npz", root / f"s{i}" / "points3d_true.npz") < 25.0

    # Rerun: nothing done again, the broken one fails again; its neighbours' files untouched.
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("batch/*") if p.is_file() and "broken" not in str(p)}
    rc = main(["batch", str(root), "--steps", "triangulate,angles", "--workers", "1", "--no-plot"])
    assert rc == 1
    assert "0 done, 4 already done (skipped), 1 failed" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def options_for(*argv, **kw) -> batch.BatchOptions:
    args = build_parser().parse_args(["batch", "x", *argv])
    config, formats, persons = engine_settings(args)
    return batch.BatchOptions(config=config, formats=tuple(formats), persons=persons, plot=False, **kw)


def test_rerun_redoes_what_changed_and_a_failed_step_leaves_nothing(tmp_path, monkeypatch):
    """In-process (the task a worker runs): settings or inputs changed -> redone, with what depends on it."""
    folder = write_synthetic_session(tmp_path / "s", seed=3, seconds=2.0, cameras=3)
    (session,) = batch.find_sessions(folder)
    assert session.name == "." and not session.recorded
    steps = ("triangulate", "angles")
    r = batch.process_session(session, steps, options_for())
    assert r.status == "done" and r.steps == {"triangulate": "done", "angles": "done"}, r.error
    assert batch.process_session(session, steps, options_for()).status == "skipped"
    # another engine setting: both redone (the angles read the new points)
    r = batch.process_session(session, steps, options_for("--threshold-px", "20"))
    assert r.steps == {"triangulate": "done", "angles": "done"}
    # another angles setting only: triangulation kept
    r = batch.process_session(session, steps, options_for("--threshold-px", "20", up="z"))
    assert r.steps == {"triangulate": "skipped", "angles": "done"}
    # the input changed: redone
    os.utime(folder / "keypoints2d.npz", ns=(1, 1))
    r = batch.process_session(session, ("triangulate",), options_for("--threshold-px", "20", up="z"))
    assert r.steps == {"triangulate": "done"}

    # A step that dies after writing part of its output leaves the old results and no marker for itself.
    out = folder / "batch"
    before = (out / "points3d.npz").read_bytes()
    marker = json.loads((out / "triangulate.done.json").read_text())

    def dying(ctx):
        (ctx.staging / batch.POINTS_FILE).write_bytes(b"half")
        raise RuntimeError("killed half-way")

    monkeypatch.setitem(batch.STEPS, "triangulate", batch.Step("triangulate", "", dying, batch.STEPS["triangulate"].inputs,
                                                               batch.STEPS["triangulate"].settings))
    r = batch.process_session(session, ("triangulate",), options_for(force=True))
    assert r.status == "failed" and r.error == "RuntimeError: killed half-way"
    assert (out / "points3d.npz").read_bytes() == before
    assert json.loads((out / "triangulate.done.json").read_text()) == marker
    assert not list(out.glob(".staging-*"))
    assert "killed half-way" in (out / batch.ERROR_FILE).read_text()


def test_workers_run_one_blas_thread_without_the_trim_threshold_and_are_warmed_up(tmp_path):
    """The worker environment (rigcap.batch.WORKER_ENV, no MALLOC_TRIM_THRESHOLD_), the worker's timers
    (rigcap.batch.CLUSTER_CONFIG: no profiler, 1 s tick and memory monitor) and the warm-up, which runs
    the real steps on a tiny session and leaves nothing behind."""
    import tempfile

    rep = batch.warm_up(("triangulate", "angles"), options_for())
    assert rep.status == "done" and rep.steps == {"triangulate": "done", "angles": "done"}, rep.error
    assert rep.summaries["triangulate"]["triangulated_pct"] > 50  # a real triangulation of the tiny session
    assert not list(Path(tempfile.gettempdir()).glob("rigcap-batch-warm-up-*"))
    folder = write_synthetic_session(tmp_path / "s", seed=1, seconds=1.0, cameras=3)
    res = batch.run_batch(batch.find_sessions(folder), ("triangulate",), options_for(), workers=1)
    (env,) = res.worker_env.values()
    assert env == {**batch.WORKER_ENV, "MALLOC_TRIM_THRESHOLD_": None}
    (timers,) = res.worker_timers.values()
    assert "profile" not in timers and "heartbeat" in timers, timers  # Dask's profiler samples every 10 ms by default
    assert timers["tick"] == 1000 and timers["memory_monitor"] == 1000 and timers["monitor"] == 2000, timers
    (r,) = res.reports
    assert r.status == "done" and 0 < r.task_cpu_seconds <= r.cpu_seconds


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty")]) == 2
    assert "no sessions found" in capsys.readouterr().err
    write_synthetic_session(tmp_path / "one" / "s", seconds=1.0, cameras=2)
    assert main(["batch", str(tmp_path / "one"), "--steps", "triangulate,wings"]) == 2
    err = capsys.readouterr().err
    assert "unknown step(s) wings" in err and "known: triangulate, angles" in err
