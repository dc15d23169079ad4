"""Fuzzing the daemon: >= 10,000 random and mutated messages over a real socket.

Every message must get exactly one reply (an error naming the problem, or a normal
reply when a mutation happened to stay valid), the daemon process must keep its memory
bounded, and afterwards a valid job must still complete.
"""

from __future__ import annotations

import math
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.wire import decode, encode

N_MESSAGES = 10_000
WARMUP = 2_000
BATCH = 250
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/PID/statm (no psutil)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def img(w: int, h: int, v: int) -> RGBAImage:
    return RGBAImage.filled(w, h, (v, 0, 255 - v, 255))


HEX = "0123456789abcdef" * 2
BASES = [
    ("hello", {"protocol_version": "1.0", "client": "fuzz"}),
    ("ping", {}),
    ("status", {}),
    ("list_models", {}),
    ("watch", {"job_id": HEX}),
    ("heartbeat", {"job_id": HEX}),
    ("cancel", {"job_id": HEX}),
    ("result", {"job_id": HEX}),
    ("delete_model", {"key": HEX}),
    ("submit", {"image": img(8, 8, 0), "labels": img(8, 8, 0), "targets": [img(8, 8, 9)],
                "settings": {"preset": "tiny", "steps": 1}, "target_names": ["t"], "cancel_if_silent": 5.0}),
]


class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def value(self, depth: int = 0):
        r = self.rng
        kind = r.randrange(12 if depth < 2 else 8)
        if kind == 0:
            return None
        if kind == 1:
            return r.random() < 0.5
        if kind == 2:
            return r.choice([0, -1, 1, 7, 2**31, 2**32 + 1, 2**63 - 1, 2**64 - 1, -(2**63)])
        if kind == 3:
            return r.choice([0.0, -1.5, 1e308, math.nan, math.inf, -math.inf, 0.25])
        if kind == 4:
            return "".join(r.choice("ab\x00é✓ \n{}") for _ in range(r.choice([0, 1, 5, 80, 5000])))
        if kind == 5:
            return bytes(r.randrange(256) for _ in range(r.choice([0, 3, 64])))
        if kind == 6:
            return r.choice(["1.0", "2.0", "1.x", "", "submit", HEX, "tiny"])
        if kind == 7:
            return r.randrange(-5, 10)
        if kind in (8, 9):
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {r.choice(["width", "height", "buffer", "x", "steps", "preset"]): self.value(depth + 1)
                for _ in range(r.randrange(4))}

    def random_frames(self) -> list[bytes]:
        r = self.rng
        return [bytes(r.randrange(256) for _ in range(r.choice([1, 2, 9, 40, 300]))) for _ in range(r.randint(1, 3))]

    def mutated(self) -> list[bytes]:
        r = self.rng
        type_, content = r.choice(BASES)
        frames = encode(type_, content)
        header = msgpack.unpackb(frames[0], raw=False)
        buffers = list(frames[1:])
        packed_mutation = None
        for _ in range(r.randint(1, 3)):
            op = r.randrange(13)
            c = header.get("content")
            if not isinstance(c, dict):  # an earlier mutation replaced it: mutate a scratch map
                c = {}
            images = [v for v in c.values() if isinstance(v, dict)] + [
                d for v in c.values() if isinstance(v, list) for d in v if isinstance(d, dict)]
            if op == 0 and c:  # a field gets a random value
                c[r.choice(list(c))] = self.value()
            elif op == 1 and c:  # a required field disappears
                del c[r.choice(list(c))]
            elif op == 2:  # a header field changes or disappears
                key = r.choice(["v", "type", "msg_id", "content", "reply_to"])
                if r.random() < 0.3:
                    header.pop(key, None)
                else:
                    header[key] = self.value()
            elif op == 3:
                header["type"] = r.choice([name for name, _ in BASES] + ["event", "welcome", "rm -rf", ""])
            elif op == 4 and images:  # huge or negative declared sizes
                d = r.choice(images)
                d[r.choice(["width", "height"])] = r.choice([2**31, 2**40, 2**64 - 1, -1, 0, 10**6])
            elif op == 5 and images:
                r.choice(images)["buffer"] = r.choice([-1, 5, 2**33, "0", None])
            elif op == 6 and buffers:  # a pixel frame goes missing
                buffers.pop(r.randrange(len(buffers)))
            elif op == 7 and buffers:  # a truncated pixel frame
                i = r.randrange(len(buffers))
                buffers[i] = buffers[i][: r.randrange(len(buffers[i]) + 1)]
            elif op == 8:  # an extra frame nobody references
                buffers.append(b"\x00" * r.choice([0, 4, 256]))
            elif op == 9:
                c[r.choice(["surprise", "settings", "targets"])] = self.value()
            elif op == 10:
                packed_mutation = "truncate"
            elif op == 11:
                packed_mutation = "flip"
            elif op == 12 and "settings" in c and isinstance(c["settings"], dict):
                c["settings"][r.choice(["steps", "preset", "device", "size", "lr", "weights", "nope"])] = self.value()
        try:
            head = msgpack.packb(header, use_bin_type=True)
        except (OverflowError, ValueError, TypeError):
            head = frames[0]
        if packed_mutation == "truncate":
            head = head[: r.randrange(len(head))]
        elif packed_mutation == "flip":
            b = bytearray(head)
            for _ in range(r.randint(1, 4)):
                b[r.randrange(len(b))] = r.randrange(256)
            head = bytes(b)
        out = [head, *buffers]
        if r.random() < 0.03:
            out.insert(0, b"")  # what a REQ socket would send
        return out

    def message(self) -> list[bytes]:
        roll = self.rng.random()
        if roll < 0.15:
            return self.random_frames()
        if roll < 0.25:
            try:
                return [msgpack.packb(self.value(), use_bin_type=True)]
            except (OverflowError, ValueError, TypeError):
                return [b"\xc1"]
        return self.mutated()


@pytest.fixture
def daemon_process(tmp_path):
    log = open(tmp_path / "daemon.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--bind", f"ipc://{tmp_path}/fuzz.sock",
         "--cache-dir", str(tmp_path / "cache"), "--threads", "1", "--max-pixels", "4096", "--max-queue", "4"],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert "listening on" in line, (tmp_path / "daemon.log").read_text()
        yield proc, line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def test_ten_thousand_bad_messages(daemon_process):
    proc, address = daemon_process
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    fuzz = Fuzzer(seed=20260501)
    sent = replies = 0
    codes: Counter = Counter()
    jobs: list[str] = []
    rss_after_warmup = None
    t0 = time.monotonic()
    while sent < N_MESSAGES:
        for _ in range(BATCH):
            sock.send_multipart(fuzz.message())
            sent += 1
        deadline = time.monotonic() + 60
        while replies < sent:  # each message gets exactly one reply; events do not count
            assert sock.poll(int(max(0, deadline - time.monotonic()) * 1000)), \
                f"no reply for {sent - replies} of {sent} messages"
            msg = decode(sock.recv_multipart(), sender="daemon", strict=True)
            if msg.type == "event":
                continue
            replies += 1
            codes[msg.content["code"] if msg.type == "error" else msg.type] += 1
            if msg.type == "submitted":
                jobs.append(msg.content["job_id"])
        if rss_after_warmup is None and sent >= WARMUP:
            rss_after_warmup = rss_bytes(proc.pid)
        assert proc.poll() is None, "the daemon died"
    took = time.monotonic() - t0
    rss_end = rss_bytes(proc.pid)
    print(f"\n{sent} messages in {took:.1f} s ({sent / took:.0f}/s); replies by code: {dict(codes)}")
    print(f"daemon RSS after {WARMUP}: {rss_after_warmup / 2**20:.1f} MiB, after {sent}: {rss_end / 2**20:.1f} MiB")
    assert replies == sent == N_MESSAGES
    assert sum(n for c, n in codes.items() if c.isupper()) > 0.8 * N_MESSAGES, "mostly errors, as they should be"
    for code in ("MALFORMED", "MISSING_FIELD", "WRONG_TYPE", "UNKNOWN_TYPE", "BAD_IMAGE", "TOO_LARGE",
                 "VERSION_MISMATCH", "UNKNOWN_JOB"):
        assert codes[code] > 0, f"the fuzzer never produced {code}"
    assert rss_end - rss_after_warmup < 16 * 2**20, "memory grew while handling bad messages"

    # A frame over ZMQ_MAXMSGSIZE makes libzmq drop that connection, without a reply ...
    sock.send_multipart([encode("ping", {})[0], b"\0" * (64 * 1024 + 1)])
    for job in jobs:  # ... and the jobs fuzzing created by chance are cleared away
        sock.send_multipart(encode("cancel", {"job_id": job}))
    sock.close(0)
    # ... while everyone else is still served: a valid job completes.
    with Client(address, timeout=10) as c:
        a = np.random.default_rng(0).integers(0, 256, (40, 48, 4), dtype=np.uint8)
        a[..., 3] = 255
        labels = np.zeros((40, 48, 4), np.uint8)
        labels[..., 3] = 255
        labels[:, :20, 0] = 255
        labels[:, 20:, 2] = 255
        target = labels.copy()
        target[:, 20:30] = (255, 0, 0, 255)
        job = c.submit(RGBAImage(48, 40, a.tobytes()), RGBAImage(48, 40, labels.tobytes()),
                       [RGBAImage(48, 40, target.tobytes())], {"preset": "tiny", "steps": 2})
        images = c.wait(job, timeout=180)
        assert images[0].size == (48, 40)
    assert proc.poll() is None
