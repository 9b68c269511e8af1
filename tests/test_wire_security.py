"""rigcap.wire.security on loopback TCP: allowed key delivers, unknown key refused and counted, plain refused;
non-loopback endpoints need keys or --insecure."""

from __future__ import annotations

import pytest
import zmq

from rigcap.cli import main
from rigcap.errors import RigcapError
from rigcap.wire.security import ClientKeys, ServerKeys, is_loopback, require_keys


def test_loopback_rule():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:1") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://10.0.0.12:5556")
    require_keys("tcp://127.0.0.1:5555", None, insecure=False)
    require_keys("tcp://10.0.0.12:5556", None, insecure=True)
    with pytest.raises(RigcapError, match="--insecure"):
        require_keys("tcp://0.0.0.0:5555", None, insecure=False)


def test_allowed_unknown_and_plain_clients(tmp_path):
    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-a,intruder"]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "cam-a.key").write_bytes((tmp_path / "cam-a.key").read_bytes())
    server_keys = ServerKeys(tmp_path / "fusion.key_secret", allowed)
    ctx = zmq.Context()
    server_keys.start(ctx)
    try:
        server = ctx.socket(zmq.PULL)
        server_keys.apply(server)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        got = {}
        for who in ("cam-a", "intruder", "plain"):
            client = ctx.socket(zmq.PUSH)
            client.setsockopt(zmq.LINGER, 0)
            if who != "plain":
                ClientKeys(tmp_path / f"{who}.key_secret", tmp_path / "fusion.key").apply(client)
            client.connect(f"tcp://127.0.0.1:{port}")
            if client.poll(1500, zmq.POLLOUT):
                client.send(who.encode(), zmq.NOBLOCK)
            got[who] = server.recv() if server.poll(1500) else None
            client.close()
        assert got == {"cam-a": b"cam-a", "intruder": None, "plain": None}
        assert server_keys.refused >= 1  # the intruder's key (a plain client fails before ZAP)
        server.close(linger=0)
    finally:
        server_keys.stop()
        ctx.term()


def test_backbone_to_subscriber_over_curve(tmp_path):
    """A camera host's backbone (CURVE client) -> the fusion machine's Subscriber (CURVE server, allow-list)."""
    import time

    import numpy as np

    from rigcap.wire import Backbone, Publisher, Subscriber, encode_kp2d
    from triangulate.skeletons import HALPE26

    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-host,stranger"]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "cam-host.key").write_bytes((tmp_path / "cam-host.key").read_bytes())
    results = {}
    for host in ("cam-host", "stranger"):
        import socket as pysock

        def free():
            with pysock.socket() as s:
                s.bind(("127.0.0.1", 0))
                return s.getsockname()[1]

        pub_ep, sub_ep = f"tcp://127.0.0.1:{free()}", f"tcp://127.0.0.1:{free()}"
        bb = Backbone(pub_ep, sub_ep, keys=ClientKeys(tmp_path / f"{host}.key_secret", tmp_path / "fusion.key")).start()
        keys = ServerKeys(tmp_path / "fusion.key_secret", allowed)
        sub = Subscriber(sub_ep, topics=("kp2d.",), keys=keys)
        pub = Publisher(pub_ep)
        got = 0
        try:
            deadline = time.monotonic() + 3.0
            i = 0
            while time.monotonic() < deadline and got < 5:
                pub.send(encode_kp2d("cam_0", i, pub.next_seq("kp2d.cam_0"), time.time_ns(),
                                     np.zeros((1, 26, 3), np.float32), "halpe26", HALPE26.joint_names))
                i += 1
                msg = sub.recv(timeout_ms=50)
                got += msg is not None
            results[host] = (got, keys.refused)
        finally:
            pub.close()
            sub.close()
            bb.stop()
            keys.stop()
    assert results["cam-host"][0] >= 5 and results["cam-host"][1] == 0
    assert results["stranger"][0] == 0 and results["stranger"][1] >= 1
