"""Training settings and the named presets.

Defaults follow the paper (Adam, lr 5e-4, every loss weight 1.0, one D step and
several G steps per iteration, reconstruction every 10th iteration); presets
only choose the working size, the number of iterations and the G steps.
Measured times for each preset are in BENCHMARKS.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import EngineError

# The largest image read by default, in pixels: the CLI's and the daemon's default
# --max-pixels. Training and synthesis time and memory grow with it; beyond this a photo
# takes many minutes and gigabytes, so the user scales it down or raises the limit knowingly.
MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Preset:
    size: int  # working size: longest side in pixels
    steps: int  # training iterations
    g_steps: int  # generator updates per iteration (D is updated once)
    description: str


PRESETS: dict[str, Preset] = {
    # Minutes on a 2-core CPU: the default when there is no GPU.
    "preview": Preset(size=128, steps=600, g_steps=1, description="~128 px, minutes on a laptop CPU"),
    # Minutes on a GPU.
    "standard": Preset(size=256, steps=3000, g_steps=2, description="256 px, for a GPU"),
    "best": Preset(size=512, steps=8000, g_steps=3, description="512 px, long GPU training"),
    # Seconds: for tests and smoke runs; the output is not meant to look good.
    "tiny": Preset(size=64, steps=12, g_steps=1, description="64 px, a few seconds, for tests"),
}


@dataclass(frozen=True)
class LossWeights:
    patch: float = 1.0
    align: float = 1.0
    adv: float = 1.0
    fm: float = 1.0
    rec: float = 1.0
    fixed_point: float = 1.0


@dataclass(frozen=True)
class TrainSettings:
    preset: str = "preview"
    size: int | None = None  # overrides the preset's working size
    steps: int | None = None  # overrides the preset's iterations
    g_steps: int | None = None  # overrides the preset's G updates per iteration
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    lr: float = 5e-4
    rec_every: int = 10  # every Nth iteration is a reconstruction step
    base_channels: int = 32
    weights: LossWeights = field(default_factory=LossWeights)
    preview_every: int = 50  # steps between preview images (0: never)
    checkpoint_every: int = 100  # steps between checkpoints when a workdir is given
    vgg_weights: str | None = None  # path to torchvision's VGG19 state dict (else auto-detect)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise EngineError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        for name in ("size", "steps", "g_steps"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise EngineError(f"{name} must be a positive integer, got {v}")
        if self.size is not None and self.size < 32:
            raise EngineError(f"--size must be at least 32 pixels, got {self.size}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise EngineError(f"unknown device {self.device!r}; use auto, cpu, cuda or mps")

    @property
    def working_size(self) -> int:
        return self.size or PRESETS[self.preset].size

    @property
    def total_steps(self) -> int:
        return self.steps or PRESETS[self.preset].steps

    @property
    def generator_steps(self) -> int:
        return self.g_steps or PRESETS[self.preset].g_steps

    def with_overrides(self, **kw) -> "TrainSettings":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise EngineError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        d = dict(d)
        if isinstance(d.get("weights"), dict):
            d["weights"] = LossWeights(**d["weights"])
        return cls(**d)

    def result_hash(self) -> str:
        """Hash of everything that changes the trained weights (not device or logging)."""
        d = self.to_dict()
        for k in ("device", "preview_every", "checkpoint_every", "preset"):
            d.pop(k)
        d["size"], d["steps"], d["g_steps"] = self.working_size, self.total_steps, self.generator_steps
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
