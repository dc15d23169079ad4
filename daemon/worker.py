"""The only part of the daemon that touches the engine (and torch).

One Worker thread owns the device: it takes queued jobs in order, trains (or loads a
cached model), applies the targets with the job's method, stores the result, and
reports everything as plain tuples through ``emit`` for the main thread to send:

    ("started", job)
    ("preview", job, data: dict, image: RGBAImage)              # the instant preview
    ("progress", job, data: dict, preview: RGBAImage | None)
    ("finished", job, state, kind, data: dict, images: list[RGBAImage])

What to do for the job's method (train, load a cached model, or neither for ``patch``;
the instant preview, SPEC.md Instant result) is the engine's ``make_analogy``; the
worker gives it the daemon's cache as its model store and relays what it reports.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
import typing
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from ..protocol.errors import ProtocolError
from .redact import without_paths
from .cache import DiskCache
from .jobs import CANCELLED, DONE, FAILED, Job, JobTable
from .validation import to_rgba_image

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

CANCEL_MESSAGES = {
    "CANCELLED": "the job was cancelled",
    "CLIENT_SILENT": "the job was cancelled because its client stopped sending heartbeats "
                     "(the plug-in was closed or killed)",
    "SHUTDOWN": "the daemon was stopped before the job finished; submit it again "
                "(an interrupted training resumes from its checkpoint)",
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


MAX_WARNINGS = 10  # per job: a misbehaving engine must not flood the wire


class _JobWarnings(logging.Handler):
    """The engine's warnings while it works on one job, for the job's events (SPEC.md 1.2,
    `warnings`): a label gap it filled, missing VGG19 weights. Only records from the worker
    thread count, so another thread's logging never lands in this job."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or len(self.messages) >= MAX_WARNINGS:
            return
        try:
            # A remote client must not learn the daemon's paths (the log keeps them).
            text = without_paths(record.getMessage()).strip()
        except Exception:  # a bad format string must not break the job
            return
        if text and text not in self.messages:
            self.messages.append(text[:500])


class _Reporter:
    """The engine's progress callback: throttles progress and preview events for the wire."""

    def __init__(self, job: Job, emit: Callable[[tuple], None], progress_interval: float, preview_interval: float,
                 warnings: _JobWarnings | None = None):
        self.job, self.emit = job, emit
        self.progress_interval, self.preview_interval = progress_interval, preview_interval
        self.last_progress = self.last_preview = -math.inf
        self.warnings = warnings

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        preview = None
        if p.preview is not None and now - self.last_preview >= self.preview_interval:
            preview = to_rgba_image(p.preview)
            self.last_preview = now
        throttled = p.stage == "train" and p.step < p.total  # one apply event per target always goes
        if preview is None and throttled and now - self.last_progress < self.progress_interval:
            return
        self.last_progress = now
        data = {
            "stage": p.stage,
            "step": int(p.step),
            "total": int(p.total),
            "eta_s": round(float(p.eta_s), 3),
            "elapsed_s": round(float(p.elapsed_s), 3),
            "losses": {str(k): round(float(v), 5) for k, v in p.losses.items()},
        }
        if self.warnings is not None and self.warnings.messages:
            data["warnings"] = list(self.warnings.messages)  # all so far: a client that missed one still sees it
        self.emit(("progress", self.job, data, preview))


class Worker(threading.Thread):
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
        self.models_in_memory = models_in_memory
        self.cpu_threads = cpu_threads
        self.instant_preview_px = instant_preview_px
        self.stop_event = threading.Event()
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._models_lock = threading.Lock()

    # --- models kept in memory -------------------------------------------------------

    def forget_model(self, key: str) -> None:
        with self._models_lock:
            self._models.pop(key, None)

    def _remember(self, key: str, model: Any) -> None:
        with self._models_lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.models_in_memory:
                self._models.popitem(last=False)

    def _cached_model(self, api: Any, key: str) -> Any:
        with self._models_lock:
            model = self._models.get(key)
        with self.cache.lock:
            path = self.cache.model_path(key)
            if model is None and path is not None:
                model = api.load_model(path, device=self.device)
            if path is not None:
                self.cache.touch_model(key)
        if model is not None:
            self._remember(key, model)
        return model

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        if self.cpu_threads is not None:
            import torch

            torch.set_num_threads(self.cpu_threads)
        while not self.stop_event.is_set():
            job = self.table.take_next(timeout=0.5)
            if job is not None:
                self._run(job)

    def _run(self, job: Job) -> None:
        from ..engine import api  # torch: imported in this thread, once, when work arrives

        self.emit(("started", job))

        def should_stop() -> bool:
            return job.cancel_event.is_set() or self.stop_event.is_set()

        warnings = _JobWarnings()
        engine_log = logging.getLogger(api.__name__.rpartition(".")[0])  # the engine's package logger
        engine_log.addHandler(warnings)
        reporter = _Reporter(job, self.emit, self.progress_interval, self.preview_interval, warnings)

        def preview(image: np.ndarray, kind: str) -> None:
            # The instant result (SPEC.md): before training (kind patch) or before a cached
            # model's patch pass (kind gan); training previews then keep their interval.
            stage, total = ("train", job.settings.total_steps) if kind == "patch" else ("apply", len(job.targets))
            data = {"stage": stage, "step": 0, "total": int(total), "kind": kind, "instant": True, "target": 0}
            self.emit(("preview", job, data, to_rgba_image(image)))
            reporter.last_preview = time.monotonic()

        done = None
        try:
            if should_stop():
                raise api.Cancelled("stopped before it started")
            done = api.make_analogy(
                job.image, job.labels, job.targets, job.settings, job.method,
                store=_CacheStore(self, job, api), progress=reporter, should_stop=should_stop,
                preview=preview, preview_px=self.instant_preview_px,
            )
            images = [to_rgba_image(r) for r in done.results]
            data = {"target_names": list(job.target_names), "model_key": done.model_key, "cached": done.cached,
                    "method": done.method}
            if warnings.messages:
                data["warnings"] = list(warnings.messages)
            self.cache.store_result(job.id, {**data, "width": job.width, "height": job.height},
                                    [im.data for im in images])
            self.emit(("finished", job, DONE, "result", data, images))
        except api.Cancelled as e:
            code = job.cancel_code or ("SHUTDOWN" if self.stop_event.is_set() else "CANCELLED")
            self.emit(("finished", job, CANCELLED, "cancelled",
                       {"code": code, "message": f"{CANCEL_MESSAGES[code]} ({e})"}, []))
        except api.LabelError as e:
            self.emit(("finished", job, FAILED, "error", {"code": "BAD_LABELS", "message": str(e)}, []))
        except (api.EngineError, FloatingPointError) as e:
            self.emit(("finished", job, FAILED, "error", {"code": "ENGINE_ERROR", "message": str(e)}, []))
        except MemoryError as e:
            self.emit(("finished", job, FAILED, "error", {"code": "OUT_OF_MEMORY", "message": _oom(e)}, []))
        except Exception as e:
            if type(e).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
                self.emit(("finished", job, FAILED, "error", {"code": "OUT_OF_MEMORY", "message": _oom(e)}, []))
            else:
                log.exception("job %s: internal error", job.id[:8])
                self.emit(("finished", job, FAILED, "error", {
                    "code": "INTERNAL",
                    "message": f"internal error in the daemon ({type(e).__name__}: {e}); the daemon log has details",
                }, []))
        finally:
            engine_log.removeHandler(warnings)
            done = None
            self._free_memory()
            self._enforce_cache_limit(job)

    def _free_memory(self) -> None:
        gc.collect()  # the trainer's graph and optimiser state go now, not at some later collection
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # freeing memory must never fail a job
            log.debug("could not empty the CUDA cache", exc_info=True)

    def _enforce_cache_limit(self, job: Job) -> None:
        try:
            protected = {("result", job.id)}
            for e in self.cache.enforce_limit(protected):
                if e.kind == "model":
                    self.forget_model(e.name)
        except OSError:
            log.exception("could not trim the cache")


class _CacheStore:
    """The engine's ModelStore on the daemon's disk cache, with the worker's models kept in memory."""

    def __init__(self, worker: "Worker", job: Job, api: Any) -> None:
        self.worker, self.job, self.api = worker, job, api

    def load(self, key: str, device: str) -> Any:
        self.job.model_key = key  # `status` shows it from now on
        return self.worker._cached_model(self.api, key)

    def workdir(self, key: str) -> Any:
        return self.worker.cache.work_path(key)

    def commit(self, key: str, model: Any) -> None:
        job = self.job
        self.worker.cache.commit_model(key, {"width": job.width, "height": job.height,
                                             "settings": job.settings.to_dict()})
        self.worker._remember(key, model)


def _oom(e: BaseException) -> str:
    return f"the device ran out of memory ({str(e)[:200]}); use a smaller --size or the preview preset"
