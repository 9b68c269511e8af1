"""tests/test_wire_security.py in a process of its own (why: see the comment at its top).

A child that libzmq aborted (SIGABRT, the upstream race) is run once more and the abort is
reported as a warning with libzmq's own message; any other failure, or a second abort, fails here
with the child's output."""

import os
import signal
import subprocess
import sys
import warnings

from test_wire_security import ISOLATED_ENV


def _aborted(run: subprocess.CompletedProcess) -> bool:
    return run.returncode == -signal.SIGABRT or "Fatal Python error: Aborted" in run.stdout + run.stderr


def test_wire_security_in_its_own_process(repo_root):
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_wire_security.py"]
    env = {**os.environ, ISOLATED_ENV: "1"}
    for attempt in (1, 2):
        run = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=900)
        if not _aborted(run):
            break
        lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "Assertion failed" in ln or "Fatal" in ln]
        warnings.warn(f"libzmq aborted the wire-security tests (attempt {attempt}): {' | '.join(lines[:3])}")
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " skipped" not in run.stdout, tail  # the child really ran them all
