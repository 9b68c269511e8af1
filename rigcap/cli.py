"""The ``rigcap`` command: argument parsing only.

Each subcommand lives in its own module under :mod:`rigcap.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=run``.  Modules are discovered, so a new command needs no edit here, and
``rigcap --help`` lists exactly the commands that exist.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from rigcap import __version__, commands
from rigcap.errors import RigcapError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rigcap",
        description="Markerless multi-camera motion capture: calibrate a rig with a ChArUco "
        "board, capture 2D keypoints per camera, triangulate 3D joints, view them.",
    )
    parser.add_argument("--version", action="version", version=f"rigcap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"rigcap.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except RigcapError as exc:
        print(f"rigcap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        # A path the user gave that cannot be read or written (an --out in a
        # folder that is not there, a read-only disk): theirs to fix, one line.
        where = exc.filename if exc.filename is not None else "file"
        problem = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            problem = "is a file, but a folder is needed there (check the output path)"
        print(f"rigcap {args.command}: error: {where}: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rigcap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
