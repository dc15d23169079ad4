"""Layer names: which layers are labels, targets and results, and what new layers are called.

One rule in both editors: painters name label layers "labels", "label map", "segmentation"...,
their edited copies "target labels", "labels copy", "Target 2", "edited labels"...; results are
named after the target they realise ("Target 1 → analogy", then "Target 1 → analogy (2)").
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

LABEL_PREFIX = "Labels"  # what "New label layer" calls its layer
TARGET_PREFIX = "Target"  # "Duplicate as target": "Target 1", "Target 2", ...
RESULT_SUFFIX = " → analogy"

_EXTENSIONS = re.compile(r"\.(png|jpe?g|webp|tiff?|xcf|kra|bmp|gif|ora|psd|exr)$", re.IGNORECASE)
# Editors number duplicates: GIMP "labels #1", Krita "labels (2)"; the counter is noise.
_COUNTER = re.compile(r"(\s*#\d+|\s*\(\d+\))$")
_RESULT = re.compile(re.escape(RESULT_SUFFIX) + r"( \(\d+\))?$|\(analogy\)( #\d+)?$")

SOURCE_EXACT = frozenset(
    {"labels", "label", "source labels", "source label", "labels source", "label map", "segmentation", "p"}
)
TARGET_EXACT = frozenset(
    {"target labels", "target label", "labels target", "target", "edited labels", "new labels",
     "labels copy", "label copy", "labels (copy)", "p'"}
)
_SOURCE_WORDS = re.compile(r"^(labels?|label map|segmentation|semantic|classes)\b")
_TARGET_WORDS = re.compile(r"^(target|edit(ed)?)\b")


def normalize_name(name: str) -> str:
    """Lower-case words of a layer name without file extension or the editor's duplicate counter."""
    n = _COUNTER.sub("", name.strip())
    n = _EXTENSIONS.sub("", n)
    n = re.sub(r"[\s_\-.]+", " ", n.lower())
    return n.strip()


def is_result_name(name: str) -> bool:
    return _RESULT.search(name.strip()) is not None


def label_role(name: str) -> tuple[Optional[str], bool]:
    """('source' | 'target' | None, exact) for a layer name; results are neither."""
    if is_result_name(name):
        return None, False
    n = normalize_name(name)
    if n in TARGET_EXACT:
        return "target", True
    if n in SOURCE_EXACT:
        return "source", True
    words = n.split()
    has_label = any(w.startswith("label") for w in words)
    if _TARGET_WORDS.match(n) or "target" in words or (has_label and "copy" in words):
        return "target", False
    if has_label or _SOURCE_WORDS.match(n):
        return "source", False
    return None, False


def is_label_name(name: str) -> bool:
    return label_role(name)[0] == "source"


def is_target_name(name: str) -> bool:
    return label_role(name)[0] == "target"


def unique_name(base: str, existing: Iterable[str]) -> str:
    """`base`, or "base (2)", "base (3)"...: the first no layer has."""
    taken = set(existing)
    if base not in taken:
        return base
    n = 2
    while f"{base} ({n})" in taken:
        n += 1
    return f"{base} ({n})"


def next_target_name(existing: Iterable[str]) -> str:
    """"Target 1", "Target 2", ...: the first number no layer uses."""
    taken = set(existing)
    n = 1
    while f"{TARGET_PREFIX} {n}" in taken:
        n += 1
    return f"{TARGET_PREFIX} {n}"


def result_name(target_name: str, existing: Iterable[str]) -> str:
    """The result layer is named after its target, so several results stay readable."""
    return unique_name(f"{target_name.strip() or 'target'}{RESULT_SUFFIX}", existing)
