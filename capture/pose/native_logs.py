"""Keep native libraries' start-up chatter (TFLite, absl, glog) off the user's terminal.

MediaPipe's C++ side writes ~4 lines per process straight to file descriptor 2
("Created TensorFlow Lite XNNPACK delegate", "All log messages before
absl::InitializeLog() ...", feedback-manager warnings): with four cameras that is
a screen of text that is not rigcap's and says nothing actionable.  Python's
``sys.stderr`` cannot catch it, so the descriptor itself is pointed at a
temporary file while the model loads and runs its first frame; if that fails,
what the library said is printed after all, since then it may matter.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_native_stderr():
    """Send fd 2 to a temporary file inside the block; replay it if the block raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
