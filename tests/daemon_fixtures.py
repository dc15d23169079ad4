"""Run a real daemon inside the current process, for tests (kept out of the shipped daemon package)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from semantic_analogy.daemon.config import DaemonConfig
from semantic_analogy.daemon.server import Daemon


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
