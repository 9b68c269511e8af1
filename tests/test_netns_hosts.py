"""Issue 16 part 1 with real separate hosts: two Linux network namespaces made here, joined by a veth pair
(10.231.x.1 and .2, /30, addresses that exist only inside those namespaces).  A camera host
(tests/netns_roles.py camera) runs in one, the fusion machine (netns_roles.py fusion) in the other:
allowed key -> kp2d received and instants fused; unknown key -> 0 accepted, refusal counted; plain
client -> 0 accepted, refusal counted.  Skips with the reason where namespaces cannot be made (not root, no ``ip``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rigcap.cli import main

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 4.0  # each host runs this long (the fusion node a little longer); every subprocess is killed by 20 s


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def two_hosts():
    """(ns_camera, ns_fusion, camera_ip): namespaces deleted afterwards whatever happens."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2): cannot make network namespaces")
    pid = os.getpid()
    a, b = f"rigcap-t-{pid}-a", f"rigcap-t-{pid}-b"
    va, vb = f"rct{pid % 100000}a", f"rct{pid % 100000}b"
    net = f"10.231.{pid % 250}"
    made = []
    try:
        for ns in (a, b):
            r = _ip("netns", "add", ns)
            if r.returncode:
                pytest.skip(f"`ip netns add` failed ({r.stderr.strip()}): needs root and network namespaces")
            made.append(ns)
        steps = [("link", "add", va, "type", "veth", "peer", "name", vb),
                 ("link", "set", va, "netns", a), ("link", "set", vb, "netns", b),
                 ("-n", a, "addr", "add", f"{net}.1/30", "dev", va), ("-n", b, "addr", "add", f"{net}.2/30", "dev", vb),
                 ("-n", a, "link", "set", va, "up"), ("-n", b, "link", "set", vb, "up"),
                 ("-n", a, "link", "set", "lo", "up"), ("-n", b, "link", "set", "lo", "up")]
        for step in steps:
            r = _ip(*step)
            if r.returncode:
                pytest.skip(f"`ip {' '.join(step)}` failed: {r.stderr.strip()}")
        yield a, b, f"{net}.1"
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth pair, and with it the other
            _ip("netns", "del", ns)


def _in_ns(ns: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(ROOT / "tests" / "netns_roles.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen) -> dict:
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"a host did not finish within 20 s: {err[-500:]}")
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def test_allowed_unknown_and_plain_camera_hosts_across_namespaces(two_hosts, tmp_path):
    ns_cam, ns_fusion, cam_ip = two_hosts
    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-host,stranger"]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "cam-host.key").write_bytes((tmp_path / "cam-host.key").read_bytes())
    endpoint = f"tcp://{cam_ip}:5556"
    results = {}
    for case, client in (("allowed", "cam-host"), ("unknown", "stranger"), ("plain", None)):
        keys = [str(tmp_path / f"{client}.key_secret"), str(tmp_path / "fusion.key")] if client else []
        cam = _in_ns(ns_cam, "camera", endpoint, str(SECONDS), *keys)
        fusion = _in_ns(ns_fusion, "fusion", endpoint, str(SECONDS),
                        str(tmp_path / "fusion.key_secret"), str(allowed))
        results[case] = (_finish(fusion), _finish(cam))
    (fa, ca), (fu, _), (fp, _) = results["allowed"], results["unknown"], results["plain"]
    print(results)
    # allowed: most of what was sent arrived (the fusion node starts a little later) and became 3D instants
    assert fa["messages_in"] >= 2 * 30 and fa["instants_out"] >= 30 and fa["auth_refused"] == 0, results
    assert fa["messages_in"] <= 2 * ca["frames_sent"]
    assert fa["mpjpe_mm"] < 30.0, results  # the studio's noisy 2D, two views: joints within centimetres of truth
    # unknown key: nothing accepted, the refusal counted (ZeroMQ retries, so at least one)
    assert fu["messages_in"] == 0 and fu["instants_out"] == 0 and fu["auth_refused"] >= 1, results
    # plain client: nothing accepted (it fails the CURVE handshake before the allow-list), refusal counted
    assert fp["messages_in"] == 0 and fp["instants_out"] == 0 and fp["auth_refused"] >= 1, results


@pytest.mark.slow
def test_rigcap_capture_and_fuse_with_config_keys_across_namespaces(two_hosts, tmp_path):
    """The commands themselves: `rigcap capture` (2 synthetic cameras) on the camera host, `rigcap fuse --config`
    on the fusion machine, keys named only by the configs' [security] tables."""
    import re

    from calibration import save_rig
    from rigcap.studio.studio import SyntheticStudio

    ns_cam, ns_fusion, cam_ip = two_hosts
    keys = tmp_path / "keys"
    assert main(["keys", "--out", str(keys), "--hosts", "fusion,cam-a,stranger"]) == 0
    (keys / "allowed").mkdir()
    (keys / "allowed" / "cam-a.key").write_bytes((keys / "cam-a.key").read_bytes())
    save_rig(SyntheticStudio(n_cameras=2, seed=0).rig, tmp_path / "rig.toml")
    cams = "".join(f'[[cameras]]\nname = "cam_{i}"\nsource = "synthetic"\ncamera_index = {i}\nn_cameras = 2\n'
                   f'duration_s = 20\n' for i in range(2))
    endpoint = f"tcp://{cam_ip}:5556"
    (tmp_path / "fusion.toml").write_text('[security]\nsecret_key = "keys/fusion.key_secret"\n'
                                          'allowed_keys = "keys/allowed"\n[detector]\nname = "synthetic"\n' + cams)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    found = {}
    for host in ("cam-a", "stranger"):
        (tmp_path / "cam.toml").write_text(
            f'[security]\nsecret_key = "keys/{host}.key_secret"\nserver_key = "keys/fusion.key"\n'
            f'[detector]\nname = "synthetic"\n[endpoints]\npub = "tcp://127.0.0.1:5555"\nsub = "{endpoint}"\n'
            f'clock = "tcp://127.0.0.1:5557"\n' + cams)
        cam = subprocess.Popen(["ip", "netns", "exec", ns_cam, sys.executable, "-m", "rigcap", "capture", "--config",
                                str(tmp_path / "cam.toml"), "--seconds", "12"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        rec = tmp_path / f"take-{host}"
        fuse = subprocess.run(["ip", "netns", "exec", ns_fusion, sys.executable, "-m", "rigcap", "fuse", "--rig",
                               str(tmp_path / "rig.toml"), "--config", str(tmp_path / "fusion.toml"), "--sub",
                               endpoint, "--pub", "tcp://127.0.0.1:5555", "--seconds", "9", "--record", str(rec)],
                              capture_output=True, text=True, env=env, timeout=20)
        try:
            cam.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            cam.kill()
            cam.communicate()
        assert fuse.returncode == 0, fuse.stdout[-1000:] + fuse.stderr[-1000:]
        total = [line for line in fuse.stdout.splitlines() if line.startswith("total:")][0]
        recorded = re.search(r"recorded (\d+) instants", fuse.stdout)
        refused = re.search(r"auth refused (\d+)", total)
        found[host] = (int(recorded.group(1)) if recorded else 0, int(refused.group(1)) if refused else 0)
    print(found)
    assert found["cam-a"][0] >= 30 and found["cam-a"][1] == 0, found
    assert found["stranger"] == (0, found["stranger"][1]) and found["stranger"][1] >= 1, found
