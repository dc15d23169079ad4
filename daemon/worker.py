"""The local backend, and the job settings every backend accepts.

One Worker thread owns the device: it takes queued jobs in order, runs each through
``execute`` (daemon/execute.py: the engine, and torch), and reports everything as plain
tuples through ``emit`` for the main thread to send:

    ("started", job)
    ("preview", job, data: dict, image: RGBAImage)              # the instant preview
    ("progress", job, data: dict, preview: RGBAImage | None)
    ("finished", job, state, kind, data: dict, images: list[RGBAImage])
"""

from __future__ import annotations

import logging
import math
import threading
import typing
from typing import Any, Callable

from ..protocol.errors import ProtocolError
from .cache import DiskCache
from .execute import JobSpec, ModelMemory, execute
from .jobs import Job, JobTable

log = logging.getLogger(__name__)

# Settings a client may not choose: the device belongs to the daemon, and a file path
# would let a remote client make the daemon read files of its choice.
DAEMON_OWNED = {
    "device": "the daemon's --device",
    "vgg_weights": "the daemon's environment (SEMANTIC_ANALOGY_VGG19)",
}
# Bounds that keep one job from taking the daemon down (the engine has its own checks).
RANGES: dict[str, tuple[float, float]] = {
    "size": (32, 4096),
    "steps": (1, 1_000_000),
    "g_steps": (1, 100),
    "seed": (0, 2**63 - 1),
    "lr": (1e-8, 1.0),
    "rec_every": (1, 1_000_000),
    "base_channels": (4, 256),
    "preview_every": (0, 1_000_000),
    "checkpoint_every": (1, 10_000_000),
}

def _bad(message: str) -> ProtocolError:
    return ProtocolError("BAD_SETTINGS", message, field="settings")


def _check_value(name: str, value: Any, hint: Any) -> None:
    """Type-check one setting against the engine's annotation (int, float, str, X | None)."""
    args = typing.get_args(hint)
    allowed = args if args else (hint,)
    if value is None:
        if type(None) in allowed:
            return
        raise _bad(f"the setting '{name}' cannot be nil")
    for t in allowed:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _bad(f"the setting '{name}' must be a finite number, got {value}")
            return
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if t is str and isinstance(value, str):
            return
    names = " or ".join("nil" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
    raise _bad(f"the setting '{name}' must be {names}, got {type(value).__name__} {value!r:.40}")


def parse_settings(d: dict, device: str) -> Any:
    """A client's settings map -> the engine's TrainSettings on this daemon's device.

    Raises ProtocolError BAD_SETTINGS naming the setting and what is wrong with it.
    """
    from ..engine.errors import EngineError
    from ..engine.presets import LossWeights, TrainSettings

    hints = typing.get_type_hints(TrainSettings)
    for name, value in d.items():
        if name in DAEMON_OWNED:
            raise _bad(f"the setting '{name}' is chosen by {DAEMON_OWNED[name]}, not per job; leave it out")
        if name not in hints:
            known = ", ".join(k for k in hints if k not in DAEMON_OWNED)
            raise _bad(f"unknown training setting '{name[:40]}'; known settings: {known}")
        if name == "weights":
            if not isinstance(value, dict):
                raise _bad("the setting 'weights' must be a map of loss names to numbers")
            weight_hints = typing.get_type_hints(LossWeights)
            for k, v in value.items():
                if k not in weight_hints:
                    raise _bad(f"unknown loss weight '{str(k)[:40]}'; known: {', '.join(weight_hints)}")
                _check_value(f"weights.{k}", v, float)
                if v < 0:
                    raise _bad(f"loss weight '{k}' cannot be negative")
            continue
        _check_value(name, value, hints[name])
        if name in RANGES and value is not None:
            lo, hi = RANGES[name]
            if not lo <= value <= hi:
                raise _bad(f"the setting '{name}' must be between {lo:g} and {hi:g}, got {value}")
    try:
        return TrainSettings.from_dict({**d, "device": device})
    except EngineError as e:
        raise _bad(str(e)) from None
    except (TypeError, ValueError) as e:
        raise _bad(f"the settings cannot be used: {e}") from None


def resolve_device(name: str) -> str:
    """The device a name stands for on this machine ("cuda", "cpu", ...); EngineError if unusable."""
    from ..engine.device import resolve_device as engine_resolve

    return str(engine_resolve(name))


class Worker(threading.Thread):
    """The local backend: one thread owning this machine's device, one job at a time."""

    def __init__(
        self,
        table: JobTable,
        cache: DiskCache,
        emit: Callable[[tuple], None],
        *,
        device: str,
        progress_interval: float = 0.2,
        preview_interval: float = 2.0,
        models_in_memory: int = 1,
        cpu_threads: int | None = None,
        instant_preview_px: int = 512,
    ) -> None:
        super().__init__(name="semantic-analogy-worker", daemon=True)
        self.table, self.cache, self.emit, self.device = table, cache, emit, device
        self.progress_interval, self.preview_interval = progress_interval, preview_interval
        self.models = ModelMemory(models_in_memory)
        self.cpu_threads = cpu_threads
        self.instant_preview_px = instant_preview_px
        self.stop_event = threading.Event()

    def forget_model(self, key: str) -> None:
        self.models.forget(key)

    def close(self) -> None:
        pass  # nothing outside this process to let go of

    def run(self) -> None:
        if self.cpu_threads is not None:
            import torch

            torch.set_num_threads(self.cpu_threads)
        while not self.stop_event.is_set():
            job = self.table.take_next(timeout=0.5)
            if job is not None:
                self._run(job)

    def _run(self, job: Job) -> None:
        self.emit(("started", job))

        def should_stop() -> bool:
            return job.cancel_event.is_set() or self.stop_event.is_set()

        def cancel_code() -> str:
            return job.cancel_code or ("SHUTDOWN" if self.stop_event.is_set() else "CANCELLED")

        def on_model_key(key: str) -> None:
            job.model_key = key

        try:
            outcome = execute(JobSpec.of(job), self.cache, self.models,
                              lambda kind, *payload: self.emit((kind, job, *payload)), should_stop, cancel_code,
                              progress_interval=self.progress_interval, preview_interval=self.preview_interval,
                              instant_preview_px=self.instant_preview_px, on_model_key=on_model_key)
            self.emit(("finished", job, *outcome))
        finally:
            self._enforce_cache_limit(job)

    def _enforce_cache_limit(self, job: Job) -> None:
        try:
            for e in self.cache.enforce_limit({("result", job.id)}):
                if e.kind == "model":
                    self.forget_model(e.name)
        except OSError:
            log.exception("could not trim the cache")
