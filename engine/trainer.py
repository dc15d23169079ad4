"""Self-supervised training on one image (P -> P_aug :: I -> I_aug).

Each iteration warps (I, P) with one random transform into (I_aug, P_aug) and
trains G to produce I_aug from I given P -> P_aug; every `rec_every`-th iteration
is a reconstruction step (P_aug = P, output must equal I). Per iteration: S once,
D once, G `g_steps` times.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import losses as L
from .augment import augmentation_strength, random_warp
from .device import autocast, resolve_device
from .errors import Cancelled
from .features import build_feature_extractor
from ..protocol.files import replacing
from .model import TrainedModel
from .networks import Generator, LightDeepLabV3, PatchDiscriminator
from .presets import TrainSettings
from .progress import Progress
from .source import Source, one_hot, rgb, rgba, to_tensor, to_uint8

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def model_key(image: np.ndarray, labels: np.ndarray, settings: TrainSettings) -> str:
    """Content hash of (image, labels, settings): equal keys give the same trained model."""
    h = hashlib.sha256()
    for arr in (rgb(image), rgba(labels)):
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(settings.result_hash().encode())
    return h.hexdigest()[:32]


class Trainer:
    """The networks, their optimisers and one training iteration."""

    def __init__(self, source: Source, settings: TrainSettings, device: torch.device) -> None:
        torch.manual_seed(settings.seed)
        self.settings, self.device, self.source = settings, device, source
        k, base = source.palette.num_classes, settings.base_channels
        self.G = Generator(k, base).to(device)
        self.D = PatchDiscriminator(k, base).to(device)
        self.S = LightDeepLabV3(k).to(device)
        self.features = build_feature_extractor(settings.vgg_weights).to(device)
        betas = (0.5, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=settings.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=settings.lr, betas=betas)
        self.opt_s = torch.optim.Adam(self.S.parameters(), lr=settings.lr, betas=betas)
        # Augmentation and patch sampling draw from their own generator so that a
        # resumed run continues the same random sequence.
        self.rng = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.image = to_tensor(source.work_image(), device)
        self.labels = torch.from_numpy(source.work_index()).to(device)[None]
        self.src_onehot = one_hot(self.labels, k)
        with torch.no_grad(), autocast(device):
            self.src_feats = [f.float() for f in self.features(self.image)]

    # -- checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "S": self.S.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "opt_s": self.opt_s.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        for name in ("G", "D", "S", "opt_g", "opt_d", "opt_s"):
            getattr(self, name).load_state_dict(state[name])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])

    # -- one iteration (the paper's Figure 2) -----------------------------
    def iteration(self, step: int, total: int) -> tuple[dict[str, float], torch.Tensor]:
        """One self-supervised iteration: warp (I, P), then train S, D and G in turn."""
        rec = step % self.settings.rec_every == 0
        if rec:  # reconstruction: P' = P, the output must be I
            img_aug, lab_aug = self.image, self.labels
        else:
            img_aug, lab_aug = random_warp(self.image, self.labels, augmentation_strength(step, total), self.rng)
        aug_onehot = one_hot(lab_aug, self.source.palette.num_classes)
        losses = {"S": self.segmenter_step(img_aug, lab_aug), "D": self.discriminator_step(img_aug, aug_onehot)}
        g_losses, out = self.generator_steps(img_aug, lab_aug, aug_onehot, rec)
        losses.update(g_losses)
        return losses, out

    def segmenter_step(self, img_aug: torch.Tensor, lab_aug: torch.Tensor) -> float:
        """S learns to segment the augmented photo I_aug into P_aug."""
        with autocast(self.device):
            loss = L.alignment_loss(self.S(img_aug), lab_aug)
        self.opt_s.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_s.step()
        return loss.item()

    def discriminator_step(self, img_aug: torch.Tensor, aug_onehot: torch.Tensor) -> float:
        """D: real = I_aug, fake = G(I | P -> P_aug), both conditioned on P_aug (LSGAN)."""
        dev = self.device
        with torch.no_grad(), autocast(dev):
            fake, _ = self.G(self.image, self.src_onehot, aug_onehot)
        with autocast(dev):
            pred_real, _ = self.D(img_aug, aug_onehot)
            pred_fake, _ = self.D(fake, aug_onehot)
            loss = 0.5 * (L.lsgan_loss(pred_real, True) + L.lsgan_loss(pred_fake, False))
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.item()

    def generator_steps(self, img_aug: torch.Tensor, lab_aug: torch.Tensor, aug_onehot: torch.Tensor,
                        rec: bool) -> tuple[dict[str, float], torch.Tensor]:
        """G, `generator_steps` times: L1 + fixed point when reconstructing, else patch
        coherence + semantic alignment + LSGAN + feature matching.

        S and D are frozen (no parameter gradients) but stay in the graph: the alignment
        and adversarial losses reach G *through* them.
        """
        s, w, dev = self.settings, self.settings.weights, self.device
        self.S.requires_grad_(False)
        self.D.requires_grad_(False)
        try:
            if not rec:
                with torch.no_grad(), autocast(dev):
                    _, real_feats = self.D(img_aug, aug_onehot)
            for _ in range(s.generator_steps):
                with autocast(dev):
                    out, modulation = self.G(self.image, self.src_onehot, aug_onehot)
                    if rec:
                        parts = {
                            "rec": w.rec * F.l1_loss(out.float(), self.image),
                            "fixed_point": w.fixed_point * L.fixed_point_loss(modulation),
                        }
                    else:
                        pred, fake_feats = self.D(out, aug_onehot)
                        parts = {
                            "patch": w.patch
                            * L.patch_coherence_loss(self.features(out), self.src_feats, lab_aug, self.labels, self.rng),
                            "align": w.align * L.alignment_loss(self.S(out), lab_aug),
                            "adv": w.adv * L.lsgan_loss(pred, True),
                            "fm": w.fm * L.feature_matching_loss(fake_feats, real_feats),
                        }
                    loss_g = sum(parts.values())
                self.opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                self.opt_g.step()
        finally:
            self.S.requires_grad_(True)
            self.D.requires_grad_(True)
        losses = {k: v.item() for k, v in parts.items()}
        losses["G"] = loss_g.item()
        return losses, out.detach()


def _save_checkpoint(path: Path, trainer: Trainer, key: str) -> None:
    with replacing(path) as tmp:  # never leave a half-written checkpoint
        torch.save({"key": key, **trainer.state_dict()}, tmp)


def train(
    image: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workdir: str | os.PathLike | None = None,
    preview_targets: Sequence[np.ndarray] | None = None,
    source: Source | None = None,
) -> TrainedModel:
    """Train a model on one image and its label map.

    With `workdir`, checkpoints are written there every `checkpoint_every` steps and
    when stopped; a later call with the same inputs resumes from them, and the final
    model is saved there. `should_stop` is polled before every iteration; when it
    returns True, training raises Cancelled. Bad inputs raise LabelError before any
    training starts. `source`: the inputs already prepared at the settings' working size
    (skips decoding the label map again).
    """
    settings = settings or TrainSettings()
    device = resolve_device(settings.device)
    if source is None:
        source = Source.prepare(image, labels, settings.working_size)
    preview_index = None
    if preview_targets:  # decoded now so that a bad target fails before any training
        preview_index = [source.decode_target(t) for t in preview_targets][0]
    key = model_key(image, labels, settings)
    trainer = Trainer(source, settings, device)
    total = settings.total_steps

    ckpt = Path(workdir) / CHECKPOINT if workdir is not None else None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if ckpt.is_file():
            state = torch.load(ckpt, map_location=device, weights_only=False)
            if state.get("key") == key:
                trainer.load_state_dict(state)
                log.info("resuming training at step %d/%d from %s", trainer.step, total, ckpt)
            else:
                log.info("ignoring %s: it belongs to other inputs or settings", ckpt)

    log.info(
        "training %s on %s: %dx%d working size, %d classes, %d steps, %s features",
        key[:12], device, *source.work_size, source.palette.num_classes, total, trainer.features.name,
    )
    start_step, t0 = trainer.step, time.monotonic()
    while trainer.step < total:
        if should_stop is not None and should_stop():
            if ckpt is not None:
                _save_checkpoint(ckpt, trainer, key)
            # No path in the message: it reaches remote clients (the daemon log has the folder).
            where = "; its checkpoint resumes it" if ckpt is not None else ""
            if ckpt is not None:
                log.info("checkpoint of the stopped training: %s", ckpt)
            raise Cancelled(f"training stopped at step {trainer.step}/{total}{where}")
        step = trainer.step + 1
        losses, out = trainer.iteration(step, total)
        trainer.step = step
        if ckpt is not None and (step % settings.checkpoint_every == 0) and step < total:
            _save_checkpoint(ckpt, trainer, key)
        if progress is not None:
            elapsed = time.monotonic() - t0
            rate = elapsed / (step - start_step)
            preview = None
            if settings.preview_every and (step % settings.preview_every == 0 or step == total):
                preview = to_uint8(out)
                if preview_index is not None:
                    preview = TrainedModel(trainer.G, source, settings, key, device).synthesize(preview_index)
                    trainer.G.train()
            progress(Progress(step, total, elapsed, rate * (total - step), losses, preview))
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"training diverged at step {step} (losses {losses}); try another --seed")

    model = TrainedModel(trainer.G, source, settings, key, device)
    if ckpt is not None:
        model.save(ckpt.parent)
        ckpt.unlink(missing_ok=True)
    return model
