"""The client on its own: argument checks, timeouts, version handshake, keys (real sockets).

Round trips against the real daemon are in test_daemon_roundtrip.py.
"""

import threading
import time

import msgpack
import pytest
import zmq

from semantic_analogy.protocol.client import Client, Event, _check_limits
from semantic_analogy.protocol.errors import DaemonUnavailable, ProtocolError, VersionMismatch
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.security import CurveKeys, is_loopback
from semantic_analogy.protocol.wire import decode, encode
from semantic_analogy.protocol.version import PROTOCOL_VERSION

IMG = RGBAImage.filled(4, 4, (255, 0, 0, 255))


def free_tcp_address() -> str:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.ROUTER)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(0)
    return f"tcp://127.0.0.1:{port}"


class FutureDaemon:
    """A ROUTER that answers every request as a daemon of another protocol version would."""

    def __init__(self, header_version: str, content_version: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.header_version, self.content_version = header_version, content_version
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, head, *_ = self.sock.recv_multipart()
            msg_id = msgpack.unpackb(head)["msg_id"]
            content = {"protocol_version": self.content_version, "engine_version": "9", "device": "cpu", "limits": {}}
            frames = encode("welcome", content, reply_to=msg_id, version=self.header_version)
            self.sock.send_multipart([ident, *frames])

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close(0)


def test_no_daemon_is_reported_within_the_timeout():
    c = Client(free_tcp_address(), timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(DaemonUnavailable, match="semantic-analogy serve"):
        c.connect()
    assert time.monotonic() - t0 < 2
    with pytest.raises(DaemonUnavailable):
        c.ping()
    c.close()


def test_a_daemon_that_never_answers_is_reported():
    sock = zmq.Context.instance().socket(zmq.ROUTER)  # accepts connections, never replies
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=0.5) as c:
            with pytest.raises(DaemonUnavailable, match="within 0.5 s"):
                c.connect()
    finally:
        sock.close(0)


@pytest.mark.parametrize("header_version,content_version", [("2.0", "2.0"), ("1.0", "2.3")])
def test_an_incompatible_daemon_is_a_clear_error(header_version, content_version):
    daemon = FutureDaemon(header_version, content_version)
    try:
        with Client(daemon.address, timeout=2) as c:
            with pytest.raises(VersionMismatch, match="2\\.") as info:
                c.connect()
            assert info.value.code == "VERSION_MISMATCH"
    finally:
        daemon.close()


def test_the_handshake_sends_a_spec_conforming_hello():
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        c = Client(f"tcp://127.0.0.1:{port}", timeout=0.3, client_name="test-suite")
        with pytest.raises(DaemonUnavailable):
            c.connect()
        assert sock.poll(1000)
        _, *frames = sock.recv_multipart()
        msg = decode(frames, sender="client", strict=True)
        assert msg.type == "hello" and msg.content == {"protocol_version": PROTOCOL_VERSION, "client": "test-suite"}
        c.close()
    finally:
        sock.close(0)


@pytest.mark.parametrize(
    "kwargs,code,words",
    [
        (dict(image=b"x"), "WRONG_TYPE", "image must be an RGBAImage"),
        (dict(targets=[]), "WRONG_TYPE", "non-empty list"),
        (dict(targets=[IMG, "t"]), "WRONG_TYPE", r"targets\[1\]"),
        (dict(settings=[("preset", "tiny")]), "WRONG_TYPE", "settings must be a dict"),
        (dict(labels=RGBAImage.filled(4, 3, (0, 0, 0, 255))), "SIZE_MISMATCH", "labels are 4x3"),
        (dict(targets=[RGBAImage.filled(5, 4, (0, 0, 0, 255))]), "SIZE_MISMATCH", "target 0 is 5x4"),
        (dict(target_names=["a", "b"]), "BAD_VALUE", "2 target_names for 1 targets"),
        (dict(target_names=[1]), "WRONG_TYPE", "list of strings"),
        (dict(cancel_if_silent=0), "BAD_VALUE", "positive"),
        (dict(cancel_if_silent=True), "BAD_VALUE", "positive"),
    ],
)
def test_submit_checks_its_arguments_before_sending(kwargs, code, words):
    args = dict(image=IMG, labels=IMG, targets=[IMG], settings={"preset": "tiny"})
    args.update(kwargs)
    names = {k: args.pop(k) for k in ("target_names", "cancel_if_silent") if k in args}
    c = Client(free_tcp_address(), timeout=0.2)  # nothing listens: the checks come first
    with pytest.raises(ProtocolError, match=words) as info:
        c.submit(args["image"], args["labels"], args["targets"], args["settings"], **names)
    assert info.value.code == code


def test_local_limits_refuse_what_would_only_drop_the_connection():
    limits = {"max_targets": 2, "max_pixels": 15, "max_message_bytes": 100}
    with pytest.raises(ProtocolError, match="at most 2") as info:
        _check_limits(limits, IMG, [IMG] * 3)
    assert info.value.code == "TOO_LARGE"
    with pytest.raises(ProtocolError, match="16 pixels"):
        _check_limits(limits, IMG, [IMG])
    with pytest.raises(ProtocolError, match="message limit"):
        _check_limits({"max_message_bytes": 63}, IMG, [IMG])
    _check_limits({"max_targets": 1, "max_pixels": 16, "max_message_bytes": 64}, IMG, [IMG])


def test_constructor_checks():
    with pytest.raises(ValueError, match="tcp://"):
        Client("localhost:5555")
    with pytest.raises(ValueError, match="timeout"):
        Client("tcp://127.0.0.1:1", timeout=0)
    with pytest.raises(TypeError, match="CurveKeys"):
        Client("tcp://127.0.0.1:1", curve=("a", "b"))


def test_event_terminal_kinds():
    assert [Event(k, {}).terminal for k in ("queued", "progress", "preview", "result", "error", "cancelled")] == [
        False, False, False, True, True, True]


@pytest.mark.parametrize(
    "address,local",
    [
        ("tcp://127.0.0.1:5555", True), ("tcp://127.3.2.1:1", True), ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True), ("ipc:///tmp/sa.sock", True), ("inproc://x", True),
        ("tcp://127.0.0.1:*", True), ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False),
        ("tcp://192.168.1.5:5555", False), ("tcp://eth0:5555", False), ("tcp://[::]:5555", False),
        ("udp://127.0.0.1:5555", False), ("127.0.0.1:5555", False),
    ],
)
def test_is_loopback(address, local):
    assert is_loopback(address) is local


def test_curve_keys_load_and_validate(tmp_path):
    import zmq.auth

    pub, sec = zmq.auth.create_certificates(tmp_path, "client")
    spub, _ = zmq.auth.create_certificates(tmp_path, "server")
    keys = CurveKeys.load(sec, spub)
    assert len(keys.public) == len(keys.secret) == len(keys.server_public) == 40
    with pytest.raises(ValueError, match="no secret key"):
        CurveKeys.load(pub, spub)
    with pytest.raises(FileNotFoundError, match="semantic-analogy keys"):
        CurveKeys.load(tmp_path / "missing.key_secret", spub)
    with pytest.raises(ValueError, match="40 characters"):
        CurveKeys(b"short", keys.secret, keys.server_public)
