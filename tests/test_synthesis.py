"""The methods' composition rules (engine/synthesis.py): what is re-synthesised and what is kept."""

from __future__ import annotations

import numpy as np

from engine_fixtures import one_torch_thread  # noqa: F401  (autouse: one torch thread in this module)
from semantic_analogy.engine.source import Source
from semantic_analogy.engine.synthesis import grow, halo_width, patch_result, synthesis_margin, synthesis_mask

GREEN, RED = (40, 170, 60), (200, 40, 40)


def test_grow_is_a_square_of_the_margin_clipped_at_the_border():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = mask[0, 8] = True
    out = grow(mask, 2)
    expected = np.zeros((9, 9), bool)
    expected[2:7, 2:7] = True
    expected[0:3, 6:9] = True
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(grow(mask, 0), mask)
    assert not grow(np.zeros((4, 4), bool), 3).any()


def test_margin_scales_with_the_photo_and_has_a_floor():
    assert synthesis_margin((380, 572)) == 3
    assert synthesis_margin((64, 64)) == 3
    assert synthesis_margin((3000, 4000)) == 20


def fringed_scene(h: int = 72, w: int = 112):
    """A red disc on green whose painted label is 2 px smaller than the disc; the target moves it.

    The photo's red ring outside the disc's label is what a painter's imprecise outline
    leaves: it lies in the green class in both layouts, next to the edited region.
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    r2_old = (yy - 36) ** 2 + (xx - 30) ** 2
    photo = np.where((r2_old < 16**2)[..., None], RED, GREEN) + rng.integers(-12, 13, (h, w, 3))
    photo = photo.clip(0, 255).astype(np.uint8)
    src_lab = np.where((r2_old < 14**2)[..., None], RED, GREEN).astype(np.uint8)
    r2_new = (yy - 36) ** 2 + (xx - 80) ** 2
    tgt_lab = np.where((r2_new < 14**2)[..., None], RED, GREEN).astype(np.uint8)
    ring = (r2_old >= 14**2) & (r2_old < 16**2)
    return photo, src_lab, tgt_lab, ring


def test_gan_plus_patch_margin_removes_the_outline_of_a_moved_object_and_keeps_the_rest():
    photo, src_lab, tgt_lab, ring = fringed_scene()
    source = Source.prepare(photo, src_lab, size=max(photo.shape[:2]))
    target = source.decode_target(tgt_lab)
    # Stand-in for the GAN's output: the target layout in the classes' clean colours.
    guide = np.where((target == source.index[36, 30])[..., None], RED, GREEN).astype(np.uint8)
    margin = synthesis_margin(target.shape)
    assert margin >= 2  # the ring is inside the margin

    def reddish(img):
        return (img[ring][:, 0].astype(int) - img[ring][:, 1].astype(int)) > 60

    without = patch_result(source, target, guide=guide, margin=0, halo=0, seed=1)
    assert reddish(without).mean() > 0.9, "without a margin the photo's outline survives"
    out = patch_result(source, target, guide=guide, margin=margin, seed=1)
    assert reddish(out).mean() < 0.02, "the margin re-synthesises the outline as the class it is labelled"
    kept = ~synthesis_mask(source.index, target, margin)
    np.testing.assert_array_equal(out[kept], photo[kept])
