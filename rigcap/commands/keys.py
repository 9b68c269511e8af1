"""``rigcap keys``: CurveZMQ key pairs, one per host, for links that leave the machine."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "keys",
        help="make CurveZMQ key pairs, one per host (fusion machine, camera hosts)",
        description="Writes DIR/<host>.key (public: copy it to the machines that must trust this host) and "
        "DIR/<host>.key_secret (secret: stays on that host) for every host, with ZeroMQ's zmq.auth helpers. "
        "The fusion machine keeps the camera hosts' public keys in its allow-list folder; each camera host keeps "
        "the fusion machine's public key. An existing key is never overwritten.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the keys into")
    p.add_argument("--hosts", default="fusion", metavar="NAMES",
                   help="comma-separated host names, e.g. fusion,cam-a,cam-b (default: %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    import re

    import zmq.auth

    from rigcap.errors import RigcapError

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9_.-]+", h)]
    if not hosts or bad:
        raise RigcapError(f"--hosts: names may hold letters, digits, '.', '_', '-' only, got {', '.join(bad) or 'none'}")
    if len(set(hosts)) != len(hosts):
        raise RigcapError("--hosts: a name is given twice")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    taken = [h for h in hosts if (out / f"{h}.key").exists() or (out / f"{h}.key_secret").exists()]
    if taken:
        raise RigcapError(f"{out}: keys for {', '.join(taken)} already exist (never overwritten: remove them first)")
    for h in hosts:
        public, secret = zmq.auth.create_certificates(str(out), h)
        Path(secret).chmod(0o600)
        print(f"{h}: public {public}, secret {secret}")
    return 0
