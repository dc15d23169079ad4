"""Self-supervised training pairs: one random warp applied to the photo and its labels.

Each training step warps (I, P) into (I_aug, P_aug) with a random horizontal flip,
scale, rotation, translation and a thin-plate-spline (TPS) warp, all through ONE
sampling grid, so the photo and its labels stay aligned pixel for pixel.  The
photo is resampled bilinearly; the labels with nearest-neighbour sampling of the
class-index map, so they stay pure class indices (never blended).  Both use
reflection padding, so no pixel is undefined (black borders would teach G to
paint black where the target layout moved content away from the edge).

All ranges scale with `strength` in [0, 1] (see augmentation_strength): at 0 the
warp is the identity, at 1 it is the widest the training should see.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Share of training over which the strength ramps from 0 to 1.
RAMP_FRACTION = 0.6


def augmentation_strength(step: int, total: int) -> float:
    """Warp strength for training step `step` (0-based) of `total`: a linear ramp
    from ~0 to 1.0 over the first 60% of training, then 1.0.

    Why a ramp: early on G cannot yet reproduce the photo, and large warps make
    the task (and the GAN) unstable; small warps first let it learn the textures,
    then the warps grow towards the kind of re-arrangement a painter's target
    asks for.  The last 40% at full strength lets it settle on that hardest
    distribution instead of chasing a moving one.
    """
    if total <= 0:
        raise ValueError(f"total steps must be positive, got {total}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    ramp = max(1.0, RAMP_FRACTION * total)
    return float(min(1.0, (step + 1) / ramp))


@dataclass(frozen=True)
class WarpRanges:
    """Ranges of the random warp at strength 1 (each is multiplied by strength).

    Coordinates are fractions of the image side.  The TPS control grid is
    `tps_grid` x `tps_grid`; its points move by at most `tps_jitter`, which stays
    well under half the control spacing (1/(tps_grid-1)) so the warp never folds.
    """

    flip_probability: float = 0.5
    scale: float = 0.35  # zoom factor in [1 - s*scale, 1 + s*scale]
    rotation_deg: float = 20.0
    translation: float = 0.2
    tps_jitter: float = 0.08
    tps_grid: int = 4


DEFAULT_RANGES = WarpRanges()


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """Thin-plate radial basis U(r) = r^2 log r^2 (0 at r = 0)."""
    return r2 * torch.log(r2.clamp_min(1e-12))


@functools.lru_cache(maxsize=8)
def _tps_weights(height: int, width: int, g: int, device: str) -> torch.Tensor:
    """(H*W, K) matrix M such that M @ displaced evaluates, at every output pixel
    centre, the thin-plate spline mapping the g x g control grid to `displaced`.

    Closed form: with U = [r^2 log r^2] between control points and Q = [1, x, y],
    the spline's coefficients are [[U, Q], [Q^T, 0]]^-1 [displaced; 0], so M is the
    pixels' basis [U(p, c), 1, x, y] times the first K columns of that inverse.
    The control grid is fixed, so M depends only on the size: cached."""
    dtype = torch.float64  # the (K+3)x(K+3) system is small; double keeps it well conditioned
    lin = torch.linspace(-1, 1, g, dtype=dtype, device=device)
    cy, cx = torch.meshgrid(lin, lin, indexing="ij")
    c = torch.stack([cx, cy], dim=-1).reshape(-1, 2)  # (K, 2)
    k = c.shape[0]
    q = torch.cat([torch.ones(k, 1, dtype=dtype, device=device), c], dim=1)
    system = torch.zeros(k + 3, k + 3, dtype=dtype, device=device)
    system[:k, :k] = _tps_kernel(torch.cdist(c, c).square())
    system[:k, k:] = q
    system[k:, :k] = q.T
    inverse = torch.linalg.inv(system)[:, :k]  # (K+3, K)
    p = _pixel_centres(height, width, dtype, device)
    basis = torch.cat(
        [_tps_kernel(torch.cdist(p, c).square()), torch.ones(p.shape[0], 1, dtype=dtype, device=device), p], dim=1
    )  # (HW, K+3)
    return (basis @ inverse).to(torch.float32)


def _control_points(g: int, device: torch.device | str) -> torch.Tensor:
    lin = torch.linspace(-1, 1, g, device=device)
    cy, cx = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([cx, cy], dim=-1).reshape(-1, 2)


def _pixel_centres(height: int, width: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """(H*W, 2) output pixel centres in normalised (x, y), as grid_sample reads them
    with align_corners=False."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(-1, 2)


def random_grid(
    n: int,
    height: int,
    width: int,
    strength: float,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    ranges: WarpRanges = DEFAULT_RANGES,
) -> torch.Tensor:
    """A random sampling grid (N, H, W, 2) for F.grid_sample (align_corners=False).

    Parameters are drawn from `generator` in a fixed order (on the generator's
    device), so a seed gives the same warp whatever device the images are on."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    s = float(strength)
    gdev = generator.device

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
        return (torch.rand(*shape, generator=generator, device=gdev) * 2 - 1).to(device)

    flip = (torch.rand(n, generator=generator, device=gdev) < ranges.flip_probability * s).to(device)
    scale = 1 + ranges.scale * s * uniform(n)
    angle = math.radians(ranges.rotation_deg) * s * uniform(n)
    shift = 2 * ranges.translation * s * uniform(n, 2)  # x2: normalised coords span 2
    g = ranges.tps_grid
    jitter = 2 * ranges.tps_jitter * s * uniform(n, g * g, 2)

    # 1) non-rigid TPS warp of the output plane (control grid moved by jitter).
    device = torch.device(device)
    weights = _tps_weights(height, width, g, str(device))
    warped = weights @ (_control_points(g, device).unsqueeze(0) + jitter)  # (N, HW, 2)

    # 2) similarity transform (flip, scale, rotation, shift) in square-pixel units,
    #    so a rotation of a wide image is a rotation and not a shear.
    aspect = torch.tensor([width, height], device=device, dtype=torch.float32) / max(width, height)
    u = warped * aspect
    u = torch.where(flip[:, None, None], u * torch.tensor([-1.0, 1.0], device=device), u)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (N,2,2)
    # Sampling the input at u / scale zooms in for scale > 1.
    u = (u @ rot.transpose(1, 2)) / scale[:, None, None]
    grid = u / aspect + shift[:, None, :]
    return grid.reshape(n, height, width, 2)


def apply_grid(image: torch.Tensor, labels: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample image (N,C,H,W) bilinearly and labels (N,H,W) by nearest neighbour
    with the same grid (N,h,w,2); reflection padding for both."""
    image_aug = F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="reflection", align_corners=False
    )
    # Class indices as float32 are exact far beyond any palette size; nearest
    # sampling picks one input pixel, so no index is ever blended.
    labels_aug = F.grid_sample(
        labels.unsqueeze(1).to(torch.float32),
        grid.to(torch.float32),
        mode="nearest",
        padding_mode="reflection",
        align_corners=False,
    )
    return image_aug, labels_aug.squeeze(1).round().to(labels.dtype)


def random_warp(
    image: torch.Tensor,
    labels: torch.Tensor,
    strength: float,
    generator: torch.Generator,
    *,
    ranges: WarpRanges = DEFAULT_RANGES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a photo (N,3,H,W) float and its class-index map (N,H,W) long with one
    random grid.  strength 0 returns the inputs themselves (exact identity)."""
    if image.ndim != 4:
        raise ValueError(f"image must be (N, C, H, W), got shape {tuple(image.shape)}")
    n, _, h, w = image.shape
    if labels.shape != (n, h, w):
        raise ValueError(f"labels must be (N, H, W) = {(n, h, w)} to match the image, got {tuple(labels.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor, got {image.dtype}")
    if labels.is_floating_point():
        raise ValueError(f"labels must be an integer class-index tensor, got {labels.dtype}")
    if strength == 0:
        return image, labels
    grid = random_grid(n, h, w, strength, generator, device=image.device, ranges=ranges)
    return apply_grid(image, labels, grid)


class Augmenter:
    """random_warp with the strength schedule of a training run of `total` steps."""

    def __init__(self, total_steps: int, seed: int = 0, ranges: WarpRanges = DEFAULT_RANGES) -> None:
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        self.total_steps = total_steps
        self.ranges = ranges
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        strength = augmentation_strength(step, self.total_steps)
        return random_warp(image, labels, strength, self.generator, ranges=self.ranges)

    def state_dict(self) -> dict:
        """For checkpoints: resuming continues the same random sequence."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
