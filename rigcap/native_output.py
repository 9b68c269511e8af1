"""Keep native libraries' chatter (TFLite, absl, glog, GLFW, Filament) off the user's terminal.

MediaPipe's C++ side writes ~4 lines per process straight to file descriptor 2
("Created TensorFlow Lite XNNPACK delegate", "All log messages before
absl::InitializeLog() ..."); GLFW probing for Wayland and X11 on a headless
machine prints errors that are not; Filament prints start-up lines to fd 1.
Python's ``sys.stderr`` / ``sys.stdout`` cannot catch any of it, so the
descriptor itself is pointed at a temporary file inside the block.  What was
held back is not lost: the caller gets it (``captured``) to quote in its own
error, or, without ``captured``, it is replayed if the block raises, since then
it may matter.  Ground floor: capture and viewer both use it and may not import
each other.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def held_native_output(fd: int = 2, captured: list | None = None):
    """Send file descriptor ``fd`` (2: stderr, 1: stdout) to a temporary file inside the block.

    ``captured``: the held text is appended to it.  Without: replayed to the
    stream if the block raises, dropped otherwise.
    """
    stream = sys.stdout if fd == 1 else sys.stderr
    try:
        stream.flush()
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real descriptor (embedded interpreters): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            if captured is not None:
                captured.append(text)
            elif failed:
                stream.write(text)
