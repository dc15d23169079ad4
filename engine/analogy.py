"""One way through the engine: a photo, its labels, target layouts, settings and a method in;
the results out.

`make_analogy` decides whether to train, to load a trained model or to skip training (the
`patch` method needs none), sends an instant preview while a training runs, and renders
every target with the method. The CLI and the daemon both call it and keep no method logic
of their own; they differ only in where models are kept (a `ModelStore`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import Cancelled, EngineError, LabelError
from .imageio import resize_rgb
from .labels import resize_labels
from .model import WEIGHTS, TrainedModel, load_model
from .presets import TrainSettings
from .progress import Progress
from .source import Source
from .synthesis import TRAINED_DEFAULT_METHOD, check_method, needs_model, render
from .trainer import model_key, train

log = logging.getLogger(__name__)

# Instant previews: the longest side they are made at (the preview is a quick look, not the result).
PREVIEW_PX = 512


class ModelStore(Protocol):
    """Where trained models live: a folder (the CLI), the daemon's cache, ..."""

    def load(self, key: str, device: str) -> TrainedModel | None:
        """The trained model for `key`, or None to train one."""

    def workdir(self, key: str) -> Path | None:
        """The folder a training for `key` checkpoints into and saves its model in (None: memory only)."""

    def commit(self, key: str, model: TrainedModel) -> None:
        """Called once a training for `key` finished (its model is already saved in `workdir`)."""


@dataclass
class FolderStore:
    """Models in folders: `folder` itself when given, else one folder per key under `root`.

    `retrain` ignores a saved model (the training overwrites it); `can_train=False` makes a
    missing model an error instead of a training (`semantic-analogy apply`).
    """

    root: Path | None = None
    folder: Path | None = None
    retrain: bool = False
    can_train: bool = True

    def _dir(self, key: str) -> Path | None:
        if self.folder is not None:
            return Path(self.folder)
        return Path(self.root) / key if self.root is not None else None

    def load(self, key: str, device: str) -> TrainedModel | None:
        d = self._dir(key)
        if d is not None and (d / WEIGHTS).is_file() and not self.retrain:
            log.info("using the trained model in %s%s", d, " (--retrain to train again)" if self.can_train else "")
            return load_model(d, device)
        if not self.can_train:
            raise EngineError(f"{d} holds no trained model ({WEIGHTS} is missing); train one with `semantic-analogy train`")
        return None

    def workdir(self, key: str) -> Path | None:
        return self._dir(key)

    def commit(self, key: str, model: TrainedModel) -> None:
        pass  # train() saved it into workdir


@dataclass
class Analogy:
    """What `make_analogy` made."""

    results: list[np.ndarray]  # (H, W, 3) uint8 per target, full resolution
    method: str
    model_key: str = ""  # "" for `patch`, which has no model
    cached: bool = False  # the model was loaded, not trained
    model: TrainedModel | None = field(default=None, repr=False)


def preview_size(width: int, height: int, max_side: int = PREVIEW_PX) -> tuple[int, int]:
    """(w, h) of an instant preview: the image's own size, or scaled so its longest side is max_side."""
    if max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _scaled(source: Source, index: np.ndarray, size: tuple[int, int]) -> tuple[Source, np.ndarray]:
    """The source and a decoded target at preview size (class maps resized, never re-decoded)."""
    if size == (source.image.shape[1], source.image.shape[0]):
        return source, index
    small = Source(resize_rgb(source.image, size), source.labels, source.palette,
                   resize_labels(source.index, size), source.work_size)
    return small, resize_labels(index, size)


def make_analogy(
    image: np.ndarray | None,
    labels: np.ndarray | None,
    targets: Sequence[np.ndarray],
    settings: TrainSettings | None = None,
    method: str | None = None,
    *,
    model: TrainedModel | None = None,
    store: ModelStore | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    preview: Callable[[np.ndarray, str], None] | None = None,
    preview_px: int = PREVIEW_PX,
    on_result: Callable[[int, np.ndarray], None] | None = None,
) -> Analogy:
    """P -> P' :: I -> I' for every target P' (label maps of the image's size).

    model: a model already in hand (`apply`); image, labels and settings then come from it.
    store: where trained models are loaded from and trained into (None: train in memory).
    progress: training steps (stage "train"), then one event per target (stage "apply").
    should_stop: polled between steps; True raises Cancelled (a training keeps its checkpoint).
    preview(image, kind): an instant look before the real result, at most `preview_px` on its
        longest side: kind "patch" before a training starts, "gan" when a cached model serves
        `gan+patch` (its GAN output comes in milliseconds, the patch pass takes longer).
    on_result(i, result): each target's result as soon as it is made.

    Every bad input (method, settings, a label map or target that cannot be used) raises
    before any training or synthesis.
    """
    # No method named: `patch` (the benchmark's winner), or the GAN's when handed a trained model.
    method = check_method(TRAINED_DEFAULT_METHOD if method is None and model is not None else method)
    stop = should_stop or (lambda: False)
    if model is not None:
        source, settings = model.source, model.settings
    else:
        if image is None or labels is None:
            raise EngineError("make_analogy needs the image and its label map, or a trained model")
        settings = settings or TrainSettings()
        source = Source.prepare(image, labels, settings.working_size)
    if not targets:
        raise EngineError("no target label map was given")
    indices = [source.decode_target(t) for t in targets]  # every target checked before any work

    key, cached = "", False
    if needs_model(method) and model is None:
        key = model_key(source.image, source.labels, settings)
        device = settings.device
        model = store.load(key, device) if store is not None else None
        cached = model is not None
        if model is None:
            if preview is not None and preview_px:
                _patch_preview(source, indices[0], settings, preview, preview_px, stop)
            model = train(source.image, source.labels, settings, progress=progress, should_stop=should_stop,
                          workdir=store.workdir(key) if store is not None else None,
                          preview_targets=[targets[0]], source=source)
            if store is not None:
                store.commit(key, model)
        elif method == "gan+patch" and preview is not None and preview_px:
            gan = model.render(indices[0], "gan", should_stop)
            preview(resize_rgb(gan, preview_size(gan.shape[1], gan.shape[0], preview_px)), "gan")
    elif model is not None:
        key, cached = model.key, True

    device = str(model.device) if model is not None else _patch_device(settings)
    results = []
    t0 = time.monotonic()
    for i, index in enumerate(indices):
        if stop():
            raise Cancelled(f"stopped before target {i + 1} of {len(indices)}")
        t = time.monotonic()
        if model is not None:
            out = model.render(index, method, should_stop)
        else:
            out = render(method, source, index, device=device, seed=settings.seed, should_stop=should_stop)
        log.debug("target %d of %d: %s in %.2f s", i + 1, len(indices), method, time.monotonic() - t)
        results.append(out)
        if on_result is not None:
            on_result(i, out)
        if progress is not None:
            elapsed = time.monotonic() - t0
            progress(Progress(i + 1, len(indices), elapsed, elapsed / (i + 1) * (len(indices) - i - 1), stage="apply"))
    return Analogy(results, method, key, cached, model)


def _patch_device(settings: TrainSettings) -> str:
    from .device import resolve_device

    return str(resolve_device(settings.device))


def _patch_preview(source: Source, index: np.ndarray, settings: TrainSettings,
                   preview: Callable[[np.ndarray, str], None], preview_px: int, stop: Callable[[], bool]) -> None:
    """The `patch` result of the first target at preview size, before a training starts.

    Only a look: a failure other than a cancel costs the preview, never the job.
    """
    size = preview_size(source.image.shape[1], source.image.shape[0], preview_px)
    small, small_index = _scaled(source, index, size)
    t0 = time.monotonic()
    try:
        out = render("patch", small, small_index, device=_patch_device(settings), seed=settings.seed, should_stop=stop)
    except Cancelled:
        raise
    except (EngineError, LabelError, MemoryError) as e:
        log.warning("no instant preview: %s", e)
        return
    log.debug("instant patch preview %dx%d in %.2f s", *size, time.monotonic() - t0)
    preview(out, "patch")
