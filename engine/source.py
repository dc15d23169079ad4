"""The source image and its labels, at full and at working resolution, and tensor conversions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LabelError
from .imageio import resize_rgb
from .labels import Palette, check_same_size, decode_labels, extract_palette, resize_labels


def working_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the longest side ~`size` (never upscaled) and both sides multiples of 8.

    Multiples of 8 because G downsamples three times and must come back to the same size.
    """
    scale = min(1.0, size / max(width, height))
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))


def rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise LabelError(f"the image must be 8-bit RGB or RGBA, got an array of shape {image.shape} and type {image.dtype}")
    return np.ascontiguousarray(image[..., :3])


def rgba(labels: np.ndarray) -> np.ndarray:
    """Label maps are handled as RGBA everywhere (opaque when painted without alpha)."""
    if labels.ndim != 3 or labels.shape[2] not in (3, 4) or labels.dtype != np.uint8:
        raise LabelError(f"a label map must be 8-bit RGB or RGBA, got an array of shape {labels.shape} and type {labels.dtype}")
    if labels.shape[2] == 4:
        return np.ascontiguousarray(labels)
    return np.concatenate([labels, np.full(labels.shape[:2] + (1,), 255, np.uint8)], axis=2)


def to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((tensor[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


@dataclass
class Source:
    """The source image and labels at full and at working resolution."""

    image: np.ndarray  # (H, W, 3) uint8, full resolution
    labels: np.ndarray  # (H, W, 3|4) uint8, as painted
    palette: Palette
    index: np.ndarray  # (H, W) class map, full resolution
    work_size: tuple[int, int]  # (w, h)

    @classmethod
    def prepare(cls, image: np.ndarray, labels: np.ndarray, size: int, palette: Palette | None = None) -> "Source":
        image, labels = rgb(image), rgba(labels)
        check_same_size(labels, image, "source label map", "image")
        palette = palette or extract_palette(labels)
        index = decode_labels(labels, palette, what="source label map")
        return cls(image, labels, palette, index, working_shape(image.shape[1], image.shape[0], size))

    def work_image(self) -> np.ndarray:
        return resize_rgb(self.image, self.work_size)

    def work_index(self, index: np.ndarray | None = None) -> np.ndarray:
        return resize_labels(self.index if index is None else index, self.work_size)

    def decode_target(self, target: np.ndarray) -> np.ndarray:
        """Full-resolution class map of a target label map, checked against this source."""
        check_same_size(target, self.image, "target label map", "image")
        return decode_labels(target, self.palette, what="target label map")
