"""Krita plugin: pixel conversion and layer geometry (pure logic, no Krita needed)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin_krita"))

from semantic_analogy_krita.pixels import (  # noqa: E402
    PixelFormatError, Rect, alpha_coverage, bgra_to_rgba, check_color_space, clamp_to_document,
    krita_to_rgba8, make_opaque, rgba8_to_krita, source_region,
)


def test_bgra_to_rgba_swaps_red_and_blue_only():
    bgra = bytes([1, 2, 3, 4, 10, 20, 30, 40])
    assert bgra_to_rgba(bgra) == bytes([3, 2, 1, 4, 30, 20, 10, 40])


def test_round_trip_on_random_image():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    krita = rgba8_to_krita(rgba.tobytes(), 5, 7)
    assert np.array_equal(np.frombuffer(krita, np.uint8).reshape(7, 5, 4), rgba[..., [2, 1, 0, 3]])
    assert krita_to_rgba8(krita, 5, 7, "RGBA", "U8") == rgba.tobytes()


def test_u16_layers_are_read_as_their_8bit_equal():
    rgba8 = np.array([[[0, 128, 255, 255], [17, 34, 51, 0]]], np.uint8)
    u16 = rgba8_to_krita(rgba8.tobytes(), 2, 1, "U16")
    assert np.array_equal(np.frombuffer(u16, "<u2").reshape(1, 2, 4), rgba8[..., [2, 1, 0, 3]].astype(np.uint16) * 257)
    assert krita_to_rgba8(u16, 2, 1, "RGBA", "U16") == rgba8.tobytes()
    # a value between two 8-bit levels stays within one level
    between = np.array([300, 0, 65535, 65535], "<u2").tobytes()
    assert krita_to_rgba8(between, 1, 1, "RGBA", "U16") == bytes([255, 0, 1, 255])


@pytest.mark.parametrize(
    "model, depth, words",
    [("CMYKA", "U8", "CMYK/Alpha colour model"), ("GRAYA", "U16", "Grayscale/Alpha"),
     ("RGBA", "F32", "32-bit float"), ("RGBA", "F16", "16-bit float")],
)
def test_unsupported_colour_spaces_say_what_to_convert(model, depth, words):
    with pytest.raises(PixelFormatError) as e:
        check_color_space(model, depth, "The layer “Photo”")
    msg = str(e.value)
    assert words in msg and "“Photo”" in msg and "8-bit integer" in msg and "Convert" in msg


def test_document_message_points_to_the_image_menu():
    with pytest.raises(PixelFormatError, match="Image › Convert Image Color Space"):
        check_color_space("LABA", "U8", "The document", is_document=True)


def test_wrong_buffer_size_is_reported():
    with pytest.raises(PixelFormatError, match="expected 32"):
        krita_to_rgba8(bytes(31), 2, 4, "RGBA", "U8")
    with pytest.raises(PixelFormatError):
        rgba8_to_krita(bytes(8), 3, 1)


def test_clamp_layer_bounds_to_the_canvas():
    assert clamp_to_document(Rect(-10, -5, 50, 30), 40, 20) == Rect(0, 0, 40, 20)
    assert clamp_to_document(Rect(30, 15, 50, 30), 40, 20) == Rect(30, 15, 10, 5)
    assert clamp_to_document(Rect(5, 6, 7, 8), 40, 20) == Rect(5, 6, 7, 8)
    assert clamp_to_document(Rect(50, 0, 10, 10), 40, 20).empty
    assert clamp_to_document(Rect(0, 0, 0, 0), 40, 20).empty  # a fresh, empty layer


def test_source_region_visible_image_is_whole_canvas_and_offscreen_layer_is_refused():
    assert source_region(None, 300, 200) == Rect(0, 0, 300, 200)
    assert source_region(Rect(-20, 10, 100, 500), 300, 200) == Rect(0, 10, 80, 190)
    with pytest.raises(PixelFormatError, match="no pixels on the canvas"):
        source_region(Rect(400, 0, 10, 10), 300, 200, "“Photo”")


def test_alpha_coverage_and_make_opaque():
    rgba = bytes([1, 2, 3, 0, 4, 5, 6, 255, 7, 8, 9, 10, 0, 0, 0, 0])
    assert alpha_coverage(rgba) == 0.5
    assert make_opaque(rgba) == bytes([1, 2, 3, 255, 4, 5, 6, 255, 7, 8, 9, 255, 0, 0, 0, 255])
