"""A trained model: saved, loaded, and applied to any number of target layouts."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..protocol.files import replacing
from .device import autocast, resolve_device
from .errors import EngineError
from .imageio import load_image, load_label_map, save_image
from .labels import Palette
from .networks import Generator
from .presets import TrainSettings
from .source import Source, one_hot, to_tensor, to_uint8
from .synthesis import TRAINED_DEFAULT_METHOD, render

FORMAT_VERSION = 1
WEIGHTS, META, SOURCE_IMAGE, SOURCE_LABELS = "model.pt", "model.json", "source.png", "labels.png"


def _sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


class TrainedModel:
    """G plus everything needed to apply it: the source at both resolutions and its palette."""

    def __init__(self, generator: Generator, source: Source, settings: TrainSettings, key: str, device: torch.device) -> None:
        self.G = generator.eval()
        self.source, self.settings, self.key, self.device = source, settings, key, device
        self._image = to_tensor(source.work_image(), device)
        self._src_onehot = one_hot(torch.from_numpy(source.work_index()).to(device)[None], source.palette.num_classes)

    @property
    def palette(self) -> Palette:
        return self.source.palette

    @property
    def size(self) -> tuple[int, int]:
        """Full-resolution (width, height) that targets must have."""
        return self.source.image.shape[1], self.source.image.shape[0]

    @torch.inference_mode()
    def synthesize(self, target_index: np.ndarray) -> np.ndarray:
        """G's output at the working size for a full-resolution target class map."""
        work = torch.from_numpy(self.source.work_index(target_index)).to(self.device)[None]
        with autocast(self.device):
            out, _ = self.G(self._image, self._src_onehot, one_hot(work, self.palette.num_classes))
        return to_uint8(out)

    def apply(self, target: np.ndarray, method: str = TRAINED_DEFAULT_METHOD, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """A target label map (H, W, 3|4) uint8 -> the result (H, W, 3) uint8 at full resolution.

        method: "gan", "patch" or "gan+patch" (see engine/synthesis.py).
        """
        return self.render(self.source.decode_target(target), method, should_stop)

    def render(self, target_index: np.ndarray, method: str = TRAINED_DEFAULT_METHOD,
               should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """`apply` for a target already decoded to this model's classes (full resolution)."""
        return render(method, self.source, target_index, generator=self.synthesize,
                      device=str(self.device), seed=self.settings.seed, should_stop=should_stop)

    # -- persistence -------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "key": self.key,
            "settings": self.settings.to_dict(),
            "palette": self.palette.to_dict(),
            "num_classes": self.palette.num_classes,
            "work_size": list(self.source.work_size),
            "size": list(self.size),
            "image_sha256": _sha(self.source.image),
            "labels_sha256": _sha(self.source.labels),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model into `directory`; each file is replaced atomically, weights last."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_image(d / SOURCE_IMAGE, self.source.image)
        save_image(d / SOURCE_LABELS, self.source.labels)
        meta = self.metadata()
        with replacing(d / META) as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        with replacing(d / WEIGHTS) as tmp:
            torch.save({"meta": meta, "G": self.G.state_dict()}, tmp)
        return d


def load_model(directory: str | os.PathLike, device: str = "auto") -> TrainedModel:
    """Load a model saved by TrainedModel.save (or by `semantic-analogy train --model DIR`)."""
    d = Path(directory)
    if not (d / WEIGHTS).is_file():
        raise EngineError(f"{d} holds no trained model ({WEIGHTS} is missing); train one with `semantic-analogy train`")
    dev = resolve_device(device)
    try:
        state = torch.load(d / WEIGHTS, map_location=dev, weights_only=False)
        meta = state["meta"]
    except Exception as exc:
        raise EngineError(f"{d / WEIGHTS} cannot be read ({exc}); retrain the model") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise EngineError(f"{d} was saved in model format {meta.get('format_version')}, this version reads {FORMAT_VERSION}; retrain it")
    image, labels = load_image(d / SOURCE_IMAGE), load_label_map(d / SOURCE_LABELS)
    if _sha(image) != meta["image_sha256"] or _sha(labels) != meta["labels_sha256"]:
        raise EngineError(f"{d}: {SOURCE_IMAGE} or {SOURCE_LABELS} changed since training; retrain the model")
    settings = TrainSettings.from_dict(meta["settings"])
    palette = Palette.from_dict(meta["palette"])
    source = Source.prepare(image, labels, settings.working_size, palette=palette)
    g = Generator(palette.num_classes, settings.base_channels).to(dev)
    g.load_state_dict(state["G"])
    return TrainedModel(g, source, settings, meta["key"], dev)
