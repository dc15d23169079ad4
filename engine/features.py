"""Deep features for the semantics-aware patch coherence loss.

The paper compares patches on the first two stages of an ImageNet VGG19
(relu1_2 and relu2_2). Those weights are used when they are on the machine:
a path given by --vgg-weights, the SEMANTIC_ANALOGY_VGG19 environment variable,
or torchvision's cache (``semantic-analogy download-weights`` puts them there).
Nothing is ever downloaded implicitly.

Without them the loss runs on a weight-free two-stage descriptor (see
PixelDescriptor); BENCHMARKS.md records how the two compare.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import EngineError

log = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's file name for IMAGENET1K_V1
ENV_VAR = "SEMANTIC_ANALOGY_VGG19"


def default_vgg_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def find_vgg_weights(explicit: str | os.PathLike | None = None) -> Path | None:
    """The VGG19 state dict to use, or None when none is on this machine."""
    for source, value in (("--vgg-weights", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise EngineError(f"{source} points to {path}, which is not a file; fix the path or leave it unset")
            return path
    path = default_vgg_path()
    return path if path.is_file() else None


def download_vgg_weights(progress: bool = True) -> Path:
    """Fetch torchvision's ImageNet VGG19 weights into its cache (needs internet)."""
    from torchvision.models import VGG19_Weights

    try:
        VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=progress, check_hash=True)
    except Exception as exc:  # network errors come in many types
        raise EngineError(
            f"could not download the VGG19 weights ({exc}). Without internet, copy {VGG19_FILE} "
            f"to {default_vgg_path()} or set {ENV_VAR} to its path"
        ) from exc
    return default_vgg_path()


class VGGFeatures(nn.Module):
    """relu1_2 and relu2_2 of VGG19, for images in [-1, 1]."""

    name = "vgg19"

    def __init__(self, state_dict_path: Path) -> None:
        super().__init__()
        from torchvision.models import vgg19

        net = vgg19(weights=None)
        try:
            state = torch.load(state_dict_path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:
            raise EngineError(f"{state_dict_path} is not a torchvision VGG19 state dict ({exc}); delete or replace it") from exc
        self.stage1 = net.features[:4]
        self.stage2 = net.features[4:9]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1) / 2 - self.mean) / self.std
        f1 = self.stage1(x)
        return [f1, self.stage2(f1)]


class PixelDescriptor(nn.Module):
    """Weight-free two-stage descriptor: colour at full resolution, then colour and
    luminance gradients at half resolution.

    Why this one: for a single image, what makes a patch "belong" to a source texture is
    its colour statistics and its local structure; 3x3 patches of these two stages
    cover 3x3 and 6x6 pixels, the same footprints as VGG's relu1_2/relu2_2 patches.
    Random convolution features were the other candidate; they cost more and are no
    more discriminative on colour textures (BENCHMARKS.md).
    """

    name = "pixels"

    def __init__(self) -> None:
        super().__init__()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
        self.register_buffer("kernels", torch.stack([sobel, sobel.t()]).unsqueeze(1))
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        half = F.avg_pool2d(image, 2)
        lum = (half * self.luma).sum(1, keepdim=True)
        grads = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), self.kernels)
        return [image, torch.cat([half, 2 * grads], 1)]


def build_feature_extractor(vgg_weights: str | None = None) -> nn.Module:
    path = find_vgg_weights(vgg_weights)
    if path is not None:
        return VGGFeatures(path)
    # Once per training: the daemon relays it to that job's client (SPEC.md, warnings).
    log.warning(
        "VGG19 weights not found (run `semantic-analogy download-weights` or set %s); "
        "using the weight-free patch descriptor",
        ENV_VAR,
    )
    return PixelDescriptor()
