"""The losses of the paper, vectorised.

The patch coherence loss is the expensive one: the original looped over patch
positions in Python. Here the nearest same-class source patch of every sampled
output patch comes from one masked distance matrix per chunk (a matrix product),
found without gradient; the loss then pulls each output patch towards its match.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Output patches compared per stage: a random sample is a stable estimate of the mean.
# Every source patch is a candidate up to 256x256 features (so an identical image
# scores exactly zero); beyond that they are taken on a grid. Queries go in chunks
# so that the distance matrix stays around 64 MB.
MAX_QUERIES = 1024
MAX_SOURCES = 65536
CHUNK = 256


def _labels_at(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a (1, H, W) class map to a feature resolution."""
    if labels.shape[-2:] == size:
        return labels[0]
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[0, 0].long()


def _patches(feat: torch.Tensor, k: int = 3) -> torch.Tensor:
    """(1, C, H, W) -> (H*W, C*k*k) patches centred at every position (reflect-padded)."""
    p = k // 2
    padded = F.pad(feat, (p, p, p, p), mode="reflect") if min(feat.shape[-2:]) > p else feat
    return F.unfold(padded, k)[0].t()


def nearest_same_class(
    queries: torch.Tensor, q_cls: torch.Tensor, sources: torch.Tensor, s_cls: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest source row of the same class for each query row.

    Returns (indices, valid): valid is False for a query whose class has no source
    patch (those are left out of the loss rather than matched across classes).
    """
    s_sq = (sources * sources).sum(1)
    idx = torch.empty(len(queries), dtype=torch.long, device=queries.device)
    valid = torch.empty(len(queries), dtype=torch.bool, device=queries.device)
    for start in range(0, len(queries), CHUNK):
        q = queries[start : start + CHUNK]
        d = s_sq[None, :] - 2 * q @ sources.t()  # |q|^2 is constant per row: not needed for argmin
        d = d.masked_fill(q_cls[start : start + CHUNK, None] != s_cls[None, :], math.inf)
        best, arg = d.min(1)
        idx[start : start + CHUNK] = arg
        valid[start : start + CHUNK] = torch.isfinite(best)
    return idx, valid


def patch_coherence_loss(
    out_feats: list[torch.Tensor],
    src_feats: list[torch.Tensor],
    out_labels: torch.Tensor,
    src_labels: torch.Tensor,
    generator: torch.Generator | None = None,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """Semantics-aware patch coherence: each output patch vs its nearest source patch of the same class.

    out_feats/src_feats: per-stage feature maps (1, C, h, w) of the output and the source;
    out_labels/src_labels: (1, H, W) class maps of the target and the source layouts;
    region: optional (1, H, W) bool map restricting which output patches count.
    """
    total = out_feats[0].new_zeros(())
    for fo, fs in zip(out_feats, src_feats):
        size = fo.shape[-2:]
        qo, ps = _patches(fo.float()), _patches(fs.float()).detach()
        qc, sc = _labels_at(out_labels, size).reshape(-1), _labels_at(src_labels, size).reshape(-1)
        candidates = torch.arange(len(qo), device=qo.device)
        if region is not None:
            candidates = candidates[_labels_at(region.long(), size).reshape(-1).bool()]
            if len(candidates) == 0:
                continue
        if len(candidates) > MAX_QUERIES:
            pick = torch.randperm(len(candidates), generator=generator, device="cpu")[:MAX_QUERIES]
            candidates = candidates[pick.to(candidates.device)]
        stride = max(1, math.ceil(math.sqrt(len(ps) / MAX_SOURCES)))
        grid = torch.arange(len(ps), device=ps.device).view(size)[::stride, ::stride].reshape(-1)
        q, qcls, s, scls = qo[candidates], qc[candidates], ps[grid], sc[grid]
        with torch.no_grad():
            idx, valid = nearest_same_class(q.detach(), qcls, s, scls)
        if valid.any():
            diff = q[valid] - s[idx[valid]]
            total = total + diff.pow(2).mean()
    return total


def alignment_loss(segmenter_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Semantic alignment: cross-entropy of S(output) against the target layout."""
    return F.cross_entropy(segmenter_logits.float(), labels)


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats)) / len(fake_feats)


def fixed_point_loss(modulation: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Pulls gamma -> 1 and beta -> 0 when the target equals the source layout."""
    return sum((g.float() - 1).pow(2).mean() + b.float().pow(2).mean() for g, b in modulation) / len(modulation)
