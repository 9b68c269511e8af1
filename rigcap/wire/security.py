"""CurveZMQ for links that leave the machine: key files, an allow-list that counts refusals,
and the rule that a non-loopback endpoint needs keys (or an explicit ``--insecure``).

``Subscriber(keys=ServerKeys(...))`` and ``Backbone(keys=ClientKeys(...))`` take them; not yet
named by the configs or the commands (issue 16 part 1, in progress).  The roles: the fusion machine is the CURVE *server* (it holds the allow-list and runs
ZAP) even though its Subscriber *connects* (CURVE roles do not follow bind/connect); each camera
host's backbone XPUB is a CURVE client holding the fusion machine's public key.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rigcap.errors import InputFileError, RigcapError


def is_loopback(endpoint: str) -> bool:
    """``tcp://127.0.0.1:5555``, ``tcp://localhost:...``, ``ipc://``, ``inproc://`` stay on the machine."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard (0.0.0.0, *): reachable from outside


def require_keys(endpoint: str, keys, insecure: bool) -> None:
    """Refuse a non-loopback link without keys unless ``insecure``."""
    if keys is None and not insecure and not is_loopback(endpoint):
        raise RigcapError(f"{endpoint} is reachable from other machines and no keys are configured: make them with "
                          "`rigcap keys` and name them in the config's [security] table, or pass --insecure")


def _load(path: Path, secret: bool):
    try:
        public, sec = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"not a CurveZMQ key file ({exc})") from None
    if secret and sec is None:
        raise InputFileError(path, "holds no secret key (give the .key_secret file)")
    return public, sec


@dataclass
class _AllowList:
    """ZAP credentials callback: allows the public keys in ``allowed`` and counts the others."""

    allowed: set[bytes]
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.allowed
        if not ok:
            with self.lock:
                self.refused += 1
        return ok


class ServerKeys:
    """The fusion machine's side: its secret key and the folder of allowed camera hosts' public keys."""

    def __init__(self, secret_file: str | Path, allowed_dir: str | Path):
        self.public, self.secret = _load(Path(secret_file), True)
        allowed_dir = Path(allowed_dir)
        if not allowed_dir.is_dir():
            raise InputFileError(allowed_dir, "not a folder of allowed public keys")
        keys = {zmq.auth.load_certificate(str(p))[0] for p in sorted(allowed_dir.glob("*.key"))}
        if not keys:
            raise InputFileError(allowed_dir, "holds no public keys (*.key): nobody could connect")
        self._allow = _AllowList(keys)
        self._auth: ThreadAuthenticator | None = None

    @property
    def refused(self) -> int:
        return self._allow.refused

    def start(self, context: zmq.Context) -> None:
        """Run the ZAP handler on ``context`` (once per context, before sockets bind)."""
        self._auth = ThreadAuthenticator(context)
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=self._allow)

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE server; starts the ZAP handler on its context the first time."""
        if self._auth is None:
            self.start(socket.context)
        socket.curve_secretkey, socket.curve_publickey = self.secret, self.public
        socket.curve_server = True


class ClientKeys:
    """A camera host's side: its own secret key and the fusion machine's public key."""

    def __init__(self, secret_file: str | Path, server_public_file: str | Path):
        self.public, self.secret = _load(Path(secret_file), True)
        self.server_public, _ = _load(Path(server_public_file), False)

    def apply(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey, socket.curve_publickey = self.secret, self.public
        socket.curve_serverkey = self.server_public
