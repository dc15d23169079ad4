"""Progress events that training reports to its caller."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Progress:
    step: int  # steps done so far (1-based after the first step)
    total: int  # steps in the whole training
    elapsed_s: float  # wall time since this training (or resume) began
    eta_s: float  # estimated seconds left
    losses: dict[str, float] = field(default_factory=dict)
    # A small RGB uint8 preview (H, W, 3) every `preview_every` steps, else None.
    preview: np.ndarray | None = None
    stage: str = "train"  # "train" while training, "apply" while synthesising

    def as_dict(self) -> dict:
        """JSON-friendly form (without the preview pixels)."""
        return {
            "stage": self.stage,
            "step": self.step,
            "total": self.total,
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": round(self.eta_s, 3),
            "losses": {k: round(float(v), 5) for k, v in self.losses.items()},
            "preview": self.preview is not None,
        }
