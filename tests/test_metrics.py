"""The quality measures of `semantic-analogy eval` tell good results from trivial ones."""

import numpy as np
import pytest

from semantic_analogy.engine.metrics import (
    PSNR_IDENTICAL, UNRECOGNISED, alignment, evaluate, fit_pixel_classifier, local_contrast, mean_colour_baseline,
    height_tone, patch_distance, psnr, seam_step, segment, srgb_to_lab, texture_contrast,
)


@pytest.fixture
def scene():
    """A noisy red class on the left, a striped blue class on the right, and a target that
    moves the boundary 12 pixels to the right (the strip becomes red)."""
    rng = np.random.default_rng(0)
    h, w = 48, 64
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :32] = np.clip(rng.normal((200, 40, 40), 25, (h, 32, 3)), 0, 255)
    stripes = np.where((np.arange(32) // 2) % 2 == 0, 255, 120)
    img[:, 32:, 2] = stripes[None, :]
    labels = np.zeros((h, w, 3), np.uint8)
    labels[:, :32] = (255, 0, 0)
    labels[:, 32:] = (0, 0, 255)
    target = labels.copy()
    target[:, 32:44] = (255, 0, 0)
    return img, labels, target


def test_identical_images_measure_as_identical(scene):
    img, labels, _ = scene
    m = evaluate(img, labels, labels, img)
    assert m["edited_fraction"] == 0 and m["reconstruction_psnr"] == PSNR_IDENTICAL
    assert m["patch_distance"]["all"] == pytest.approx(0, abs=1e-3)
    assert m["patch_distance"]["edited"] is None and m["texture_contrast"]["edited"] is None
    assert m["texture_contrast"]["all"] == pytest.approx(1.0, abs=1e-3)
    assert psnr(img, img) == PSNR_IDENTICAL


def test_a_flat_fill_has_no_texture_and_real_patches_do(scene):
    img, labels, target = scene
    flat = mean_colour_baseline(img, labels, target)
    real = img.copy()
    real[:, 32:44] = img[:, 4:16]  # the strip made of the red class's own pixels
    m_flat, m_real = evaluate(img, labels, target, flat), evaluate(img, labels, target, real)
    assert m_flat["texture_contrast"]["edited"] < 0.1
    assert 0.8 < m_real["texture_contrast"]["edited"] < 1.25
    assert m_real["patch_distance"]["edited"] < m_flat["patch_distance"]["edited"]
    # The source unchanged keeps the blue stripes where red is wanted: the classifier sees it.
    m_src = evaluate(img, labels, target, img)
    assert m_src["alignment"]["edited"]["pixel_accuracy"] < 0.2 < m_real["alignment"]["edited"]["pixel_accuracy"]
    assert m_real["psnr_outside"] == m_flat["psnr_outside"] == PSNR_IDENTICAL


def test_texture_contrast_is_per_class_and_skips_textureless_classes():
    h, w = 20, 20
    src = np.zeros((h, w, 3), np.uint8)
    src[:, :10] = 90  # class 0: flat, no texture to compare with
    src[:, 10:, 0] = np.where(np.arange(10) % 2 == 0, 250, 50)  # class 1: stripes
    idx = np.zeros((h, w), np.int64)
    idx[:, 10:] = 1
    region = np.ones((h, w), bool)
    out = src.copy()
    out[:, 10:] = 150  # class 1 flattened
    assert texture_contrast(src, idx, src, idx, region) == pytest.approx(1.0)
    assert texture_contrast(src, idx, out, idx, region) < 0.35  # only the flattened border keeps some contrast
    flat_only = np.zeros((h, w), bool)
    flat_only[:, :5] = True
    assert texture_contrast(src, idx, src, idx, flat_only) is None
    assert local_contrast(src).shape == (h, w)


def test_patch_distance_only_compares_patches_of_the_same_class(scene):
    img, labels, _ = scene
    idx = (labels[..., 2] > 0).astype(np.int64)
    # The red half called blue: its patches must be matched against the stripes only.
    swapped = 1 - idx
    region = np.ones(idx.shape, bool)
    assert patch_distance(img, idx, img, idx, region) == pytest.approx(0, abs=1e-3)
    assert patch_distance(img, idx, img, swapped, region) > 0.1


def test_alignment_is_open_set_a_flat_fill_is_not_recognised_as_a_textured_class(scene):
    img, labels, target = scene
    idx = (labels[..., 2] > 0).astype(np.int64)
    classifier = fit_pixel_classifier(img, idx, 2)
    # The photo itself: nearly every pixel recognised, as its own class.
    pred = segment(classifier, img)
    assert (pred == idx).mean() > 0.9 and (pred == UNRECOGNISED).mean() < 0.05
    # The red class's mean colour without its noise is red to a closed-set classifier,
    # but unlike any red pixel of the photo: unrecognised, and so wrong.
    flat, real = mean_colour_baseline(img, labels, target), img.copy()
    real[:, 32:44] = img[:, 4:16]
    strip = np.zeros(idx.shape, bool)
    strip[:, 34:42] = True  # inside the new strip, away from its borders
    assert (segment(classifier, flat)[strip] == UNRECOGNISED).mean() > 0.8
    m_flat, m_real = evaluate(img, labels, target, flat), evaluate(img, labels, target, real)
    assert m_flat["alignment"]["edited"]["pixel_accuracy"] < 0.5 < 0.9 < m_real["alignment"]["edited"]["pixel_accuracy"]


def test_unrecognised_pixels_count_as_wrong_but_are_no_class_of_their_own():
    truth = np.array([[0, 0, 1, 1]])
    region = np.ones_like(truth, bool)
    pred = np.array([[0, UNRECOGNISED, 1, 1]])
    a = alignment(pred, truth, region)
    assert a["pixel_accuracy"] == 0.75
    assert a["miou"] == 0.75  # class 0: 1/2, class 1: 2/2; no IoU term for "unrecognised"


def test_patch_distance_is_in_cielab_delta_e_units():
    # Reference values of the CIELAB conversion (D65): sRGB red and a mid grey of L* 50.
    assert srgb_to_lab(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert srgb_to_lab(np.array([[[119, 119, 119]]], np.uint8))[0, 0] == pytest.approx([50.03, 0, 0], abs=0.05)
    white = np.full((24, 24, 3), 255, np.uint8)
    grey = np.full((24, 24, 3), 119, np.uint8)
    idx = np.zeros((24, 24), np.int64)
    region = np.ones((24, 24), bool)
    # Every output patch is grey, every source patch white: Delta E 100 - 50.03 per pixel.
    assert patch_distance(white, idx, grey, idx, region) == pytest.approx(49.97, abs=0.05)
    assert patch_distance(white, idx, white, idx, region) == 0


def test_seam_step_sees_a_band_of_another_tone_where_the_fill_meets_the_kept_photo():
    """A sky gradient with grain; a disc re-synthesised from the same gradient and grain meets
    the kept sky as smoothly as the photo's pixels meet each other (about 1); the same disc a
    little deeper blue ends in a step (a margin of another tone around an added object)."""
    rng = np.random.default_rng(3)
    h, w = 64, 80
    ramp = np.linspace(0, 40, h)[:, None, None] + np.array([110, 150, 230])[None, None, :]

    def sky() -> np.ndarray:
        return np.clip(ramp + rng.normal(0, 2.0, (h, w, 3)), 0, 255).astype(np.uint8)

    img = sky()
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 32) ** 2 + (xx - 40) ** 2 < 15**2
    index = np.zeros((h, w), np.int64)
    clean, band = img.copy(), img.copy()
    clean[disc] = sky()[disc]
    band[disc] = np.clip(sky()[disc].astype(int) + (-12, -10, 0), 0, 255).astype(np.uint8)
    c, b = seam_step(img, clean, disc, index, index), seam_step(img, band, disc, index, index)
    assert 0.8 < c < 1.25
    assert b > 2 * c
    assert seam_step(img, img, np.zeros_like(disc), index, index) is None  # nothing changed
    assert seam_step(img, clean, np.ones_like(disc), index, index) is None  # everything rewritten: no edge
    # Through `eval`: only pixels that differ from the photo count as changed.
    labels = np.zeros((h, w, 3), np.uint8)
    labels[:, :6] = (255, 0, 0)  # a second class (a label map needs two), away from the disc
    assert evaluate(img, labels, labels, band)["seam_step"] > 2 * evaluate(img, labels, labels, clean)["seam_step"]
    assert evaluate(img, labels, labels, img)["seam_step"] is None


def test_height_tone_sees_a_sky_of_the_wrong_height_that_patch_distance_does_not():
    """A sky lightening towards its horizon over grassy ground; a gap opened in the ground is
    filled either with sky of the horizon's tone or with a block copied from the deep sky at
    the top. Both are made of the photo's own sky patches (the patch distance barely tells
    them apart); the height tone does."""
    rng = np.random.default_rng(4)
    h, w = 64, 64
    img = np.zeros((h, w, 3))
    img[:40] = np.linspace(0, 1, 40)[:, None, None] * (150, 120, 40) + (50, 90, 200)
    img[:40] += rng.normal(0, 1.5, (40, w, 3))
    img[40:] = rng.normal((90, 140, 50), 20, (h - 40, w, 3))
    img = img.clip(0, 255).astype(np.uint8)
    index = np.zeros((h, w), np.int64)
    index[40:] = 1
    target = index.copy()
    target[44:60, 8:56] = 0
    gap = target != index
    horizon, block = img.copy(), img.copy()
    horizon[44:60, 8:56] = np.tile(img[36:40, 8:56], (4, 1, 1))  # the sky just above the horizon
    block[44:60, 8:56] = img[0:16, 8:56]  # the deep sky at the top
    near, far = height_tone(img, index, horizon, target, gap), height_tone(img, index, block, target, gap)
    assert near < 1 and far > 10 * near
    assert patch_distance(img, index, block, target, gap) < 1.5 * patch_distance(img, index, horizon, target, gap)
    # The ground is not toned by height: a region of it alone has no such measure.
    grass = (index == 1) & (np.arange(w)[None, :] < 20)
    assert height_tone(img, index, img, index, grass) is None
    # Through `eval`, with the label maps as painted.
    palette = np.array([(0, 200, 255), (0, 200, 0)], np.uint8)
    e_near = evaluate(img, palette[index], palette[target], horizon)["height_tone"]
    e_far = evaluate(img, palette[index], palette[target], block)["height_tone"]
    assert e_near < 1 and e_far > 10 * e_near
