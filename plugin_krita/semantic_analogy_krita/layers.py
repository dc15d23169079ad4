"""Which layers play which part: source image, label layer, target label layer.

Pure logic over plain descriptions of Krita's layer tree, so the rules are
tested without Krita. krita_io.py turns real nodes into LayerInfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from . import core

# Node types (Node.type()) that hold colour pixels we can read with pixelData().
# Masks (transparencymask, filtermask, selectionmask, colorizemask, ...) do not.
PIXEL_LAYER_TYPES = frozenset(
    {"paintlayer", "grouplayer", "filelayer", "vectorlayer", "filllayer", "clonelayer", "adjustmentlayer"}
)
# Types a result may be compared with, but that the user does not paint labels on.
LABEL_LAYER_TYPES = frozenset({"paintlayer", "grouplayer", "vectorlayer", "filelayer", "clonelayer"})

# Names the helpers give, and how a user's own layers are recognised: the shared rule.
LABEL_PREFIX = core.naming.LABEL_PREFIX
TARGET_PREFIX = core.naming.TARGET_PREFIX
RESULT_SUFFIX = core.naming.RESULT_SUFFIX
VISIBLE_IMAGE = ""  # the source "uid" meaning: the visible image without label/target/result layers
is_label_name = core.naming.is_label_name
is_target_name = core.naming.is_target_name
is_result_name = core.naming.is_result_name
unique_name = core.naming.unique_name
next_target_name = core.naming.next_target_name
result_name = core.naming.result_name


class SelectionError(ValueError):
    """The chosen layers cannot be used; the message says what to pick."""


LayerInfo = core.layers.LayerInfo  # the shared type; key = Node.uniqueId() as text (stable, saved in .kra)


def is_readable(layer: LayerInfo) -> bool:
    """A layer with colour pixels that pixelData() reads (masks have none)."""
    return layer.kind in PIXEL_LAYER_TYPES


@dataclass(frozen=True)
class LayerRef:
    """How a choice is remembered: the uid, and the name as a fallback when the
    uid is gone (the layer was deleted and repainted, or the file was re-imported)."""

    uid: str
    name: str

    def to_dict(self) -> dict:
        return {"uid": self.uid, "name": self.name}

    @classmethod
    def from_dict(cls, d: object) -> Optional["LayerRef"]:
        if not isinstance(d, dict) or not isinstance(d.get("uid"), str) or not isinstance(d.get("name"), str):
            return None
        return cls(d["uid"], d["name"])


def resolve(layers: Sequence[LayerInfo], ref: Optional[LayerRef]) -> Optional[LayerInfo]:
    """Find a remembered layer: by uid, else by a name that is unique in the document."""
    if ref is None:
        return None
    for layer in layers:
        if layer.key == ref.uid:
            return layer
    same_name = [layer for layer in layers if layer.name == ref.name]
    return same_name[0] if len(same_name) == 1 else None


def _topmost(candidates: Iterable[LayerInfo]) -> Optional[LayerInfo]:
    best = None
    for layer in candidates:
        if best is None or layer.index > best.index:
            best = layer
    return best


def _chosen_by_name(layers: Sequence[LayerInfo], role: int, skip: str = "") -> Optional[LayerInfo]:
    """The layer the shared naming rule picks (exact names first, then the top-most)."""
    candidates = [l for l in layers if l.kind in LABEL_LAYER_TYPES and l.key != skip]
    key = core.layers.choose_label_layers(candidates)[role]
    return next((l for l in candidates if l.key == key), None)


def default_labels(layers: Sequence[LayerInfo]) -> Optional[LayerInfo]:
    """The label layer by name ("Labels", "label map", ...)."""
    return _chosen_by_name(layers, 0)


def default_target(layers: Sequence[LayerInfo], labels: Optional[LayerInfo]) -> Optional[LayerInfo]:
    """The target label layer by name ("Target 1", "edited labels", "labels copy", ...)."""
    return _chosen_by_name(layers, 1, labels.key if labels else "")


def default_source(layers: Sequence[LayerInfo]) -> str:
    """The bottom-most pixel layer that is neither labels, target nor result; else
    the visible image (VISIBLE_IMAGE). Photos are usually the background layer."""
    for layer in sorted(layers, key=lambda l: l.index):
        if is_readable(layer) and not (is_label_name(layer.name) or is_target_name(layer.name)
                                   or is_result_name(layer.name)):
            if layer.depth == 0:  # a top-level layer, not a part inside a group
                return layer.key
    return VISIBLE_IMAGE


@dataclass(frozen=True)
class Selection:
    source_uid: str  # VISIBLE_IMAGE for the visible image
    labels_uid: str
    target_uid: str  # "" when not chosen


def choose(layers: Sequence[LayerInfo], remembered_source: Optional[LayerRef],
           remembered_labels: Optional[LayerRef], remembered_target: Optional[LayerRef]) -> Selection:
    """The selection the docker shows: remembered choices that still exist, else the defaults."""
    labels = resolve(layers, remembered_labels) or default_labels(layers)
    target = resolve(layers, remembered_target)
    if target is None or (labels and target.key == labels.key):
        target = default_target(layers, labels)
    if remembered_source is not None and remembered_source.uid == VISIBLE_IMAGE:
        source_uid = VISIBLE_IMAGE
    else:
        src = resolve(layers, remembered_source)
        source_uid = src.key if src else default_source(layers)
    return Selection(source_uid, labels.key if labels else "", target.key if target else "")


def validate(layers: Sequence[LayerInfo], sel: Selection, *, need_target: bool) -> None:
    """Raise SelectionError with a plain-words message if the selection cannot be run."""
    by_uid = {l.key: l for l in layers}
    if not sel.labels_uid:
        raise SelectionError(
            "Choose the label layer (the flat-colour painting of the photo's regions), "
            "or create one with “New label layer”."
        )
    labels = by_uid.get(sel.labels_uid)
    if labels is None:
        raise SelectionError("The chosen label layer no longer exists; choose it again.")
    if not is_readable(labels):
        raise SelectionError(f"“{labels.name}” is a {labels.kind}, not a layer with pixels; choose a paint layer.")
    if sel.source_uid != VISIBLE_IMAGE:
        source = by_uid.get(sel.source_uid)
        if source is None:
            raise SelectionError("The chosen source layer no longer exists; choose it again.")
        if not is_readable(source):
            raise SelectionError(f"“{source.name}” is a {source.kind}, not a layer with pixels; choose the photo layer.")
        if source.key == labels.key:
            raise SelectionError("The source image and the label layer are the same layer; choose the photo as source.")
    if need_target or sel.target_uid:
        if not sel.target_uid:
            raise SelectionError(
                "Choose the target label layer (the edited copy of the labels), "
                "or make one with “Duplicate as target”."
            )
        target = by_uid.get(sel.target_uid)
        if target is None:
            raise SelectionError("The chosen target label layer no longer exists; choose it again.")
        if not is_readable(target):
            raise SelectionError(f"“{target.name}” is a {target.kind}, not a layer with pixels; choose a paint layer.")
        if target.key == labels.key:
            raise SelectionError(
                "The target is the label layer itself; edit a copy (“Duplicate as target”) and choose that."
            )
        if target.key == sel.source_uid:
            raise SelectionError("The target label layer is the source image; choose the edited label layer.")


def hidden_for_visible_image(layers: Sequence[LayerInfo], sel: Selection) -> list[str]:
    """Visible layers to hide while reading "Visible image": the label painting and its
    target lie over the photo, and earlier results would feed back into the source."""
    out = []
    for l in layers:
        if not l.visible:
            continue
        if l.key in (sel.labels_uid, sel.target_uid) or is_label_name(l.name) or is_target_name(l.name) \
                or is_result_name(l.name):
            out.append(l.key)
    return out


@dataclass(frozen=True)
class Placement:
    """Where a result layer goes: at the top level, right above `above_uid` ("": on top of
    the document), and the words for the status line (“on top of the label layers”)."""

    above_uid: str
    where: str


def _top_level_of(layers: Sequence[LayerInfo]) -> dict[str, LayerInfo]:
    """uid -> its top-level layer (itself at depth 0, else the group it lies in): the walk
    lists a group right before its contents, so it is the last depth-0 layer before."""
    out: dict[str, LayerInfo] = {}
    top: Optional[LayerInfo] = None
    for layer in sorted(layers, key=lambda l: l.index):
        if layer.depth == 0:
            top = layer
        if top is not None:
            out[layer.key] = top
    return out


def result_placement(layers: Sequence[LayerInfo], sel: Selection) -> Placement:
    """Results go above the topmost of the source, the label layers (the chosen ones and
    any named like labels or targets) and earlier results, so that they are seen while the
    label layers are shown, and the newest is on top; at the top level, so that no group's
    blending or hiding covers them. Layers of the user's own above all those stay above."""
    top_of = _top_level_of(layers)
    chosen = {sel.source_uid, sel.labels_uid, sel.target_uid} - {"", VISIBLE_IMAGE}
    anchors = [l for l in layers if l.key in chosen or is_label_name(l.name) or is_target_name(l.name)
               or is_result_name(l.name)]
    tops = [top_of[l.key] for l in anchors if l.key in top_of]
    anchor = _topmost(tops)
    if anchor is None:  # the chosen layers were deleted while the engine worked
        return Placement("", "on top of the layers")
    over_results = any(is_result_name(l.name) and top_of.get(l.key) == anchor for l in anchors)
    where = "on top of the label layers and earlier results" if over_results else "on top of the label layers"
    above = [l for l in layers if l.depth == 0 and l.index > anchor.index]
    if above:
        where += f", under “{_bottommost(above).name}”"
    return Placement(anchor.key, where)


def _bottommost(candidates: Iterable[LayerInfo]) -> LayerInfo:
    return min(candidates, key=lambda l: l.index)
