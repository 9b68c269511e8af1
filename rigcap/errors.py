"""The one exception type a user sees as a single line.

Every package raises :class:`RigcapError` for problems a user can fix (a missing
file, a malformed rig file, a board that does not match the print).  The
command line prints its message and exits with status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class RigcapError(Exception):
    """A problem with the user's input, worded so the user can fix it."""


class InputFileError(RigcapError, ValueError):
    """A file exists but its content is not what rigcap expects.

    The message always starts with the file's path.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def read_toml(path, what: str) -> dict:
    """The TOML file at ``path`` as a dict, or one :class:`InputFileError` line saying why not.

    ``what`` names the file's role for the "not found" message ("board
    definition", "capture config"), so the user knows which argument was wrong.
    """
    import tomllib
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a valid TOML file ({exc})") from None


def check_output_folder(path, what: str) -> None:
    """Fail before any work when an output folder cannot be one (a file is in its place)."""
    from pathlib import Path

    p = Path(path)
    for parent in (p, *p.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InputFileError(parent, f"is a file, but {what} needs a folder there")
            return
