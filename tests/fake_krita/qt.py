"""A stand-in for the plug-in's qt_compat module, so controller.py and krita_io.py run
without PyQt (the virtual environment has none; Krita brings its own).

Signals call their slots at once, in the order connected, as a Qt direct connection
does within one thread. Timers never fire by themselves: a test calls
`controller._tick()` (what the QTimer's timeout runs) and reads `timer.active`.
"""

from __future__ import annotations

QT_API = "fake"

timers: list["QTimer"] = []


class _BoundSignal:
    def __init__(self) -> None:
        self._slots: list = []

    def connect(self, slot) -> None:
        self._slots.append(slot)

    def disconnect(self, slot=None) -> None:
        if slot is None:
            self._slots.clear()
        else:
            self._slots.remove(slot)

    def emit(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)


class pyqtSignal:  # noqa: N801 (PyQt's spelling)
    def __init__(self, *types) -> None:
        self.types = types
        self.name = ""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        bound = obj.__dict__.get("_signal_" + self.name)
        if bound is None:
            bound = obj.__dict__["_signal_" + self.name] = _BoundSignal()
        return bound


def pyqtSlot(*_types, **_kw):  # noqa: N802
    return lambda fn: fn


class QObject:
    def __init__(self, parent=None) -> None:
        self._parent = parent


class QTimer(QObject):
    timeout = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.active = False
        timers.append(self)

    def setInterval(self, ms: int) -> None:  # noqa: N802
        self.interval = ms

    def start(self, ms: int | None = None) -> None:
        if ms is not None:
            self.interval = ms
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:  # noqa: N802
        return self.active


class QColor:
    def __init__(self, r: int = 0, g: int = 0, b: int = 0, a: int = 255) -> None:
        self.rgba_tuple = (r, g, b, a)

    def red(self) -> int:
        return self.rgba_tuple[0]

    def green(self) -> int:
        return self.rgba_tuple[1]

    def blue(self) -> int:
        return self.rgba_tuple[2]


class QImage:
    """Only what the controller hands to the docker: size and the RGBA bytes."""

    def __init__(self, width: int, height: int, rgba: bytes) -> None:
        self._w, self._h, self.rgba = width, height, bytes(rgba)

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h


def qimage_from_rgba(width: int, height: int, rgba: bytes) -> QImage:
    assert len(rgba) == width * height * 4, "qimage_from_rgba: wrong buffer size"
    return QImage(width, height, rgba)
