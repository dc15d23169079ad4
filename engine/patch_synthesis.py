"""Label-guided patch synthesis: the photo re-arranged to a target layout from its own patches.

Coarse-to-fine nearest-neighbour patch synthesis in the spirit of GPNN
(Granot et al. 2022) and Image Analogies' "texture by numbers": at every level
of an image pyramid each output patch takes its nearest source patch *of the
same class* (the class at the patch centre) under a guide made of

  * the label layout (one-hot classes and the distance to the nearest class
    boundary), target side vs source side,
  * the guide image's colours when there is one (the GAN's upsampled output
    for `gan+patch`), vs the source's colours,
  * the current estimate (the previous level's result, upsampled), vs the
    source blurred the same way (the source itself on later passes),

the matched patches are blended by voting (source pixels of the output pixel's
own class, or right at a class border of a neighbouring patch's class) and the
result is upsampled to the next level.
The search is a randomised PatchMatch (engine/patchmatch.py).

With a mask only the masked pixels are synthesised; the pixels around them are
kept fixed at the source (matched to themselves), so patches straddling the
mask border blend into the untouched surroundings, and every pixel outside the
mask is returned exactly as it was.

The estimate is carried as a difference to the source, and a vote is the
centre match plus the mean difference of the other votes to it; both keep the
result bit-exact where the identity mapping wins, so an unchanged layout
reproduces the photo exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import Cancelled, EngineError, LabelError
from .patchmatch import ClassIndex, Search, descriptors, patchmatch, pca_projection
from .progress import Progress

log = logging.getLogger(__name__)

__all__ = ["PatchSettings", "default_patch_size", "synthesize"]


@dataclass(frozen=True)
class PatchSettings:
    """Tuning of the synthesis; the defaults are what BENCHMARKS.md measures."""

    coarsest: int = 32  # longest side of the coarsest pyramid level, in pixels
    ratio: float = 2.0  # size ratio between pyramid levels
    descriptor_dims: int = 24  # PCA dimensions a patch is compared on
    colour_share: float = 2 / 3  # of them, for the colours (when colours take part)
    # Squared-distance weights of the guide's parts (per pixel of a patch).
    label_weight: float = 1.0  # one-hot class maps
    boundary_weight: float = 0.2  # distance to the nearest class boundary
    estimate_weight: float = 1.0  # current estimate vs source colours
    guide_weight: float = 1.0  # guide image vs source colours
    position_weight: float = 1e-3  # pull towards the same place: breaks ties in flat label regions
    coarse_passes: int = 3  # search + vote passes at the coarsest level
    # Search + vote passes at every finer level: each brings the patches nearer the photo's own
    # (4 instead of 2: 0.07 Delta E nearer, texture contrast median 0.87 -> 0.91; BENCHMARKS.md).
    # None: 5 with patches up to 5 px, which cost less per pass, 4 with wider ones: with 7 px
    # patches a fifth pass cost a fifth more time at 572 px for a change within a seed's spread.
    fine_passes: int | None = None
    # Levels with more pixels than this take `large_passes`: a pass costs in proportion to a
    # level's pixels, and by then the layout and most of the texture are settled.
    large_pixels: int = 1 << 17
    large_passes: int = 2
    coarse_iterations: int = 4  # PatchMatch iterations per pass at the coarsest level
    fine_iterations: int = 2  # at finer levels
    fine_steps: tuple[int, ...] = (2, 1)  # propagation distances at finer levels
    fine_radius: int = 4  # random-search window at finer levels (pixels)
    fine_draws: bool = False  # also offer fresh random matches of the class at finer levels
    # Cost discount for matches continuing a neighbour's (see patchmatch): 0.6, not 0.3, keeps
    # neighbouring 5 px patches continuing each other (0.05 ΔE nearer on the random edits;
    # with 7 px patches it moved the 17 targets within a seed's spread; BENCHMARKS.md).
    coherence: float = 0.6
    fill_weight: float = 0.5  # weight of the smooth colour sketch (vs estimate_weight) that starts `patch` mode
    search_pixels: int = 2_000_000  # finer levels with more pixels inherit their matches without searching
    # The vote window at those levels: their matches are the coarser level's, upsampled, so
    # neighbours already agree and a wide window only repeats the same votes (5x the time).
    inherit_vote: int = 3
    # Along a class border, patches centred up to this many pixels away on the other side also
    # vote with their own class's pixels (0: only the pixel's own class votes): a new border
    # takes the soft transition of the photo's borders instead of a hard cut-out edge (0.12 ΔE
    # nearer on scripts/benchmark_edits.py; BENCHMARKS.md). 2: a 5 px patch's radius, so new
    # borders blend as far as the photo's own patches reach across them (0.05-0.06 ΔE nearer
    # than 1 on two draws of random edits; 1 was chosen with plain-mean votes, where 3 washed
    # small shapes out). A small painted shape keeps its core (a 6 px box: its inner 2 px).
    border_blend: int = 2
    vote_sigma: float = 0.0  # Gaussian fall-off of votes from their patch centre (0: uniform)
    # Mean-shift steps of every vote at the levels finer than the coarsest (0: the plain mean):
    # each reweights the votes by their closeness to the current estimate (a Gaussian of
    # `mode_bandwidth` 8-bit colour units), so a pixel takes the colour most of its patches
    # agree on. Where patches disagree across a zebra's stripe the mean was grey and the stripes
    # came out soft (~0.1 ΔE nearer the photo on scripts/benchmark_edits.py; BENCHMARKS.md).
    # Not at the coarsest level: there the layout is decided, and a mean keeps smooth regions
    # smooth (mode-seeking cut a sky's haze into a cloud bank with a hard edge, tree/1).
    mode_steps: int = 1
    mode_bandwidth: float = 30.0
    # At levels finer than the guide its weight is scaled by (guide size / level size) ** this: an
    # upscaled guide holds no detail beyond its own resolution, the source patches do.
    guide_falloff: float = 2.0
    # In regions that only continue a class around them the guide gives way to the class
    # colour sketch (see guide_for_fills): a GAN's output there holds ghosts of what was removed.
    guide_fills: bool = True
    # Classes whose photo is smooth (the median of each pixel's colour difference to its 3x3
    # mean under `smooth_spread` 8-bit units: a sky 0.56, a studio backdrop 0.33; not skin 0.93,
    # hair 2.4, grass 5.1) are pulled towards their own height in the photo by this weight on
    # the squared row offset (in image heights): a sky's tone follows its height, and without
    # it a gap opened below the horizon beside a tree filled with a deep-blue block copied from
    # beside the crown, where the classes sit alike (30: robust on a synthetic gap beside a
    # post over four seeds, 10 not; on all levels: at the coarsest alone the block came back
    # at the finer ones; BENCHMARKS.md). 0: off.
    smooth_row_weight: float = 30.0
    smooth_spread: float = 0.8
    # ...and only those whose tone follows their height: the rows' colour ramp (`class_trend`)
    # explains at least this share of the class's colour variance (the tree's sky 0.98; the
    # face's backdrop 0.15, a grey wall with a blue sign on its left, which the pull copied
    # across a gap high up where the hair had been: 0.3-0.6 ΔE farther on face edits).
    height_share: float = 0.5

    def passes_at(self, patch_size: int) -> int:
        """Search + vote passes at a finer level (not the coarsest, not a large one) for `patch_size` px patches."""
        if self.fine_passes is not None:
            return self.fine_passes
        return 5 if patch_size <= 5 else 4

    def check(self, patch_size: int) -> None:
        if patch_size < 3 or patch_size % 2 == 0:
            raise EngineError(f"patch_size must be an odd number of pixels, at least 3; got {patch_size}")
        if self.coarsest < patch_size:
            raise EngineError(f"the coarsest level ({self.coarsest} px) must be at least one patch ({patch_size} px) wide")
        if self.ratio <= 1:
            raise EngineError(f"the pyramid ratio must be above 1, got {self.ratio}")
        if self.descriptor_dims < 1 or min(self.coarse_passes, self.passes_at(patch_size), self.large_passes) < 1:
            raise EngineError("descriptor_dims, coarse_passes, fine_passes and large_passes must be at least 1")
        if self.mode_steps < 0 or self.mode_bandwidth <= 0:
            raise EngineError(f"mode_steps must be 0 or more and mode_bandwidth above 0; got {self.mode_steps}, {self.mode_bandwidth}")
        if self.smooth_row_weight < 0 or self.smooth_spread <= 0:
            raise EngineError(f"smooth_row_weight must be 0 or more and smooth_spread above 0; got {self.smooth_row_weight}, {self.smooth_spread}")
        if not 0 <= self.height_share <= 1:
            raise EngineError(f"height_share is a share of a class's colour variance, from 0 to 1; got {self.height_share}")
        if self.border_blend < 0:
            raise EngineError(f"border_blend is a distance in pixels, 0 or more; got {self.border_blend}")


# --------------------------------------------------------------------------- inputs


def _rgb(image: np.ndarray, what: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        got = f"shape {image.shape} and type {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise EngineError(f"the {what} must be an 8-bit RGB or RGBA array (H, W, 3|4), got {got}")
    if shape is not None and image.shape[:2] != shape:
        raise EngineError(f"the {what} is {image.shape[1]}x{image.shape[0]} but the source image is {shape[1]}x{shape[0]}")
    return np.ascontiguousarray(image[..., :3])


def _index_map(labels: np.ndarray, what: str, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        got = f"shape {labels.shape} and type {labels.dtype}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise LabelError(f"the {what} must be a 2-D integer class-index map (decode the painted colours first), got {got}")
    if labels.shape != shape:
        raise LabelError(
            f"the {what} is {labels.shape[1]}x{labels.shape[0]} but the source image is {shape[1]}x{shape[0]}; "
            "paint the labels at the image's size"
        )
    return labels


def _compact_classes(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Both maps renumbered 0..C-1 over the source's classes; target classes must exist in the source."""
    lo = int(min(source.min(), target.min()))
    hi = int(max(source.max(), target.max()))
    if lo >= 0 and hi < 1 << 20:  # bincount beats sorting millions of pixels
        present = np.bincount(source.ravel(), minlength=hi + 1) > 0
        used = np.bincount(target.ravel(), minlength=hi + 1) > 0
        missing = np.flatnonzero(used & ~present)
        classes = np.flatnonzero(present)
        lut = np.zeros(hi + 1, dtype=np.int64)
        lut[classes] = np.arange(classes.size)
        src, tgt = lut[source], lut[target]
    else:
        classes, src = np.unique(source, return_inverse=True)
        tclasses, tinv = np.unique(target, return_inverse=True)
        missing = np.setdiff1d(tclasses, classes)
        tgt = np.searchsorted(classes, tclasses)[tinv]
        src, tgt = src.reshape(source.shape), tgt.reshape(target.shape)
    if missing.size:
        raise LabelError(
            f"the target label map uses class(es) {missing.tolist()} that the source label map does not have; "
            "every class painted in the target must also be painted somewhere in the source"
        )
    dtype = np.uint8 if classes.size <= 256 else np.int32
    return src.astype(dtype), tgt.astype(dtype), int(classes.size)


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device cuda was asked for but PyTorch sees no CUDA GPU here; use cpu or auto")
    return dev


# --------------------------------------------------------------------------- pyramids


def level_sizes(height: int, width: int, coarsest: int, ratio: float, patch_size: int) -> list[tuple[int, int]]:
    """Pyramid sizes from coarsest to full, the coarsest with its longest side near `coarsest`
    and its shortest side at least one patch."""
    n = max(0, math.ceil(math.log(max(height, width) / coarsest) / math.log(ratio) - 1e-9))
    while n > 0 and min(height, width) / ratio**n < patch_size:
        n -= 1
    return [(max(1, round(height / ratio**i)), max(1, round(width / ratio**i))) for i in range(n, -1, -1)]


def _downsample_labels(labels: torch.Tensor, size: tuple[int, int], num_classes: int) -> torch.Tensor:
    """Majority class over each output pixel's area (one class map at a time: bounded memory)."""
    best = torch.full(size, -1.0, device=labels.device)
    out = torch.zeros(size, dtype=labels.dtype, device=labels.device)
    for c in range(num_classes):
        share = F.interpolate((labels == c).float()[None, None], size=size, mode="area")[0, 0]
        take = share > best
        best = torch.where(take, share, best)
        out[take] = c
    return out


def _downsample_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) -> (h, w, 3) float, antialiased."""
    x = image.permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0).contiguous()


def dilate(mask: torch.Tensor) -> torch.Tensor:
    """One step of 8-neighbour (chessboard) dilation of a (H, W) bool map, separably."""
    rows = mask.clone()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.clone()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def boundary_distance(labels: torch.Tensor, reach: int) -> torch.Tensor:
    """Chessboard distance of every pixel to the nearest class boundary, capped at `reach`, as uint8.

    Boolean shifts rather than max-pooling: this runs on every full-resolution level.
    """
    front = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    vert = labels[1:] != labels[:-1]
    front[1:] |= vert
    front[:-1] |= vert
    horiz = labels[:, 1:] != labels[:, :-1]
    front[:, 1:] |= horiz
    front[:, :-1] |= horiz
    dist = torch.full(labels.shape, reach, dtype=torch.uint8, device=labels.device)
    for i in range(reach):
        dist.masked_fill_(front & (dist == reach), i)
        if i + 1 < reach:
            front = dilate(front)
    return dist


def _axis(coords: torch.Tensor, size: int, origin: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear-interpolation taps along one axis: two local indices, their weights' fraction and validity."""
    c = coords.clamp(0, size - 1)
    i0 = c.floor().long()
    i1 = (i0 + 1).clamp(max=size - 1)
    frac = c - i0
    l0, l1 = i0 - origin, i1 - origin
    v0 = (l0 >= 0) & (l0 < length)
    v1 = (l1 >= 0) & (l1 < length)
    return l0.clamp(0, length - 1), l1.clamp(0, length - 1), frac, v0, v1


def resample(
    image: torch.Tensor,
    full: tuple[int, int],
    origin: tuple[int, int],
    rows: torch.Tensor,
    cols: torch.Tensor,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Bilinear resampling (torch's align_corners=False convention) of a level onto a grid of another level.

    `image` (h, w, C) is the part of a level of size `full` whose top-left pixel is
    `origin`; values outside that part count as zero (a difference map that is
    zero outside its box). `rows`/`cols` are pixel indices on a level of size
    `out_size`. Separable, so a band of rows costs two small gathers.
    """
    (fh, fw), (oy, ox) = full, origin
    h, w = image.shape[:2]
    ry = (rows.float() + 0.5) * (fh / out_size[0]) - 0.5
    rx = (cols.float() + 0.5) * (fw / out_size[1]) - 0.5
    y0, y1, fy, vy0, vy1 = _axis(ry, fh, oy, h)
    x0, x1, fx, vx0, vx1 = _axis(rx, fw, ox, w)
    img = image.float() if image.dtype != torch.float32 else image
    a = img.index_select(0, y0) * (vy0 * (1 - fy))[:, None, None]
    a += img.index_select(0, y1) * (vy1 * fy)[:, None, None]
    b = a.index_select(1, x0) * (vx0 * (1 - fx))[None, :, None]
    b += a.index_select(1, x1) * (vx1 * fx)[None, :, None]
    return b


def push_pull(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(C, H, W) values filled in where `known` (H, W) is false, smoothly from the known ones.

    Push-pull (Gortler et al. 1996): average the known values down a pyramid,
    then fill each level's holes from the level below on the way up.
    """
    w = known.float()[None]
    if bool(w.all()) or not bool(w.any()) or min(w.shape[1:]) < 2:
        mean = (values * w).sum((1, 2), keepdim=True) / w.sum().clamp(min=1)
        return torch.where(w > 0, values, mean.expand_as(values))
    v = F.avg_pool2d((values * w)[None], 2, ceil_mode=True)[0]
    cw = F.avg_pool2d(w[None], 2, ceil_mode=True)[0]
    coarse = push_pull(v / cw.clamp(min=1e-6), cw[0] > 0)
    up = F.interpolate(coarse[None], size=values.shape[1:], mode="bilinear", align_corners=False)[0]
    return torch.where(w > 0, values, up)


def class_trend(image: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    """(h, w, 3): a smooth colour ramp over the image fitted to the pixels of `sel` (one class's).

    A sky lightens towards the horizon and a field darkens with distance: a class's
    colour follows the place more than its neighbours do. Fitted by least squares on
    the pixels of the class, evaluated everywhere (held at its value at the class's top and
    bottom rows beyond them).
    """
    h, w = sel.shape
    dev = image.device
    yy = torch.linspace(-1, 1, h, device=dev)[:, None].expand(h, w)
    ys = yy[sel]
    if ys.numel():
        # Held at the class's own top and bottom rows beyond them: a sky's quadratic, carried
        # below the horizon into a gap opened in the ground, ran past white into a cream haze
        # that only the photo's clouds matched. (The class's own pixels keep their heights.)
        yy = yy.clamp(float(ys.min()), float(ys.max()))
    # Quadratic in y, nothing in x: photos' smooth gradients run mostly with height (sky to
    # horizon, near to far ground); a curve across x extrapolates wildly past a class's edge.
    basis = torch.stack([torch.ones_like(yy), yy, yy * yy], -1)  # (h, w, 3)
    a, b = basis[sel].double(), image[sel].double()
    if a.shape[0] < a.shape[1]:  # too few pixels for a ramp: their mean colour
        mean = b.mean(0) if a.shape[0] else image.reshape(-1, image.shape[-1]).double().mean(0)
        return mean.float().expand(h, w, -1).clone()
    # A small ridge keeps the fit tame for a class along a line or in one row.
    coef = torch.linalg.solve(a.T @ a + 1e-3 * a.shape[0] * torch.eye(a.shape[1], dtype=a.dtype, device=dev), a.T @ b)
    return (basis.double() @ coef).float()


def height_share(image: torch.Tensor, sel: torch.Tensor, within: torch.Tensor | None = None,
                 trend: torch.Tensor | None = None) -> float:
    """Share of the colour variance of `image` over `within` (default: `sel`) that the height
    ramp fitted to `sel` (`class_trend`; `trend` where the caller has it already) explains: near
    1 for a sky, near 0 for a wall whose tone changes across it; 0 for a flat class, which has no
    tone for its height to explain."""
    within = sel if within is None else within
    colours = image[within].double()
    total = float((colours - colours.mean(0)).square().sum())
    if total == 0:
        return 0.0
    trend = class_trend(image, sel) if trend is None else trend
    residual = float((colours - trend[within].double()).square().sum())
    return 1 - residual / total


def class_fill(image: torch.Tensor, source_labels: torch.Tensor, target_labels: torch.Tensor, num_classes: int,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """A smooth (h, w, 3) colour sketch of the target layout: the source where the class is
    unchanged, elsewhere the class's colour ramp (`class_trend`) plus the difference of the
    class's nearby source pixels to that ramp pulled in smoothly (push-pull). Meant for the
    coarsest level only. With `mask` (the pixels to synthesise), every masked pixel is
    filled and only unmasked pixels serve as known colours: the masked rim of a removed
    object holds its halo, which would tint the whole fill.

    Push-pull alone fills a hole with the average of its rim: where a tree was removed
    from a sky whose rim is mostly above it, the whole hole took the upper sky's deeper
    blue down to the horizon (a bluish block); the ramp carries the gradient across.
    """
    out = image.float().clone()
    changed = source_labels != target_labels
    if mask is not None:
        changed = changed | mask
    for c in torch.unique(target_labels[changed]).tolist():
        known = source_labels == c
        if not bool(known.any()):
            continue  # a class too small for this level: its place keeps the source's colours
        if mask is not None and bool((known & ~mask).any()):
            known = known & ~mask
        # Pixels along a class border hold a blend of both classes at a coarse level (the
        # sky beside a tree's foot came out a warm grey); only the class's inner pixels count.
        inner = known & ~dilate(source_labels != c)
        if bool(inner.any()):
            known = inner
        trend = class_trend(image.float(), known)
        rest = push_pull((image.float() - trend).permute(2, 0, 1), known).permute(1, 2, 0)
        where = changed & (target_labels == c)
        out[where] = (trend + rest)[where].clamp(0, 255)
    return out


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(h, w, C) float blurred with a separable Gaussian (replicated borders)."""
    r = max(1, math.ceil(2.5 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, device=x.device, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[-1]
    t = x.permute(2, 0, 1)[None]
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return t[0].permute(1, 2, 0)


def _components(member: torch.Tensor, max_iterations: int = 4096) -> torch.Tensor:
    """(h, w) int64 ids of the 8-connected components of `member` (-1 outside), by propagating
    the largest flat index through each component (maps here are at most a few hundred px)."""
    h, w = member.shape
    ids = torch.where(member, torch.arange(h * w, device=member.device).view(h, w), -1).double()
    for _ in range(max_iterations):
        grown = F.max_pool2d(ids[None, None], 3, 1, 1)[0, 0]
        grown = torch.where(member, grown, -1.0)
        if torch.equal(grown, ids):
            break
        ids = grown
    return ids.long()


def fill_regions(source_labels: torch.Tensor, target_labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(h, w) bool: the pixels to synthesise that continue a class already there around them.

    A connected region of one target class among the pixels to synthesise is a *fill*
    when most of its rim that is kept (not synthesised itself) is that same class: the
    sky that takes over a removed tree, the grass where a zebra stood. It has no new
    structure to lay out; the rest (an object moved to a new place or grown, kept pixels
    of another class around most of it) is where a guide's layout helps.
    """
    changed = source_labels != target_labels
    todo = changed if mask is None else (changed | mask)
    out = torch.zeros_like(todo)
    for c in torch.unique(target_labels[todo]).tolist():
        member = todo & (target_labels == c)
        ids = _components(member)
        # Rim: outside pixels next to a component; each counts for the component it touches.
        touch = F.max_pool2d(ids.double()[None, None], 3, 1, 1)[0, 0].long()
        rim = ~todo & (touch >= 0)
        if not bool(rim.any()):
            continue
        same = (target_labels == c) & ~todo
        n = member.numel()
        total = torch.bincount(touch[rim], minlength=n)
        alike = torch.bincount(touch[rim & same], minlength=n)
        # Only a region where the class changed: pixels that keep their class (a mask given
        # for retouching) follow the guide as asked.
        has_change = torch.bincount(ids[member & changed], minlength=n) > 0
        is_fill = (alike * 2 > total) & has_change
        out |= member & is_fill[ids.clamp(min=0)]
    return out


def guide_for_fills(guide: torch.Tensor, full: "_Level", num_classes: int, work_side: int = 128) -> torch.Tensor:
    """The guide as (h, w, 4): its colours and a weight (alpha) that is 0 in `fill_regions`.

    A single-image GAN turns the photo into the target through features of the photo at
    the same place: where an object was removed its output keeps a pale, sharp-edged
    silhouette of it (a light tree in the sky), and patch synthesis, matching the guide's
    colours, copies it. In a fill region the labels say all there is to say: there the
    synthesis is that of `patch` (the class colour sketch, then its own estimate), and the
    guide counts everywhere else, blended across a pixel or two outside the fill: blended
    across its border instead, the guide's ghost reached 2 px into every fill, much of a
    thin one (tree/3's crescent of sky: ghost score 0.071 against a chance level of 0.038).
    """
    gh, gw = guide.shape[:2]
    scale = min(1.0, work_side / max(gh, gw))
    size = (max(1, round(gh * scale)), max(1, round(gw * scale)))
    sl = _downsample_labels(full.src_lab, size, num_classes)
    tl = _downsample_labels(full.tgt_lab, size, num_classes)
    mask = None
    if full.mask is not None:
        mask = F.interpolate(full.mask.float()[None, None], size=size, mode="area")[0, 0] > 0
    fills = fill_regions(sl, tl, mask)
    weight = 1 - _blur(fills.float()[..., None], 1.0).clamp(0, 1)
    weight = F.interpolate(weight.permute(2, 0, 1)[None], size=(gh, gw), mode="bilinear", align_corners=False)[0]
    inside = F.interpolate(fills.float()[None, None], size=(gh, gw), mode="nearest")[0] > 0
    weight = torch.where(inside, torch.zeros_like(weight), weight)
    return torch.cat([guide[..., :3].float(), weight.permute(1, 2, 0)], -1)


# --------------------------------------------------------------------------- features


class LabelFeatures:
    """The label part of one side's (source or target) guide at one pyramid level, built per band.

    Channels: one-hot classes and the distance to the nearest class boundary, each
    scaled by the square root of its weight so that squared distances add up as the
    weights say. It does not change between the passes of a level, so its
    descriptors are computed once per level (see _synthesize_level).
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, dist: torch.Tensor, reach: int,
                 label_weight: float, boundary_weight: float) -> None:
        self.labels, self.num_classes, self.dist = labels, num_classes, dist
        self.sl, self.sb = math.sqrt(label_weight), math.sqrt(boundary_weight) / reach
        self.channels = num_classes + 1

    def grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        lab = self.labels.index_select(0, rows).index_select(1, cols)
        dist = self.dist.index_select(0, rows).index_select(1, cols)
        parts = [F.one_hot(lab.long(), self.num_classes).float().mul_(self.sl), dist.float().mul_(self.sb)[..., None]]
        return torch.cat(parts, -1).movedim(-1, 0)


class ColourFeatures:
    """The colour part of one side's guide (the source's colours, or the target's mix of guide
    and estimate), scaled by the square root of its weight; it changes with every pass."""

    channels = 3

    def __init__(self, colour: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], weight: float) -> None:
        self.colour, self.sc = colour, math.sqrt(weight) / 255

    def grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return (self.colour(rows, cols) * self.sc).movedim(-1, 0)


# --------------------------------------------------------------------------- voting


def _vote(
    grid: torch.Tensor,
    free: torch.Tensor,
    free_y: torch.Tensor,
    free_x: torch.Tensor,
    target_labels: torch.Tensor,
    source: torch.Tensor,
    source_labels: torch.Tensor,
    source_shape: tuple[int, int],
    patch_size: int,
    sigma: float = 0.0,
    chunk: int = 1 << 17,
    blend: int = 0,
    modes: int = 0,
    bandwidth: float = 30.0,
) -> torch.Tensor:
    """Colour (M, 3) of every free pixel: the mean of the matched patches covering it.

    A vote counts when its source pixel is of the output pixel's own class or, from a
    patch centred at most `blend` pixels away, of that patch's centre's class: away from
    class borders only the pixel's own class votes, so no colour of a class that is not
    there (a removed object's) comes in; along a border the patches centred on either side
    blend as the photo's own borders do, where a class-pure vote cut out hard edges that
    no photo has (a tree painted into a field got a sharp, dark rim). Computed as
    centre + mean(vote - centre) so that agreeing votes give exactly the centre's colour.
    With `sigma` > 0 a vote's weight falls off with its distance from its patch centre
    (sharper, less averaging between disagreeing patches). Each of `modes` mean-shift steps
    then weights every vote by exp(-|vote - estimate|^2 / (2 bandwidth^2)) and takes the
    weighted mean again: the pixel moves towards the colour most of its patches agree on
    instead of the grey between a stripe's black and white votes.

    The source and the grid are padded so that no vote needs a bounds check: the
    source by r pixels of a label no class has (2r + 1 on top), the grid by matches
    to the padding pixel (r, r), whose whole patch is padding.
    """
    hs, ws = source_shape
    bh, bw = grid.shape
    r = patch_size // 2
    dev = free.device
    wsp, bwp = ws + 2 * r, bw + 2 * r
    img = source.view(hs, ws, 3).permute(2, 0, 1)
    srcp = F.pad(img, (r, r, 2 * r + 1, r)).permute(1, 2, 0).contiguous().view(-1, 3)  # uint8 stays uint8: memory
    labp = F.pad(source_labels.view(hs, ws).to(torch.int32), (r, r, 2 * r + 1, r), value=-1).reshape(-1)
    m = grid.long()
    padded = (m // ws + 2 * r + 1) * wsp + m % ws + r
    gridp = _pad_int(padded, r, r * wsp + r).reshape(-1)
    centre_all = source.index_select(0, grid.reshape(-1).index_select(0, free))
    out = torch.empty(free.numel(), 3, device=dev)
    if modes:  # the mean-shift steps hold every vote of a chunk (taps x 16 bytes a pixel)
        chunk = min(chunk, 1 << 15)
    for s in range(0, free.numel(), chunk):
        e = min(free.numel(), s + chunk)
        tl = target_labels[s:e].to(torch.int32)
        centre = centre_all[s:e].float()
        base = (free_y[s:e] + r) * bwp + free_x[s:e] + r
        acc = torch.zeros_like(centre)
        count = torch.zeros(e - s, device=dev)
        if modes:  # every vote of the chunk, channel-first: the steps below work on contiguous rows
            vs = torch.empty(3, patch_size * patch_size, e - s, device=dev)
            oks = torch.empty(patch_size * patch_size, e - s, device=dev)
        tap = 0
        for oy in range(-r, r + 1):
            for ox in range(-r, r + 1):
                wgt = math.exp(-(oy * oy + ox * ox) / (2 * sigma * sigma)) if sigma > 0 else 1.0
                match = gridp.index_select(0, base - (oy * bwp + ox))  # the voting patch's centre
                si = match + (oy * wsp + ox)
                ls = labp.index_select(0, si)
                if blend and max(abs(oy), abs(ox)) <= blend:
                    lq = labp.index_select(0, match)
                    ok = ((ls == tl) | ((ls == lq) & (ls >= 0))).float()
                else:
                    ok = (ls == tl).float()
                if wgt != 1.0:
                    ok *= wgt
                v = srcp.index_select(0, si).float() - centre
                acc += v * ok[:, None]
                count += ok
                if modes:
                    vs[:, tap] = v.t()
                    oks[tap] = ok
                tap += 1
        mean = acc / count[:, None]
        if modes:
            mc = mean.t()  # (3, n)
            for _ in range(modes):
                d2 = (vs[0] - mc[0]).square_()
                d2 += (vs[1] - mc[1]).square_()
                d2 += (vs[2] - mc[2]).square_()
                wv = d2.mul_(-0.5 / (bandwidth * bandwidth)).exp_().mul_(oks)
                total = wv.sum(0)
                shifted = torch.stack([(wv * vs[c]).sum(0) for c in range(3)]) / total.clamp(min=1e-12)
                # Every vote far beyond the bandwidth (weights underflow): keep the mean.
                mc = torch.where(total > 1e-12, shifted, mc)
            mean = mc.t()
        out[s:e] = centre + mean
    return out


def _pad_int(x: torch.Tensor, r: int, value: int) -> torch.Tensor:
    """(h, w) integer tensor padded by r on every side with `value`."""
    out = torch.full((x.shape[0] + 2 * r, x.shape[1] + 2 * r), value, dtype=x.dtype, device=x.device)
    out[r:-r or None, r:-r or None] = x
    return out


# --------------------------------------------------------------------------- synthesis


@dataclass
class _Level:
    size: tuple[int, int]
    src_img: torch.Tensor  # (h, w, 3) float (uint8 at full resolution)
    src_lab: torch.Tensor  # (h, w) class indices
    tgt_lab: torch.Tensor
    mask: torch.Tensor | None  # (h, w) bool: pixels to synthesise


def _bbox(mask: torch.Tensor, margin: int) -> tuple[int, int, int, int]:
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    h, w = mask.shape
    return (
        max(0, int(rows[0]) - margin),
        max(0, int(cols[0]) - margin),
        min(h, int(rows[-1]) + 1 + margin),
        min(w, int(cols[-1]) + 1 + margin),
    )


SMALL_IMAGE = 320  # px, longest side: up to it patches are 5 px wide, above 7


def default_patch_size(shape: tuple[int, int]) -> int:
    """The patch width for an image of `shape` (H, W): 5 px up to SMALL_IMAGE on the longest side, else 7.

    A patch should span one element of a texture and its edges: at 256 px a zebra's
    stripes are 3-4 px wide, and 7 px patches, spanning two, found fewer good matches
    where the stripes take a new direction (0.1 ΔE farther from the photo on
    scripts/benchmark_edits.py); at 572 px 5 px patches see part of one stripe and match
    it ambiguously (the zebra's five targets 0.6 ΔE farther). BENCHMARKS.md has both.
    """
    return 5 if max(shape) <= SMALL_IMAGE else 7


def synthesize(
    source: np.ndarray,
    source_labels: np.ndarray,
    target_labels: np.ndarray,
    *,
    guide: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    patch_size: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Progress], None] | None = None,
    settings: PatchSettings | None = None,
) -> np.ndarray:
    """The source re-arranged to `target_labels` from its own patches, (H, W, 3) uint8.

    source: (H, W, 3|4) uint8 photo (alpha ignored); source_labels/target_labels:
    (H, W) integer class maps; guide: optional (h, w, 3|4) uint8 image the result
    should look like (any size; resampled to each level), else the labels alone
    guide; mask: optional (H, W) bool, only those pixels are synthesised and every
    other pixel is the source's own; patch_size: odd, in pixels (default:
    `default_patch_size`). Deterministic for a seed on a given device.
    Raises Cancelled when `should_stop()` turns true, EngineError/LabelError on
    unusable input.
    """
    settings = settings or PatchSettings()
    src_np = _rgb(source, "source image")
    shape = src_np.shape[:2]
    patch_size = default_patch_size(shape) if patch_size is None else patch_size
    settings.check(patch_size)
    src_lab_np = _index_map(source_labels, "source label map", shape)
    tgt_lab_np = _index_map(target_labels, "target label map", shape)
    guide_np = _rgb(guide, "guide image") if guide is not None else None
    if mask is not None:
        if not isinstance(mask, np.ndarray) or mask.shape != shape:
            got = getattr(mask, "shape", type(mask).__name__)
            raise EngineError(f"the mask must be a (H, W) array the size of the source image {shape}, got {got}")
        mask = mask.astype(bool, copy=False)
        if not mask.any():
            return src_np.copy()
        if mask.all():
            mask = None
    src_lab_np, tgt_lab_np, num_classes = _compact_classes(src_lab_np, tgt_lab_np)
    dev = _resolve_device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    stop = should_stop or (lambda: False)

    sizes = level_sizes(shape[0], shape[1], settings.coarsest, settings.ratio, patch_size)
    levels = _build_pyramid(src_np, src_lab_np, tgt_lab_np, mask, sizes, num_classes, dev)
    smooth = (height_toned_classes(levels, num_classes, settings.smooth_spread, settings.height_share)
              if settings.smooth_row_weight > 0 else None)
    guide_t = torch.tensor(guide_np, device=dev) if guide_np is not None else None
    if guide_t is not None and settings.guide_fills:
        guide_t = guide_for_fills(guide_t, levels[-1], num_classes)

    k = patch_size
    start = time.perf_counter()
    work = [h * w for h, w in sizes]
    prev: dict | None = None
    for li, lv in enumerate(levels):
        if stop():
            raise Cancelled("patch synthesis was stopped")
        prev = _synthesize_level(li, lv, levels, prev, guide_t, num_classes, settings, k, gen, stop, smooth)
        if progress is not None:
            elapsed = time.perf_counter() - start
            done = sum(work[: li + 1])
            progress(
                Progress(
                    step=li + 1,
                    total=len(levels),
                    elapsed_s=elapsed,
                    eta_s=elapsed * (sum(work) - done) / done,
                    losses={"patch_distance": prev["cost"]},
                    stage="apply",
                )
            )
    assert prev is not None
    out = src_np.copy()
    delta, (y0, x0, _, x1), free = prev["delta"], prev["box"], prev["free"]
    bw = x1 - x0
    fy, fx = (free // bw + y0).cpu().numpy(), (free % bw + x0).cpu().numpy()
    values = levels[-1].src_img.reshape(-1, 3).index_select(0, (free // bw + y0) * shape[1] + free % bw + x0).float()
    values = values + delta.reshape(-1, 3).index_select(0, free)
    out[fy, fx] = values.round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    log.debug("patch synthesis %dx%d in %.2f s", shape[1], shape[0], time.perf_counter() - start)
    return out


def height_toned_classes(levels: list["_Level"], num_classes: int, spread: float, share: float,
                         side: int = 256) -> torch.Tensor | None:
    """(C,) bool: the classes whose photo is smooth and toned by height, or None when none is.

    Smooth: the median, over the class's pixels away from its borders, of each pixel's
    absolute colour difference to its 3x3 mean (mean over channels, 8-bit units) is under
    `spread`. Toned by height: its colour ramp over the rows (`class_trend`) explains at least
    `share` of its colour variance there. Both at the level nearest `side` px (the working size
    the thresholds were set at; finer levels hold more of the sensor's noise)."""
    lv = min(levels, key=lambda v: abs(max(v.size) - side))
    img = lv.src_img.float()
    chw = img.permute(2, 0, 1)[None]
    # Each pixel's difference to its 3x3 mean: grain and texture, not a smooth gradient.
    deviation = (chw - F.avg_pool2d(chw, 3, 1, 1, count_include_pad=False)).abs().mean(1)[0]
    out = torch.zeros(num_classes, dtype=torch.bool, device=img.device)
    for c in range(num_classes):
        inner = ~dilate(lv.src_lab != c)
        if not bool(inner.any()) or float(deviation[inner].median()) >= spread:
            continue
        out[c] = height_share(img, lv.src_lab == c, inner) >= share
    return out if bool(out.any()) else None


def _build_pyramid(
    src: np.ndarray,
    src_lab: np.ndarray,
    tgt_lab: np.ndarray,
    mask: np.ndarray | None,
    sizes: list[tuple[int, int]],
    num_classes: int,
    dev: torch.device,
) -> list[_Level]:
    """Levels coarse to fine; each is made from the next finer one."""
    img = torch.tensor(src, device=dev)  # a copy: the caller's array may be read-only
    sl = torch.from_numpy(src_lab).to(dev)
    tl = torch.from_numpy(tgt_lab).to(dev)
    m = torch.from_numpy(mask).to(dev) if mask is not None else None
    out = [_Level(sizes[-1], img, sl, tl, m)]
    for size in reversed(sizes[:-1]):
        img = _downsample_image(img, size)
        sl = _downsample_labels(sl, size, num_classes)
        tl = _downsample_labels(tl, size, num_classes)
        if m is not None:
            # Any masked pixel below marks the coarse pixel: coarse levels cover all the fine work.
            m = F.interpolate(m.float()[None, None], size=size, mode="area")[0, 0] > 0
        out.append(_Level(size, img, sl, tl, m))
    return out[::-1]


def _synthesize_level(
    li: int,
    lv: _Level,
    levels: list[_Level],
    prev: dict | None,
    guide: torch.Tensor | None,
    num_classes: int,
    st: PatchSettings,
    k: int,
    gen: torch.Generator,
    stop: Callable[[], bool],
    smooth: torch.Tensor | None = None,
) -> dict:
    """Search and vote passes at one level; returns its match grid, box, free pixels and difference map."""
    dev = lv.src_lab.device
    h, w = lv.size
    margin = k + max(st.fine_steps, default=1)  # context for the free pixels' patches and propagation
    box = _bbox(lv.mask, margin) if lv.mask is not None else (0, 0, h, w)
    y0, x0, y1, x1 = box
    bh, bw = y1 - y0, x1 - x0
    free_mask = lv.mask[y0:y1, x0:x1] if lv.mask is not None else torch.ones(bh, bw, dtype=torch.bool, device=dev)
    free = torch.nonzero(free_mask.reshape(-1)).flatten()
    fy, fx = free // bw, free % bw
    src_lab_flat = lv.src_lab.reshape(-1)
    tl_free = lv.tgt_lab[y0:y1, x0:x1].reshape(-1)[free]
    full_src = lv.src_img.reshape(-1, 3)

    # Every box pixel starts matched to itself (fixed pixels stay so); free pixels
    # start from the coarser level's matches, repaired where the class is wrong.
    grid = (torch.arange(y0, y1, device=dev)[:, None] * w + torch.arange(x0, x1, device=dev)[None, :]).reshape(-1)
    ident = grid[free]
    if prev is not None:
        grid[free] = _upsample_matches(prev, lv.size, levels[li - 1].size, fy + y0, fx + x0)
    index: ClassIndex | None = None
    bad = src_lab_flat[grid[free]] != tl_free
    if bool(bad.any()):
        grid = _repair(grid, free, fy, fx, bh, bw, tl_free, src_lab_flat, (h, w))
        bad = src_lab_flat[grid[free]] != tl_free
        if bool(bad.any()):
            index = ClassIndex.build(lv.src_lab, num_classes)
            grid[free[bad]] = index.draw(tl_free[bad], gen)

    def vote(window: int = k, modes: int = st.mode_steps if li > 0 else 0) -> torch.Tensor:
        colours = _vote(grid.view(bh, bw), free, fy, fx, tl_free, full_src, src_lab_flat, (h, w), window, st.vote_sigma,
                        blend=st.border_blend, modes=modes, bandwidth=st.mode_bandwidth)
        centre = full_src.index_select(0, ident).float()
        delta = torch.zeros(bh, bw, 3, device=dev)
        delta.view(-1, 3)[free] = colours - centre
        return delta

    if prev is not None and h * w > st.search_pixels:
        # Large levels only inherit the matches: the coarser level decided the layout, and
        # copying full-resolution source pixels along its matches keeps the detail crisp
        # (neighbouring votes agree there: no mean-shift steps needed).
        return {"grid": grid.view(bh, bw), "box": box, "free": free, "delta": vote(min(k, st.inherit_vote), modes=0),
                "cost": prev["cost"]}

    index = index or ClassIndex.build(lv.src_lab, num_classes)
    reach = k
    src_dist = boundary_distance(lv.src_lab, reach)
    tgt_dist = boundary_distance(lv.tgt_lab, reach)
    same = src_lab_flat[ident] == tl_free
    passes = st.coarse_passes if li == 0 else st.passes_at(k) if h * w <= st.large_pixels else st.large_passes
    delta = torch.zeros(bh, bw, 3, device=dev)
    # A guide with an alpha channel (guide_for_fills) gives way to the estimate where alpha < 1.
    partial = guide is not None and guide.shape[-1] == 4
    filled = li == 0 and (guide is None or partial) and st.fill_weight > 0
    if filled:
        # Without a guide the first search would see labels only: start from a smooth
        # colour sketch instead (each class's nearby source colours), so that large
        # flat regions such as a sky gradient continue where a class moved in.
        fill = class_fill(lv.src_img, lv.src_lab, lv.tgt_lab, num_classes, lv.mask)
        delta.view(-1, 3)[free] = fill[y0:y1, x0:x1].reshape(-1, 3)[free] - full_src[ident].float()
    # Half-precision keys where float32 ones would be large (memory; the CPU gathers them anyway).
    big = h * w * st.descriptor_dims * 4 > 256 << 20
    kdtype = torch.float16 if big and dev.type == "cpu" else torch.float32
    src_labels = LabelFeatures(lv.src_lab, num_classes, src_dist, reach, st.label_weight, st.boundary_weight)
    tgt_labels = LabelFeatures(lv.tgt_lab, num_classes, tgt_dist, reach, st.label_weight, st.boundary_weight)
    label_parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    # The source's colour side (and its weight) is the same on every sharp pass of a finer level:
    # its projection and keys are fitted once there (the estimate's side changes with each vote).
    sharp_colour: tuple[torch.Tensor, torch.Tensor] | None = None

    def label_descriptors(dims: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Source keys and free-pixel queries of the label part, computed once per finer level.

        At the coarsest level every pass fits its own projection: there the layout is decided,
        and one projection's errors repeated over its passes left a removed disc's fill with a
        ghost score of 0.026 (16 seeds) against 0.004 with fresh ones; the level is tiny."""
        if dims not in label_parts or li == 0:
            proj = pca_projection(src_labels, h, w, k, [(0, num_classes + 1, dims)], gen, dev)
            label_parts[dims] = (descriptors(src_labels, proj, h, w, dtype=kdtype),
                                 descriptors(tgt_labels, proj, h, w, box=box, select=free, dtype=kdtype))
        return label_parts[dims]

    row_weight = None
    if smooth is not None:
        smooth_free = smooth[tl_free.long()]
        if bool(smooth_free.any()):
            row_weight = smooth_free.float() * st.smooth_row_weight
    cost = float("nan")
    for p in range(passes):
        # The first pass of a finer level compares the upsampled estimate with an equally
        # blurred source (the coarser source level, upsampled), later passes compare sharp ones.
        blurred = li > 0 and p == 0
        src_colour, est_colour = _colour_sources(lv, levels[li - 1] if li else None, prev, delta, box, blurred)
        we = st.estimate_weight if (li > 0 or p > 0 or filled) else 0.0
        if filled and p == 0:
            # Without a guide the sketch starts at a reduced weight; with a partial guide it
            # only stands in where the guide gives way (its weight passes to the estimate).
            we = 0.0 if partial else we * st.fill_weight
        wg = 0.0
        if guide is not None:
            wg = st.guide_weight * min(1.0, max(guide.shape[:2]) / max(h, w)) ** st.guide_falloff

        def tgt_colour(rows, cols, est_colour=est_colour, we=we, wg=wg):
            # A lone part is returned untouched: bit-equal to the source side when the layout is unchanged.
            est = est_colour(rows, cols) if (we or (wg and partial)) else None
            g = resample(guide, guide.shape[:2], (0, 0), rows, cols, lv.size) if wg else None
            if est is None or g is None:
                return est if g is None else g
            if partial:
                # The guide's share, wg * alpha; the rest of its weight goes to the estimate.
                g, alpha = g[..., :3], g[..., 3:].clamp(0, 1)
                return est + (g - est) * (wg * alpha / (we + wg))
            return (est * we + g * wg) / (we + wg)

        cw = we + wg
        # Colour texture gets its own share of the dimensions (see pca_projection).
        dc = max(1, round(st.descriptor_dims * st.colour_share)) if cw else 0
        keys, query = label_descriptors(max(1, st.descriptor_dims - dc) if cw else st.descriptor_dims)
        if cw:
            src_feat, tgt_feat = ColourFeatures(src_colour, cw), ColourFeatures(tgt_colour, cw)
            reuse = li > 0 and not blurred  # as for the labels, the coarsest level fits afresh every pass
            if reuse and sharp_colour is not None:
                proj, src_keys = sharp_colour
            else:
                proj = pca_projection(src_feat, h, w, k, [(0, 3, dc)], gen, dev)
                src_keys = descriptors(src_feat, proj, h, w, dtype=kdtype)
                if reuse:
                    sharp_colour = (proj, src_keys)
            keys = torch.cat([keys, src_keys], 1)
            query = torch.cat([query, descriptors(tgt_feat, proj, h, w, box=box, select=free, dtype=kdtype)], 1)
        search = Search(query, keys, src_lab_flat, tl_free, fy, fx, box, (h, w), st.position_weight, row_weight)
        if p == 0:
            # Where the layout is unchanged the identity is offered first: it stays unless beaten.
            cur = grid[free]
            better = same & (search.cost(ident) <= search.cost(cur))
            grid[free] = torch.where(better, ident, cur)
        if li == 0:
            top = int(math.log2(max(bh, bw) / 4)) if max(bh, bw) >= 8 else 0
            steps, iters, radius, draws = [2**i for i in range(top, -1, -1)], st.coarse_iterations, max(h, w), index
        else:
            steps, iters, radius = list(st.fine_steps), st.fine_iterations, st.fine_radius
            draws = index if st.fine_draws else None
        g, cst = patchmatch(
            search, grid.view(bh, bw), free, iterations=iters, steps=steps, radius=radius,
            generator=gen, index=draws, coherence=st.coherence, should_stop=stop,
        )
        grid = g.reshape(-1)
        delta = vote()
        finite = cst[torch.isfinite(cst)]
        cost = float(finite.mean()) / (k * k) if finite.numel() else float("nan")
        del keys, query, search
    return {"grid": grid.view(bh, bw), "box": box, "free": free, "delta": delta, "cost": cost}


def _colour_sources(
    lv: _Level,
    plv: _Level | None,
    prev: dict | None,
    delta: torch.Tensor,
    box: tuple[int, int, int, int],
    blurred: bool,
) -> tuple[Callable, Callable]:
    """(source colours, estimate colours) on a grid of rows x columns of this level, float (n, m, 3)."""
    if blurred:
        assert plv is not None and prev is not None

        def src_colour(rows, cols):
            return resample(plv.src_img, plv.size, (0, 0), rows, cols, lv.size)

        def est_colour(rows, cols):
            base = resample(plv.src_img, plv.size, (0, 0), rows, cols, lv.size)
            return base + resample(prev["delta"], plv.size, prev["box"][:2], rows, cols, lv.size)

        return src_colour, est_colour

    def src_colour(rows, cols):
        return lv.src_img.index_select(0, rows).index_select(1, cols).float()

    def est_colour(rows, cols):
        # The difference map lives on the box; rows/cols outside it add nothing.
        return src_colour(rows, cols) + resample(delta, lv.size, box[:2], rows, cols, lv.size)

    return src_colour, est_colour


def _repair(
    grid: torch.Tensor,
    free: torch.Tensor,
    fy: torch.Tensor,
    fx: torch.Tensor,
    bh: int,
    bw: int,
    tl_free: torch.Tensor,
    src_lab_flat: torch.Tensor,
    source_shape: tuple[int, int],
    rounds: int = 4,
) -> torch.Tensor:
    """Free pixels matched into another class take a neighbour's valid match, shifted, instead.

    Upsampled matches cross class borders where the finer labels differ from the
    coarser ones; borrowing a neighbour's match keeps the patch coherent there.
    """
    hs, ws = source_shape
    grid = grid.clone()
    for _ in range(rounds):
        cur = grid[free]
        bad = src_lab_flat[cur] != tl_free
        if not bool(bad.any()):
            break
        idx = torch.nonzero(bad).flatten()
        by, bx, bt, bf = fy[idx], fx[idx], tl_free[idx], free[idx]
        fixed = torch.zeros(idx.numel(), dtype=torch.bool, device=grid.device)
        new = cur[idx]
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                ny, nx = by + dy, bx + dx
                inside = (ny >= 0) & (ny < bh) & (nx >= 0) & (nx < bw)
                m = grid[ny.clamp(0, bh - 1) * bw + nx.clamp(0, bw - 1)]
                sy, sx = m // ws - dy, m % ws - dx
                ok = inside & (sy >= 0) & (sy < hs) & (sx >= 0) & (sx < ws) & ~fixed
                cand = sy.clamp(0, hs - 1) * ws + sx.clamp(0, ws - 1)
                ok &= src_lab_flat[cand] == bt
                new = torch.where(ok, cand, new)
                fixed |= ok
        grid[bf] = new
    return grid


def _upsample_matches(prev: dict, size: tuple[int, int], prev_size: tuple[int, int], ty: torch.Tensor, tx: torch.Tensor) -> torch.Tensor:
    """Start matches at a finer level: each pixel's coarse match offset, scaled; identity outside the coarse box."""
    h, w = size
    ph, pw = prev_size
    y0, x0, y1, x1 = prev["box"]
    py = ((ty.float() + 0.5) * ph / h).long().clamp(0, ph - 1)
    px = ((tx.float() + 0.5) * pw / w).long().clamp(0, pw - 1)
    inside = (py >= y0) & (py < y1) & (px >= x0) & (px < x1)
    g = prev["grid"].reshape(-1)
    m = g[(py.clamp(y0, y1 - 1) - y0) * (x1 - x0) + (px.clamp(x0, x1 - 1) - x0)]
    oy = torch.where(inside, m // pw - py, 0).float()
    ox = torch.where(inside, m % pw - px, 0).float()
    sy = (ty + (oy * h / ph).round().long()).clamp(0, h - 1)
    sx = (tx + (ox * w / pw).round().long()).clamp(0, w - 1)
    return sy * w + sx
