"""SIGKILL of the `rigcap capture` supervisor (issue 17, case 8): its camera processes stop within a second,
closing their segments; a second capture on the same endpoints refuses to start with one clear line."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from capture.config import CameraConfig
from capture.supervisor import Supervisor
from rigcap.wire import Backbone, EndpointError, free_tcp_endpoint

SUPERVISOR = textwrap.dedent("""
    import sys, time
    from capture.config import CameraConfig
    from capture.supervisor import Supervisor
    cams = [CameraConfig(f"cam_{i}", "synthetic", camera_index=i, n_cameras=2, seed=1, fps=15.0, duration_s=60.0)
            for i in range(2)]
    sup = Supervisor(cams, sys.argv[1], sys.argv[2], detector="synthetic", record_dir=sys.argv[3],
                     max_restarts=0, start_delay_s=0.0, record_video=False)
    sup.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = sup.poll()
        if all(s.state == "running" and s.stats.get("frames", 0) > 5 for s in st):
            print(" ".join(str(s.pid) for s in st), flush=True)
            break
        time.sleep(0.1)
    time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False


def _where(pids) -> str:
    """What each live process is doing (state, kernel wait channel, threads): a failure here is a hang to diagnose."""
    out = []
    for p in pids:
        try:
            status = dict(line.split(":", 1) for line in open(f"/proc/{p}/status").read().splitlines() if ":" in line)
            wchan = open(f"/proc/{p}/wchan").read()
            out.append(f"pid {p} {status['State'].strip()} wchan {wchan} threads {status['Threads'].strip()}")
        except OSError:
            out.append(f"pid {p} gone")
    return "; ".join(out)


def test_cameras_stop_within_a_second_of_their_supervisors_sigkill(tmp_path, repo_root):
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, pub, sub, str(tmp_path / "take")], cwd=repo_root,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(repo_root)})
    pids = []
    try:
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        killed = time.monotonic()
        while any(_alive(p) for p in pids) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        stopped_after = time.monotonic() - killed
        assert not any(_alive(p) for p in pids), f"camera processes outlived their supervisor by 5 s: {_where(pids)}"
        assert stopped_after < 1.0, f"cameras stopped {stopped_after:.2f} s after the supervisor's death"
        for cam in ("cam_0", "cam_1"):  # segments closed cleanly
            assert (tmp_path / "take" / cam / "segment-000.end.json").is_file()
    finally:
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def test_a_second_capture_on_the_same_endpoints_refuses_to_start():
    pub, sub = free_tcp_endpoint(), free_tcp_endpoint()
    with Backbone(pub, sub):  # another capture's backbone
        sup = Supervisor([CameraConfig("cam_0", "synthetic", camera_index=0, n_cameras=1)], pub, sub,
                         detector="synthetic", clock_endpoint=None)
        with pytest.raises(EndpointError, match="another rigcap capture"):
            sup.start()
        assert not sup.started
