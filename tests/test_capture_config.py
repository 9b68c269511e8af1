"""A capture config that names a missing camera or video file gives one clear line."""

import subprocess
import sys

import pytest

from capture.config import load_config
from rigcap.cli import main
from rigcap.errors import InputFileError


def write(tmp_path, cameras: str, extra: str = "") -> str:
    path = tmp_path / "studio.toml"
    path.write_text(extra + "\n[detector]\nname = \"none\"\n" + cameras, encoding="utf-8")
    return str(path)


def test_missing_video_file_is_one_clear_line(tmp_path, capsys):
    cfg = write(tmp_path, '[[cameras]]\nname = "side"\nsource = "video"\npath = "takes/nothere.mp4"\n')
    with pytest.raises(InputFileError) as info:
        load_config(cfg)
    text = str(info.value)
    assert "\n" not in text and "side" in text and "video file not found" in text and "nothere.mp4" in text
    assert main(["capture", "--config", cfg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "video file not found" in err


def test_missing_usb_camera_is_one_clear_line(tmp_path, capsys):
    cfg = write(tmp_path, '[[cameras]]\nname = "front"\nsource = "usb"\ndevice = "/dev/video-not-here"\n')
    assert main(["capture", "--config", cfg]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "front" in err and "/dev/video-not-here" in err


def test_missing_usb_index_through_the_real_command(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("USB presence is checked through /dev/video* on Linux")
    cfg = write(tmp_path, '[[cameras]]\nname = "c9"\ndevice = 97\n')
    proc = subprocess.run([sys.executable, "-m", "rigcap", "capture", "--config", cfg], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "USB camera 97 not found" in proc.stderr


@pytest.mark.parametrize("cameras, problem", [
    ("", "no cameras"),
    ('[[cameras]]\nname = "a"\nsource = "ftp"\n', "unknown source"),
    ('[[cameras]]\nname = "a"\nsource = "synthetic"\ncolour = 3\n', "unknown key"),
    ('[[cameras]]\nname = "a"\nsource = "synthetic"\n[[cameras]]\nname = "a"\nsource = "synthetic"\n', "repeated"),
    ('[[cameras]]\nname = "a b"\nsource = "synthetic"\n', "ASCII without spaces"),
    ('[[cameras]]\nname = "a"\nsource = "synthetic"\ncamera_index = 7\n', "outside"),
])
def test_config_mistakes_name_the_problem(tmp_path, cameras, problem):
    with pytest.raises(InputFileError, match=problem):
        load_config(write(tmp_path, cameras))


def test_unknown_detector_and_missing_rig(tmp_path):
    cam = '[[cameras]]\nname = "a"\nsource = "synthetic"\n'
    path = tmp_path / "c.toml"
    path.write_text('[detector]\nname = "openpose"\n' + cam)
    with pytest.raises(InputFileError, match="unknown detector 'openpose'"):
        load_config(path)
    path.write_text('[detector]\nname = "synthetic"\nmin_confidense = 0.5\n' + cam)
    with pytest.raises(InputFileError, match=r"\[detector\]: detector 'synthetic': .*'min_confidense'"):
        load_config(path)  # a typo is caught here, not as a traceback in every camera process
    path.write_text('rig = "rig.toml"\n' + cam)
    with pytest.raises(InputFileError, match="rig file not found"):
        load_config(path)


def test_shipped_studio_config_parses(repo_root):
    cfg = load_config(repo_root / "configs" / "studio.toml", check_devices=False)
    assert [c.name for c in cfg.cameras] == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert cfg.detector == "mediapipe" and cfg.detector_options == {"model_complexity": 1}
    assert all(c.source == "usb" and c.size == (1280, 720) and c.fps == 30 for c in cfg.cameras)


def test_video_paths_are_relative_to_the_config(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    cfg = load_config(write(tmp_path, '[[cameras]]\nname = "a"\nsource = "video"\npath = "v/a.mp4"\nfps = 25\n'))
    assert cfg.cameras[0].path == str(tmp_path / "v" / "a.mp4") and cfg.cameras[0].fps_override == 25
