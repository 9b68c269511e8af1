"""CurveZMQ for links that leave the machine: key files, allow-lists that count refusals,
and the rule that a non-loopback endpoint needs keys (or an explicit ``--insecure``).

``Subscriber(keys=...)``, ``Backbone(keys=...)``, ``Relay(keys=...)``, ``ClockServer(keys=...)`` and
``measure_clock_offset(keys=...)`` take them; the capture config's ``[security]`` table names the
files and the commands pass the objects down.  The roles (CURVE roles do not follow bind/connect):

* the fusion machine is the CURVE *server* of every link to a camera host (it holds the allow-list
  of camera hosts and runs ZAP), although its Subscriber and its clock queries *connect*;
* each camera host's backbone XPUB and clock server are CURVE *clients* holding the fusion
  machine's public key: nobody without the fusion machine's secret key reads its kp2d or its clock;
* the fusion machine's readers relay (kp3d, angles, stats for viewer hosts) is again a CURVE server,
  checking a second allow-list (the readers); a viewer is a client holding the fusion machine's
  public key, exactly as a camera host.
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
from zmq.utils.monitor import recv_monitor_message

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


def require_local(endpoint: str, what: str, instead: str, insecure: bool) -> None:
    """Refuse a non-loopback endpoint for a link that is never authenticated (``what``), unless
    ``insecure``: e.g. a backbone's publisher endpoint, where anyone who reaches it could publish
    kp2d under a rig camera's name into the host's authenticated link to the fusion machine."""
    if not insecure and not is_loopback(endpoint):
        raise RigcapError(f"{endpoint} ({what}) is reachable from other machines and is never authenticated: "
                          f"{instead}, or pass --insecure")


def _load(path: Path, secret: bool):
    try:
        public, sec = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise InputFileError(path, f"not a CurveZMQ key file ({exc})") from None
    if secret and sec is None:
        raise InputFileError(path, "holds no secret key (give the .key_secret file)")
    return public, sec


# ZAP domains: which allow-list a CURVE server socket checks its clients against.
SENDERS = "rigcap-senders"  # camera hosts: their kp2d in (the fusion node's subscribers) and clock answers
READERS = "rigcap-readers"  # hosts that may read this machine's stream (the readers relay: kp3d, angles, stats)


@dataclass
class _AllowList:
    """ZAP credentials callback: allows the public keys listed for the socket's domain, counts the others."""

    allowed: dict[str, set[bytes]]  # domain -> allowed public keys (z85, as ZAP hands them over)
    refused: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.allowed.get(domain, ())
        if not ok:
            with self.lock:
                self.refused[domain] = self.refused.get(domain, 0) + 1
        return ok


def _public_keys(folder: Path, what: str) -> set[bytes]:
    if not folder.is_dir():
        raise InputFileError(folder, f"not a folder of {what}' public keys")
    keys = set()
    for p in sorted(folder.glob("*.key")):
        keys.add(_load(p, False)[0])
    if not keys:
        raise InputFileError(folder, "holds no public keys (*.key): nobody could connect")
    return keys


class ServerKeys:
    """The machine that holds allow-lists (the fusion machine): its secret key, the folder of the
    camera hosts' public keys (``allowed_dir``: they may send) and optionally the folder of the
    hosts that may read its stream (``readers_dir``: viewer hosts).  Each socket it secures is a
    CURVE server checking one of the two lists (its ZAP domain); the refusals are counted per list.

    Thread contract: one ZAP handler per process context, started by the first :meth:`apply`
    (any thread); the counters and the sockets' monitors are read under a lock, so :attr:`refused`
    may be read from any thread."""

    def __init__(self, secret_file: str | Path, allowed_dir: str | Path | None = None,
                 readers_dir: str | Path | None = None):
        self.public, self.secret = _load(Path(secret_file), True)
        if allowed_dir is None and readers_dir is None:
            raise RigcapError("ServerKeys needs an allow-list: camera hosts (allowed_keys) and/or readers")
        allowed = {}
        if allowed_dir is not None:
            allowed[SENDERS] = _public_keys(Path(allowed_dir), "the allowed camera hosts")
        if readers_dir is not None:
            allowed[READERS] = _public_keys(Path(readers_dir), "the allowed readers")
        self._reset(allowed)

    def _reset(self, allowed: dict) -> None:
        self._allow = _AllowList(allowed)
        self._auth: ThreadAuthenticator | None = None
        self._lock = threading.Lock()
        self._monitors: dict[int, tuple[str, zmq.Socket]] = {}  # id(secured socket) -> (domain, its monitor)
        self._handshake_failed: dict[str, int] = {}  # domain -> plain/wrong-mechanism peers seen on the monitors

    @property
    def allowed(self) -> dict[str, set[bytes]]:
        return self._allow.allowed

    def _drain(self, domain: str, mon: zmq.Socket) -> None:
        while mon.poll(0):
            event = recv_monitor_message(mon)
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self._handshake_failed[domain] = self._handshake_failed.get(domain, 0) + 1

    def refused_for(self, domain: str) -> int:
        """Clients refused on ``domain``'s sockets: keys not in its allow-list (ZAP) plus plain or
        wrong-mechanism peers, whose handshake fails before ZAP and is seen on the sockets' monitors."""
        with self._lock:
            for dom, mon in self._monitors.values():
                self._drain(dom, mon)
            with self._allow.lock:
                zap = self._allow.refused.get(domain, 0)
            return zap + self._handshake_failed.get(domain, 0)

    @property
    def refused(self) -> int:
        """Camera hosts refused (their kp2d and clock links)."""
        return self.refused_for(SENDERS)

    @property
    def readers_refused(self) -> int:
        return self.refused_for(READERS)

    def readers(self) -> "ReaderKeys":
        """The view of these keys a readers relay applies (``READERS`` domain)."""
        if READERS not in self.allowed:
            raise RigcapError("no readers allow-list: name its folder as [security] readers")
        return ReaderKeys(self)

    def __getstate__(self):  # to a spawned fusion process (rigcap live): keys and allow-lists, fresh counters/ZAP
        return {"public": self.public, "secret": self.secret, "allowed": {d: set(k) for d, k in self.allowed.items()}}

    def __setstate__(self, state):
        self.public, self.secret = state["public"], state["secret"]
        self._reset(state["allowed"])

    def start(self, context: zmq.Context) -> None:
        """Run the ZAP handler on ``context`` (once per context, before sockets bind)."""
        with self._lock:
            if self._auth is not None:
                return
            auth = ThreadAuthenticator(context)
            auth.start()
            for domain in self.allowed:
                auth.configure_curve_callback(domain=domain, credentials_provider=self._allow)
            self._auth = auth

    def stop(self) -> None:
        self.refused  # noqa: B018 - last drain of the monitors
        with self._lock:
            for _, mon in self._monitors.values():
                mon.close(0)
            self._monitors = {}
            auth, self._auth = self._auth, None
        if auth is not None:
            auth.stop()

    def apply(self, socket: zmq.Socket, domain: str = SENDERS) -> None:
        """Make ``socket`` a CURVE server checking ``domain``'s allow-list; starts the ZAP handler on its
        context the first time.  A socket closed before these keys stop: :meth:`release` it first."""
        if domain not in self.allowed:
            raise RigcapError(f"no allow-list for {domain}")
        self.start(socket.context)
        socket.curve_secretkey, socket.curve_publickey = self.secret, self.public
        socket.curve_server = True
        socket.zap_domain = domain.encode()
        mon = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        with self._lock:
            self._monitors[id(socket)] = (domain, mon)

    def release(self, socket: zmq.Socket) -> None:
        """Count what ``socket``'s monitor saw and close the monitor (before closing a short-lived socket)."""
        with self._lock:
            entry = self._monitors.pop(id(socket), None)
            if entry is not None:
                self._drain(*entry)
                if not socket.closed:
                    socket.disable_monitor()
                entry[1].close(0)


class ReaderKeys:
    """:class:`ServerKeys` as the readers relay uses them: sockets check the readers' allow-list."""

    def __init__(self, keys: ServerKeys):
        self.keys = keys

    def apply(self, socket: zmq.Socket) -> None:
        self.keys.apply(socket, READERS)

    @property
    def refused(self) -> int:
        return self.keys.readers_refused


class ClientKeys:
    """A camera host's side: its own secret key and the fusion machine's public key."""

    def __init__(self, secret_file: str | Path, server_public_file: str | Path):
        self.public, self.secret = _load(Path(secret_file), True)
        self.server_public, _ = _load(Path(server_public_file), False)

    def apply(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey, socket.curve_publickey = self.secret, self.public
        socket.curve_serverkey = self.server_public
