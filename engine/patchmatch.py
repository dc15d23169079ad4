"""Randomised PatchMatch over compact patch descriptors, vectorised in torch.

Patches are compared through descriptors: a linear projection (PCA of source
patches) of the k x k x C feature patch, computed for every pixel with one
conv2d. A candidate match then costs a gather of D numbers instead of k*k*C,
which is what makes PatchMatch affordable on two CPU cores.

The search (Barnes et al. 2009) is made parallel: every free pixel evaluates
the same kind of candidate at once, with jump-flood style propagation (the
match of the neighbour `step` pixels away, shifted back by `step`), random
search in shrinking windows around the current match and one fresh random
draw from its class. Candidates of another class than the pixel's target
label are never accepted, so the class constraint holds by construction.

Everything here is device-agnostic; memory is bounded by processing pixels in
chunks of `chunk` rows / entries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from .errors import Cancelled

class Features(Protocol):
    """Per-pixel feature maps of one pyramid level (see patch_synthesis.LabelFeatures, ColourFeatures)."""

    channels: int

    def grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(C, len(rows), len(cols)) features on the grid of the given (clamped) indices."""


def pca_projection(
    features: Features,
    height: int,
    width: int,
    patch_size: int,
    groups: list[tuple[int, int, int]],
    generator: torch.Generator,
    device: torch.device,
    samples: int = 8192,
) -> torch.Tensor:
    """Conv weights (D, C, k, k) projecting a feature patch on its top principal axes.

    `groups` lists (first channel, end channel, dims): each group of channels gets
    its own PCA, so that a part with small variance (fine colour texture) keeps
    its dimensions next to a part with large variance (class boundaries). A group
    whose whole patch has no more than `dims` numbers is kept whole. Fitted on
    about `samples` random source patches.
    """
    k, r = patch_size, patch_size // 2
    channels = features.channels
    # Patches centred on a random grid of rows x columns: one feature grid gives them all.
    ny = min(height, max(1, int(math.sqrt(samples * height / width))))
    nx = min(width, max(1, samples // ny))
    ys = torch.randint(0, height, (ny,), generator=generator, device=device)
    xs = torch.randint(0, width, (nx,), generator=generator, device=device)
    offs = torch.arange(-r, r + 1, device=device)
    rows = (ys[:, None] + offs[None, :]).clamp_(0, height - 1).reshape(-1)
    cols = (xs[:, None] + offs[None, :]).clamp_(0, width - 1).reshape(-1)
    f = features.grid(rows, cols).view(channels, ny, k, nx, k).permute(1, 3, 0, 2, 4)  # (ny, nx, C, k, k)
    blocks = []
    for c0, c1, dims in groups:
        full = (c1 - c0) * k * k
        block = torch.zeros(min(dims, full), channels, k, k, device=device)
        if full <= dims:
            block[:, c0:c1] = torch.eye(full, device=device).view(full, c1 - c0, k, k)
        else:
            x = f[:, :, c0:c1].reshape(ny * nx, full)
            x = x - x.mean(0, keepdim=True)
            top = principal_axes(x, dims, generator).to(device=device, dtype=torch.float32)
            block[:, c0:c1] = top.view(dims, c1 - c0, k, k)
        blocks.append(block)
    return torch.cat(blocks, 0)


def principal_axes(x: torch.Tensor, dims: int, generator: torch.Generator, oversample: int = 8,
                   power_iterations: int = 2, exact_up_to: int = 256) -> torch.Tensor:
    """(dims, n) the leading principal axes of the centred rows of `x` (m, n), strongest first.

    Over `exact_up_to` numbers by randomised subspace iteration (Halko, Martinsson & Tropp
    2011): the covariance is applied to a few random directions as x.T @ (x @ q), never
    formed. With many classes a label patch has hundreds of numbers (the face's 12 x 49),
    and forming and diagonalising that covariance took 40% of the face's synthesis. Smaller
    problems (colour patches, a few classes) are solved exactly, as before: there the
    randomised axes changed the thin-structure targets' results for the worse. The
    eigenproblems run on the CPU in float64: the same axes on every device.
    """
    n = x.shape[1]
    q = min(n, dims + oversample)
    if n <= exact_up_to or 2 * q >= n:
        cov = (x.T @ x) / max(x.shape[0] - 1, 1)
        _, vecs = torch.linalg.eigh(cov.double().cpu())
        return vecs[:, -dims:].flip(1).T.contiguous()
    basis = torch.randn(n, q, generator=generator, device=x.device, dtype=x.dtype)
    for _ in range(power_iterations + 1):
        y = (x.T @ (x @ basis)).double().cpu()
        basis = torch.linalg.qr(y).Q.to(device=x.device, dtype=x.dtype)
    small = (basis.T @ (x.T @ (x @ basis))).double().cpu()
    _, vecs = torch.linalg.eigh((small + small.T) / 2)
    axes = basis.double().cpu() @ vecs[:, -dims:].flip(1)
    return axes.T.contiguous()


def descriptors(
    features: Features,
    projection: torch.Tensor,
    height: int,
    width: int,
    box: tuple[int, int, int, int] | None = None,
    select: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    band_pixels: int = 1 << 18,
) -> torch.Tensor:
    """Descriptors (N, D) of the patches centred on the pixels of `box` (y0, x0, y1, x1).

    Patches reaching past the level's border see replicated edge pixels.
    `select` (flat indices into the box, ascending) keeps only those pixels.
    Computed in bands of rows so that the features never exist for the whole
    level at once.
    """
    d, _, k, _ = projection.shape
    r = k // 2
    device = projection.device
    y0, x0, y1, x1 = box if box is not None else (0, 0, height, width)
    bw = x1 - x0
    cols = torch.arange(x0 - r, x1 + r, device=device).clamp_(0, width - 1)
    band = max(1, band_pixels // max(bw, 1))
    n = select.numel() if select is not None else (y1 - y0) * bw
    out = torch.empty(n, d, dtype=dtype, device=device)
    filled = 0
    for ys in range(y0, y1, band):
        ye = min(y1, ys + band)
        rows = torch.arange(ys - r, ye + r, device=device).clamp_(0, height - 1)
        feats = features.grid(rows, cols)
        desc = F.conv2d(feats[None], projection)[0]  # (D, ye-ys, bw)
        desc = desc.reshape(d, -1).T
        if select is not None:
            lo = (ys - y0) * bw
            hi = (ye - y0) * bw
            a = int(torch.searchsorted(select, lo))
            b = int(torch.searchsorted(select, hi))
            desc = desc[select[a:b] - lo]
        out[filled : filled + desc.shape[0]] = desc.to(dtype)
        filled += desc.shape[0]
    return out


@dataclass
class ClassIndex:
    """Source pixels grouped by class, for drawing random same-class matches."""

    order: torch.Tensor  # (Ns,) flat source indices sorted by class
    start: torch.Tensor  # (C,) first entry of each class in `order`
    count: torch.Tensor  # (C,) pixels of each class

    @classmethod
    def build(cls, labels: torch.Tensor, num_classes: int) -> "ClassIndex":
        flat = labels.reshape(-1).long()
        order = torch.argsort(flat, stable=True)
        count = torch.bincount(flat, minlength=num_classes)
        start = torch.cumsum(count, 0) - count
        return cls(order, start, count)

    def draw(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One uniformly random source pixel of each given class (classes must be present)."""
        classes = classes.long()
        u = torch.rand(classes.shape, generator=generator, device=classes.device)
        cnt = self.count[classes]
        pick = torch.minimum((u * cnt).long(), cnt - 1)
        return self.order[self.start[classes] + pick]


@dataclass
class Search:
    """One PatchMatch problem: free target pixels of a box, matched into the source level."""

    query: torch.Tensor  # (M, D) descriptors of the free target pixels
    keys: torch.Tensor  # (Hs*Ws, D) source descriptors
    source_labels: torch.Tensor  # (Hs*Ws,) class of every source pixel
    target_labels: torch.Tensor  # (M,) class at every free pixel
    free_y: torch.Tensor  # (M,) row of every free pixel in the box
    free_x: torch.Tensor  # (M,) column in the box
    box: tuple[int, int, int, int]  # (y0, x0, y1, x1) of the box in level coordinates
    source_shape: tuple[int, int]  # (Hs, Ws)
    position_weight: float  # tiny pull towards the same place: breaks ties, makes the identity unique
    row_weight: torch.Tensor | None = None  # (M,) pull of every free pixel towards its own row (height)
    chunk: int = 1 << 18

    def __post_init__(self) -> None:
        # Each free pixel's whole weight on the squared row offset.
        self._row_pull = None if self.row_weight is None else self.row_weight + self.position_weight

    def cost(self, cand: torch.Tensor) -> torch.Tensor:
        """Cost of matching every free pixel to `cand` (flat source indices); inf when not allowed."""
        hs, ws = self.source_shape
        y0, x0 = self.box[0], self.box[1]
        out = torch.empty(cand.shape, dtype=torch.float32, device=cand.device)
        for s in range(0, cand.numel(), self.chunk):
            e = min(cand.numel(), s + self.chunk)
            c = cand[s:e]
            diff = self.keys.index_select(0, c).float().sub_(self.query[s:e].float())
            d = diff.pow_(2).sum(1)
            if self.position_weight or self._row_pull is not None:
                dy = ((c // ws) - (self.free_y[s:e] + y0)).float() / hs
                dx = ((c % ws) - (self.free_x[s:e] + x0)).float() / ws
                if self._row_pull is None:
                    d += self.position_weight * (dy * dy + dx * dx)
                else:
                    d.addcmul_(self._row_pull[s:e], dy * dy).add_(dx * dx, alpha=self.position_weight)
            d[self.source_labels.index_select(0, c) != self.target_labels[s:e]] = float("inf")
            out[s:e] = d
        return out


def patchmatch(
    search: Search,
    nnf: torch.Tensor,
    free: torch.Tensor,
    *,
    iterations: int,
    steps: list[int],
    radius: int,
    generator: torch.Generator,
    index: ClassIndex | None = None,
    coherence: float = 0.0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Improve `nnf` (box-sized grid of flat source indices) at the free pixels.

    `free` holds the flat box indices of the free pixels (ascending); other
    pixels keep their match and only serve as propagation sources. Returns the
    updated grid and the cost of every free pixel's match. With `index`, every
    iteration also offers each pixel one fresh random match of its class, which
    lets a coarse level escape from a poor start.

    `coherence` (Image Analogies' kappa) discounts the cost of a match that
    continues a neighbour's match by that fraction: among the many near-equal
    matches of a stochastic texture it prefers the ones that keep whole source
    pieces together, which the vote then blends without blurring.
    """
    hs, ws = search.source_shape
    y0, x0, y1, x1 = search.box
    bh, bw = y1 - y0, x1 - x0
    grid = nnf.reshape(-1).clone()
    fy, fx = search.free_y, search.free_x
    neighbours = []
    if coherence > 0:
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ny, nx = fy + dy, fx + dx
            inside = (ny >= 0) & (ny < bh) & (nx >= 0) & (nx < bw)
            neighbours.append((ny.clamp(0, bh - 1) * bw + nx.clamp(0, bw - 1), inside, dy, dx))

    def effective(cand: torch.Tensor) -> torch.Tensor:
        """Cost with the coherence discount, checking all four neighbours."""
        cost = search.cost(cand)
        if not neighbours:
            return cost
        coherent = torch.zeros_like(cand, dtype=torch.bool)
        for nidx, inside, dy, dx in neighbours:
            m = grid[nidx]
            mx = m % ws - dx
            coherent |= inside & (cand == m - dy * ws - dx) & (mx >= 0) & (mx < ws)
        return torch.where(coherent, cost * (1 - coherence), cost)

    best = grid[free]
    best_cost = effective(best)

    def offer(cand: torch.Tensor, valid: torch.Tensor | None = None, coherent: bool = False) -> None:
        # Only a one-pixel propagation is known to continue a neighbour without checking;
        # other candidates are offered at their plain cost (a rare coherent one loses its bonus).
        nonlocal best, best_cost
        cost = search.cost(cand)
        if coherent and coherence > 0:
            cost = cost * (1 - coherence)
        better = cost < best_cost
        if valid is not None:
            better &= valid
        best = torch.where(better, cand, best)
        best_cost = torch.where(better, cost, best_cost)

    for it in range(iterations):
        if should_stop is not None and should_stop():
            raise Cancelled("patch synthesis was stopped")
        if it and neighbours:
            best_cost = effective(best)  # neighbours moved: refresh the discounts
        for step in steps:
            for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
                ny, nx = fy + dy, fx + dx
                inside = (ny >= 0) & (ny < bh) & (nx >= 0) & (nx < bw)
                nidx = ny.clamp(0, bh - 1) * bw + nx.clamp(0, bw - 1)
                src = grid[nidx]
                sy, sx = src // ws - dy, src % ws - dx
                valid = inside & (sy >= 0) & (sy < hs) & (sx >= 0) & (sx < ws)
                cand = sy.clamp(0, hs - 1) * ws + sx.clamp(0, ws - 1)
                offer(cand, valid, coherent=step == 1)
                grid[free] = best
        # Random search in windows halving from `radius` down to one pixel.
        r = radius
        while r >= 1:
            sy, sx = best // ws, best % ws
            jy = torch.randint(-r, r + 1, best.shape, generator=generator, device=best.device)
            jx = torch.randint(-r, r + 1, best.shape, generator=generator, device=best.device)
            cand = (sy + jy).clamp_(0, hs - 1) * ws + (sx + jx).clamp_(0, ws - 1)
            offer(cand)
            r //= 2
        if index is not None:
            offer(index.draw(search.target_labels, generator))
        grid[free] = best
    if neighbours:
        best_cost = search.cost(best)
    return grid.view_as(nnf), best_cost
