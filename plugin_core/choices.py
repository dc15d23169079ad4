"""The painter's choices: synthesis method, quality preset, working size, steps, seed.

The method names come from the protocol (protocol/schema.py), where they are defined
once; only the words shown for them live here. The preset nicks mirror the engine's
(engine/presets.py; a test keeps them equal): the plug-ins cannot import the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from ..protocol import schema
from . import UserError


class ChoiceError(UserError):
    """A choice that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Choice:
    nick: str  # what the protocol and the engine call it
    label: str  # what a combo box shows
    help: str  # a tooltip / the GIMP argument's blurb


# Words per method nick; which nicks exist, and the default, are the protocol's.
_METHOD_WORDS: dict[str, tuple[str, str]] = {
    "patch": (
        "Photo patches by the labels: instant, no training",
        "The photo's own patches re-arranged by the labels: no training, full size in seconds; "
        "as good as the trained methods in our tests",
    ),
    "gan+patch": (
        "Trained layout + the photo's detail (minutes)",
        "A network trained on the photo (minutes) lays the image out, then the photo's own patches give it detail",
    ),
    "gan": ("Trained network only (softer)", "The trained network's output as it is (softer)"),
}

DEFAULT_METHOD: str = schema.DEFAULT_METHOD
# In the order the editors offer them: the default first, then by how much they train.
METHOD_NAMES: tuple[str, ...] = tuple(sorted(
    schema.METHODS, key=lambda m: (m != DEFAULT_METHOD, list(_METHOD_WORDS).index(m) if m in _METHOD_WORDS else 99)
))
METHODS: tuple[Choice, ...] = tuple(
    Choice(m, *_METHOD_WORDS.get(m, (m, f"The engine's method {m!r}"))) for m in METHOD_NAMES
)

PRESETS: tuple[Choice, ...] = (
    Choice("preview", "Preview: ~128 px, minutes on a CPU", "Quick look; the default without a GPU"),
    Choice("standard", "Standard: 256 px, for a GPU", "Minutes on a GPU"),
    Choice("best", "Best: 512 px, long GPU training", "Long training on a GPU"),
    Choice("tiny", "Tiny: 64 px, seconds (a smoke test)", "Smoke tests; the result is not meant to look good"),
)
PRESET_NAMES: tuple[str, ...] = tuple(p.nick for p in PRESETS)
DEFAULT_PRESET = "preview"
# Training iterations per preset (engine/presets.py) and the seconds one takes on a 2-core
# CPU, measured end to end (BENCHMARKS.md, "Training"): for "about N min" before a training.
PRESET_STEPS: dict[str, int] = {"preview": 600, "standard": 3000, "best": 8000, "tiny": 12}
CPU_SECONDS_PER_STEP: dict[str, float] = {"preview": 0.33, "standard": 1.13, "best": 4.6, "tiny": 0.3}

MIN_SIZE, MAX_SIZE = 32, 4096  # working size in px; 0 = the preset's own
MAX_STEPS = 1_000_000  # training iterations; 0 = the preset's own


def needs_training(method: str) -> bool:
    """Whether the method trains a network: only then do preset, size and steps matter."""
    return method != "patch"


def check_method(method: object) -> str:
    """The method nick, or ChoiceError naming the ones there are."""
    if method in METHOD_NAMES:
        return str(method)
    raise ChoiceError(
        f"Unknown method “{method}”; choose one of {', '.join(METHOD_NAMES)} "
        f"({DEFAULT_METHOD}, the default: instant, no training; gan+patch: trains a network first)."
    )


def check_preset(preset: object) -> str:
    if preset in PRESET_NAMES:
        return str(preset)
    raise ChoiceError(f"Unknown quality preset “{preset}”; choose one of {', '.join(PRESET_NAMES)}.")


def check_size(size: object) -> int:
    value = _whole(size, "working size")
    if value != 0 and not MIN_SIZE <= value <= MAX_SIZE:
        raise ChoiceError(
            f"The working size must be 0 (Auto: the preset's) or {MIN_SIZE}–{MAX_SIZE} px, got {value}."
        )
    return value


def check_steps(steps: object) -> int:
    value = _whole(steps, "number of training steps")
    if not 0 <= value <= MAX_STEPS:
        raise ChoiceError(f"The number of training steps must be 0 (Auto: the preset's) or up to {MAX_STEPS}, got {value}.")
    return value


def check_seed(seed: object) -> int:
    value = _whole(seed, "seed")
    if value < 0:
        raise ChoiceError(f"The seed must be 0 or more, got {value}.")
    return value


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChoiceError(f"The {what} must be a whole number, got {value!r}.")
    return value


def train_settings(preset: str, size: int = 0, steps: int = 0, seed: int = 0,
                   overrides: Optional[Mapping[str, object]] = None) -> dict:
    """The `settings` of a submit (engine TrainSettings fields), checked.

    0 means "the preset decides" and is left out, so that identical choices give the
    same model key on the daemon: a second run with an edited target reuses the model.
    The method is not a setting (not part of the model key): one model serves them all.
    """
    out: dict = {"preset": check_preset(preset), "seed": check_seed(seed)}
    if check_size(size):
        out["size"] = size
    if check_steps(steps):
        out["steps"] = steps
    if overrides:
        out.update(overrides)
    return out


def training_estimate(preset: str, steps: int = 0, device: str = "cpu") -> str:
    """"about 3 min" for a training of this preset on the daemon's device; "" when
    there is no measurement to go by (GPUs: the progress events' ETA will say)."""
    if not device.lower().startswith("cpu") or preset not in CPU_SECONDS_PER_STEP:
        return ""
    minutes = (steps or PRESET_STEPS[preset]) * CPU_SECONDS_PER_STEP[preset] / 60.0
    if minutes < 1.5:
        return "about a minute"
    if minutes < 90:
        return f"about {int(round(minutes))} min"
    return f"about {int(round(minutes / 60))} h"
