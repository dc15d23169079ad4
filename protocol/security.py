"""ZeroMQ CURVE keys for the client, and the loopback test the daemon uses.

Key files are the ones ``semantic-analogy keys`` writes (pyzmq's certificate format):
``NAME.key`` holds a public key, ``NAME.key_secret`` a public and a secret key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs to talk to a CURVE daemon: its own key pair and the daemon's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    def __post_init__(self) -> None:
        for name in ("public", "secret", "server_public"):
            v = getattr(self, name)
            if isinstance(v, str):
                object.__setattr__(self, name, v.encode("ascii"))
                v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 40:
                raise ValueError(f"CURVE {name} key must be 40 characters of Z85 text")

    @classmethod
    def load(cls, client_secret_file: str | Path, server_public_file: str | Path) -> "CurveKeys":
        """Read ``client.key_secret`` and the daemon's ``server.key``."""
        client_secret_file, server_public_file = Path(client_secret_file), Path(server_public_file)
        for p in (client_secret_file, server_public_file):
            if not p.is_file():
                raise FileNotFoundError(f"CURVE key file {p} does not exist (make keys with `semantic-analogy keys`)")
        public, secret = zmq.auth.load_certificate(client_secret_file)
        if secret is None:
            raise ValueError(f"{client_secret_file} has no secret key; pass the client's .key_secret file")
        server_public, _ = zmq.auth.load_certificate(server_public_file)
        return cls(public, secret, server_public)

    def apply(self, socket: zmq.Socket) -> None:
        """Configure a client socket (before connect)."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server_public


def is_loopback(address: str) -> bool:
    """True when a ZeroMQ endpoint can only be reached from this machine.

    tcp on 127.0.0.0/8, ::1 or "localhost", and the ipc:// and inproc:// transports.
    Wildcards (tcp://*), interface names and other addresses count as reachable from outside.
    """
    transport, sep, rest = address.partition("://")
    if not sep:
        return False
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host, _, port = rest.rpartition(":")
    if not port:
        return False
    host = host.split(";")[-1]  # "src;dst" form: the part after ';' is the peer/bind host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
