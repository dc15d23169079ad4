"""A job's events in words: the progress line, the time left, and what is said once per job.

Both editors show the same text; GIMP prefixes it with "Semantic Analogy: " because its
progress bar is shared with every other plug-in. Event kinds and fields: protocol/SPEC.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from .choices import DEFAULT_METHOD, needs_training, training_estimate


def format_eta(seconds: Optional[float]) -> str:
    """'~40 s left', '~3 min left', '~1 h 20 min left' (rounded like a person would)."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or unknown
        return "estimating time left"
    if seconds < 1:
        return "almost done"
    if seconds < 10:
        return f"~{int(round(seconds))} s left"
    if seconds < 57.5:  # nearest 5 s; from 57.5 s on it reads better as a minute
        return f"~{int(round(seconds / 5.0)) * 5} s left"
    minutes = max(1, int(round(seconds / 60.0)))
    if minutes < 60:
        return f"~{minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"~{hours} h {minutes} min left" if minutes else f"~{hours} h left"


@dataclass(frozen=True)
class Update:
    """What one event changes: the bar (None: leave it / busy), the line ("" : leave it),
    and a notice to show once (a daemon warning, or that an Apply must train first)."""

    fraction: Optional[float] = None
    text: str = ""
    notice: str = ""


def _num(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _apply_text(method: str, step: Optional[float], total: Optional[float]) -> str:
    """What the 'apply' stage does for the method; 'i/n' once there is more than one target."""
    if method == "patch":
        text = "Making the result from the photo's patches"
    elif method == "gan+patch":
        text = "Making the result (adding the photo's detail)"
    else:
        text = "Making the result"
    if step is not None and total and total > 1:
        text += f", {int(step)}/{int(total)} done"
    return text


def event_update(kind: str, data: Mapping[str, object], method: Optional[str] = None) -> Update:
    """The progress bar and line for one event of a job made with `method`."""
    method = method or DEFAULT_METHOD
    if kind == "queued":
        position = _num(data.get("position")) or 0
        if position <= 0:
            if not needs_training(method):
                # Nothing else arrives until the result is made: say what takes the seconds.
                return Update(None, "Making the result from the photo's patches (no training)…")
            return Update(None, "Starting…")
        n = int(position)
        return Update(None, f"Waiting: {n} job{'s' if n != 1 else ''} ahead in the engine's queue")
    if kind == "progress":
        step, total = _num(data.get("step")), _num(data.get("total"))
        stage = str(data.get("stage") or "train")
        fraction = min(1.0, max(0.0, step / total)) if total and total > 0 and step is not None else None
        if stage == "train":
            if step is None or not total:
                return Update(fraction, "Training…")
            return Update(fraction, f"Training {int(step)}/{int(total)}, {format_eta(_num(data.get('eta_s')))}")
        if stage == "apply":
            return Update(fraction, _apply_text(method, step, total))
        return Update(fraction, str(stage).capitalize() + "…")
    if kind == "preview" and data.get("instant") is True:
        what = "GAN" if data.get("kind") == "gan" else "patch"
        if str(data.get("stage") or "") == "train":
            total = _num(data.get("total"))
            steps = f" 0/{int(total)}" if total and total > 0 else ""
            return Update(0.0, f"Instant {what} result ready; training{steps}…")
        # From the model cache: the GAN's layout is ready, the patch pass makes the result.
        return Update(None, f"Instant {what} result ready; adding the photo's detail…")
    if kind == "result":
        return Update(1.0, "Adding the result layer…")
    if kind == "cancelled":
        return Update(0.0, "Cancelled")
    if kind == "error":
        return Update(0.0, "Failed")
    return Update()  # training previews (a picture), warnings (a notice: JobProgress)


def training_first(preset: str, steps: int, device: str) -> str:
    estimate = training_estimate(preset, steps, device)
    return "No trained model for this photo yet: training first" + (f", {estimate}." if estimate else ".")


class JobProgress:
    """Follows one job's events; says each engine warning once (SPEC.md 1.2: `progress` and
    `result` data carry all the job's warnings so far), and, for a job that was asked to
    apply a trained model (Krita's Apply), that it has to train first, as soon as the
    daemon starts training."""

    def __init__(self, method: Optional[str] = None, *, expects_model: bool = False,
                 preset: str = "preview", steps: int = 0, device: str = "") -> None:
        self.method = method or DEFAULT_METHOD
        self.expects_model = expects_model and needs_training(self.method)
        self.preset, self.steps, self.device = preset, steps, device
        self.warnings: list[str] = []
        self.trains = False  # the daemon started training for this job

    def update(self, kind: str, data: Mapping[str, object]) -> Update:
        up = event_update(kind, data, self.method)
        notices = []
        if not self.trains and str(data.get("stage") or "") == "train" and kind in ("progress", "preview"):
            self.trains = True
            if self.expects_model:
                notices.append(training_first(self.preset, self.steps, self.device))
        raw = data.get("warnings")
        for w in raw if isinstance(raw, (list, tuple)) else ():
            text = w.strip() if isinstance(w, str) else ""
            if text and text not in self.warnings:
                self.warnings.append(text)
                notices.append(f"Engine warning: {text}")
        return Update(up.fraction, up.text, "\n".join(notices)) if notices else up
