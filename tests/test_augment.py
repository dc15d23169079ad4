"""Paired random warps: alignment of photo and labels, purity, identity, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from semantic_analogy.engine.augment import (
    Augmenter,
    WarpRanges,
    augmentation_strength,
    random_grid,
    random_warp,
)

CLASS_COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.8, 0.8, 0.1]])


@pytest.fixture
def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 96x128 layout of 4 classes and an image whose colour IS the class."""
    im = Image.new("L", (128, 96), 0)
    d = ImageDraw.Draw(im)
    d.ellipse([10, 10, 60, 70], fill=1)
    d.rectangle([70, 5, 120, 40], fill=2)
    d.polygon([(80, 90), (125, 50), (100, 94)], fill=3)
    d.line([(0, 80), (127, 60)], fill=2, width=3)
    labels = torch.from_numpy(np.asarray(im).astype(np.int64))[None]
    image = CLASS_COLOURS[labels[0]].permute(2, 0, 1)[None].contiguous()
    return image, labels


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def interior(labels: torch.Tensor) -> torch.Tensor:
    """Pixels whose 3x3 neighbourhood has a single class (away from edges)."""
    lab = labels.float().unsqueeze(1)
    hi = F.max_pool2d(lab, 3, stride=1, padding=1)
    lo = -F.max_pool2d(-lab, 3, stride=1, padding=1)
    return (hi == lo).squeeze(1)


@pytest.mark.parametrize("seed", range(6))
def test_image_and_labels_stay_aligned(scene, seed: int) -> None:
    image, labels = scene
    img_aug, lab_aug = random_warp(image, labels, 1.0, gen(seed))
    assert not torch.equal(lab_aug, labels)  # it did warp
    expected = CLASS_COLOURS[lab_aug[0]].permute(2, 0, 1)
    inside = interior(lab_aug)[0]
    err = (img_aug[0] - expected).abs().amax(0)
    assert inside.float().mean() > 0.6
    assert (err[inside] < 1e-3).float().mean() > 0.99


def test_misaligned_warp_would_be_caught(scene) -> None:
    # The alignment check above is sensitive: a 2-px shift of the labels fails it.
    image, labels = scene
    img_aug, lab_aug = random_warp(image, labels, 1.0, gen(0))
    shifted = torch.roll(lab_aug, 2, dims=2)
    expected = CLASS_COLOURS[shifted[0]].permute(2, 0, 1)
    inside = interior(shifted)[0]
    err = (img_aug[0] - expected).abs().amax(0)
    assert (err[inside] < 1e-3).float().mean() < 0.97


@pytest.mark.parametrize("strength", [0.05, 0.5, 1.0])
def test_labels_stay_pure_class_indices(scene, strength: float) -> None:
    image, labels = scene
    for seed in range(4):
        _, lab_aug = random_warp(image, labels, strength, gen(seed))
        assert lab_aug.dtype == torch.long and lab_aug.shape == labels.shape
        assert set(lab_aug.unique().tolist()) <= set(labels.unique().tolist())


def test_strength_zero_is_the_identity(scene) -> None:
    image, labels = scene
    img_aug, lab_aug = random_warp(image, labels, 0.0, gen(0))
    assert torch.equal(img_aug, image) and torch.equal(lab_aug, labels)
    # And a tiny strength is nearly the identity: the grid is built consistently.
    img_tiny, lab_tiny = random_warp(image, labels, 1e-6, gen(0))
    assert (img_tiny - image).abs().max() < 1e-3
    assert torch.equal(lab_tiny, labels)


def test_same_seed_same_warp_other_seed_other_warp(scene) -> None:
    image, labels = scene
    a = random_warp(image, labels, 0.7, gen(42))
    b = random_warp(image, labels, 0.7, gen(42))
    c = random_warp(image, labels, 0.7, gen(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_reflection_padding_leaves_no_undefined_border() -> None:
    ones = torch.ones(1, 3, 64, 80)
    labels = torch.full((1, 64, 80), 5, dtype=torch.long)
    for seed in range(5):
        img_aug, lab_aug = random_warp(ones, labels, 1.0, gen(seed))
        assert torch.allclose(img_aug, ones, atol=1e-5)
        assert torch.all(lab_aug == 5)


def test_displacement_grows_with_strength() -> None:
    ys = (torch.arange(48) * 2 + 1) / 48 - 1
    xs = (torch.arange(64) * 2 + 1) / 64 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    identity = torch.stack([gx, gy], -1)

    def mean_displacement(strength: float) -> float:
        grid = random_grid(32, 48, 64, strength, gen(7))
        return (grid - identity).norm(dim=-1).mean().item()

    d = [mean_displacement(s) for s in (0.0, 0.1, 0.4, 1.0)]
    assert d[0] < 1e-5
    assert d[0] < d[1] < d[2] < d[3]


def test_tps_alone_is_smooth_and_bounded() -> None:
    only_tps = WarpRanges(flip_probability=0, scale=0, rotation_deg=0, translation=0, tps_jitter=0.08)
    grid = random_grid(8, 64, 64, 1.0, gen(3), ranges=only_tps)
    ys = (torch.arange(64) * 2 + 1) / 64 - 1
    gy, gx = torch.meshgrid(ys, ys, indexing="ij")
    disp = grid - torch.stack([gx, gy], -1)
    # Control points move by at most 2 * 0.08 (normalised coordinates span 2); the
    # spline may overshoot a little between them, but not wildly.
    assert 0.01 < disp.abs().max() <= 1.5 * 2 * 0.08
    # Smooth: neighbouring pixels move almost alike.
    assert (disp[:, 1:] - disp[:, :-1]).abs().max() < 0.02
    # No fold: x still increases along rows and y down columns.
    assert torch.all(grid[..., 1:, 0] > grid[..., :-1, 0])
    assert torch.all(grid[:, 1:, :, 1] > grid[:, :-1, :, 1])


def test_batch_gets_independent_warps(scene) -> None:
    image, labels = scene
    img2, lab2 = random_warp(image.repeat(2, 1, 1, 1), labels.repeat(2, 1, 1), 1.0, gen(1))
    assert img2.shape == (2, 3, 96, 128) and lab2.shape == (2, 96, 128)
    assert not torch.equal(lab2[0], lab2[1])


def test_strength_schedule_grows_to_one() -> None:
    total = 1000
    values = [augmentation_strength(step, total) for step in range(total)]
    assert all(0.0 < v <= 1.0 for v in values)
    assert values == sorted(values)
    assert values[0] < 0.01 and values[299] == pytest.approx(0.5)
    assert values[599] == 1.0 and values[-1] == 1.0
    assert augmentation_strength(5000, total) == 1.0
    assert augmentation_strength(0, 1) == 1.0
    for bad in ((-1, 10), (0, 0)):
        with pytest.raises(ValueError):
            augmentation_strength(*bad)


def test_augmenter_follows_schedule_and_resumes(scene) -> None:
    image, labels = scene
    aug = Augmenter(total_steps=10, seed=3)
    aug(image, labels, 0)
    state = aug.state_dict()
    first = aug(image, labels, 8)
    resumed = Augmenter(total_steps=10, seed=99)
    resumed.load_state_dict(state)
    again = resumed(image, labels, 8)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


@pytest.mark.parametrize(
    "image, labels, strength, fragment",
    [
        (torch.zeros(3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long), 0.5, r"\(N, C, H, W\)"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 9, dtype=torch.long), 0.5, "match the image"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8), 0.5, "integer class-index"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.zeros(1, 8, 8, dtype=torch.long), 0.5, "float"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long), 1.5, r"\[0, 1\]"),
    ],
)
def test_bad_inputs(image, labels, strength, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        random_warp(image, labels, strength, gen(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(scene) -> None:
    image, labels = scene
    cpu = random_warp(image, labels, 1.0, gen(5))
    gpu = random_warp(image.cuda(), labels.cuda(), 1.0, gen(5))
    assert gpu[0].device.type == "cuda" and gpu[1].device.type == "cuda"
    assert (gpu[0].cpu() - cpu[0]).abs().max() < 1e-3
    assert (gpu[1].cpu() != cpu[1]).float().mean() < 1e-3  # nearest ties may round differently
