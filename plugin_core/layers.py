"""One layer of a document as both plug-ins see it: plain values, no editor objects.

Each plug-in walks its editor's layer tree into these (krita_io.walk, the GIMP plug-in's
list_layers), and the rules that pick layers by name run on them the same way in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

from .naming import label_role

GROUP_KINDS = frozenset({"grouplayer", "group"})  # Krita's Node.type(), GIMP's is_group()


@dataclass(frozen=True)
class LayerInfo:
    key: Hashable  # the editor's stable id: Krita's uniqueId() as text, GIMP's layer id
    name: str
    kind: str = "paintlayer"  # the editor's layer type
    path: str = ""  # "Group / Layer" for display; "" means just the name
    visible: bool = True
    index: int = 0  # stacking order in a depth-first walk, 0 = bottom-most
    depth: int = 0  # 0 for top-level layers, 1 inside a group, ...

    @property
    def is_group(self) -> bool:
        return self.kind in GROUP_KINDS

    @property
    def display_name(self) -> str:
        return self.path or self.name


def choose_label_layers(layers: Sequence[LayerInfo]) -> tuple[Optional[Hashable], Optional[Hashable]]:
    """(source key, target key) of the label layers chosen by name among `layers` (None
    when none fits): exact names ("labels", "target labels", "label.png", "labels copy"...)
    win over names that merely start with or contain "label"/"target"; among equals the
    top-most. Each plug-in passes the layers it can read labels from."""
    best: dict[str, tuple[int, int, Hashable]] = {}
    for layer in layers:
        role, exact = label_role(layer.name)
        if role is None:
            continue
        rank = (0 if exact else 1, -layer.index)
        if role not in best or rank < best[role][:2]:
            best[role] = (*rank, layer.key)
    return (best["source"][2] if "source" in best else None,
            best["target"][2] if "target" in best else None)
