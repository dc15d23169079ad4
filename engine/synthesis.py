"""The three ways to make the result: `gan`, `patch` and `gan+patch`.

- gan:        G's output at the working size, upscaled into the edited region.
- patch:      label-guided patch synthesis from the full-resolution source alone
              (texture by numbers); needs no trained model, so it is the instant result.
- gan+patch:  G's output is the guide (with the labels) for patch synthesis from the
              full-resolution source: the GAN decides layout and structure, real source
              patches give the detail. The default.
The patch methods re-synthesise a margin around the edited region too: painted labels
rarely follow the photo's edges to the pixel, and without the margin an object's old
outline survives as a fringe where it moved away. Elsewhere every method returns the
source's own pixels, exactly: `gan` wherever the label did not change, `patch` and
`gan+patch` farther than the margin from the edited region.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .compose import compose, edited_region
from .errors import EngineError
from .patch_synthesis import dilate, synthesize as patch_synthesize
from .progress import Progress
from .source import Source

METHODS = ("gan", "patch", "gan+patch")
DEFAULT_METHOD = "gan+patch"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise EngineError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def synthesis_margin(shape: tuple[int, int]) -> int:
    """Pixels around the edited region that the patch methods re-synthesise: 0.5% of the longest side, at least 3."""
    return max(3, round(max(shape) / 200))


def grow(mask: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) bool: `mask` and every pixel within `margin` pixels of it (chessboard distance)."""
    out = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
    for _ in range(margin):
        out = dilate(out)
    return out.numpy()


def patch_result(
    source: Source,
    target_index: np.ndarray,
    guide: np.ndarray | None = None,
    *,
    margin: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> np.ndarray:
    """Patch synthesis inside the edited region grown by `margin` pixels (default:
    `synthesis_margin`); the source everywhere else."""
    edited = edited_region(source.index, target_index)
    if not edited.any():
        return source.image.copy()
    edited = grow(edited, synthesis_margin(edited.shape) if margin is None else margin)
    return patch_synthesize(
        source.image, source.index, target_index, guide=guide, mask=edited,
        device=device, seed=seed, should_stop=should_stop, progress=progress,
    )


def gan_result(source: Source, gan_output: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """G's working-size output upscaled into the edited region, with a soft seam."""
    return compose(source.image, gan_output, source.index, target_index)


def patch_analogy(
    image: np.ndarray,
    labels: np.ndarray,
    target: np.ndarray,
    *,
    device: str = "cpu",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> np.ndarray:
    """The `patch` method without any trained model: (H, W, 3) uint8 at full resolution."""
    source = Source.prepare(image, labels, size=max(image.shape[:2]))
    return patch_result(source, source.decode_target(target), device=device, seed=seed, should_stop=should_stop, progress=progress)
