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

# Method names are defined once, in the protocol: the plug-ins offer the same (without torch).
from ..protocol.schema import DEFAULT_METHOD, METHODS, TRAINED_DEFAULT_METHOD  # noqa: F401  (re-exported)
from .compose import compose, edited_region
from .errors import EngineError
from .patch_synthesis import dilate, synthesize as patch_synthesize
from .progress import Progress
from .source import Source

def check_method(method: str | None) -> str:
    """`method` (None: the default) if it is one of METHODS; EngineError naming the choices."""
    if method is None:
        return DEFAULT_METHOD
    if method not in METHODS:
        raise EngineError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def needs_model(method: str) -> bool:
    """Whether `method` needs a trained generator (everything but `patch`)."""
    return check_method(method) != "patch"


def synthesis_margin(shape: tuple[int, int]) -> int:
    """Pixels around the edited region that the patch methods re-synthesise: 0.5% of the longest side, at least 3."""
    return max(3, round(max(shape) / 200))


def grow(mask: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) bool: `mask` and every pixel within `margin` pixels of it (chessboard distance)."""
    out = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
    for _ in range(margin):
        out = dilate(out)
    return out.numpy()


def halo_width(shape: tuple[int, int]) -> int:
    """How far a removed object's halo reaches into its neighbours: 4% of the longest side, at least 4 px.

    Photos carry an object's trace past its painted outline (glare and sharpening halos,
    shadows, JPEG ringing, leaves finer than the brush): in the tree example the sky is
    visibly off for ~10 px (4%) around the tree. Kept exactly, that band draws the old
    outline into a re-synthesised sky.
    """
    return max(4, round(max(shape) * 0.04))


def _grow_coarse(mask: np.ndarray, reach: int, cell: int) -> np.ndarray:
    """`mask` grown by at least `reach` px, computed on cells of `cell` px (cheap at 12 megapixels)."""
    if cell <= 1:
        return grow(mask, reach)
    h, w = mask.shape
    t = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    coarse = torch.nn.functional.max_pool2d(t, cell, cell, ceil_mode=True)[0, 0] > 0
    coarse = grow(coarse.numpy(), -(-reach // cell))
    return np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w]


def synthesis_mask(source_index: np.ndarray, target_index: np.ndarray, margin: int | None = None,
                   halo: int | None = None) -> np.ndarray:
    """(H, W) bool: what the patch methods re-synthesise.

    The edited region, grown by `margin` px (default `synthesis_margin`) all round, and
    by `halo` px (default `halo_width`) into unchanged pixels of a class that borders
    something that changed: where an object was removed or shrunk, its neighbours hold
    its halo, and keeping them would leave a faint outline of it (issue 15's ghosts).
    Where a class only grew into its neighbour of the same source class (sky painted
    over sky's neighbour) nothing of another object is there to clean up.
    """
    edited = edited_region(source_index, target_index)
    if not edited.any():
        return edited
    shape = edited.shape
    out = grow(edited, synthesis_margin(shape) if margin is None else margin)
    reach = halo_width(shape) if halo is None else halo
    if reach > 0:
        unchanged = ~edited
        cell = max(1, reach // 8)
        for c in np.unique(source_index[edited]):
            # Unchanged pixels of other classes near where class c's pixels changed.
            near = _grow_coarse(edited & (source_index == c), reach, cell)
            out |= near & unchanged & (source_index != c)
    return out


def patch_result(
    source: Source,
    target_index: np.ndarray,
    guide: np.ndarray | None = None,
    *,
    margin: int | None = None,
    halo: int | None = None,
    device: str = "cpu",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> np.ndarray:
    """Patch synthesis inside `synthesis_mask` (the edited region, its margin and the removed
    objects' halos); the source everywhere else."""
    edited = synthesis_mask(source.index, target_index, margin, halo)
    if not edited.any():
        return source.image.copy()
    return patch_synthesize(
        source.image, source.index, target_index, guide=guide, mask=edited,
        device=device, seed=seed, should_stop=should_stop, progress=progress,
    )


def gan_result(source: Source, gan_output: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """G's working-size output upscaled into the edited region, with a soft seam."""
    return compose(source.image, gan_output, source.index, target_index)


def render(
    method: str,
    source: Source,
    target_index: np.ndarray,
    *,
    generator: Callable[[np.ndarray], np.ndarray] | None = None,
    device: str = "cpu",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """The one place that turns a method name into a result (H, W, 3) uint8 at full resolution.

    `generator(target_index)` is G's working-size output; the GAN methods need it.
    """
    method = check_method(method)
    if method == "patch":
        return patch_result(source, target_index, device=device, seed=seed, should_stop=should_stop)
    if generator is None:
        raise EngineError(f"the method {method!r} needs a trained model; train one or use 'patch'")
    gan = generator(target_index)
    if method == "gan":
        return gan_result(source, gan, target_index)
    return patch_result(source, target_index, guide=gan, device=device, seed=seed, should_stop=should_stop)


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
    return patch_result(source, source.decode_target(target), device=device, seed=seed,
                        should_stop=should_stop, progress=progress)
