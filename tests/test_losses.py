import torch

from semantic_analogy.engine import losses as L
from semantic_analogy.engine.features import PixelDescriptor
from semantic_analogy.engine.networks import LightDeepLabV3


def two_class_image():
    """Left half red class 0, right half blue class 1, with noise."""
    g = torch.Generator().manual_seed(0)
    img = torch.empty(1, 3, 32, 32)
    img[:, :, :, :16] = torch.tensor([0.8, -0.8, -0.8]).view(1, 3, 1, 1)
    img[:, :, :, 16:] = torch.tensor([-0.8, -0.8, 0.8]).view(1, 3, 1, 1)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    labels = torch.zeros(1, 32, 32, dtype=torch.long)
    labels[:, :, 16:] = 1
    return img, labels


def test_patch_loss_is_zero_for_the_identical_image():
    feat = PixelDescriptor()
    img, labels = two_class_image()
    assert L.patch_coherence_loss(feat(img), feat(img), labels, labels).item() == 0.0


def test_patch_loss_only_matches_patches_of_the_same_class():
    feat = PixelDescriptor()
    img, labels = two_class_image()
    # Output: everything blue, but the target layout says the left half is class 0 (red).
    blue = img.clone()
    blue[:, :, :, :16] = img[:, :, :, 16:]
    swapped_layout = L.patch_coherence_loss(feat(blue), feat(img), labels, labels).item()
    # The same output judged against an all-class-1 layout matches perfectly well.
    all_blue = torch.ones_like(labels)
    same_class = L.patch_coherence_loss(feat(blue), feat(img), all_blue, labels).item()
    assert swapped_layout > 10 * max(same_class, 1e-6)


def test_nearest_same_class_never_crosses_classes():
    q = torch.tensor([[0.0], [10.0]])
    s = torch.tensor([[0.1], [9.9], [100.0]])
    idx, valid = L.nearest_same_class(q, torch.tensor([1, 0]), s, torch.tensor([0, 1, 1]))
    assert valid.all() and idx.tolist() == [1, 0]
    _, valid = L.nearest_same_class(q, torch.tensor([2, 0]), s, torch.tensor([0, 1, 1]))
    assert valid.tolist() == [False, True]


def test_patch_loss_gradient_reaches_the_output():
    feat = PixelDescriptor()
    img, labels = two_class_image()
    out = (img + 0.3).requires_grad_(True)
    L.patch_coherence_loss(feat(out), feat(img), labels, labels).backward()
    assert out.grad is not None and out.grad.abs().sum() > 0


def test_alignment_loss_trains_the_generator_through_a_frozen_segmenter():
    s = LightDeepLabV3(2)
    s.requires_grad_(False)
    out = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    L.alignment_loss(s(out), torch.ones(1, 32, 32, dtype=torch.long)).backward()
    assert out.grad.abs().sum() > 0
    assert all(p.grad is None for p in s.parameters())


def test_fixed_point_loss_is_zero_at_identity_and_positive_elsewhere():
    ones, zeros = torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)
    assert L.fixed_point_loss([(ones, zeros)]).item() == 0
    assert L.fixed_point_loss([(ones * 1.5, zeros + 0.1)]).item() > 0
