"""rigcap.wire.security on loopback TCP: allowed key delivers, unknown key refused and counted, plain refused;
non-loopback endpoints need keys or --insecure."""

from __future__ import annotations

import pytest
import zmq

from rigcap.cli import main
from rigcap.errors import RigcapError
from rigcap.wire.security import SENDERS, ClientKeys, ServerKeys, is_loopback, require_keys


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
        assert server_keys.refused >= 2  # the intruder's key (ZAP) and the plain client (failed handshake)
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


# ---------------------------------------------------------------- configs and commands (issue 16 part 1)
SYNTH_CAMERA = '[detector]\nname = "none"\n[[cameras]]\nname = "c0"\nsource = "synthetic"\n'


def test_security_table_paths_relative_to_the_config_and_one_line_errors(tmp_path):
    from capture.config import load_config
    from rigcap.errors import InputFileError

    assert main(["keys", "--out", str(tmp_path / "keys"), "--hosts", "fusion,cam-a"]) == 0
    (tmp_path / "keys" / "allowed").mkdir()
    (tmp_path / "keys" / "allowed" / "cam-a.key").write_bytes((tmp_path / "keys" / "cam-a.key").read_bytes())
    cam = tmp_path / "cam.toml"
    cam.write_text('[security]\nsecret_key = "keys/cam-a.key_secret"\nserver_key = "keys/fusion.key"\n' + SYNTH_CAMERA)
    fusion = tmp_path / "fusion.toml"
    fusion.write_text('[security]\nsecret_key = "keys/fusion.key_secret"\nallowed_keys = "keys/allowed/"\n' + SYNTH_CAMERA)
    client = load_config(cam).security.client_keys()
    server = load_config(fusion).security.server_keys()
    assert client.server_public == server.public and client.public in server.allowed[SENDERS]
    assert load_config(cam).security.server_keys() is None  # no allow-list named: not a fusion machine
    cases = {'secret_key = "keys/nothere.key_secret"': "nothere.key_secret",
             'secret_key = "keys/fusion.key_secret"\nallowed_keys = "keys/nofolder"': "nofolder",
             'server_key = "keys/fusion.key"': "secret_key",
             'secret = "x"': "unknown key"}
    for body, named in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(f"[security]\n{body}\n" + SYNTH_CAMERA)
        with pytest.raises(InputFileError) as info:
            load_config(bad)
        text = str(info.value)
        assert "\n" not in text and "bad.toml" in text and named in text, text
    # a public key given where the secret one belongs: read by the keys object, named in one line
    bad.write_text('[security]\nsecret_key = "keys/fusion.key"\nserver_key = "keys/fusion.key"\n' + SYNTH_CAMERA)
    with pytest.raises(InputFileError, match="fusion.key.*no secret key"):
        load_config(bad).security.client_keys()


def test_commands_refuse_plain_links_to_other_machines_unless_insecure(tmp_path, capsys):
    from calibration import save_rig
    from rigcap.studio.studio_rig import make_studio_rig

    rig = save_rig(make_studio_rig(2, seed=0), tmp_path / "rig.toml")
    assert main(["fuse", "--rig", str(rig), "--sub", "tcp://10.0.0.12:5556", "--seconds", "0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "10.0.0.12" in err and "--insecure" in err
    cfg = tmp_path / "cam.toml"
    cfg.write_text('[endpoints]\nsub = "tcp://0.0.0.0:5556"\n' + SYNTH_CAMERA)
    assert main(["capture", "--config", str(cfg), "--seconds", "0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0.0.0.0" in err and "--insecure" in err
    cfg.write_text(f'rig = "{rig}"\n' + SYNTH_CAMERA)
    assert main(["live", "--config", str(cfg), "--hosts", "10.0.0.12", "--headless", "--seconds", "0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "10.0.0.12" in err and "--insecure" in err
    # --insecure lets fuse start (loopback stays plain without it): it runs and stops
    assert main(["fuse", "--rig", str(rig), "--sub", "tcp://10.0.0.12:5556", "--insecure", "--seconds", "0.3",
                 "--interval", "0.1"]) == 0


def test_stats_lines_report_refusals():
    from rigcap.commands.fuse import stats_line

    waiting = {"elapsed_s": 2.0, "messages_in": 0, "instants_out": 0, "auth_refused": 3}
    assert stats_line(waiting, None).endswith("auth refused 3")
    assert "auth refused" not in stats_line(dict(waiting, auth_refused=0), None)


def test_server_keys_travel_to_a_spawned_fusion_process(tmp_path):
    """rigcap live passes ServerKeys to its fusion process (spawn: pickled): same keys, fresh counter."""
    import pickle

    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-a"]) == 0
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "cam-a.key").write_bytes((tmp_path / "cam-a.key").read_bytes())
    keys = ServerKeys(tmp_path / "fusion.key_secret", allowed)
    copy = pickle.loads(pickle.dumps(keys))
    assert (copy.public, copy.secret) == (keys.public, keys.secret) and copy.allowed == keys.allowed
    assert copy.refused == 0


# ---------------------------------------------------------------- the clock-query link (issue 16, keys on every link)
def _keys_dir(tmp_path, *allowed: str):
    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-host,stranger,viewer"]) == 0
    folder = tmp_path / "allowed"
    folder.mkdir()
    for host in allowed:
        (folder / f"{host}.key").write_bytes((tmp_path / f"{host}.key").read_bytes())
    return folder


def test_clock_queries_are_curve_an_unknown_host_gets_no_answer_and_is_counted(tmp_path, monkeypatch):
    """The camera host's ClockServer is a CURVE client of the fusion machine (as its backbone); the fusion
    machine's query checks the host's key against allowed_keys.  The host's clock runs 5 s ahead."""
    import time

    import rigcap.wire.security as security
    from rigcap.commands.live import measure_hosts
    from rigcap.wire import ClockServer, ClockTracker, free_tcp_endpoint, measure_clock_offset

    allowed = _keys_dir(tmp_path, "cam-host")
    ahead = lambda: time.time_ns() + 5_000_000_000  # noqa: E731

    def server(host):
        keys = None if host is None else ClientKeys(tmp_path / f"{host}.key_secret", tmp_path / "fusion.key")
        return ClockServer(free_tcp_endpoint(), clock=ahead, keys=keys)  # started by `with`

    fusion = ServerKeys(tmp_path / "fusion.key_secret", allowed)
    try:
        with server("cam-host") as ok:
            off = measure_clock_offset(ok.endpoint, n=5, timeout_ms=1000, keys=fusion)
            assert abs(off.offset_ns - 5e9) < 50e6 and fusion.refused == 0
            with pytest.raises(TimeoutError):  # a plain query from anybody else: no answer
                measure_clock_offset(ok.endpoint, n=1, timeout_ms=400)
        for host in ("stranger", None):  # a key not in the allow-list; a host without keys
            before = fusion.refused
            with server(host) as bad:
                with pytest.raises(TimeoutError):
                    measure_clock_offset(bad.endpoint, n=3, timeout_ms=500, keys=fusion)
                assert fusion.refused > before, host
        # the fusion process's tracker, and rigcap live's start-up measurement (the loopback server standing
        # in for another machine: live leaves loopback clocks plain), say the same
        with server("stranger") as bad:
            with pytest.raises(TimeoutError):
                ClockTracker(bad.endpoint, timeout_ms=300, exchanges=2, keys=fusion).start()
            monkeypatch.setattr(security, "is_loopback", lambda endpoint: False)
            with pytest.raises(RigcapError, match=r"no clock server answers.*refused: its key is not in allowed_keys"):
                measure_hosts([("tcp://cam-host:5556", bad.endpoint)], 400, keys=fusion)
    finally:
        fusion.stop()  # (one ZAP handler per process: the next keys start theirs)
    other = ServerKeys(tmp_path / "stranger.key_secret", allowed)  # a CURVE server of its own, allowing cam-host
    try:
        with server("cam-host") as ok:
            with pytest.raises(TimeoutError):  # the host talks only to the holder of the fusion machine's secret key
                measure_clock_offset(ok.endpoint, n=1, timeout_ms=400, keys=other)
    finally:
        other.stop()
