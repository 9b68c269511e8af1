"""What a new user meets in the first hour: quiet model start-up, a status table that fits, defaults found anywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

import pytest

from capture.config import CameraConfig, load_config
from capture.supervisor import CameraStatus
from rigcap.commands.capture import _plain_lines, _table, grab_spread_applies


def _run_python(code: str, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, **kw)


def test_native_stderr_is_hidden_inside_the_block_and_replayed_when_it_fails():
    ok = _run_python("""
        import os
        from rigcap.native_output import held_native_output
        with held_native_output():
            os.write(2, b"I0000 chatter from C++\\n")
        os.write(2, b"after\\n")
    """)
    assert ok.returncode == 0 and "chatter" not in ok.stderr and "after" in ok.stderr
    failed = _run_python("""
        import os
        from rigcap.native_output import held_native_output
        with held_native_output():
            os.write(2, b"the reason it failed\\n")
            raise SystemExit(3)
    """)
    assert failed.returncode == 3 and "the reason it failed" in failed.stderr


def test_mediapipe_start_up_prints_nothing():
    pytest.importorskip("mediapipe")
    proc = _run_python("""
        import numpy as np
        from capture.pose.mediapipe_pose import MediaPipePoseDetector
        d = MediaPipePoseDetector()
        for _ in range(3):
            d.detect(np.zeros((480, 640, 3), np.uint8))
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    noise = [line for line in proc.stderr.splitlines() if line.strip()]
    assert noise == [], noise  # was: XNNPACK delegate, absl InitializeLog, feedback-manager warnings


def _statuses():
    stats = {"fps": 29.97, "frames": 12345, "dropped": 12, "detected": 12001, "detect_ms_p50": 24.5,
             "grab_to_publish_ms_p50": 26.1}
    return [CameraStatus(f"cam_{i:02d}", "running", 123456 + i, 1, stats=stats, message="restarted once" if i else None)
            for i in range(4)]


def test_status_table_fits_80_columns_without_cutting_headers():
    from rich.console import Console

    console = Console(width=80, record=True, force_terminal=True)
    console.print(_table(_statuses(), {"p50_ms": 3.2, "p99_ms": 8.9}, 12.3, 0))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "camera" in line)
    for col in ("camera", "state", "fps", "frames", "drop", "pers%", "model", "g->pub"):
        assert col in header  # was "cam…", "sta…", "fin…" at 80 columns
    assert "cam_03" in text and "running" in text and "29.97" not in text and "30.0" in text


def test_plain_status_lines_for_logs():
    lines = _plain_lines(_statuses(), None, 5.0, 2)
    assert lines[0].startswith("    5.0 s  grab spread n/a") and "malformed 2" in lines[0]
    assert lines[1].split() [:2] == ["camera=cam_00", "state=running"] and len(lines) == 5


def test_grab_spread_is_n_a_for_unpaced_video_only():
    usb = CameraConfig("a", "usb")
    paced = CameraConfig("b", "video", path="x.mp4", pace=True)
    unpaced = CameraConfig("c", "video", path="x.mp4", pace=False)
    assert grab_spread_applies([usb, paced]) and not grab_spread_applies([usb, unpaced])


def test_default_board_is_found_outside_the_checkout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rigcap", "board", "--out", "board.png"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "board.png").stat().st_size > 10_000


def test_video_config_is_shipped_and_reads_four_unpaced_videos(shared_data, repo_root):
    config = load_config(repo_root / "configs" / "videos.toml")
    assert [c.source for c in config.cameras] == ["video"] * 4 and not any(c.pace for c in config.cameras)
    assert config.rig_file is not None and not grab_spread_applies(config.cameras)


def test_licence_is_an_spdx_string(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"  # a table is deprecated and warns on every pip install
