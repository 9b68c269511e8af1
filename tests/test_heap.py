"""triangulate.heap: with the thresholds set, the engine's big temporaries reuse freed memory (no page faults)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Eight 2 MB temporaries made and freed twenty times, as a batch of the engine does: minor page faults.
PROBE = """
import resource, numpy as np
from triangulate.heap import keep_freed_memory
ok = keep_freed_memory()
def batch():
    a = [np.ones(1 << 18) for _ in range(8)]
    del a
batch()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(keep: bool) -> tuple[str, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO), RIGCAP_KEEP_FREED_MEMORY="1" if keep else "0")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=True)
    ok, n = out.stdout.split()
    return ok, int(n)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_temporaries_are_reused_instead_of_faulted_in_again():
    ok, kept = faults(True)
    off, fresh = faults(False)
    assert ok == "True" and off == "False"
    assert fresh > 2000  # 20 x 16 MB handed back to the kernel and zero-filled again, 4 KB at a time
    assert kept < 100
