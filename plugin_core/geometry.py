"""Rectangles in image coordinates and RGBA crops: where pixels come from and go."""

from __future__ import annotations

from typing import NamedTuple, Optional


class Rect(NamedTuple):
    """x, y may be negative: a layer's pixels may lie past the canvas."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def contains(self, other: "Rect") -> bool:
        return self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom

    def intersect(self, other: "Rect") -> Optional["Rect"]:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def describe(self) -> str:
        return f"{self.width}×{self.height} at ({self.x}, {self.y})"


def _check_len(data: bytes, w: int, h: int, what: str) -> None:
    if len(data) != w * h * 4:
        raise ValueError(f"{what}: expected {w}x{h}x4 = {w * h * 4} bytes of RGBA, got {len(data)}")


def crop_rgba(data: bytes, rect: Rect, region: Rect) -> bytes:
    """The pixels of `region` (image coordinates) from RGBA `data` that covers `rect`;
    pixels of `region` outside `rect` come out fully transparent."""
    _check_len(data, rect.width, rect.height, "layer pixels")
    out = bytearray(region.width * region.height * 4)
    common = rect.intersect(region)
    if common is None:
        return bytes(out)
    row = common.width * 4
    for y in range(common.y, common.bottom):
        src = ((y - rect.y) * rect.width + (common.x - rect.x)) * 4
        dst = ((y - region.y) * region.width + (common.x - region.x)) * 4
        out[dst: dst + row] = data[src: src + row]
    return bytes(out)


def place_on_canvas(data: bytes, region: Rect, canvas_w: int, canvas_h: int) -> bytes:
    """A canvas_w x canvas_h RGBA buffer holding `data` (region-sized) at region; transparent elsewhere."""
    _check_len(data, region.width, region.height, "result pixels")
    return crop_rgba(data, region, Rect(0, 0, canvas_w, canvas_h))


def fully_transparent(rgba: bytes) -> bool:
    """Alpha 0 everywhere: a forgotten layer, not a layout (alpha 0 marks 'unlabelled')."""
    return rgba[3::4].count(0) == len(rgba) // 4
