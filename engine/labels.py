"""Label maps painted by people -> class-index maps, and back.

A painted label layer is never flat: anti-aliased brush edges, soft brushes, JPEG
round trips and colour management leave hundreds or thousands of near-duplicate
colours around the few that the painter meant.  This module finds those few
("dominant") colours, snaps every other pixel to the nearest of them, and checks
that a target layer uses the source's classes.  numpy only: no torch here.

Dominance rule (shared by `extract_palette` and the target check in `decode_labels`),
computed on the histogram of exact colours (RGB packed into one integer):

* Only pixels that touch a pixel of the very same colour (8-neighbourhood) count
  ("clustered" pixels).  Flat paint and even 1-px strokes (drawn along a line, so
  each pixel has same-coloured neighbours) are clustered; JPEG noise and the
  isolated pixels of colour drift are not.
* A colour needs at least `min_count` clustered pixels: 40 px, or 1e-4 of the map
  on big maps, so a 10x10 object in a 256x256 map is a class but speckles are not
  (tiny maps: 1/64 of the map).
* Colours are taken greedily by decreasing clustered count; a colour within
  MIN_CLASS_DISTANCE of a class already taken is a shade of it (JPEG, colour drift),
  or within MIN_FLAT_CLASS_DISTANCE if it is painted flat (see below).
* Anti-aliasing between two classes a and b makes colours on the segment a-b.
  These can be frequent (every pixel along a long edge has the same mixture), so a
  colour lying on the segment between two taken classes is rejected as a mixture,
  unless it is painted flat (many interior pixels: all four neighbours the same
  colour), which a 1-2 px transition band never is.  A real class that happens to
  lie between two others (dark blue between navy and blue) is flat and is kept.
  Because a frequent mixture may be met before both its ends are taken, the picks
  are pruned once more at the end.
* JPEG scatters a small region or a thin stroke over many exact shades, none of
  them frequent.  After the exact colours, a second pass does the same on colours
  rounded to 8 levels; what it adds must be MIN_COARSE_CLASS_DISTANCE away from
  every class, since JPEG colour bleeding also forms coherent off-colour strips.
* Fully transparent pixels (alpha == 0) are one more "colour" under the same rule:
  a real transparent region is the "unlabelled" class, while isolated holes left by
  a brush (zebra/label.png has one) take the class of their labelled neighbours.

Stray pixels.  Hand-painted maps have thin unpainted gaps where a stroke was erased
(white or transparent), and JPEG leaves ringing colours around small shapes: pixels
that match no class (farther than SHADE_TOLERANCE from every class colour and not an
anti-aliasing mixture of two).  When they are few (at most STRAY_MAX_FRACTION of the
map) and thin (no STRAY_CORE x STRAY_CORE block of them), they take the class of their
nearest labelled neighbours, with one warning saying so; a thicker or larger region of
an unknown colour is meant, and stays an error that names it.  In a source map the
same holds for a dominant colour that forms only such thin, small regions: it is not
a class.  A thin stroke that covers more of the map (an edge sketch) stays one.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import LabelError

log = logging.getLogger(__name__)

# Colours closer than this (Euclidean RGB, 0..441) are shades of one class when a
# palette is extracted.  JPEG and brush drift stay well below.  Colours painted
# flat may be closer: label palettes such as Cityscapes' (used by the face example)
# have classes only 20 apart, (0,60,100) and (0,80,100), while JPEG blocks of one
# flat class differ by a few levels.
MIN_CLASS_DISTANCE = 32.0
MIN_FLAT_CLASS_DISTANCE = 12.0
# Colours found only after rounding (JPEG-scattered) must be farther still: JPEG's
# chroma subsampling shifts whole strips of a class by up to ~40 next to another.
MIN_COARSE_CLASS_DISTANCE = 48.0
# A target colour may differ this much from its class and still be that class:
# painters re-pick shades (zebra/cond/1.png green is 50 away from label.png's).
SHADE_TOLERANCE = 64.0
# Minimum clustered pixels for a dominant colour: absolute floor and map fraction.
MIN_COUNT_ABS = 40
MIN_COUNT_FRACTION = 1e-4
# A mixture colour lies within this distance of the segment between two classes:
# a fixed rounding/JPEG allowance plus a share of the classes' distance.
MIXTURE_TOL_ABS = 8.0
MIXTURE_TOL_REL = 0.06
# Anti-aliased edges, pixel by pixel (see _settle_edges): a pixel within EDGE_EXACT of a
# class colour is that class whatever its neighbours; one farther off that lies between two
# classes found within EDGE_REACH px of it is an edge between those two.
EDGE_EXACT = 8.0
EDGE_REACH = 2
# A colour is painted flat when this share of its pixels are interior pixels.
FLAT_FRACTION = 0.3
# Second pass on colours rounded to bins of 8 levels (see _coarse_candidates).
_COARSE_MASK = 0xF8F8F8
# Stray pixels (see the module docstring): at most this share of the map, and no
# STRAY_CORE x STRAY_CORE block of them (a region thicker than 4 px is meant).
STRAY_MAX_FRACTION = 0.01
STRAY_CORE = 5
# Packed value used for transparent pixels: outside the 24-bit RGB range, so a
# transparent pixel never equals a real colour.
_TRANSPARENT = 1 << 24
# Above this many pixels the exact-colour histogram uses a 2**24 lookup table
# (bincount: linear time) instead of np.unique (a sort).
_LUT_MIN_PIXELS = 1 << 20


def colour_hex(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """'#rrggbb' for an RGB triple."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class Palette:
    """The classes of a source label map.

    Class i is painted with colour `colors[i]`; when the source has a real
    transparent region, index `len(colors)` is the "unlabelled" class.
    `fractions` (optional) are the share of source pixels per class index, for
    `describe()`.
    """

    colors: tuple[tuple[int, int, int], ...]
    unlabelled: bool = False
    fractions: tuple[float, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for c in self.colors:
            if len(c) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in c):
                raise LabelError(f"palette colour {c!r} is not an RGB triple of integers 0..255")
        if self.fractions and len(self.fractions) != self.num_classes:
            raise LabelError(
                f"palette has {self.num_classes} classes but {len(self.fractions)} pixel fractions"
            )

    @property
    def num_classes(self) -> int:
        return len(self.colors) + int(self.unlabelled)

    @property
    def unlabelled_index(self) -> int | None:
        return len(self.colors) if self.unlabelled else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (lists, ints, floats, bools)."""
        return {
            "colors": [[int(v) for v in c] for c in self.colors],
            "unlabelled": bool(self.unlabelled),
            "fractions": [float(f) for f in self.fractions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Palette:
        """Inverse of `to_dict`; a malformed dict is a LabelError."""
        try:
            colors = tuple(tuple(int(v) for v in c) for c in data["colors"])
            unlabelled = bool(data.get("unlabelled", False))
            fractions = tuple(float(f) for f in data.get("fractions", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelError(f"stored palette is malformed ({exc!r}); retrain the model") from exc
        return cls(colors=colors, unlabelled=unlabelled, fractions=fractions)  # type: ignore[arg-type]

    def class_names(self) -> list[str]:
        """One human name per class index: '#rrggbb' or 'unlabelled'."""
        return [colour_hex(c) for c in self.colors] + (["unlabelled"] if self.unlabelled else [])

    def describe(self) -> str:
        """e.g. '#00f900 (69%), #ff9300 (31%)'."""
        names = self.class_names()
        if not self.fractions:
            return ", ".join(names)
        return ", ".join(f"{n} ({_percent(f)})" for n, f in zip(names, self.fractions))


def _percent(f: float) -> str:
    p = 100.0 * f
    return f"{p:.0f}%" if p >= 1 or p == 0 else f"{p:.1g}%"


# --------------------------------------------------------------------------- input


def _pack(labels: np.ndarray, what: str) -> np.ndarray:
    """(H,W,3|4) uint8 -> (H,W) uint32 packed RGB, transparent pixels = _TRANSPARENT."""
    if not isinstance(labels, np.ndarray):
        raise LabelError(f"{what}: expected a numpy array, got {type(labels).__name__}")
    if labels.ndim != 3 or labels.shape[2] not in (3, 4):
        raise LabelError(
            f"{what}: expected an RGB or RGBA image of shape (H, W, 3|4), got shape {labels.shape}"
        )
    if labels.dtype != np.uint8:
        raise LabelError(f"{what}: expected 8-bit colours (uint8), got {labels.dtype}; export it as 8-bit RGB(A)")
    if labels.shape[0] == 0 or labels.shape[1] == 0:
        raise LabelError(f"{what} is empty ({labels.shape[1]}x{labels.shape[0]} px): paint a label layer first")
    rgb = labels[..., :3].astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if labels.shape[2] == 4:
        packed[labels[..., 3] == 0] = _TRANSPARENT
    return packed


def _unpack(packed: np.ndarray) -> np.ndarray:
    """(K,) packed -> (K,3) float64 RGB (transparent sentinel gives garbage: mask it)."""
    p = packed.astype(np.int64)
    return np.stack([(p >> 16) & 255, (p >> 8) & 255, p & 255], axis=-1).astype(np.float64)


@dataclass
class _ColourStats:
    uniques: np.ndarray  # (K,) packed colours, ascending (transparent sentinel last if any)
    inverse: np.ndarray  # (H,W) index into uniques
    count: np.ndarray  # (K,) pixels of this exact colour
    clustered: np.ndarray  # (K,) pixels with an 8-neighbour of this exact colour
    core: np.ndarray  # (K,) pixels whose 4 neighbours all have this exact colour

    @property
    def rgb(self) -> np.ndarray:
        return _unpack(self.uniques)


def _unique_inverse(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = packed.ravel()
    if flat.size >= _LUT_MIN_PIXELS:
        # Linear-time histogram over all 2**24 colours (+ the transparent sentinel).
        present = np.bincount(flat, minlength=_TRANSPARENT + 1) > 0
        uniques = np.flatnonzero(present).astype(np.uint32)
        lut = np.zeros(_TRANSPARENT + 1, dtype=np.int32)
        lut[uniques] = np.arange(uniques.size, dtype=np.int32)
        inverse = lut[flat]
    else:
        uniques, inverse = np.unique(flat, return_inverse=True)
    return uniques, inverse.reshape(packed.shape)


def _colour_stats(packed: np.ndarray) -> _ColourStats:
    uniques, inverse = _unique_inverse(packed)
    k = uniques.size
    h, w = packed.shape
    clustered = np.zeros(packed.shape, dtype=bool)
    core = np.ones(packed.shape, dtype=bool)
    core[0, :] = core[-1, :] = core[:, 0] = core[:, -1] = False
    # Compare each pixel with its right, lower and two diagonal neighbours; a match
    # marks both pixels of the pair.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = (slice(0, h - dy), slice(max(0, -dx), w - max(0, dx)))
        b = (slice(dy, h), slice(max(0, dx), w - max(0, -dx)))
        same = packed[a] == packed[b]
        clustered[a] |= same
        clustered[b] |= same
        if dy == 0 or dx == 0:  # interior: all four 4-neighbours equal
            core[a] &= same
            core[b] &= same
    flat_inv = inverse.ravel()
    count = np.bincount(flat_inv, minlength=k)
    n_clustered = np.bincount(flat_inv[clustered.ravel()], minlength=k)
    n_core = np.bincount(flat_inv[core.ravel()], minlength=k)
    return _ColourStats(uniques, inverse, count, n_clustered, n_core)


def _min_count(n_pixels: int) -> int:
    # Tiny maps (thumbnails, tests) cannot hold 40-px regions: there 1/64 of the map.
    floor = max(2, min(MIN_COUNT_ABS, n_pixels // 64))
    return max(floor, int(round(MIN_COUNT_FRACTION * n_pixels)))


# ------------------------------------------------------------------ dominance rule


def _is_mixture(c: np.ndarray, picked: np.ndarray) -> bool:
    """True if colour c lies on the segment between two of the picked colours."""
    n = len(picked)
    if n < 2:
        return False
    i, j = np.triu_indices(n, k=1)
    a, b = picked[i], picked[j]
    ab = b - a
    length2 = (ab * ab).sum(-1)
    t = ((c - a) * ab).sum(-1) / np.maximum(length2, 1e-9)
    inside = (t > 0.0) & (t < 1.0)
    d = np.linalg.norm(c - (a + t[:, None] * ab), axis=-1)
    tol = MIXTURE_TOL_ABS + MIXTURE_TOL_REL * np.sqrt(length2)
    return bool(np.any(inside & (d <= tol)))


def _mixtures(colours: np.ndarray, classes: np.ndarray, near: np.ndarray | None = None,
              chunk_elements: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
    """For (K,3) colours: which lie on a segment between two of the (C,3) classes (an
    anti-aliased edge between them), and the class each such colour belongs to: the nearer
    end of the segment it lies closest to (-1 for the others). With `near` (K,C) bool, only
    segments between two classes marked for that colour count.

    Not the nearest class overall: a 50% mix of dark red skin and white background is
    nearer to orange lips than to either, and snapping to it would put a line of lip
    patches along the new jaw (seen on face/5)."""
    out = np.zeros(len(colours), dtype=bool)
    cls = np.full(len(colours), -1, dtype=np.int64)
    n = len(classes)
    if n < 2 or not len(colours):
        return out, cls
    i, j = np.triu_indices(n, k=1)
    a, ab = classes[i], classes[j] - classes[i]  # (P,3)
    length2 = np.maximum((ab * ab).sum(-1), 1e-9)
    tol = MIXTURE_TOL_ABS + MIXTURE_TOL_REL * np.sqrt(length2)
    chunk = max(1, chunk_elements // len(i))  # bounds the (chunk, P, 3) temporaries
    for s in range(0, len(colours), chunk):
        c = colours[s : s + chunk, None, :] - a[None]  # (k,P,3)
        t = (c * ab[None]).sum(-1) / length2
        d = np.linalg.norm(c - t[..., None] * ab[None], axis=-1)
        ok = (t > 0) & (t < 1) & (d <= tol)
        if near is not None:
            ok &= near[s : s + chunk, i] & near[s : s + chunk, j]
        best = np.argmin(np.where(ok, d / np.sqrt(length2), np.inf), axis=1)  # the best-fitting pair
        rows = np.arange(len(best))
        hit = ok[rows, best]
        out[s : s + chunk] = hit
        cls[s : s + chunk] = np.where(hit, np.where(t[rows, best] < 0.5, i[best], j[best]), -1)
    return out, cls


def _settle_edges(index: np.ndarray, stats: _ColourStats, dist: np.ndarray, classes: np.ndarray) -> None:
    """Give each anti-aliased edge pixel one of the two classes it mixes, judged from the
    classes painted around it; in place.

    Snapping a colour to its nearest class is wrong on an edge whenever a third class lies
    nearer to the mixture than either end: a nose (0,80,100) narrowed on skin (119,11,32)
    leaves edge pixels such as (27,65,85), nearest to the eye's (0,60,100), and the synthesis
    then put eye patches, dark dots, along the new nose (face/1). `dist` is each unique
    colour's distance to its nearest class; `classes` the (C,3) class colours."""
    dist_map = dist[stats.inverse]
    colour_class = (index >= 0) & (index < len(classes))
    unsure = colour_class & (dist_map > EDGE_EXACT)
    if len(classes) < 2 or not unsure.any():
        return
    sure = np.where(colour_class & ~unsure, index, -1)
    ys, xs = np.nonzero(unsure)
    h, w = index.shape
    present = np.zeros((ys.size, len(classes)), dtype=bool)
    rows = np.arange(ys.size)
    for dy in range(-EDGE_REACH, EDGE_REACH + 1):
        for dx in range(-EDGE_REACH, EDGE_REACH + 1):
            cls = sure[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
            ok = cls >= 0
            present[rows[ok], cls[ok]] = True
    # Only a pixel whose snapped class is painted nowhere around it is in question.
    keep = (present.sum(1) >= 2) & ~present[rows, index[ys, xs]]
    ys, xs, present = ys[keep], xs[keep], present[keep]
    hit, end = _mixtures(stats.rgb[stats.inverse[ys, xs]], classes, near=present)
    index[ys[hit], xs[hit]] = end[hit]


def _has_core(mask: np.ndarray, size: int = STRAY_CORE) -> np.ndarray:
    """(H,W) bool: pixels at the centre of a size x size block that lies wholly in `mask`."""
    r = size // 2
    h, w = mask.shape
    if h < size or w < size:
        return np.zeros_like(mask)
    rows = np.ones((h - 2 * r, w), dtype=bool)
    for d in range(size):
        rows &= mask[d : h - 2 * r + d]
    core = np.ones((h - 2 * r, w - 2 * r), dtype=bool)
    for d in range(size):
        core &= rows[:, d : w - 2 * r + d]
    out = np.zeros_like(mask)
    out[r : h - r, r : w - r] = core
    return out


def _thin_and_small(mask: np.ndarray) -> bool:
    """True when `mask` covers at most STRAY_MAX_FRACTION of the map and has no thick part."""
    return mask.sum() <= STRAY_MAX_FRACTION * mask.size and not _has_core(mask).any()


def _candidates(stats: _ColourStats, min_count: int) -> np.ndarray:
    """Indices of the colours with at least min_count clustered pixels, by decreasing
    clustered count, then total count, then colour value (deterministic)."""
    eligible = np.flatnonzero((stats.clustered >= min_count) & (stats.uniques != _TRANSPARENT))
    return eligible[np.lexsort((stats.uniques[eligible], -stats.count[eligible], -stats.clustered[eligible]))]


def _coarse_candidates(packed: np.ndarray, stats: _ColourStats, min_count: int) -> np.ndarray:
    """Candidates found on colours rounded to bins of 8 levels, each represented by
    the most frequent exact colour of its bin (an index into stats.uniques).

    JPEG scatters a small region or a thin stroke over many exact shades, none of
    which reaches min_count; rounded, they add up again."""
    visible = stats.uniques != _TRANSPARENT
    if not visible.any():
        return np.zeros(0, dtype=np.int64)
    coarse = np.where(packed == _TRANSPARENT, _TRANSPARENT, packed & _COARSE_MASK)
    cstats = _colour_stats(coarse)
    order = _candidates(cstats, min_count)
    # Representative of each bin: its most frequent exact colour.
    idx = np.flatnonzero(visible)
    bins = stats.uniques[idx] & _COARSE_MASK
    by_bin = idx[np.lexsort((-stats.count[idx], bins))]
    first_bins, first = np.unique(stats.uniques[by_bin] & _COARSE_MASK, return_index=True)
    reps = by_bin[first]
    return reps[np.searchsorted(first_bins, cstats.uniques[order])]


def _dominant(packed: np.ndarray, stats: _ColourStats) -> tuple[list[int], bool]:
    """Indices (into stats.uniques) of the dominant RGB colours, in pick order, and
    whether transparent pixels form a dominant region."""
    min_count = _min_count(packed.size)
    is_transparent = stats.uniques == _TRANSPARENT
    transparent_dominant = bool(np.any(stats.clustered[is_transparent] >= min_count))
    # Exact colours first (the painter's own shades), then the coarse pass for what
    # noise has scattered.
    exact = _candidates(stats, min_count)
    coarse = _coarse_candidates(packed, stats, min_count)
    order = np.concatenate([exact, coarse])
    rgb = stats.rgb
    flat = stats.core >= FLAT_FRACTION * stats.count

    picked: list[int] = []
    for k, u in enumerate(order):
        c = rgb[u]
        if picked:
            if k >= len(exact):  # scattered by noise: keep clear of JPEG colour bleeding
                min_distance = MIN_COARSE_CLASS_DISTANCE
            elif flat[u]:
                min_distance = MIN_FLAT_CLASS_DISTANCE
            else:
                min_distance = MIN_CLASS_DISTANCE
            if np.min(np.linalg.norm(rgb[picked] - c, axis=-1)) < min_distance:
                continue
            if not flat[u] and _is_mixture(c, rgb[picked]):
                continue
        picked.append(int(u))
    # A frequent mixture taken before both of its ends: drop it now.
    changed = True
    while changed and len(picked) > 2:
        changed = False
        for u in reversed(picked):
            others = [p for p in picked if p != u]
            if not flat[u] and _is_mixture(rgb[u], rgb[others]):
                picked.remove(u)
                changed = True
                break
    return picked, transparent_dominant


# ------------------------------------------------------------------ snapping


def _nearest(colours: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (K,3) colours: index of and distance to the nearest of (C,3) classes."""
    out_i = np.empty(len(colours), dtype=np.int64)
    out_d = np.empty(len(colours), dtype=np.float64)
    step = 1 << 18  # bound the (K, C) temporary for maps with millions of colours
    for s in range(0, len(colours), step):
        d2 = ((colours[s : s + step, None, :] - classes[None, :, :]) ** 2).sum(-1)
        i = np.argmin(d2, axis=1)
        out_i[s : s + step] = i
        out_d[s : s + step] = np.sqrt(d2[np.arange(len(i)), i])
    return out_i, out_d


def fill_holes(index: np.ndarray, holes: np.ndarray, num_classes: int) -> None:
    """Give each hole pixel (index == -1 where holes) the most common class among its
    labelled 8-neighbours, growing inwards; in place.  It works on the holes' coordinates
    only: cheap for the few thin strays of a painted map (also used to fill a removed
    object's pixels in scripts/benchmark_edits.py)."""
    h, w = index.shape
    ys, xs = np.nonzero(holes)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    while ys.size:
        votes = np.zeros((ys.size, num_classes), dtype=np.int32)
        for dy, dx in offsets:
            ny = np.clip(ys + dy, 0, h - 1)
            nx = np.clip(xs + dx, 0, w - 1)
            cls = index[ny, nx]
            ok = cls >= 0
            np.add.at(votes, (np.flatnonzero(ok), cls[ok]), 1)
        done = votes.sum(1) > 0
        if not done.any():  # no labelled pixel anywhere near: cannot happen unless all are holes
            index[ys, xs] = 0
            return
        index[ys[done], xs[done]] = np.argmax(votes[done], axis=1)
        ys, xs = ys[~done], xs[~done]


def _snap(stats: _ColourStats, palette: Palette, what: str, warn: bool = True) -> np.ndarray:
    """Class-index map: each pixel's nearest class colour; transparent pixels are the
    unlabelled class; stray pixels (module docstring) take their neighbours' class,
    with a warning, or are a LabelError when they form a region that is meant."""
    is_transparent = stats.uniques == _TRANSPARENT
    lut = np.full(stats.uniques.size, -1, dtype=np.int64)
    stray = np.zeros(stats.uniques.size, dtype=bool)
    dist_lut = np.zeros(stats.uniques.size)
    if palette.colors:
        classes = np.asarray(palette.colors, dtype=np.float64)
        visible = np.flatnonzero(~is_transparent)
        nearest, dist = _nearest(stats.rgb[visible], classes)
        lut[visible] = nearest
        dist_lut[visible] = dist
        far = dist > SHADE_TOLERANCE
        mixed, ends = _mixtures(stats.rgb[visible[far]], classes)
        lut[visible[far][mixed]] = ends[mixed]  # an edge between two classes: one of those two
        far[far] = ~mixed
        stray[visible[far]] = True
    if palette.unlabelled:
        lut[is_transparent] = len(palette.colors)
    else:
        stray |= is_transparent
    index = lut[stats.inverse]
    if len(palette.colors) >= 2:
        _settle_edges(index, stats, dist_lut, classes)
    if stray.any():
        pixels = stray[stats.inverse]
        if not _thin_and_small(pixels):
            raise LabelError(_stray_region_message(stats, stray, pixels, palette, what))
        index[pixels] = -1
        fill_holes(index, pixels, palette.num_classes)
        # A handful of pixels (3-class junctions, a brush's stray dab) is not worth a word.
        level = logging.WARNING if warn and pixels.sum() >= _min_count(pixels.size) else logging.DEBUG
        log.log(level, _stray_fill_message(stats, stray, what))
    return index


def _stray_fill_message(stats: _ColourStats, stray: np.ndarray, what: str) -> str:
    """One line: which colours, how many pixels, and what was done."""
    order = np.flatnonzero(stray)
    order = order[np.argsort(-stats.count[order], kind="stable")]
    names = [("transparent" if stats.uniques[u] == _TRANSPARENT else colour_hex(stats.rgb[u])) for u in order[:3]]
    total = int(stats.count[order].sum())
    more = f" and {len(order) - 3} more colours" if len(order) > 3 else ""
    return (
        f"{what}: {total:,} px match no class ({', '.join(names)}{more}), in thin or small areas "
        f"(an unpainted gap or JPEG ringing): they take the class of their neighbours"
    )


def _stray_region_message(stats: _ColourStats, stray: np.ndarray, pixels: np.ndarray, palette: Palette,
                          what: str) -> str:
    core = _has_core(pixels)
    where = core if core.any() else pixels
    inv = stats.inverse[where]
    n_transparent = int(np.sum(stats.uniques[inv] == _TRANSPARENT))
    if n_transparent * 2 >= inv.size:
        total = int(stats.count[stray & (stats.uniques == _TRANSPARENT)].sum())
        return (
            f"{what} has {total:,} fully transparent px, but the source label map has no "
            f"unlabelled (transparent) area; paint them with one of the source classes "
            f"({palette.describe()}), or erase the same kind of area in the source label layer and retrain"
        )
    # The unknown colours of the region that is meant, most frequent first.
    counts = np.bincount(inv, minlength=stats.uniques.size)
    bad = [int(u) for u in np.argsort(-counts, kind="stable")[:3] if counts[u] and stats.uniques[u] != _TRANSPARENT
           and counts[u] * 20 >= counts.max()]
    return _unknown_colours_message(stats, bad, palette, what)


# ------------------------------------------------------------------ public API


def extract_palette(labels: np.ndarray) -> Palette:
    """The classes of a source label map (H,W,3|4 uint8): its dominant flat colours,
    ordered by decreasing pixel count after snapping; a real transparent region is
    the extra "unlabelled" class.  LabelError if fewer than two classes."""
    what = "label map"
    packed = _pack(labels, what)
    n = packed.size
    stats = _colour_stats(packed)
    picked, transparent_dominant = _dominant(packed, stats)
    rgb = stats.rgb
    if not picked:
        if np.all(stats.uniques == _TRANSPARENT):
            raise LabelError("the label map is fully transparent: paint at least two classes")
        # No colour covers a region at all: noise, a photo, a gradient.
        visible = int(np.count_nonzero(stats.uniques != _TRANSPARENT))
        raise LabelError(
            f"the label map is not a flat-colour label map: it has {visible:,} distinct colours and none "
            f"of them covers a region of its own; paint each class in one flat colour "
            f"(a photo, a gradient or noise cannot be used as labels)"
        )
    colours = [tuple(int(v) for v in rgb[u]) for u in picked]
    if len(colours) + int(transparent_dominant) < 2:
        raise LabelError(
            f"the label map has only one colour ({colour_hex(colours[0])}): paint at least two classes"
        )
    colours, transparent_dominant = _drop_thin_classes(stats, colours, transparent_dominant)
    draft = Palette(colors=tuple(colours), unlabelled=transparent_dominant)  # type: ignore[arg-type]
    index = _snap(stats, draft, what, warn=False)  # decode_labels warns, once
    per_class = np.bincount(index.ravel(), minlength=draft.num_classes)
    # Order colour classes by decreasing snapped pixel count (ties: colour value).
    order = sorted(range(len(colours)), key=lambda i: (-per_class[i], colours[i]))
    fractions = [per_class[i] / n for i in order]
    if transparent_dominant:
        fractions.append(per_class[len(colours)] / n)
    return Palette(
        colors=tuple(colours[i] for i in order),  # type: ignore[arg-type]
        unlabelled=transparent_dominant,
        fractions=tuple(float(f) for f in fractions),
    )


def _drop_thin_classes(stats: _ColourStats, colours: list[tuple[int, int, int]],
                       transparent: bool) -> tuple[list[tuple[int, int, int]], bool]:
    """The dominant colours (and transparency) less those that form only thin, small
    regions: an erased stroke's gap or a JPEG strip, not a class (module docstring)."""
    if len(colours) + int(transparent) <= 2:
        return colours, transparent
    classes = np.asarray(colours, dtype=np.float64)
    is_transparent = stats.uniques == _TRANSPARENT
    nearest = np.full(stats.uniques.size, -1, dtype=np.int64)
    nearest[~is_transparent], _ = _nearest(stats.rgb[~is_transparent], classes)
    nearest[is_transparent] = len(colours)
    index = nearest[stats.inverse]
    keep = [c for i, c in enumerate(colours) if not _thin_and_small(index == i)]
    keep_transparent = transparent and not _thin_and_small(index == len(colours))
    if len(keep) + int(keep_transparent) < 2:  # never drop below two classes
        return colours, transparent
    return keep, keep_transparent


def decode_labels(labels: np.ndarray, palette: Palette, *, what: str = "target label map") -> np.ndarray:
    """(H,W,3|4) uint8 label map -> (H,W) int64 class indices of `palette`.

    Every pixel takes its nearest class colour; transparent pixels are the
    unlabelled class.  Pixels that match no class (farther than SHADE_TOLERANCE
    from every class and no anti-aliasing mixture; transparent ones when the
    source has no unlabelled class) take their neighbours' class, with a logged
    warning, when they are few and thin (a gap, JPEG ringing); a thicker or larger
    region of them is a LabelError naming its colour, so the painter can fix the layer.
    """
    if not palette.colors:
        raise LabelError("the source palette has no colour classes; extract it from a painted label map")
    packed = _pack(labels, what)
    return _snap(_colour_stats(packed), palette, what)


def _unknown_colours_message(stats: _ColourStats, bad: list[int], palette: Palette, what: str) -> str:
    # Count the pixels that look like each unknown colour (nearer to it than to any
    # class), i.e. the area the painter has to repaint, not just the exact shade.
    rgb = stats.rgb
    visible = stats.uniques != _TRANSPARENT
    refs = np.concatenate([np.asarray(palette.colors, dtype=np.float64), rgb[bad]])
    nearest, _ = _nearest(rgb[visible], refs)
    per_ref = np.bincount(nearest, weights=stats.count[visible], minlength=len(refs))
    parts = [
        f"{colour_hex(rgb[u])} ({int(per_ref[len(palette.colors) + k]):,} px)" for k, u in enumerate(bad)
    ]
    classes = ", ".join(colour_hex(c) for c in palette.colors)
    noun = "colour" if len(bad) == 1 else "colours"
    verb = "matches" if len(bad) == 1 else "match"
    return (
        f"{what}: {noun} {', '.join(parts)} {verb} no class of the source labels ({classes}); "
        f"repaint {'it' if len(bad) == 1 else 'them'} with one of those colours"
    )


def encode_labels(index: np.ndarray, palette: Palette) -> np.ndarray:
    """(H,W) class indices -> (H,W,4) uint8 RGBA; unlabelled is fully transparent."""
    index = np.asarray(index)
    if index.ndim != 2 or not np.issubdtype(index.dtype, np.integer):
        raise LabelError(f"expected a 2-D integer class-index map, got {index.dtype} of shape {index.shape}")
    lut = np.zeros((palette.num_classes, 4), dtype=np.uint8)
    if palette.colors:
        lut[: len(palette.colors), :3] = np.asarray(palette.colors, dtype=np.uint8)
        lut[: len(palette.colors), 3] = 255
    if index.size and (index.min() < 0 or index.max() >= palette.num_classes):
        raise LabelError(
            f"class index out of range: values {int(index.min())}..{int(index.max())} "
            f"for a palette of {palette.num_classes} classes"
        )
    return lut[index]


def resize_labels(index: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a (H,W) class-index map to size = (width, height);
    classes stay pure (never blended)."""
    index = np.asarray(index)
    if index.ndim != 2:
        raise LabelError(f"expected a 2-D class-index map, got shape {index.shape}")
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise LabelError(f"cannot resize a label map to {w}x{h}: both sides must be positive")
    src_h, src_w = index.shape
    if src_h == 0 or src_w == 0:
        raise LabelError("cannot resize an empty label map")
    # Sample at target pixel centres: the same rule as PIL's NEAREST.
    rows = np.minimum(((np.arange(h) + 0.5) * src_h / h).astype(np.int64), src_h - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * src_w / w).astype(np.int64), src_w - 1)
    return index[rows[:, None], cols[None, :]]


def check_same_size(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    """LabelError unless a and b have the same height and width."""
    ha, wa = a.shape[:2]
    hb, wb = b.shape[:2]
    if (ha, wa) != (hb, wb):
        raise LabelError(
            f"{what_a} is {wa}x{ha} but {what_b} is {wb}x{hb}: make both the same size "
            f"(resize or crop the layer in your editor) and try again"
        )
