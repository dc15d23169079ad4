"""Run a real daemon inside the current process, for tests (kept out of the shipped daemon package)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from semantic_analogy.daemon.config import DaemonConfig
from semantic_analogy.daemon.server import Daemon
from semantic_analogy.protocol.images import RGBAImage

# Small job inputs for daemon tests: a noise photo and a two-class label map.
W, H = 48, 40
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def photo(seed: int = 0, w: int = W, h: int = H) -> RGBAImage:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = 255
    return RGBAImage(w, h, a.tobytes())


def label_map(split: int, w: int = W, h: int = H, left=RED, right=BLUE, box: tuple | None = None) -> RGBAImage:
    """`left` up to column `split`, `right` after it; `box` (x, y, size) adds a square of `left`."""
    a = np.zeros((h, w, 4), np.uint8)
    a[..., 3] = 255
    a[:, :split, :3] = left
    a[:, split:, :3] = right
    if box is not None:  # a square of the left class, to make targets unique
        x, y, s = box
        a[y:y + s, x:x + s, :3] = left
    return RGBAImage(w, h, a.tobytes())


@contextmanager
def running_daemon(cache_dir: str | Path, *, bind: str = "tcp://127.0.0.1:*", strict: bool = True,
                   **config: object) -> Iterator[Daemon]:
    """A started daemon serving in a background thread; ``daemon.endpoint`` is its address.

    ``bind`` defaults to a free loopback port; ``strict`` refuses any field SPEC.md does not
    list, so that a client tested against it is also checked against the specification.
    """
    daemon = Daemon(DaemonConfig(bind=bind, cache_dir=Path(cache_dir), **config))
    daemon.strict_protocol = strict
    daemon.start()
    thread = threading.Thread(target=daemon.run, name="semantic-analogy-daemon", daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop_event.set()
        thread.join(60)


def progress_until(c, job: str, step: int, timeout: float = 90):
    """Poll client ``c`` until job ``job`` reports training step ``step``; returns that event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in c.poll(job, timeout=0.5):
            assert not ev.terminal, ev
            if ev.kind == "progress" and ev.data["stage"] == "train" and ev.data["step"] >= step:
                return ev
    raise AssertionError(f"job {job} never reached step {step}")
