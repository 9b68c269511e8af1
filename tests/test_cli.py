"""The command line: every subcommand listed, and a path that cannot be written is one line."""

from rigcap.cli import build_parser, main

EXPECTED = {"analyze", "angles", "batch", "board", "bvh", "calibrate", "capture", "demo", "fuse", "keys", "live", "opensim", "synth", "sync",
            "triangulate", "view"}


def test_help_lists_every_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == EXPECTED


def test_output_path_blocked_by_a_file_is_one_line(tmp_path, capsys, repo_root):
    blocker = tmp_path / "takes"
    blocker.write_text("not a folder")
    rc = main(["board", "--config", str(repo_root / "configs" / "board.toml"), "--out", str(blocker / "board.png")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(blocker) in err and "folder is needed" in err


def test_bad_numbers_are_usage_errors_not_crashes(capsys):
    import pytest

    for argv in (["fuse", "--rig", "rig.toml", "--fps", "0"], ["fuse", "--rig", "rig.toml", "--tolerance-ms", "-5"],
                 ["view", "--rig", "rig.toml", "--points", "p.npz", "--fps", "0"],
                 ["triangulate", "--rig", "rig.toml", "--keypoints", "k.npz", "--out", "p.npz", "--fps", "0"],
                 ["analyze", "--points", "p.npz", "--exercise", "squat", "--fps", "-1"],
                 ["bvh", "--points", "p.npz", "--out", "m.bvh", "--fps", "0"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "must be > 0" in capsys.readouterr().err


def test_a_bad_up_axis_is_a_usage_error_in_every_command_that_takes_one(capsys):
    import pytest

    for argv in (["angles", "--points", "p.npz"], ["analyze", "--points", "p.npz", "--exercise", "squat"],
                 ["bvh", "--points", "p.npz"], ["batch", "sessions"]):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--up", "sideways"])
        assert info.value.code == 2
        assert "--up" in capsys.readouterr().err


def test_fuse_record_into_a_file_fails_before_listening(tmp_path, capsys):
    from calibration import save_rig
    from rigcap.studio.studio_rig import make_studio_rig

    rig = save_rig(make_studio_rig(2, seed=0), tmp_path / "rig.toml")
    blocker = tmp_path / "take"
    blocker.write_text("")
    assert main(["fuse", "--rig", str(rig), "--record", str(blocker), "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert str(blocker) in err and "needs a folder" in err


def test_board_value_of_the_wrong_type_names_its_key(tmp_path, capsys):
    board = tmp_path / "board.toml"
    board.write_text('squares_x = "five"\nsquares_y = 5\nsquare_length = 0.04\nmarker_length = 0.03\n')
    assert main(["board", "--config", str(board), "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "squares_x must be an integer" in err and str(board) in err
