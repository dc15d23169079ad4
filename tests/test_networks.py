import torch
import torch.nn.functional as F

from semantic_analogy.engine.networks import SFT, Generator, LightDeepLabV3, PatchDiscriminator, SegEncoder, safe_ratio


def onehot(labels, k):
    return F.one_hot(labels, k).permute(0, 3, 1, 2).float()


def test_sft_scale_is_one_and_shift_zero_exactly_when_layouts_match():
    torch.manual_seed(0)
    enc = SegEncoder(3)
    labels = torch.randint(0, 3, (1, 32, 48))
    feats = enc(torch.cat([onehot(labels, 3)] * 2))
    for f in feats:
        scale, shift = SFT.translate(f[:1], f[1:])
        assert torch.equal(scale, torch.ones_like(scale))
        assert torch.equal(shift, torch.zeros_like(shift))


def test_sft_translation_differs_when_layouts_differ():
    torch.manual_seed(0)
    enc = SegEncoder(3)
    a = torch.zeros(1, 32, 32, dtype=torch.long)
    b = a.clone()
    b[:, 8:24, 8:24] = 1
    fa, fb = enc(onehot(a, 3)), enc(onehot(b, 3))
    scale, shift = SFT.translate(fa[0], fb[0])
    assert (shift.abs() > 0).any() and ((scale - 1).abs() > 0).any()


def test_safe_ratio_is_finite_near_zero():
    den = torch.tensor([0.0, 1e-12, -1e-12, 2.0, -3.0])
    num = torch.tensor([1.0, 1.0, 1.0, 4.0, 3.0])
    r = safe_ratio(num, den)
    assert torch.isfinite(r).all() and r.abs().max() <= 10
    assert torch.equal(safe_ratio(den, den), torch.ones_like(den))


def test_generator_starts_at_identity_modulation_and_keeps_size():
    g = Generator(4)
    img = torch.rand(1, 3, 40, 56) * 2 - 1
    lab = onehot(torch.randint(0, 4, (1, 40, 56)), 4)
    out, modulation = g(img, lab, lab)
    assert out.shape == img.shape and out.abs().max() <= 1
    assert len(modulation) == 3  # every downsampling stage is modulated
    for gamma, beta in modulation:
        assert torch.allclose(gamma, torch.ones_like(gamma)) and torch.allclose(beta, torch.zeros_like(beta))


def test_discriminator_and_segmenter_shapes():
    d, s = PatchDiscriminator(3), LightDeepLabV3(3)
    img = torch.rand(1, 3, 64, 64)
    logits, feats = d(img, torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 1, 8, 8) and len(feats) == 3
    assert s(img).shape == (1, 3, 64, 64)
    # spectral norm on D's convolutions
    assert all(hasattr(m, "parametrizations") or hasattr(m, "weight_orig") for m in d.modules() if isinstance(m, torch.nn.Conv2d))
