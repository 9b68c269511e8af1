"""rigcap keys: the files it writes are real CurveZMQ key pairs (a CURVE handshake over TCP with them)."""

from __future__ import annotations

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rigcap.cli import main


def test_keys_make_working_curve_pairs_and_never_overwrite(tmp_path, capsys):
    assert main(["keys", "--out", str(tmp_path), "--hosts", "fusion,cam-a,intruder"]) == 0
    for h in ("fusion", "cam-a", "intruder"):
        assert (tmp_path / f"{h}.key").is_file()
        assert (tmp_path / f"{h}.key_secret").stat().st_mode & 0o077 == 0
    assert main(["keys", "--out", str(tmp_path), "--hosts", "cam-a"]) == 2
    assert "already exist" in capsys.readouterr().err

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "cam-a.key").write_bytes((tmp_path / "cam-a.key").read_bytes())
    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)
    auth.start()
    try:
        auth.configure_curve(domain="*", location=str(allowed))
        server = ctx.socket(zmq.PULL)
        server.curve_publickey, server.curve_secretkey = zmq.auth.load_certificate(str(tmp_path / "fusion.key_secret"))
        server.curve_server = True
        port = server.bind_to_random_port("tcp://127.0.0.1")
        server_public, _ = zmq.auth.load_certificate(str(tmp_path / "fusion.key"))
        got = {}
        for who in ("cam-a", "intruder"):
            client = ctx.socket(zmq.PUSH)
            client.curve_publickey, client.curve_secretkey = zmq.auth.load_certificate(str(tmp_path / f"{who}.key_secret"))
            client.curve_serverkey = server_public
            client.setsockopt(zmq.LINGER, 0)
            client.connect(f"tcp://127.0.0.1:{port}")
            client.send(who.encode(), zmq.NOBLOCK) if client.poll(2000, zmq.POLLOUT) else None
            got[who] = server.recv() if server.poll(1500) else None
            client.close()
        assert got == {"cam-a": b"cam-a", "intruder": None}
        server.close(linger=0)
    finally:
        auth.stop()
        ctx.term()
