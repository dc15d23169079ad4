"""The daemon's settings and limits, and the security rule for bind addresses (pure logic)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol.client import DEFAULT_ADDRESS
from ..protocol.security import is_loopback
from ..protocol.wire import MAX_HEADER_BYTES

DEFAULT_BIND = DEFAULT_ADDRESS
BACKENDS = ("local", "ray")


class ConfigError(Exception):
    """A daemon setting that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 4096 * 4096  # per image; bigger photos are scaled down by the plugin first
    max_targets: int = 16  # per job
    max_queue: int = 32  # queued jobs (the running one not counted)

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_targets", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def max_message_bytes(self) -> int:
        """ZMQ_MAXMSGSIZE: libzmq checks it per frame, and the largest frame is one image."""
        return max(self.max_pixels * 4, MAX_HEADER_BYTES)

    def as_dict(self) -> dict[str, int]:
        return {
            "max_pixels": self.max_pixels,
            "max_targets": self.max_targets,
            "max_queue": self.max_queue,
            "max_message_bytes": self.max_message_bytes,
        }


def default_cache_dir() -> Path:
    """The engine's cache ($SEMANTIC_ANALOGY_CACHE or the XDG cache) plus /daemon."""
    if os.environ.get("SEMANTIC_ANALOGY_CACHE"):
        base = Path(os.environ["SEMANTIC_ANALOGY_CACHE"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "semantic-analogy"
    return base / "daemon"


@dataclass(frozen=True)
class DaemonConfig:
    bind: str = DEFAULT_BIND
    device: str = "auto"
    cache_dir: Path = field(default_factory=default_cache_dir)
    cache_limit_bytes: int = 5 * 1024**3
    limits: Limits = field(default_factory=Limits)
    keys_dir: Path | None = None  # CURVE: server.key_secret and authorized_clients/*.key
    preview_interval_s: float = 2.0  # at most one preview image per job this often
    progress_interval_s: float = 0.2  # at most this many progress events per job per second
    # Longest side of the instant preview (SPEC.md, Instant result); 0: none. Patch synthesis
    # takes about 2 s at 512 px on two CPU cores and grows with the pixel count.
    instant_preview_px: int = 512
    models_in_memory: int = 1  # trained models kept loaded for fast cache hits
    max_jobs_remembered: int = 1000  # finished jobs kept in memory (their results stay on disk)
    shutdown_timeout_s: float = 30.0  # how long SIGTERM waits for the running job to checkpoint
    # torch's CPU threads (None: torch's default, one per core). On a machine shared with
    # other work, fewer threads avoid oversubscription, which slows CPU training many times.
    cpu_threads: int | None = None
    backend: str = "local"  # local: this machine's device; ray: the workers of a Ray cluster
    # Where the Ray cluster is: auto (the one this machine's `ray start` joined, or
    # $RAY_ADDRESS), HOST:PORT of its head, or local (a one-machine cluster started here).
    ray_address: str = "auto"
    cpus_per_job: float = 1.0  # Ray resources one job asks for; a GPU too where the cluster has them
    job_retries: int = 3  # Ray re-runs a job whose node died this often (from its checkpoint)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; use {' or '.join(BACKENDS)}")
        if not self.cpus_per_job > 0:
            raise ConfigError(f"--cpus-per-job must be positive, got {self.cpus_per_job}")
        if self.job_retries < 0:
            raise ConfigError(f"--job-retries cannot be negative, got {self.job_retries}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", self.device):
            raise ConfigError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if self.cache_limit_bytes < 1:
            raise ConfigError("the cache size cap must be positive")
        if self.preview_interval_s < 0 or self.progress_interval_s < 0:
            raise ConfigError("preview and progress intervals cannot be negative")
        if self.instant_preview_px < 0:
            raise ConfigError(f"--instant-preview-size must be 0 (off) or a number of pixels, got {self.instant_preview_px}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.cpu_threads}")
        check_bind(self.bind, self.keys_dir)


def check_bind(address: str, keys_dir: Path | None) -> None:
    """Refuse to listen beyond this machine without CURVE encryption and client authentication."""
    if not re.fullmatch(r"(tcp|ipc|inproc)://.+", address):
        raise ConfigError(f"cannot listen on {address!r}: use tcp://HOST:PORT or ipc:///path/to/socket")
    if keys_dir is None and not is_loopback(address):
        raise ConfigError(
            f"refusing to listen on {address} without encryption: anyone who can reach it could send "
            "jobs and read results. Create keys with `semantic-analogy keys DIR` and start with "
            "`--keys DIR` (only clients listed in DIR/authorized_clients are let in), or bind to "
            "tcp://127.0.0.1:PORT"
        )


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'500M', '2G', '2GiB', '1048576' -> bytes (powers of 1024)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"cannot read the size {text!r}; write e.g. 500M, 2G or a number of bytes")
    factor = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * factor)
