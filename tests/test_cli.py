"""The command line: every subcommand listed, and a path that cannot be written is one line."""

from rigcap.cli import build_parser, main

EXPECTED = {"board", "calibrate", "capture", "demo", "fuse", "live", "synth", "triangulate", "view"}


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
