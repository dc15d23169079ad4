"""Quality measures for a result, computed from (I, P, P', I') alone.

- patch distance: mean distance of the output's patches to their nearest source patch
  of the same class (lower: the output is made of the source's own textures), in CIELAB
  colour-difference units (the RMS over the patch of each pixel's Delta E 1976): one unit is
  about the smallest colour step a viewer notices, in dark and light regions alike;
- semantic alignment: pixel accuracy and mIoU of P' against a segmentation of the
  output by a small per-pixel classifier fit on (I, P) only (not the engine's S, so the
  engine cannot grade itself). The segmentation is open-set: a pixel whose features are
  unlike every source pixel of the class it is assigned (further from them than 99% of
  the source's own pixels are) counts as unrecognised. A closed-set classifier must name
  one of the source's classes for anything, and names a flat fill of a class's mean
  colour best of all, though no photo looks like that;
- texture contrast: the output's local contrast (standard deviation over 5x5 windows)
  relative to the source's in the same class, 1 = as much texture as the photo has; a
  blurry synthesis scores below 1 and a flat fill near 0, which the two measures above
  cannot tell (a flat patch of a class's mean colour is close to the source's smoothest
  patches, and a per-pixel classifier recognises a class's mean colour best of all);
- ghost score: inside the region whose class changed (eroded by GHOST_ERODE px), the
  correlation of the output's high-passed luminance with the source's at the same pixels.
  A re-synthesis made of other places' texture scores about 0; a faint, washed-out copy of
  what was there (an old outline in a sky) clearly above. None of the other measures sees
  it: the ghost is made of the right class's patches, at a low contrast. Its chance level
  (ghost_chance: the same score against the photo shifted a little, where nothing can be
  aligned) says how far from 0 a clean result falls on this region by chance;
- outline contrast: local contrast of the output along the outlines that the edit took
  away (an object's old edge, up to OUTLINE_BAND px either side) over the output's own
  in the same class a little farther out: 1 where the old outline has left no trace, above
  1 where a faint edge or halo of the removed object is still there (the source unchanged
  scores far above). The ghost score cannot see that trace where it lies just outside the
  edited region, in pixels that kept their class and their halo of the old object;
- seam step: the colour step (Delta E between 4-neighbours) across the edge of what the method
  changed, where both sides are of one class, over the photo's own step between neighbouring
  pixels of that class: 1 where the re-synthesised pixels meet the kept ones as smoothly as
  the photo's pixels meet each other, above 1 where a band of another tone ends in a visible
  step (a margin of deep blue around an added tree, in a pale sky). None of the other measures
  sees it: they look at the edited region, and the step lies in pixels that kept their class;
- height tone: for classes whose photo is toned by height (a sky: its colour ramp over the
  rows explains most of its colour variance), how far the output's local mean colour in the
  edited region departs from that ramp at its row, over how far the photo's own pixels of the
  class depart from it (its clouds): about 1 or below for a new sky of the tone the photo has
  at that height, far above for a block of deep-blue sky at ground level. The patch distance
  cannot see it: such a block is made of the photo's own sky patches;
- PSNR outside the edited region (the untouched photo must stay untouched; 100 dB = identical);
- reconstruction PSNR, when P' == P.
Patch distance and alignment are measured over the whole image and over the edited
region alone (where P' != P), at an analysis size of at most 256 px.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LabelError
from .imageio import resize_rgb
from .labels import resize_labels
from .patch_synthesis import class_trend, height_share
from .source import Source, rgb, working_shape

ANALYSIS_SIZE = 256
PATCH = 5
MAX_QUERIES = 4096
TYPICAL_REFERENCE = 2048  # source pixels per class that output pixels are compared with
TYPICAL_QUANTILE = 0.99  # of the source's own distances: beyond it a pixel is unrecognised
UNRECOGNISED = -1
GHOST_ERODE = 2  # px at the analysis size: the margin the patch methods blend across is left out
GHOST_SHIFTS = (8, 12, 16)  # px at the analysis size, 8 directions each: beyond fine texture's reach
LANCZOS_LOBES = 3  # the reach of resize_rgb's kernel, in full-resolution pixels per analysis pixel
GHOST_SIGMA = 2.0  # px: the high-pass keeps structure finer than a Gaussian of this width
# A part of the changed region counts only where it has an interior: some pixel this far
# (px at the analysis size) from its border. A band a few pixels wide (a jaw moved in by
# 7 px, face/5) has none: there the high-pass is all the band's two edges, a clean fill
# scored 0.46, and what a thin band can keep of the old content is an outline, which
# outline_contrast measures.
GHOST_MIN_DEPTH = 5
OUTLINE_BAND = 8  # px at the analysis size either side of a vanished outline (~3%: an object's halo)
OUTLINE_CLEAR = 3  # px kept clear of the target's own class borders, whose edges are meant
OUTLINE_SIGMA = 4.0  # px: a removed object's trace is a broad band (a halo, a pale silhouette's rim)
PSNR_IDENTICAL = 100.0  # dB reported for identical pixels
# Of a class's colour variance its height ramp explains: toned by height (a sky 0.98). Fixed
# here, apart from the engine's `height_share` setting, so tuning the engine cannot move the measure.
TONE_SHARE = 0.5
TONE_SIGMA = 4.0  # px at the analysis size: the local mean is a tone, not the texture
TONE_FLOOR = 2.3  # Delta E (1976) a viewer just notices: a photo whose class follows its ramp exactly is compared with this


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    if mask is not None:
        if not mask.any():
            return None
        a, b = a[mask], b[mask]
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    # Identical pixels would be +inf dB, which strict JSON cannot carry: report the cap.
    return PSNR_IDENTICAL if mse == 0 else min(PSNR_IDENTICAL, 10 * math.log10(255.0**2 / mse))


def srgb_to_lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) 8-bit sRGB -> (H, W, 3) float32 CIELAB (D65 white): L* 0..100, a*, b* about -128..127."""
    x = image[..., :3].astype(np.float64) / 255
    x = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = x @ _SRGB_TO_XYZ.T / _D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)
    return lab.astype(np.float32)


_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_D65 = np.array([0.95047, 1.0, 1.08883])


def _patches(image: np.ndarray) -> torch.Tensor:
    """(H*W, 3*P*P) CIELAB patches around every pixel (reflected at the borders)."""
    t = torch.from_numpy(srgb_to_lab(image)).permute(2, 0, 1)[None]
    p = PATCH // 2
    return F.unfold(F.pad(t, (p, p, p, p), mode="reflect"), PATCH)[0].t()


def patch_distance(source: np.ndarray, src_index: np.ndarray, output: np.ndarray, tgt_index: np.ndarray, region: np.ndarray) -> float | None:
    """Mean distance of output patches in `region` to the nearest same-class source patch, in
    CIELAB Delta E units: per patch, the root mean square of its pixels' colour differences."""
    where = np.flatnonzero(region.reshape(-1))
    if len(where) == 0:
        return None
    if len(where) > MAX_QUERIES:  # a fixed subsample keeps the measure repeatable
        where = where[np.random.default_rng(0).choice(len(where), MAX_QUERIES, replace=False)]
    q, s = _patches(output)[where], _patches(source)
    q_cls, s_cls = torch.from_numpy(tgt_index.reshape(-1)[where]), torch.from_numpy(src_index.reshape(-1))
    s_sq, dists = (s * s).sum(1), []
    for start in range(0, len(q), 256):
        qc = q[start : start + 256]
        d = (qc * qc).sum(1, keepdim=True) + s_sq[None] - 2 * qc @ s.t()
        d = d.masked_fill(q_cls[start : start + 256, None] != s_cls[None], math.inf)
        best, nearest = d.min(1)
        # The expansion above loses a few units to float32 cancellation at Lab's magnitudes:
        # the chosen patch's distance is computed again directly (0 for an exact copy).
        exact = ((qc.double() - s[nearest].double()) ** 2).sum(1)
        dists.append(torch.where(torch.isfinite(best), exact, math.inf))
    d = torch.cat(dists)
    d = d[torch.isfinite(d)]
    return float(torch.sqrt(d / (PATCH * PATCH)).mean()) if len(d) else None


def local_contrast(image: np.ndarray, mask: np.ndarray | None = None, size: int = PATCH) -> np.ndarray:
    """(H, W) float: the standard deviation of each pixel's size x size neighbourhood, averaged
    over RGB; with a mask, only the neighbours inside the mask count (0 outside it), so that a
    class's texture is not confused with the edge to its neighbour class."""
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    m = torch.ones_like(t[:, :1]) if mask is None else torch.from_numpy(mask)[None, None].float()
    pad = (size // 2,) * 4

    def box(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, pad, mode="constant"), size, 1)

    count = box(m).clamp_min(1e-6)
    mean, sq = box(t * m) / count, box(t * t * m) / count
    std = (sq - mean * mean).clamp_min(0).sqrt().mean(1, keepdim=True) * m
    return std[0, 0].numpy()


def texture_contrast(source: np.ndarray, src_index: np.ndarray, output: np.ndarray, tgt_index: np.ndarray,
                     region: np.ndarray) -> float | None:
    """Local contrast of the output in `region` over the source's in the same class (1: alike).

    Per class of the target in the region: the output's mean contrast there (neighbours of
    the target's class only) over the source's mean contrast in that class (neighbours of
    the source's class only), weighted by the class's pixels in the region. Classes without
    texture in the source (e.g. a flat background) are left out: no ratio is defined.
    """
    if not region.any():
        return None
    ratios, weights = [], []
    for c in np.unique(tgt_index[region]):
        in_src = src_index == c
        if not in_src.any():
            continue
        ref = float(local_contrast(source, in_src)[in_src].mean())
        if ref < 0.01:  # under ~2.5 levels of 255: no texture to compare with
            continue
        sel = region & (tgt_index == c)
        ratios.append(float(local_contrast(output, tgt_index == c)[sel].mean()) / ref)
        weights.append(int(sel.sum()))
    return float(np.average(ratios, weights=weights)) if ratios else None


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred separably with a Gaussian, reflecting at the borders."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    pad_y, pad_x = min(r, x.shape[2] - 1), min(r, x.shape[3] - 1)
    x = F.pad(x, (pad_x, pad_x, 0, 0), mode="reflect") if pad_x else x
    x = F.conv2d(x, k[r - pad_x : r + pad_x + 1].view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, pad_y, pad_y), mode="reflect") if pad_y else x
    return F.conv2d(x, k[r - pad_y : r + pad_y + 1].view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _blur_within(x: torch.Tensor, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) Gaussian mean of `x` over the pixels where the (N, 1, H, W) mask `m` is 1 only
    (normalised convolution), so that what lies outside the mask does not tint it."""
    return _gaussian_blur(x * m, sigma) / _gaussian_blur(m, sigma).clamp_min(1e-6)


def high_pass(image: np.ndarray, sigma: float = GHOST_SIGMA, within: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float: luminance (Rec. 601, 0..1) minus its Gaussian blur; with `within`, the
    blur averages only pixels inside it (normalised convolution), so that what lies around
    a thin region does not make up its detail."""
    t = torch.tensor(image[..., :3], dtype=torch.float32).div_(255)  # a copy: the image may be read-only
    lum = (t @ torch.tensor([0.299, 0.587, 0.114]))[None, None]
    if within is None:
        return (lum - _gaussian_blur(lum, sigma))[0, 0].numpy()
    m = torch.from_numpy(np.ascontiguousarray(within)).float()[None, None]
    return ((lum - _blur_within(lum, m, sigma)) * m)[0, 0].numpy()


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """(H, W) bool: `mask` and every pixel within `pixels` of it (chessboard distance)."""
    if pixels <= 0:
        return mask.copy()
    m = torch.from_numpy(np.ascontiguousarray(mask)).float()[None, None]
    return F.max_pool2d(m, 2 * pixels + 1, 1, pixels)[0, 0].numpy() > 0


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    """(H, W) bool: the pixels of `mask` whose whole (2p+1)^2 neighbourhood (within the image) is in it."""
    return ~_grow(~mask, pixels)


def ghost_score(source: np.ndarray, output: np.ndarray, changed: np.ndarray, erode_px: int = GHOST_ERODE,
                classes: np.ndarray | None = None, valid: np.ndarray | None = None) -> float | None:
    """Correlation of the output's high-passed luminance with the source's inside `changed`
    (eroded by `erode_px`): about 0 for a clean re-synthesis, higher for a faint copy of
    the old content. None where the eroded region is empty or too thin to have an interior
    (GHOST_MIN_DEPTH); 0 where either side is flat. With `valid`, only its pixels are
    measured and high-passed (the depth is still judged on the whole part).

    With `classes` (the target's class map) the correlation is pooled over the target
    classes inside `changed`, each high-passed within its own part: the borders the target
    draws between its classes there are meant, and would otherwise correlate (either way)
    with the old content's borders nearby; a class-mean fill of grown eyebrows scored -0.38
    on face/7 without this, though it copies nothing."""
    return _correlation(source, _ghost_parts(output, changed, erode_px, classes, valid))


def _ghost_parts(output: np.ndarray, changed: np.ndarray, erode_px: int, classes: np.ndarray | None,
                 valid: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(part, measured region, the output's centred high-pass there) for each part ghost_score pools."""
    parts = [changed] if classes is None else [changed & (classes == c) for c in np.unique(classes[changed])]
    out = []
    for part in parts:
        if not erode(part, GHOST_MIN_DEPTH).any():
            continue
        if valid is not None:
            part = part & valid
        region = erode(part, erode_px)
        if region.sum() < 16:
            continue
        # Detail relative to the region's own surroundings inside it: a thin region (a tail, a
        # branch) would otherwise take its high-pass from the pixels around it.
        b = high_pass(output, within=part)[region].astype(np.float64)
        out.append((part, region, b - b.mean()))
    return out


def _correlation(source: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float | None:
    """ghost_score's pooled correlation of the source's high-pass with the output's `parts`."""
    ab = aa = bb = 0.0
    n = 0
    for part, region, b in parts:
        a = high_pass(source, within=part)[region].astype(np.float64)
        a = a - a.mean()
        ab, aa, bb, n = ab + float((a * b).sum()), aa + float((a * a).sum()), bb + float((b * b).sum()), n + len(a)
    if n == 0:
        return None
    if min(aa, bb) < 1e-8 * n:  # either side flat (rounding noise only): it copies nothing
        return 0.0
    return ab / math.sqrt(aa * bb)


def ghost_chance(source: np.ndarray, output: np.ndarray, changed: np.ndarray, classes: np.ndarray | None = None,
                 valid: np.ndarray | None = None) -> float | None:
    """The ghost score a re-synthesis that copies nothing gets by chance on this region: the
    RMS of the output's ghost score against the source shifted by GHOST_SHIFTS (no copy is
    aligned with a shifted photo). A faint copy peaks at no shift; a score within this level
    is noise. On a region of a few hundred pixels it is 0.1 (face/3's hairline), so there no
    score can be told from 0 more finely than that."""
    parts = _ghost_parts(output, changed, GHOST_ERODE, classes, valid)
    if not parts:
        return None
    scores = []
    for r in GHOST_SHIFTS:
        for k in range(8):
            angle = 2 * math.pi * k / 8
            shift = (round(r * math.sin(angle)), round(r * math.cos(angle)))
            scores.append(_correlation(np.roll(source, shift, axis=(0, 1)), parts))
    return float(np.sqrt(np.mean(np.square(scores))))


def _clear_of_unchanged(changed_full: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool at the analysis `size`: pixels that the resize (Lanczos, 3 lobes) made from
    changed full-resolution pixels alone. Nearer the edit's border, an analysis pixel mixes in
    the photo's own unchanged pixels: a class-mean fill, which copies nothing, scored 0.095 on
    zebra/3 from that seam alone."""
    reach = math.ceil(LANCZOS_LOBES * max(changed_full.shape[0] / size[1], changed_full.shape[1] / size[0]))
    return resize_labels(erode(changed_full, reach).astype(np.uint8), size).astype(bool)


def _borders(index: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another class."""
    b = np.zeros(index.shape, dtype=bool)
    v, h = index[1:] != index[:-1], index[:, 1:] != index[:, :-1]
    b[1:] |= v
    b[:-1] |= v
    b[:, 1:] |= h
    b[:, :-1] |= h
    return b


def outline_contrast(output: np.ndarray, src_index: np.ndarray, tgt_index: np.ndarray,
                     band: int = OUTLINE_BAND) -> float | None:
    """High-pass energy of the output within `band` px of the outlines the edit removed, over
    its energy `band`..3x`band` px from them, per class of the target (weighted by pixels);
    about 1 when no trace of the old outline is left. None when no outline was removed or
    no class has pixels on both sides."""
    gone = _borders(src_index) & ~_borders(tgt_index)
    if not gone.any():
        return None
    clear = ~_grow(_borders(tgt_index), OUTLINE_CLEAR)
    near_all = _grow(gone, band)
    near, far = near_all & clear, _grow(gone, 3 * band) & ~near_all & clear
    energy = np.abs(high_pass(output, OUTLINE_SIGMA))
    ratios, weights = [], []
    for c in np.unique(tgt_index[near]):
        n, f = near & (tgt_index == c), far & (tgt_index == c)
        if n.sum() < 16 or f.sum() < 16:
            continue
        ref = float(energy[f].mean())
        if ref < 1e-3:  # a flat class (a fill, a clipped sky): no texture to compare with
            continue
        ratios.append(float(energy[n].mean()) / ref)
        weights.append(int(n.sum()))
    return float(np.average(ratios, weights=weights)) if ratios else None


def _neighbour_pairs(mask: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(first, second) index arrays of the 4-neighbour pairs (right, down) whose both pixels are in `mask`."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask[:, :-1] & mask[:, 1:])
    yd, xd = np.nonzero(mask[:-1] & mask[1:])
    return (ys * w + xs, ys * w + xs + 1), (yd * w + xd, (yd + 1) * w + xd)


def seam_step(source: np.ndarray, output: np.ndarray, touched: np.ndarray, src_index: np.ndarray,
              tgt_index: np.ndarray) -> float | None:
    """Mean Delta E between the 4-neighbours that straddle the edge of `touched` (the pixels the
    method changed) within one target class, over the photo's mean Delta E between neighbours of
    that class, per class (weighted by pairs); pixels next to a class border count on neither
    side. 1: no step where the re-synthesis meets the kept photo. None without such pairs (a
    method that rewrites every pixel has no such edge)."""
    src_lab, out_lab = srgb_to_lab(source).reshape(-1, 3), srgb_to_lab(output).reshape(-1, 3)
    inner_src = ~_grow(_borders(src_index), 1)
    inner_tgt = ~_grow(_borders(tgt_index), 1)
    # The kept side must be the edge of a kept region, not a stray pixel a method that rewrites
    # everything (Ebsynth) happened to leave equal: at least 4 kept pixels in its 3x3 window.
    kept = torch.from_numpy(~touched).float()[None, None]
    solid = (~touched) & (F.avg_pool2d(kept, 3, 1, 1, count_include_pad=False)[0, 0].numpy() * 9 >= 3.5)
    t, k = touched.reshape(-1), solid.reshape(-1)
    sc, tc = src_index.reshape(-1), tgt_index.reshape(-1)
    steps, classes, ref_steps, ref_classes = [], [], [], []
    for a, b in _neighbour_pairs(inner_tgt):
        across = (t[a] & k[b]) | (k[a] & t[b])
        a, b = a[across], b[across]
        steps.append(np.linalg.norm(out_lab[a] - out_lab[b], axis=1))
        classes.append(tc[a])
    for a, b in _neighbour_pairs(inner_src):
        ref_steps.append(np.linalg.norm(src_lab[a] - src_lab[b], axis=1))
        ref_classes.append(sc[a])
    steps, classes = np.concatenate(steps), np.concatenate(classes)
    ref_steps, ref_classes = np.concatenate(ref_steps), np.concatenate(ref_classes)
    ratios, weights = [], []
    for c in np.unique(classes):
        n = int((classes == c).sum())
        ref = ref_steps[ref_classes == c]
        if n < 16 or ref.size < 16 or ref.mean() < 1e-3:
            continue
        ratios.append(float(steps[classes == c].mean() / ref.mean()))
        weights.append(n)
    return float(np.average(ratios, weights=weights)) if ratios else None


def _local_mean(lab: np.ndarray, within: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, 3): a Gaussian mean of `lab` over the pixels of `within` only (normalised
    convolution), so that a neighbouring class does not tint a class's tone."""
    t = torch.from_numpy(lab).permute(2, 0, 1)[None]
    m = torch.from_numpy(np.ascontiguousarray(within)).float()[None, None]
    return _blur_within(t, m, sigma)[0].permute(1, 2, 0).numpy()


def height_tone(source: np.ndarray, src_index: np.ndarray, output: np.ndarray, tgt_index: np.ndarray,
                region: np.ndarray) -> float | None:
    """Departure of the output's tone in `region` from its class's height ramp, over the photo's.

    Per target class in the region whose photo is toned by height (`height_share` of its
    CIELAB colours at least TONE_SHARE): the mean Delta E between the output's local mean colour
    (a Gaussian of TONE_SIGMA px within the class) and the class's ramp at that row
    (`class_trend`, held at the class's top and bottom rows beyond them), over the same for
    the photo's own pixels of the class (at least TONE_FLOOR); weighted by the class's pixels in
    the region. None where no such class is in the region."""
    src_lab, out_lab = srgb_to_lab(source), srgb_to_lab(output)
    lab = torch.from_numpy(src_lab)
    ratios, weights = [], []
    for c in np.unique(tgt_index[region]):
        sel, where = src_index == c, region & (tgt_index == c)
        if sel.sum() < 16 or where.sum() < 16:
            continue
        sel_t = torch.from_numpy(sel)
        ramp_t = class_trend(lab, sel_t)
        if height_share(lab, sel_t, trend=ramp_t) < TONE_SHARE:
            continue
        ramp = ramp_t.numpy()
        own = np.linalg.norm(_local_mean(src_lab, sel, TONE_SIGMA) - ramp, axis=-1)[sel].mean()
        new = np.linalg.norm(_local_mean(out_lab, tgt_index == c, TONE_SIGMA) - ramp, axis=-1)[where].mean()
        ratios.append(float(new / max(float(own), TONE_FLOOR)))
        weights.append(int(where.sum()))
    return float(np.average(ratios, weights=weights)) if ratios else None


def _pixel_features(image: np.ndarray) -> torch.Tensor:
    """Per-pixel colour and texture features: colour at three blur scales, local contrast, gradients."""
    t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    feats = [t]
    for k in (5, 11):
        blur = F.avg_pool2d(F.pad(t, (k // 2,) * 4, mode="reflect"), k, 1)
        sq = F.avg_pool2d(F.pad(t * t, (k // 2,) * 4, mode="reflect"), k, 1)
        feats += [blur, (sq - blur * blur).clamp_min(0).sqrt()]
    lum = t.mean(1, keepdim=True)
    gx, gy = lum[..., :, 1:] - lum[..., :, :-1], lum[..., 1:, :] - lum[..., :-1, :]
    feats.append(F.pad(gx.abs(), (0, 1, 0, 0)))
    feats.append(F.pad(gy.abs(), (0, 0, 0, 1)))
    f = torch.cat(feats, 1)[0]
    return f.reshape(f.shape[0], -1).t()


def fit_pixel_classifier(image: np.ndarray, index: np.ndarray, num_classes: int, steps: int = 300, seed: int = 0) -> torch.nn.Module:
    """A small MLP on per-pixel features, fit on (I, P), with each class's typical features
    for the open-set check (see `segment`); deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    x, y = _pixel_features(image), torch.from_numpy(index.reshape(-1)).long()
    mean, std = x.mean(0), x.std(0) + 1e-6
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, num_classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xn = (x - mean) / std
    for _ in range(steps):
        batch = torch.randint(0, len(xn), (min(len(xn), 8192),), generator=g)
        loss = F.cross_entropy(net(xn[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.register_buffer("mean", mean)
    net.register_buffer("std", std)
    # Per class: a reference sample of its pixels' features, and the distance from other
    # pixels of the class to their nearest reference within which TYPICAL_QUANTILE of them lie.
    refs, limits = [], torch.full((num_classes,), math.inf)
    for c in range(num_classes):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_ref = min(TYPICAL_REFERENCE, len(members) // 2)
        ref, held_out = xn[members[:n_ref]], xn[members[n_ref : n_ref + TYPICAL_REFERENCE]]
        nearest = _nearest(held_out, ref) if n_ref >= 8 else torch.full((1,), math.inf)  # tiny classes: no check
        if len(ref) and torch.isfinite(nearest).any():
            limits[c] = torch.quantile(nearest[torch.isfinite(nearest)], TYPICAL_QUANTILE)
        refs.append(ref)
    net.typical_refs = refs
    net.register_buffer("typical_limits", limits)
    return net


def _nearest(queries: torch.Tensor, ref: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Distance of each query row to its nearest row of `ref` (inf when `ref` is empty)."""
    if len(ref) == 0:
        return torch.full((len(queries),), math.inf)
    return torch.cat([torch.cdist(queries[i : i + chunk], ref).min(1).values for i in range(0, len(queries), chunk)])


@torch.no_grad()
def segment(classifier: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """(H, W) class map of `image`; UNRECOGNISED where a pixel is unlike its class's source pixels."""
    x = (_pixel_features(image) - classifier.mean) / classifier.std
    pred = classifier(x).argmax(1)
    out = pred.clone()
    for c, ref in enumerate(classifier.typical_refs):
        sel = torch.nonzero(pred == c).flatten()
        if len(sel):
            far = _nearest(x[sel], ref) > classifier.typical_limits[c]
            out[sel[far]] = UNRECOGNISED
    return out.reshape(image.shape[:2]).numpy()


def alignment(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict | None:
    """Pixel accuracy and mIoU over the classes of either map (an unrecognised pixel is simply wrong)."""
    if not region.any():
        return None
    p, t = pred[region], truth[region]
    ious = []
    for c in np.unique(np.concatenate([p[p != UNRECOGNISED], t])):
        inter, union = np.sum((p == c) & (t == c)), np.sum((p == c) | (t == c))
        ious.append(inter / union)
    return {"pixel_accuracy": round(float(np.mean(p == t)), 4), "miou": round(float(np.mean(ious)), 4)}


def evaluate(image: np.ndarray, labels: np.ndarray, target: np.ndarray, output: np.ndarray) -> dict:
    """All measures for one result; every array at the source's full resolution."""
    source = Source.prepare(image, labels, ANALYSIS_SIZE)
    tgt_index = source.decode_target(target)
    output = rgb(output)
    if output.shape[:2] != source.image.shape[:2]:
        h, w = source.image.shape[:2]
        raise LabelError(f"the output is {output.shape[1]}x{output.shape[0]} but the image is {w}x{h}")
    edited_full = source.index != tgt_index
    size = working_shape(source.image.shape[1], source.image.shape[0], ANALYSIS_SIZE)
    src_img, out_img = resize_rgb(source.image, size), resize_rgb(output, size)
    src_idx, tgt_idx = resize_labels(source.index, size), resize_labels(tgt_index, size)
    edited = src_idx != tgt_idx
    everywhere = np.ones_like(edited)
    classifier = fit_pixel_classifier(src_img, src_idx, source.palette.num_classes)
    pred = segment(classifier, out_img)
    clear = _clear_of_unchanged(edited_full, size)
    # What the method changed (an analysis pixel is changed if any of its full-resolution ones is).
    changed_full = np.any(output != source.image, axis=-1)
    touched = F.interpolate(torch.from_numpy(changed_full).float()[None, None], size=size[::-1], mode="area")[0, 0].numpy() > 0

    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    result = {
        "edited_fraction": round(float(edited_full.mean()), 4),
        "patch_distance": {
            "all": rounded(patch_distance(src_img, src_idx, out_img, tgt_idx, everywhere)),
            "edited": rounded(patch_distance(src_img, src_idx, out_img, tgt_idx, edited)),
        },
        "alignment": {"all": alignment(pred, tgt_idx, everywhere), "edited": alignment(pred, tgt_idx, edited)},
        "texture_contrast": {
            "all": rounded(texture_contrast(src_img, src_idx, out_img, tgt_idx, everywhere)),
            "edited": rounded(texture_contrast(src_img, src_idx, out_img, tgt_idx, edited)),
        },
        "ghost_score": rounded(ghost_score(src_img, out_img, edited, classes=tgt_idx, valid=clear)),
        "ghost_chance": rounded(ghost_chance(src_img, out_img, edited, classes=tgt_idx, valid=clear)),
        "outline_contrast": rounded(outline_contrast(out_img, src_idx, tgt_idx)),
        "seam_step": rounded(seam_step(src_img, out_img, touched, src_idx, tgt_idx)),
        "height_tone": rounded(height_tone(src_img, src_idx, out_img, tgt_idx, edited)),
        "psnr_outside": rounded(psnr(source.image, output, ~edited_full)),
        "reconstruction_psnr": None if edited_full.any() else rounded(psnr(source.image, output)),
    }
    return result


def mean_colour_baseline(image: np.ndarray, labels: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A trivial result for comparison: the edited region filled with each class's mean source colour."""
    source = Source.prepare(image, labels, ANALYSIS_SIZE)
    tgt = source.decode_target(target)
    out = source.image.copy()
    for c in np.unique(tgt[source.index != tgt]):
        region = (tgt == c) & (source.index != tgt)
        out[region] = source.image[source.index == c].mean(0).round().astype(np.uint8)
    return out
