"""Pixel formats and layer geometry between Krita and the protocol.

Pure Python (no Krita, no Qt, no numpy): Krita's embedded Python on Windows and
macOS has no numpy, and these rules are tested with plain pytest.

Krita hands out raw channel bytes in its own channel order: for an 8-bit RGBA
layer that is B, G, R, A per pixel (straight, not premultiplied alpha); for
16-bit integer RGBA it is B, G, R, A as little-endian uint16. The protocol wants
8-bit R, G, B, A.
"""

from __future__ import annotations

from . import core

# Colour models Krita reports through Node.colorModel() / Document.colorModel(),
# with the words its menus use.
MODEL_NAMES = {
    "RGBA": "RGB/Alpha",
    "GRAYA": "Grayscale/Alpha",
    "CMYKA": "CMYK/Alpha",
    "LABA": "L*a*b*/Alpha",
    "XYZA": "XYZ/Alpha",
    "YCbCrA": "YCbCr/Alpha",
    "A": "Alpha mask",
}
DEPTH_NAMES = {
    "U8": "8-bit integer/channel",
    "U16": "16-bit integer/channel",
    "F16": "16-bit float/channel",
    "F32": "32-bit float/channel",
    "F64": "64-bit float/channel",
}
# Bytes per channel for the depths we can read.
_CHANNEL_BYTES = {"U8": 1, "U16": 2}


class PixelFormatError(ValueError):
    """Pixels that the plugin cannot use as given; the message says what to change."""


Rect = core.geometry.Rect  # the shared rectangle type (x, y, width, height)


def check_color_space(model: str, depth: str, what: str, *, is_document: bool = False) -> None:
    """Raise PixelFormatError unless (model, depth) is one the plugin reads exactly.

    8-bit and 16-bit integer RGBA are read directly. Float depths are linear
    light in Krita's default profiles, so a plain scaling would look wrong:
    refuse them and say how to convert, rather than guess a transfer curve.
    """
    fix = (
        "Image › Convert Image Color Space… to RGB/Alpha, 8-bit integer/channel"
        if is_document
        else "Layer › Convert › Convert Layer Color Space… to RGB/Alpha, 8-bit integer/channel"
    )
    if model != "RGBA":
        name = MODEL_NAMES.get(model, model)
        raise PixelFormatError(
            f"{what} uses the {name} colour model; Semantic Analogy reads RGB images. "
            f"Convert it with {fix} (or work on a converted copy of the document)."
        )
    if depth not in _CHANNEL_BYTES:
        name = DEPTH_NAMES.get(depth, depth)
        raise PixelFormatError(
            f"{what} uses {name} colour; Semantic Analogy reads 8- or 16-bit integer RGB. "
            f"Convert it with {fix} (or work on a converted copy of the document)."
        )


def bytes_per_pixel(model: str, depth: str) -> int:
    check_color_space(model, depth, "The layer")
    return 4 * _CHANNEL_BYTES[depth]


def swap_red_blue(data: bytes | bytearray | memoryview) -> bytes:
    """BGRA <-> RGBA for 8-bit pixels (the same swap both ways).

    Extended slicing runs in C, so a 12-megapixel layer takes well under a second
    in pure Python.
    """
    src = bytes(data)
    if len(src) % 4:
        raise PixelFormatError(f"pixel data of {len(src)} bytes is not a whole number of 4-byte pixels")
    out = bytearray(src)
    out[0::4] = src[2::4]
    out[2::4] = src[0::4]
    return bytes(out)


bgra_to_rgba = swap_red_blue
rgba_to_bgra = swap_red_blue


def u16_to_u8(data: bytes | bytearray | memoryview) -> bytes:
    """Little-endian uint16 channels to uint8 by keeping the high byte.

    floor(v / 256) maps every value that came from 8 bits (v = 257 * k) back to k
    exactly, and is within one level of rounding elsewhere; it is a C-speed slice.
    """
    src = bytes(data)
    if len(src) % 2:
        raise PixelFormatError(f"16-bit pixel data of {len(src)} bytes has an odd length")
    return src[1::2]


def krita_to_rgba8(data: bytes | bytearray | memoryview, width: int, height: int,
                   model: str, depth: str, what: str = "The layer") -> bytes:
    """Convert Krita's pixelData() bytes of a width x height area to 8-bit RGBA."""
    check_color_space(model, depth, what)
    expected = width * height * 4 * _CHANNEL_BYTES[depth]
    if len(data) != expected:
        raise PixelFormatError(
            f"{what} gave {len(data)} bytes for {width}×{height} {model}/{depth} pixels, expected {expected}"
        )
    if depth == "U16":
        data = u16_to_u8(data)
    return bgra_to_rgba(data)


def rgba8_to_krita(rgba: bytes | bytearray | memoryview, width: int, height: int, depth: str = "U8") -> bytes:
    """8-bit RGBA to the bytes setPixelData() expects for an RGBA layer of `depth`
    (B,G,R,A; for U16 each 8-bit value v becomes 257*v, exactly its 16-bit equal)."""
    if len(rgba) != width * height * 4:
        raise PixelFormatError(f"{len(rgba)} bytes of RGBA do not fill a {width}×{height} image")
    bgra = rgba_to_bgra(rgba)
    if depth == "U8":
        return bgra
    if depth == "U16":
        out = bytearray(len(bgra) * 2)
        out[0::2] = bgra  # little-endian low byte
        out[1::2] = bgra  # high byte: v * 256 + v == v * 257
        return bytes(out)
    check_color_space("RGBA", depth, "The result layer")
    raise AssertionError("unreachable")


def clamp_to_document(bounds: Rect, doc_width: int, doc_height: int) -> Rect:
    """The part of a layer's bounds that lies on the canvas.

    Layer bounds may extend past the canvas (a moved or large pasted layer) or be
    empty (a fresh layer); only the canvas part is ever sent.
    """
    x0 = max(0, bounds.x)
    y0 = max(0, bounds.y)
    x1 = min(doc_width, bounds.x + bounds.width)
    y1 = min(doc_height, bounds.y + bounds.height)
    return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def source_region(source_bounds: Rect | None, doc_width: int, doc_height: int,
                  source_name: str = "the source layer") -> Rect:
    """The canvas area the analogy works on.

    The visible image (no layer, `None`) covers the whole canvas; a source layer
    covers its own bounds clipped to the canvas, so a small photo in a big
    document is not padded with empty pixels.
    """
    if doc_width <= 0 or doc_height <= 0:
        raise PixelFormatError(f"the document has no pixels ({doc_width}×{doc_height})")
    if source_bounds is None:
        return Rect(0, 0, doc_width, doc_height)
    region = clamp_to_document(source_bounds, doc_width, doc_height)
    if region.empty:
        raise PixelFormatError(
            f"{source_name} has no pixels on the canvas; pick a layer with the photo, "
            "or “Visible image”."
        )
    return region


def alpha_coverage(rgba: bytes) -> float:
    """Fraction of pixels with alpha > 0 (0.0 for an empty image)."""
    n = len(rgba) // 4
    if n == 0:
        return 0.0
    alpha = rgba[3::4]
    return 1.0 - alpha.count(0) / n


def make_opaque(rgba: bytes) -> bytes:
    """Force alpha to 255, keeping colour: the engine ignores the photo's alpha, but a
    result layer must be opaque so that it covers the photo below it."""
    out = bytearray(rgba)
    out[3::4] = b"\xff" * (len(rgba) // 4)
    return bytes(out)
