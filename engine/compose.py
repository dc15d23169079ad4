"""Putting a working-size synthesis back into the full-resolution photo.

The GAN works at a few hundred pixels; the photo may be 4000 px wide. Outside the
edited region (where the target label equals the source label) the photo's own
pixels are kept exactly; inside, the upscaled synthesis is used, with a soft seam
a few pixels wide along the region's inner border so the two meet without a hard edge.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .imageio import resize_rgb


def edited_region(source_index: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the target layout differs from the source layout."""
    return source_index != target_index


def seam_alpha(edited: np.ndarray, width: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 outside the edited region, ramping up to 1 over ~`width` pixels inside it.

    The ramp lies inside the region so that every pixel whose label did not change
    keeps the source's value exactly.
    """
    if width <= 0 or not edited.any():
        return edited.astype(np.float32)
    # The blurred mask is ~0.5 on the region's border and 1 deep inside: rescaling
    # [0.5, 1] -> [0, 1] gives a ramp of about `width` pixels that is 0 on the border.
    mask = Image.fromarray(edited.astype(np.uint8) * 255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(width / 2))).astype(np.float32) / 255
    ramp = np.clip((soft - 0.5) * 2.2, 0, 1)
    return np.where(edited, np.maximum(ramp, 1e-3), 0).astype(np.float32)

def compose(
    source: np.ndarray,
    synthesized: np.ndarray,
    source_index: np.ndarray,
    target_index: np.ndarray,
    seam: float | None = None,
) -> np.ndarray:
    """Full-resolution result: source pixels outside the edited region, the upscaled synthesis inside.

    source: (H, W, 3) uint8; synthesized: (h, w, 3) uint8 at the working size;
    seam: width of the soft seam in full-resolution pixels (default: two working-size pixels).
    """
    height, width = source.shape[:2]
    edited = edited_region(source_index, target_index)
    if not edited.any():
        return source.copy()
    up = resize_rgb(synthesized, (width, height)) if synthesized.shape[:2] != (height, width) else synthesized
    if seam is None:
        seam = max(2.0, 2.0 * width / synthesized.shape[1])
    alpha = seam_alpha(edited, seam)[..., None]
    out = source.astype(np.float32) * (1 - alpha) + up.astype(np.float32) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
