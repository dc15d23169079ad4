"""Choosing the compute device."""

from __future__ import annotations

import torch

from .errors import EngineError


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when available, then Apple's MPS, else the CPU; an explicit name must be usable."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise EngineError("--device mps was asked for but Apple's MPS is not available; use --device auto or cpu")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (safe for these convs and norms); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)
