"""RGBAImage: the one image type on the wire."""

import pytest

from semantic_analogy.protocol.images import RGBAImage


def test_valid_image_keeps_its_bytes():
    data = bytes(range(24))
    img = RGBAImage(3, 2, data)
    assert img.size == (3, 2) and img.data == data


def test_bytearray_and_memoryview_become_bytes():
    img = RGBAImage(1, 1, bytearray(b"\x01\x02\x03\x04"))
    assert type(img.data) is bytes
    assert RGBAImage(1, 1, memoryview(b"abcd")).data == b"abcd"


@pytest.mark.parametrize(
    "w,h,data,exc,words",
    [
        (2, 2, b"\0" * 15, ValueError, "needs 16"),
        (2, 2, b"\0" * 17, ValueError, "has 17 bytes"),
        (0, 2, b"", ValueError, "width must be at least 1"),
        (2, -1, b"", ValueError, "height must be at least 1"),
        (2.0, 2, b"\0" * 16, TypeError, "width must be an int"),
        (True, 1, b"\0" * 4, TypeError, "width must be an int"),
        (1, 1, "abcd", TypeError, "data must be bytes"),
    ],
)
def test_bad_images_are_refused_with_a_clear_message(w, h, data, exc, words):
    with pytest.raises(exc, match=words):
        RGBAImage(w, h, data)


def test_frozen():
    img = RGBAImage.filled(1, 1, (0, 0, 0, 0))
    with pytest.raises(AttributeError):
        img.width = 2


def test_rgb_round_trip_and_opaque_alpha():
    rgb = bytes([10, 20, 30, 40, 50, 60])
    img = RGBAImage.from_rgb(2, 1, rgb)
    assert img.data == bytes([10, 20, 30, 255, 40, 50, 60, 255])
    assert img.to_rgb() == rgb
    with pytest.raises(ValueError, match="needs 6"):
        RGBAImage.from_rgb(2, 1, rgb[:5])


def test_filled_and_repr_never_dumps_pixels():
    img = RGBAImage.filled(4, 3, (1, 2, 3, 4))
    assert img.data == bytes([1, 2, 3, 4]) * 12
    assert repr(img) == "RGBAImage(4x3)"
