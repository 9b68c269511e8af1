"""One fusion options object: `rigcap fuse`, `rigcap live` and `rigcap demo` build the same one from the same input."""

from __future__ import annotations

import pytest

from capture.config import load_config
from rigcap.cli import build_parser
from rigcap.errors import InputFileError
from rigcap.fusion_args import fusion_options
from triangulate.fusion_options import FusionOptions

CONFIG = """
[detector]
name = "synthetic"

[fusion]
alive_window_s = 0.7
deadline_ms = 20.0

[[cameras]]
name = "cam_0"
source = "synthetic"
camera_index = 0
n_cameras = 2
fps = 25

[[cameras]]
name = "cam_1"
source = "synthetic"
camera_index = 1
n_cameras = 2
fps = 25
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "studio.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_fuse_live_and_demo_build_the_same_options(config_file):
    parser = build_parser()
    flags = ["--max-clock-skew-s", "1.5", "--no-smoothing"]
    config = load_config(config_file, check_devices=False)
    fuse = parser.parse_args(["fuse", "--rig", "rig.toml", "--config", str(config_file), *flags])
    live = parser.parse_args(["live", "--config", str(config_file), *flags])
    demo = parser.parse_args(["demo", "--fps", "25", "--alive-window-s", "0.7", "--deadline-ms", "20", *flags])
    built = [fusion_options(fuse, config, fps=fuse.fps), fusion_options(live, config), fusion_options(demo, fps=demo.fps)]
    expected = FusionOptions(fps=25.0, alive_window_s=0.7, deadline_ms=20.0, max_clock_skew_s=1.5, smoothing=False)
    assert built == [expected] * 3


def test_flags_override_the_table_and_absent_flags_keep_it(config_file):
    parser = build_parser()
    config = load_config(config_file, check_devices=False)
    kept = fusion_options(parser.parse_args(["live", "--config", str(config_file)]), config)
    over = fusion_options(parser.parse_args(["live", "--config", str(config_file), "--alive-window-s", "2"]), config)
    assert (kept.alive_window_s, kept.deadline_ns, kept.tolerance_ns) == (0.7, 20_000_000, 20_000_000)  # tolerance: half of 25 fps
    assert over.alive_window_s == 2.0 and over.deadline_ms == 20.0 and over.smoothing is True


def test_no_flag_no_table_gives_the_dataclass_defaults():
    demo = build_parser().parse_args(["demo"])
    assert fusion_options(demo, fps=demo.fps) == FusionOptions()


@pytest.mark.parametrize("table, problem", [
    ("alive_window = 1.0", "unknown key"),
    ("alive_window_s = 'long'", "must be a number"),
    ("smoothing = 1", "true or false"),
    ("alive_window_s = -1.0", "must be > 0"),
    ("robust_loss = 'tukey'", "robust_loss must be one of"),
    ("robust_loss = 2", "robust_loss must be a string"),
])
def test_a_bad_fusion_table_is_one_line_naming_the_file(tmp_path, table, problem):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.replace("alive_window_s = 0.7", table), encoding="utf-8")
    with pytest.raises(InputFileError, match=problem) as info:
        load_config(path, check_devices=False)
    assert str(info.value).startswith(str(path))


def test_robust_loss_from_the_table_and_the_flag(tmp_path, config_file):
    path = tmp_path / "huber.toml"
    path.write_text(CONFIG.replace("alive_window_s = 0.7", "alive_window_s = 0.7\nrobust_loss = 'huber'"), encoding="utf-8")
    config = load_config(path, check_devices=False)
    parser = build_parser()
    assert fusion_options(parser.parse_args(["live", "--config", str(path)]), config).robust_loss == "huber"
    args = parser.parse_args(["live", "--config", str(path), "--robust-loss", "none"])
    assert fusion_options(args, config).robust_loss == "none"
    assert FusionOptions().robust_loss == "cauchy"
    with pytest.raises(SystemExit):
        parser.parse_args(["live", "--config", str(path), "--robust-loss", "tukey"])
