"""The networks of the conditional single-image GAN (Li et al., ACM MM 2020).

  SegEncoder (E_seg)   encodes a one-hot label map, same shape as G's encoder.
  SFT                  turns (F_aug, F_source) into scales gamma and shifts beta.
  Generator (G)        encoder-decoder; image features are normalised and modulated by
                       gamma/beta at every downsampling stage (Eq. 6).
  PatchDiscriminator   PatchGAN, 3 down blocks, spectral norm (D).
  LightDeepLabV3       DeepLabV3 with a quarter of the channels (S).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

LEAK = 0.2


def _norm(channels: int) -> nn.BatchNorm2d:
    # Batch statistics always (no running averages): training uses one image per
    # batch, and the same statistics at synthesis time keep train and apply identical.
    return nn.BatchNorm2d(channels, affine=True, track_running_stats=False)


def _conv(cin: int, cout: int, k: int, s: int = 1, sn: bool = True) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, s, padding=(k - 1) // 2 if s == 1 else 1, padding_mode="reflect" if s == 1 else "zeros")
    return spectral_norm(conv) if sn else conv


class DownBlock(nn.Module):
    """3x3 conv, then a 4x4 stride-2 conv; BN and leaky ReLU after each.

    With ``modulated`` the last normalisation is left to the caller so that
    gamma/beta can be applied to the normalised features (Eq. 6).
    """

    def __init__(self, cin: int, cout: int, modulated: bool = False) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3)
        self.norm1 = _norm(cout)
        self.conv2 = _conv(cout, cout, 4, 2)
        self.norm2 = _norm(cout)
        self.modulated = modulated

    def forward(self, x: torch.Tensor, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> torch.Tensor:
        x = F.leaky_relu(self.norm1(self.conv1(x)), LEAK)
        x = self.norm2(self.conv2(x))
        if gamma is not None:
            x = x * gamma + beta
        return F.leaky_relu(x, LEAK)


class UpBlock(nn.Module):
    """3x3 conv, then a 4x4 stride-2 transposed conv; BN and leaky ReLU after each."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cin, 3)
        self.norm1 = _norm(cin)
        self.up = spectral_norm(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
        self.norm2 = _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.norm1(self.conv1(x)), LEAK)
        return F.leaky_relu(self.norm2(self.up(x)), LEAK)


def stage_channels(base: int, stages: int = 3) -> list[int]:
    return [base * 2**i for i in range(stages)]


class SegEncoder(nn.Module):
    """E_seg: one-hot labels -> features after each of the 3 downsampling stages."""

    def __init__(self, num_classes: int, base: int = 32) -> None:
        super().__init__()
        chans = stage_channels(base)
        ins = [num_classes] + chans[:-1]
        self.blocks = nn.ModuleList(DownBlock(i, o) for i, o in zip(ins, chans))

    def forward(self, onehot: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], onehot
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


def safe_ratio(num: torch.Tensor, den: torch.Tensor, eps: float = 1e-2, limit: float = 10.0) -> torch.Tensor:
    """num / den, safe near zero, and exactly 1 wherever num == den.

    Both are shifted away from zero by eps in the direction of den's sign, so the
    denominator's magnitude is at least eps; equal inputs still divide to 1 exactly.
    The clamp keeps the rare large ratios from dominating the bottleneck.
    """
    shift = torch.where(den >= 0, eps, -eps)
    return ((num + shift) / (den + shift)).clamp(-limit, limit)


class SFT(nn.Module):
    """Semantic Feature Translation for one stage.

    F_scale = F_aug / F_source -> gamma, F_shift = F_aug - F_source -> beta, each
    through a 1x1-conv bottleneck. When P' == P, F_scale == 1 and F_shift == 0
    exactly; the fixed-point loss teaches the bottlenecks to map those to
    gamma = 1, beta = 0 (identity modulation).
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)

        def bottleneck() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, hidden, 1), nn.LeakyReLU(LEAK), nn.Conv2d(hidden, channels, 1)
            )

        self.to_gamma = bottleneck()
        self.to_beta = bottleneck()
        # Start at the identity modulation (gamma = 1, beta = 0 for any input).
        for head in (self.to_gamma, self.to_beta):
            nn.init.zeros_(head[-1].weight)
        nn.init.ones_(self.to_gamma[-1].bias)
        nn.init.zeros_(self.to_beta[-1].bias)

    @staticmethod
    def translate(f_src: torch.Tensor, f_aug: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return safe_ratio(f_aug, f_src), f_aug - f_src

    def forward(self, f_src: torch.Tensor, f_aug: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = self.translate(f_src, f_aug)
        return self.to_gamma(scale), self.to_beta(shift)


class Generator(nn.Module):
    """G: image encoder modulated by SFT at each downsampling stage, then a decoder.

    The decoder also receives the modulated encoder features (U-Net skips), which
    carries texture detail of the source to the output at every scale.
    """

    def __init__(self, num_classes: int, base: int = 32) -> None:
        super().__init__()
        chans = stage_channels(base)
        self.seg_encoder = SegEncoder(num_classes, base)
        self.sft = nn.ModuleList(SFT(c) for c in chans)
        ins = [3] + chans[:-1]
        self.down = nn.ModuleList(DownBlock(i, o, modulated=True) for i, o in zip(ins, chans))
        # up blocks: 128 -> 64, (64+64) -> 32, (32+32) -> 32
        self.up = nn.ModuleList(
            [UpBlock(chans[2], chans[1]), UpBlock(chans[1] * 2, chans[0]), UpBlock(chans[0] * 2, chans[0])]
        )
        self.to_rgb = nn.Sequential(_conv(chans[0], chans[0], 3, sn=False), nn.LeakyReLU(LEAK), nn.Conv2d(chans[0], 3, 1))

    def modulation(self, src_onehot: torch.Tensor, tgt_onehot: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(gamma, beta) for every stage; E_seg runs once on both label maps."""
        n = src_onehot.shape[0]
        feats = self.seg_encoder(torch.cat([src_onehot, tgt_onehot], 0))
        return [sft(f[:n], f[n:]) for sft, f in zip(self.sft, feats)]

    def forward(
        self,
        image: torch.Tensor,
        src_onehot: torch.Tensor,
        tgt_onehot: torch.Tensor,
        modulation: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Returns the output image in [-1, 1] and the (gamma, beta) used."""
        if modulation is None:
            modulation = self.modulation(src_onehot, tgt_onehot)
        skips, x = [], image
        for block, (gamma, beta) in zip(self.down, modulation):
            x = block(x, gamma, beta)
            skips.append(x)
        x = self.up[0](skips[2])
        x = self.up[1](torch.cat([x, skips[1]], 1))
        x = self.up[2](torch.cat([x, skips[0]], 1))
        return torch.tanh(self.to_rgb(x)), modulation


class PatchDiscriminator(nn.Module):
    """PatchGAN conditioned on the target labels; returns logits and the features used for feature matching."""

    def __init__(self, num_classes: int, base: int = 32) -> None:
        super().__init__()
        chans = stage_channels(base)
        ins = [3 + num_classes] + chans[:-1]
        self.blocks = nn.ModuleList(
            nn.Sequential(spectral_norm(nn.Conv2d(i, o, 4, 2, 1)), nn.LeakyReLU(LEAK)) for i, o in zip(ins, chans)
        )
        self.head = spectral_norm(nn.Conv2d(chans[-1], 1, 3, 1, 1))

    def forward(self, image: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, feats = torch.cat([image, onehot], 1), []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False)
        self.n1 = _norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.n2 = _norm(cout)
        self.skip = None if (cin == cout and stride == 1) else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.n1(self.c1(x)))
        y = self.n2(self.c2(y))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class LightDeepLabV3(nn.Module):
    """S: DeepLabV3 (dilated residual backbone + ASPP) at a quarter of the usual channels.

    Output stride 8 (dilations in the last stage instead of striding), ASPP with
    rates 6/12/18 and image pooling, 64 channels instead of 256.
    """

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1, bias=False), _norm(w), nn.ReLU())
        self.layer1 = _ResBlock(w, w * 2, stride=2)
        self.layer2 = _ResBlock(w * 2, w * 4, stride=2)
        self.layer3 = _ResBlock(w * 4, w * 4, dilation=2)
        aspp = w * 4
        self.aspp = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(w * 4, aspp, 1, bias=False), _norm(aspp), nn.ReLU())]
            + [
                nn.Sequential(nn.Conv2d(w * 4, aspp, 3, padding=r, dilation=r, bias=False), _norm(aspp), nn.ReLU())
                for r in (6, 12, 18)
            ]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(w * 4, aspp, 1), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(aspp * 5, aspp, 1, bias=False), _norm(aspp), nn.ReLU())
        self.classifier = nn.Conv2d(aspp, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = self.layer3(self.layer2(self.layer1(self.stem(image))))
        pooled = self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        x = self.project(torch.cat([b(x) for b in self.aspp] + [pooled], 1))
        return F.interpolate(self.classifier(x), size=(h, w), mode="bilinear", align_corners=False)
