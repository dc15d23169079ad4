"""One job through the engine, wherever it runs: the local worker thread and a Ray worker
process (daemon/ray_backend.py) both call ``execute``.

``execute`` trains (or loads a cached model), applies the targets with the job's method,
stores the result in the cache and returns the job's outcome. While it works it reports
through ``emit``:

    emit("preview", data: dict, image: RGBAImage)              # the instant preview
    emit("progress", data: dict, preview: RGBAImage | None)

What to do for the job's method (train, load a cached model, or neither for ``patch``;
the instant preview, SPEC.md Instant result) is the engine's ``make_analogy``; this module
gives it the cache as its model store and relays what it reports.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .cache import DiskCache
from .jobs import CANCELLED, DONE, FAILED
from .redact import without_paths
from .validation import to_rgba_image

log = logging.getLogger(__name__)

CANCEL_MESSAGES = {
    "CANCELLED": "the job was cancelled",
    "CLIENT_SILENT": "the job was cancelled because its client stopped sending heartbeats "
                     "(the plug-in was closed or killed)",
    "SHUTDOWN": "the daemon was stopped before the job finished; submit it again "
                "(an interrupted training resumes from its checkpoint)",
    "SUPERSEDED": "a newer job from the same client for the same photo replaced it",
}

MAX_WARNINGS = 10  # per job: a misbehaving engine must not flood the wire

# (state, event kind, event data, images): what a finished job sends last.
Outcome = tuple[str, str, dict, list]


@dataclass
class JobSpec:
    """What a job needs to run, and nothing of the daemon's bookkeeping: it travels to Ray workers."""

    id: str
    width: int
    height: int
    settings: Any  # the engine's TrainSettings
    method: str
    target_names: list[str]
    image: Any = None
    labels: Any = None
    targets: list = field(default_factory=list)

    @classmethod
    def of(cls, job: Any) -> "JobSpec":
        return cls(job.id, job.width, job.height, job.settings, job.method, list(job.target_names),
                   job.image, job.labels, list(job.targets))


class ModelMemory:
    """Trained models kept loaded (least recently used out) for fast cache hits."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)

    def remember(self, key: str, model: Any) -> None:
        with self._lock:
            self._models[key] = model
            self._models.move_to_end(key)
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)

    def load(self, api: Any, cache: DiskCache, key: str, device: str) -> Any:
        """The model for ``key`` from memory or the cache; None when the cache has none.

        A model deleted from the cache is not served from memory either: on a shared cache
        another process may have deleted it, and this one would never hear of it.
        """
        with cache.lock:
            path = cache.model_path(key)
            if path is None:
                self.forget(key)
                return None
            with self._lock:
                model = self._models.get(key)
            if model is None:
                model = api.load_model(path, device=device)
            cache.touch_model(key)
        self.remember(key, model)
        return model


class _JobWarnings(logging.Handler):
    """The engine's warnings while it works on one job, for the job's events (SPEC.md 1.2,
    `warnings`): a label gap it filled, missing VGG19 weights. Only records from this
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

    def __init__(self, emit: Callable[..., None], progress_interval: float, preview_interval: float,
                 warnings: _JobWarnings | None = None):
        self.emit = emit
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
        self.emit("progress", data, preview)


class _CacheStore:
    """The engine's ModelStore on the daemon's disk cache, with models kept in memory."""

    def __init__(self, spec: JobSpec, cache: DiskCache, models: ModelMemory, api: Any,
                 on_model_key: Callable[[str], None] | None) -> None:
        self.spec, self.cache, self.models, self.api = spec, cache, models, api
        self.on_model_key = on_model_key

    def load(self, key: str, device: str) -> Any:
        if self.on_model_key is not None:
            self.on_model_key(key)  # `status` shows it from now on
        return self.models.load(self.api, self.cache, key, device)

    def workdir(self, key: str) -> Any:
        return self.cache.work_path(key)

    def commit(self, key: str, model: Any) -> None:
        spec = self.spec
        self.cache.commit_model(key, {"width": spec.width, "height": spec.height,
                                      "settings": spec.settings.to_dict()})
        self.models.remember(key, model)


def execute(spec: JobSpec, cache: DiskCache, models: ModelMemory, emit: Callable[..., None],
            should_stop: Callable[[], bool], cancel_code: Callable[[], str | None], *,
            progress_interval: float = 0.2, preview_interval: float = 2.0, instant_preview_px: int = 512,
            on_model_key: Callable[[str], None] | None = None) -> Outcome:
    """Run one job to its end; never raises for the job's own failures (they are its outcome).

    cancel_code(): why should_stop() turned true (CANCELLED, CLIENT_SILENT, SHUTDOWN, ...).
    """
    from ..engine import api  # torch: imported where the work is done, once, when work arrives

    warnings = _JobWarnings()
    engine_log = logging.getLogger(api.__name__.rpartition(".")[0])  # the engine's package logger
    engine_log.addHandler(warnings)
    reporter = _Reporter(emit, progress_interval, preview_interval, warnings)

    def preview(image: np.ndarray, kind: str) -> None:
        # The instant result (SPEC.md): before training (kind patch) or before a cached
        # model's patch pass (kind gan); training previews then keep their interval.
        stage, total = ("train", spec.settings.total_steps) if kind == "patch" else ("apply", len(spec.targets))
        data = {"stage": stage, "step": 0, "total": int(total), "kind": kind, "instant": True, "target": 0}
        emit("preview", data, to_rgba_image(image))
        reporter.last_preview = time.monotonic()

    done = None
    try:
        if should_stop():
            raise api.Cancelled("stopped before it started")
        done = api.make_analogy(
            spec.image, spec.labels, spec.targets, spec.settings, spec.method,
            store=_CacheStore(spec, cache, models, api, on_model_key), progress=reporter,
            should_stop=should_stop, preview=preview, preview_px=instant_preview_px,
        )
        images = [to_rgba_image(r) for r in done.results]
        data = {"target_names": list(spec.target_names), "model_key": done.model_key, "cached": done.cached,
                "method": done.method}
        if warnings.messages:
            data["warnings"] = list(warnings.messages)
        cache.store_result(spec.id, {**data, "width": spec.width, "height": spec.height},
                           [im.data for im in images])
        return DONE, "result", data, images
    except api.Cancelled as e:
        code = cancel_code() or "CANCELLED"
        return CANCELLED, "cancelled", {"code": code, "message": f"{CANCEL_MESSAGES[code]} ({e})"}, []
    except api.LabelError as e:
        return FAILED, "error", {"code": "BAD_LABELS", "message": str(e)}, []
    except (api.EngineError, FloatingPointError) as e:
        return FAILED, "error", {"code": "ENGINE_ERROR", "message": str(e)}, []
    except MemoryError as e:
        return FAILED, "error", {"code": "OUT_OF_MEMORY", "message": _oom(e)}, []
    except Exception as e:
        if type(e).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
            return FAILED, "error", {"code": "OUT_OF_MEMORY", "message": _oom(e)}, []
        log.exception("job %s: internal error", spec.id[:8])
        return FAILED, "error", {
            "code": "INTERNAL",
            "message": f"internal error in the daemon ({type(e).__name__}: {e}); the daemon log has details",
        }, []
    finally:
        engine_log.removeHandler(warnings)
        done = None
        free_memory()


def free_memory() -> None:
    gc.collect()  # the trainer's graph and optimiser state go now, not at some later collection
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never fail a job
        log.debug("could not empty the CUDA cache", exc_info=True)


def model_key_of(spec: JobSpec) -> str | None:
    """The model key a job would train or load; "" for ``patch`` (no model); None when its
    inputs cannot be used (the job itself will then fail and say why)."""
    from ..engine import api
    from ..engine.source import Source
    from ..engine.synthesis import needs_model
    from ..engine.trainer import model_key

    try:
        if not needs_model(spec.method):
            return ""
        source = Source.prepare(spec.image, spec.labels, spec.settings.working_size)
        return model_key(source.image, source.labels, spec.settings)
    except (api.EngineError, ValueError):
        return None


def _oom(e: BaseException) -> str:
    return f"the device ran out of memory ({str(e)[:200]}); use a smaller --size or the preview preset"
