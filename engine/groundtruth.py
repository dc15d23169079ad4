"""Analogies with known answers: (I, P) transformed by a known map into (I', P'), so a method's
result for P' can be scored against the true I'.

Two families of cases (Li et al.'s own self-supervision is the first):

- whole-image transforms, where I' is known wherever the map lands inside the photo:
  mirror, shift, scale (0.8, 1.25), rotation (+-10 degrees) and a combination;
- local ones, where I' is known inside the moved object: an object (the smallest class
  covering at least 3% of the photo) copied with its own pixels to another place, as it
  is, enlarged, shrunk or rotated.

Each case says where I' is known (`known`) and where the class changed (`changed`, the
part a method has to make); methods are scored there by PSNR and SSIM (`score`).
numpy and PIL only: the same arrays go to every method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .labels import Palette, encode_labels

__all__ = ["Case", "FAMILIES", "OBJECT_MIN_FRACTION", "cases", "pick_object", "score", "ssim_map"]

OBJECT_MIN_FRACTION = 0.03
BORDER = 2  # px of a resampled image's edge left out of `known` (the filter reaches past it)

# name -> (family, kind, parameters); whole-image ones map the photo, local ones its object.
FAMILIES: dict[str, tuple[str, str, dict]] = {
    "identity": ("whole", "affine", {}),
    "mirror": ("whole", "affine", {"mirror": True}),
    "shift": ("whole", "affine", {"shift": (0.1, 0.0)}),
    "scale 0.8": ("whole", "affine", {"scale": 0.8}),
    "scale 1.25": ("whole", "affine", {"scale": 1.25}),
    "rotate +10": ("whole", "affine", {"angle": 10.0}),
    "rotate -10": ("whole", "affine", {"angle": -10.0}),
    "mirror+scale+rotate": ("whole", "affine", {"mirror": True, "scale": 1.1, "angle": 5.0}),
    "object copy": ("local", "object", {}),
    "object x1.25": ("local", "object", {"scale": 1.25}),
    "object x0.8": ("local", "object", {"scale": 0.8}),
    "object rotate 15": ("local", "object", {"angle": 15.0}),
}


@dataclass(frozen=True)
class Case:
    name: str
    family: str  # "whole" or "local"
    image: np.ndarray  # (H, W, 3) uint8: the true I'
    index: np.ndarray  # (H, W) class indices: P'
    target: np.ndarray  # (H, W, 4) uint8: P' painted in the palette's colours, as a user would send it
    known: np.ndarray  # (H, W) bool: where I' is known
    changed: np.ndarray  # (H, W) bool: known, and the class differs from P's


def _affine(h: int, w: int, mirror: bool = False, shift: tuple[float, float] = (0.0, 0.0), scale: float = 1.0,
            angle: float = 0.0, centre: tuple[float, float] | None = None) -> tuple[float, ...]:
    """PIL's AFFINE data (the inverse map, output pixel -> input pixel) of: mirror, then scale
    and rotate (counter-clockwise, degrees) about `centre` (x, y; default the image centre),
    then shift by a share of (w, h)."""
    cx, cy = centre if centre is not None else ((w - 1) / 2, (h - 1) / 2)
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    tx, ty = shift[0] * w, shift[1] * h
    # Output (x, y) -> undo shift -> undo rotation/scale about the centre -> undo the mirror.
    ix = [cos, -sin, 0.0]
    iy = [sin, cos, 0.0]
    ix[2] = cx - cos * (cx + tx) + sin * (cy + ty)
    iy[2] = cy - sin * (cx + tx) - cos * (cy + ty)
    if mirror:  # x_in = (w - 1) - x_in'
        ix = [-ix[0], -ix[1], (w - 1) - ix[2]]
    return (*ix, *iy)


def _warp(array: np.ndarray, data: tuple[float, ...], nearest: bool) -> np.ndarray:
    """`array` resampled along the inverse map `data` (in pixel-index coordinates)."""
    a, b, c, d, e, f = data
    # PIL samples at pixel centres (i + 0.5): the same map in its coordinates.
    pil = (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
    im = Image.fromarray(array)
    return np.asarray(im.transform(im.size, Image.AFFINE, pil, resample=Image.NEAREST if nearest else Image.BICUBIC))


def _inside(h: int, w: int, data: tuple[float, ...], border: int) -> np.ndarray:
    """Where the inverse map lands at least `border` px inside the source image."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    a, b, c, d, e, f = data
    sx, sy = a * xx + b * yy + c, d * xx + e * yy + f
    return (sx >= border) & (sx <= w - 1 - border) & (sy >= border) & (sy <= h - 1 - border)


def pick_object(index: np.ndarray) -> int:
    """The class to move in the local cases: the smallest covering at least OBJECT_MIN_FRACTION."""
    counts = np.bincount(index.ravel())
    ok = np.flatnonzero(counts >= OBJECT_MIN_FRACTION * index.size)
    if len(ok) < 2:
        raise ValueError("the label map needs two classes of at least 3% of the image for the local cases")
    return int(ok[np.argmin(counts[ok])])


def _whole(image: np.ndarray, index: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = index.shape
    data = _affine(h, w, **params)
    img = _warp(image, data, nearest=False)
    idx = _warp(index.astype(np.uint8), data, nearest=True).astype(index.dtype)
    inside = _inside(h, w, data, 0)
    if not inside.all():
        # Where the map leaves the photo nothing is known: the labels continue the nearest
        # edge, as a painter's layer would, and those pixels are not scored.
        ys, xs = np.mgrid[:h, :w]
        a, b, c, d, e, f = data
        sx = np.clip(np.rint(a * xs + b * ys + c), 0, w - 1).astype(int)
        sy = np.clip(np.rint(d * xs + e * ys + f), 0, h - 1).astype(int)
        idx = np.where(inside, idx, index[sy, sx]).astype(index.dtype)
        img = np.where(inside[..., None], img, image[sy, sx])
    return img, idx, _inside(h, w, data, BORDER)


def _local(image: np.ndarray, index: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The object copied (scaled/rotated about its centre) to where it overlaps itself least."""
    h, w = index.shape
    obj = pick_object(index)
    mask = index == obj
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean(), ys.mean()
    scale, angle = params.get("scale", 1.0), params.get("angle", 0.0)
    best = None
    for dx in np.linspace(-0.5, 0.5, 11):
        for dy in np.linspace(-0.3, 0.3, 7):
            data = _affine(h, w, shift=(dx, dy), scale=scale, angle=angle, centre=(cx, cy))
            moved = _warp(mask.astype(np.uint8) * 255, data, nearest=True) > 0
            visible = moved.sum() / (mask.sum() * scale * scale)
            if visible < 0.5:
                continue
            # Least overlap with the object itself, keeping most of the copy in the picture.
            cost = (moved & mask).sum() / moved.sum() + max(0.0, 0.85 - visible)
            if best is None or cost < best[0] - 1e-9:
                best = (cost, data, moved)
    if best is None:
        raise ValueError("the object cannot be placed anywhere else in the image")
    _, data, moved = best
    pasted = _warp(image, data, nearest=False)
    img = np.where(moved[..., None], pasted, image)
    idx = np.where(moved, obj, index).astype(index.dtype)
    # Known: the photo where nothing was pasted, the pasted object away from its resampled rim.
    inner = _inside(h, w, data, BORDER) & moved
    core = inner.copy()
    for _ in range(BORDER):  # the bicubic filter blends the object's edge with what lay beyond it
        core[1:-1, 1:-1] &= core[:-2, 1:-1] & core[2:, 1:-1] & core[1:-1, :-2] & core[1:-1, 2:]
    known = ~moved | core
    return img, idx, known


def cases(image: np.ndarray, index: np.ndarray, palette: Palette, names: list[str] | None = None) -> list[Case]:
    """The known-answer cases of FAMILIES (or of `names`) for a photo (H, W, 3) and its class map."""
    image = np.ascontiguousarray(image[..., :3])
    out = []
    for name in names or list(FAMILIES):
        family, kind, params = FAMILIES[name]
        img, idx, known = (_whole if kind == "affine" else _local)(image, index, params)
        out.append(Case(name, family, np.ascontiguousarray(img), idx, encode_labels(idx, palette), known,
                        known & (idx != index)))
    return out


# --------------------------------------------------------------------------- scores


def _gauss(x: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    r = int(math.ceil(3 * sigma))
    k = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    k /= k.sum()
    p = np.pad(x, r, mode="reflect")
    p = sum(k[i] * p[i : i + x.shape[0], :] for i in range(2 * r + 1))
    return sum(k[i] * p[:, i : i + x.shape[1]] for i in range(2 * r + 1))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) SSIM (Wang et al. 2004: Gaussian window, sigma 1.5) of the luminance of two RGB images."""
    lum = np.array([0.299, 0.587, 0.114])
    x, y = a[..., :3].astype(np.float64) @ lum, b[..., :3].astype(np.float64) @ lum
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gauss(x), _gauss(y)
    sxx, syy, sxy = _gauss(x * x) - mx * mx, _gauss(y * y) - my * my, _gauss(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def score(output: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict | None:
    """PSNR (dB, 100 for identical pixels) and mean SSIM of `output` against `truth` over `region`."""
    if not region.any():
        return None
    diff = output[..., :3].astype(np.float64)[region] - truth[..., :3].astype(np.float64)[region]
    mse = float(np.mean(diff * diff))
    psnr = 100.0 if mse == 0 else min(100.0, 10 * math.log10(255.0**2 / mse))
    return {"psnr": psnr, "ssim": float(ssim_map(output, truth)[region].mean()), "pixels": int(region.sum())}
