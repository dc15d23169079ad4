"""A small fake of Krita's Python API (the `krita` module), for fast tests of the plug-in.

Only what plugin_krita/semantic_analogy_krita/krita_io.py, layers.py and controller.py
call, behaving as Krita 5.1 does where the plug-in depends on it (checked against the
real Krita in tests/test_krita_e2e.py and ../shared/EDITORS.md):

- pixelData/setPixelData use Krita's channel order: B, G, R, A for 8-bit RGBA
  (16-bit: the same order, little-endian uint16 per channel); pixels outside what was
  painted read as zero bytes (transparent), also past the canvas;
- bounds() of a paint layer is the exact box of its non-transparent pixels and may lie
  partly or wholly off the canvas (a moved or pasted layer);
- childNodes() and topLevelNodes() list bottom to top; addChildNode(child, None) puts the
  child on top, addChildNode(child, above) right above `above`, which must be a child of
  this node (else False, as in Krita);
- a document's projection (rootNode().projectionPixelData) composites the visible layers
  with their opacity (normal blending, straight alpha), groups through their children.

Install it with `installed(monkeypatch, tmp_path)` (tests/test_krita_fake.py), which also puts
tests/fake_krita/qt.py in place of the plug-in's qt_compat so that no PyQt is needed.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import uuid
from pathlib import Path
from typing import Optional

_CHANNELS = {"RGBA": 4, "GRAYA": 2, "CMYKA": 5, "LABA": 4, "XYZA": 4, "YCbCrA": 4, "A": 1}
_CHANNEL_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4, "F64": 8}


def bytes_per_pixel(model: str, depth: str) -> int:
    return _CHANNELS[model] * _CHANNEL_BYTES[depth]


class QUuid:
    def __init__(self, value: str) -> None:
        self._value = value

    def toString(self) -> str:  # noqa: N802 (Qt's spelling)
        return "{" + self._value + "}"


class QRect:
    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self._r = (x, y, w, h)

    def x(self) -> int:
        return self._r[0]

    def y(self) -> int:
        return self._r[1]

    def width(self) -> int:
        return self._r[2]

    def height(self) -> int:
        return self._r[3]

    def __repr__(self) -> str:
        return "QRect(%d, %d, %d, %d)" % self._r


class Node:
    """A layer. Paint layers keep their pixels in a dict {(x, y): bytes of one pixel}."""

    def __init__(self, doc: "Document", name: str, kind: str) -> None:
        self._doc = doc
        self._name = name
        self._type = kind
        self._visible = True
        self._opacity = 255
        self._parent: Optional[Node] = None
        self._children: list[Node] = []
        self._pixels: dict[tuple[int, int], bytes] = {}
        self._uid = QUuid(str(uuid.UUID(int=next(doc._app._uids))))
        self.deleted = False  # set by tests: a C++ object Krita has freed raises RuntimeError

    def _alive(self) -> None:
        if self.deleted or self._doc.closed:
            raise RuntimeError("wrapped C/C++ object of type Node has been deleted")

    # identity and tree
    def name(self) -> str:
        self._alive()
        return self._name

    def setName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def type(self) -> str:
        self._alive()
        return self._type

    def uniqueId(self) -> QUuid:  # noqa: N802
        self._alive()
        return self._uid

    def parentNode(self) -> Optional["Node"]:  # noqa: N802
        return self._parent

    def childNodes(self) -> list["Node"]:  # noqa: N802
        self._alive()
        return list(self._children)

    def addChildNode(self, child: "Node", above: Optional["Node"]) -> bool:  # noqa: N802
        if above is not None and above._parent is not self:
            return False
        if child._parent is not None:
            child._parent._children.remove(child)
        index = len(self._children) if above is None else self._children.index(above) + 1
        self._children.insert(index, child)
        child._parent = self
        return True

    def removeChildNode(self, child: "Node") -> bool:  # noqa: N802
        if child not in self._children:
            return False
        self._children.remove(child)
        child._parent = None
        return True

    def duplicate(self) -> "Node":
        copy = Node(self._doc, self._name, self._type)
        copy._visible, copy._opacity, copy._pixels = self._visible, self._opacity, dict(self._pixels)
        copy._children = [c.duplicate() for c in self._children]
        for c in copy._children:
            c._parent = copy
        return copy

    # appearance
    def visible(self) -> bool:
        return self._visible

    def setVisible(self, on: bool) -> None:  # noqa: N802
        self._visible = bool(on)

    def opacity(self) -> int:
        return self._opacity

    def setOpacity(self, value: int) -> None:  # noqa: N802
        self._opacity = int(value)

    def colorModel(self) -> str:  # noqa: N802
        return self._doc._model

    def colorDepth(self) -> str:  # noqa: N802
        return self._doc._depth

    # pixels
    def _bpp(self) -> int:
        return bytes_per_pixel(self.colorModel(), self.colorDepth())

    def bounds(self) -> QRect:
        self._alive()
        if self._type == "grouplayer" or self._type == "root":
            boxes = [c.bounds() for c in self._children]
            boxes = [b for b in boxes if b.width() > 0]
            if not boxes:
                return QRect(0, 0, 0, 0)
            x0 = min(b.x() for b in boxes)
            y0 = min(b.y() for b in boxes)
            x1 = max(b.x() + b.width() for b in boxes)
            y1 = max(b.y() + b.height() for b in boxes)
            return QRect(x0, y0, x1 - x0, y1 - y0)
        zero = bytes(self._bpp())
        painted = [xy for xy, px in self._pixels.items() if px != zero]
        if not painted:
            return QRect(0, 0, 0, 0)
        xs, ys = [p[0] for p in painted], [p[1] for p in painted]
        return QRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def setPixelData(self, data, x: int, y: int, w: int, h: int) -> None:  # noqa: N802
        self._alive()
        bpp = self._bpp()
        data = bytes(data)
        if len(data) != w * h * bpp:
            raise ValueError(f"setPixelData: {len(data)} bytes for {w}x{h} pixels of {bpp} bytes")
        for j in range(h):
            for i in range(w):
                k = (j * w + i) * bpp
                self._pixels[(x + i, y + j)] = data[k:k + bpp]
        self._doc._modified = True

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        """The layer's own pixels (Krita returns a QByteArray; bytes() of it is the same)."""
        self._alive()
        if self._type in ("grouplayer", "root"):
            return self.projectionPixelData(x, y, w, h)
        zero = bytes(self._bpp())
        get = self._pixels.get
        return b"".join(get((x + i, y + j), zero) for j in range(h) for i in range(w))

    def projectionPixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        """What the layer shows: a paint layer its pixels, a group the composite of its
        visible children (8-bit RGBA only, which is all the tests composite)."""
        self._alive()
        if self._type not in ("grouplayer", "root"):
            return self.pixelData(x, y, w, h)
        assert (self.colorModel(), self.colorDepth()) == ("RGBA", "U8"), "the fake composites 8-bit RGBA only"
        out = bytearray(w * h * 4)
        for child in self._children:
            if not child._visible:
                continue
            src = child.projectionPixelData(x, y, w, h)
            _blend_over(out, src, child._opacity)
        return bytes(out)


def _blend_over(dst: bytearray, src: bytes, opacity: int) -> None:
    """Normal blending of straight-alpha BGRA `src` over `dst`, in place."""
    for k in range(0, len(src), 4):
        sa = src[k + 3] * opacity / (255 * 255)
        if sa <= 0:
            continue
        da = dst[k + 3] / 255
        oa = sa + da * (1 - sa)
        for c in range(3):
            v = (src[k + c] * sa + dst[k + c] * da * (1 - sa)) / oa
            dst[k + c] = int(round(v))
        dst[k + 3] = int(round(oa * 255))


class Document:
    def __init__(self, app: "Krita", width: int, height: int, name: str, model: str = "RGBA",
                 depth: str = "U8") -> None:
        self._app = app
        self._w, self._h, self._name = width, height, name
        self._model, self._depth = model, depth
        self._root = Node(self, "root", "root")
        self._active: Optional[Node] = None
        self._modified = False
        self.closed = False  # set by tests: walk() on a closed document raises RuntimeError
        self.refreshes = 0  # how many times the plug-in asked for a new projection

    def _alive(self) -> None:
        if self.closed:
            raise RuntimeError("wrapped C/C++ object of type Document has been deleted")

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def name(self) -> str:
        return self._name

    def colorModel(self) -> str:  # noqa: N802
        return self._model

    def colorDepth(self) -> str:  # noqa: N802
        return self._depth

    def rootNode(self) -> Node:  # noqa: N802
        self._alive()
        return self._root

    def topLevelNodes(self) -> list[Node]:  # noqa: N802
        self._alive()
        return list(self._root._children)

    def createNode(self, name: str, kind: str) -> Node:  # noqa: N802
        self._alive()
        return Node(self, name, kind)

    def nodeByName(self, name: str) -> Optional[Node]:  # noqa: N802
        def find(children):
            for n in children:
                if n._name == name:
                    return n
                hit = find(n._children)
                if hit is not None:
                    return hit
            return None
        return find(self._root._children)

    def activeNode(self) -> Optional[Node]:  # noqa: N802
        return self._active

    def setActiveNode(self, node: Node) -> None:  # noqa: N802
        self._active = node

    def refreshProjection(self) -> None:  # noqa: N802
        self.refreshes += 1

    def waitForDone(self) -> None:  # noqa: N802
        pass

    def modified(self) -> bool:
        return self._modified

    def setModified(self, on: bool) -> None:  # noqa: N802
        self._modified = bool(on)

    # test helpers (not Krita API)
    def add_paint_layer(self, name: str, bgra: bytes = b"", rect: Optional[tuple] = None,
                        parent: Optional[Node] = None) -> Node:
        """A paint layer on top of `parent` (default: the document), filled with `bgra`
        at `rect` (x, y, w, h; default: the whole canvas)."""
        node = self.createNode(name, "paintlayer")
        (parent or self._root).addChildNode(node, None)
        if bgra:
            x, y, w, h = rect or (0, 0, self._w, self._h)
            node.setPixelData(bgra, x, y, w, h)
        return node

    def add_group(self, name: str, parent: Optional[Node] = None) -> Node:
        node = self.createNode(name, "grouplayer")
        (parent or self._root).addChildNode(node, None)
        return node

    def stack(self) -> list[str]:
        """Top-level layer names, bottom to top."""
        return [n._name for n in self._root._children]


class ManagedColor:
    def __init__(self, qcolor=None, canvas=None) -> None:
        self.qcolor, self.canvas = qcolor, canvas

    @classmethod
    def fromQColor(cls, qcolor, canvas=None) -> "ManagedColor":  # noqa: N802
        return cls(qcolor, canvas)


class View:
    def __init__(self) -> None:
        self.foreground: Optional[ManagedColor] = None

    def canvas(self) -> object:
        return "canvas"

    def setForeGroundColor(self, colour: ManagedColor) -> None:  # noqa: N802
        self.foreground = colour


class Window:
    def __init__(self) -> None:
        self.view: Optional[View] = View()

    def activeView(self) -> Optional[View]:  # noqa: N802
        return self.view


class Krita:
    _instance: Optional["Krita"] = None
    app_data: Path = Path(".")  # set by the fixture to a temporary folder

    def __init__(self) -> None:
        self._uids = itertools.count(1)
        self.documents: list[Document] = []
        self._active_doc: Optional[Document] = None
        self.window: Optional[Window] = Window()

    @classmethod
    def instance(cls) -> "Krita":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @staticmethod
    def getAppDataLocation() -> str:  # noqa: N802
        return str(Krita.app_data)

    def createDocument(self, width: int, height: int, name: str, model: str = "RGBA", depth: str = "U8",
                       profile: str = "", resolution: float = 72.0) -> Document:  # noqa: N802
        doc = Document(self, width, height, name, model, depth)
        self.documents.append(doc)
        self._active_doc = doc
        return doc

    def activeDocument(self) -> Optional[Document]:  # noqa: N802
        return self._active_doc

    def activeWindow(self) -> Optional[Window]:  # noqa: N802
        return self.window


PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugin_krita"
# Plug-in modules that import `krita` or Qt: imported afresh against the fakes, and
# dropped again after the test, so no other test sees them.
_KRITA_MODULES = ("semantic_analogy_krita.qt_compat", "semantic_analogy_krita.krita_io",
                  "semantic_analogy_krita.controller", "semantic_analogy_krita.docker",
                  "semantic_analogy_krita.local_engine")


@contextlib.contextmanager
def installed(monkeypatch, app_data: Path):
    """Put the fake `krita` and the fake Qt in sys.modules for one test and yield a fresh
    Krita.instance(); afterwards the plug-in modules imported against them are dropped,
    so no other test sees them."""
    from . import qt as fake_qt

    import semantic_analogy_krita as pkg  # the package itself imports neither krita nor Qt

    monkeypatch.setitem(sys.modules, "krita", sys.modules[__name__])
    saved = {n: sys.modules.pop(n) for n in _KRITA_MODULES if n in sys.modules}
    sys.modules["semantic_analogy_krita.qt_compat"] = fake_qt
    monkeypatch.setattr(Krita, "_instance", None)
    monkeypatch.setattr(Krita, "app_data", app_data)
    fake_qt.timers.clear()
    try:
        yield Krita.instance()
    finally:
        for name in _KRITA_MODULES:
            sys.modules.pop(name, None)
            short = name.rsplit(".", 1)[1]
            if short in pkg.__dict__:
                delattr(pkg, short)
        sys.modules.update(saved)
