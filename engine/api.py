"""The engine's public API: what the CLI and the daemon call.

Images cross this boundary as numpy uint8 arrays:
  * source image: (H, W, 3) RGB or (H, W, 4) RGBA (alpha ignored),
  * label maps:   (H, W, 3) RGB or (H, W, 4) RGBA (alpha == 0 is "unlabelled"),
and results come back as (H, W, 3) RGB uint8 at the source's full resolution.

Typical use: one call that trains (or loads, or skips training for `patch`) and renders::

    done = make_analogy(image, labels, [target], TrainSettings(preset="preview"), "gan+patch",
                        store=FolderStore(folder=Path("my-model")), progress=print)
    out = done.results[0]                # full-resolution RGB

or step by step::

    settings = TrainSettings(preset="preview", seed=0)
    model = train(image, labels, settings, progress=print, should_stop=lambda: False,
                  workdir=Path("my-model"))
    out = model.apply(target)            # full-resolution RGB
    model.save(Path("my-model"))
    model = load_model(Path("my-model"))
"""

from __future__ import annotations

from .analogy import Analogy, FolderStore, ModelStore, make_analogy, preview_size
from .errors import Cancelled, EngineError, LabelError
from .model import TrainedModel, load_model
from .presets import PRESETS, TrainSettings
from .progress import Progress
from .synthesis import DEFAULT_METHOD, METHODS
from .trainer import model_key, train

__all__ = [
    "Analogy",
    "FolderStore",
    "ModelStore",
    "make_analogy",
    "preview_size",
    "DEFAULT_METHOD",
    "METHODS",
    "Cancelled",
    "EngineError",
    "LabelError",
    "PRESETS",
    "Progress",
    "TrainSettings",
    "TrainedModel",
    "load_model",
    "model_key",
    "train",
]
