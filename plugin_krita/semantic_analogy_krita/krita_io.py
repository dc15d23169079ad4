"""Reading and writing Krita layers (the only module besides the docker that touches
Krita's API). Pixel rules live in pixels.py, layer rules in layers.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from krita import Krita, ManagedColor  # type: ignore[import-not-found]

from . import layers as L
from . import palette
from .messages import ImageData
from .pixels import PixelFormatError, Rect, check_color_space, krita_to_rgba8, rgba8_to_krita, source_region
from .qt_compat import QColor

log = logging.getLogger(__name__)


def walk(doc) -> tuple[list[L.LayerInfo], dict]:
    """Every node in stacking order (bottom first, depth first) as LayerInfo, and uid -> node."""
    infos: list[L.LayerInfo] = []
    nodes: dict = {}

    def visit(children, prefix: str, depth: int) -> None:
        for node in children:  # childNodes() lists bottom to top
            uid = node.uniqueId().toString()
            path = f"{prefix}{node.name()}"
            infos.append(L.LayerInfo(uid, node.name(), node.type(), path, bool(node.visible()), len(infos), depth))
            nodes[uid] = node
            if node.type() == "grouplayer":
                visit(node.childNodes(), path + " / ", depth + 1)

    visit(doc.topLevelNodes(), "", 0)
    return infos, nodes


def _rect(qrect) -> Rect:
    return Rect(qrect.x(), qrect.y(), qrect.width(), qrect.height())


def read_node(node, region: Rect, what: str) -> ImageData:
    """8-bit RGBA of `region` of one layer (transparent where the layer has no pixels).

    Paint layers are read raw (their own pixels, ignoring layer opacity, which users
    lower to see the photo through the labels); other layers through their projection.
    """
    model, depth = node.colorModel(), node.colorDepth()
    check_color_space(model, depth, what)
    x, y, w, h = region
    if node.type() == "paintlayer":
        raw = node.pixelData(x, y, w, h)
    else:
        raw = node.projectionPixelData(x, y, w, h)
    return ImageData(w, h, krita_to_rgba8(bytes(raw), w, h, model, depth, what))


def read_visible(doc, region: Rect, hide: list) -> ImageData:
    """The composited canvas with the given nodes hidden for the read, then shown again."""
    check_color_space(doc.colorModel(), doc.colorDepth(), "The document", is_document=True)
    was_modified = doc.modified()
    shown = [n for n in hide if n.visible()]
    try:
        for n in shown:
            n.setVisible(False)
        if shown:
            doc.refreshProjection()
        doc.waitForDone()
        x, y, w, h = region
        raw = doc.rootNode().projectionPixelData(x, y, w, h)
    finally:
        for n in shown:
            n.setVisible(True)
        if shown:
            doc.refreshProjection()
            doc.setModified(was_modified)
    return ImageData(w, h, krita_to_rgba8(bytes(raw), w, h, doc.colorModel(), doc.colorDepth(), "The document"))


def region_for(doc, source_node) -> Rect:
    bounds = None if source_node is None else _rect(source_node.bounds())
    name = "the source layer" if source_node is None else f"“{source_node.name()}”"
    return source_region(bounds, doc.width(), doc.height(), name)


def add_result_layer(doc, above, name: str, region: Rect, rgba: bytes):
    """A new paint layer with the result at `region`, directly above `above` (or on top
    of the document); where that is, layers.result_placement decides.

    Only adds a node: deleting it undoes everything the plugin did.
    """
    node = doc.createNode(name, "paintlayer")
    depth = node.colorDepth()
    if node.colorModel() != "RGBA":
        raise PixelFormatError(
            "The document is not RGB; convert it with Image › Convert Image Color Space… to RGB/Alpha."
        )
    if above is not None and above.parentNode() is not None:
        above.parentNode().addChildNode(node, above)
    else:
        doc.rootNode().addChildNode(node, None)
    node.setPixelData(rgba8_to_krita(rgba, region.width, region.height, depth),
                      region.x, region.y, region.width, region.height)
    doc.refreshProjection()
    return node


def new_label_layer(doc, above) -> object:
    """A paint layer for painting labels, above `above` (the photo), at 60% opacity so
    the photo shows through; reading it ignores opacity."""
    infos, _ = walk(doc)
    node = doc.createNode(L.unique_name(L.LABEL_PREFIX, [i.name for i in infos]), "paintlayer")
    node.setOpacity(153)
    parent = above.parentNode() if above is not None and above.parentNode() is not None else doc.rootNode()
    parent.addChildNode(node, above)
    doc.setActiveNode(node)
    return node


def duplicate_as_target(doc, labels_node) -> object:
    """A copy of the label layer named "Target N", right above it, made active for editing."""
    infos, _ = walk(doc)
    copy = labels_node.duplicate()
    copy.setName(L.next_target_name(i.name for i in infos))
    parent = labels_node.parentNode() or doc.rootNode()
    parent.addChildNode(copy, labels_node)
    doc.setActiveNode(copy)
    return copy


def set_foreground(rgb: tuple[int, int, int]) -> bool:
    """Make a palette colour the current painting colour in the active view."""
    window = Krita.instance().activeWindow()
    view = window.activeView() if window else None
    if view is None:
        return False
    colour = ManagedColor.fromQColor(QColor(*rgb), view.canvas())
    view.setForeGroundColor(colour)
    return True


def install_palette_file() -> Optional[Path]:
    """Put the label palette where Krita's Palette docker finds it (listed after the next
    start: Krita 5 scans resource folders at start-up)."""
    try:
        base = Path(Krita.getAppDataLocation()) / "palettes"
        target = base / palette.PALETTE_FILE
        if not target.exists():
            base.mkdir(parents=True, exist_ok=True)
            target.write_text(palette.gpl_text(), encoding="utf-8")
        return target
    except OSError as e:
        log.warning("could not write the label palette: %s", e)
        return None


def node_content_key(node, region: Rect) -> int:
    """A cheap change detector for the live mode: hash of the layer's pixels in `region`."""
    x, y, w, h = region
    return hash(bytes(node.pixelData(x, y, w, h)) if node.type() == "paintlayer"
                else bytes(node.projectionPixelData(x, y, w, h)))
