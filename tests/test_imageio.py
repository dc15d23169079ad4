"""Image and label-map files <-> uint8 arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semantic_analogy.engine.errors import EngineError
from semantic_analogy.engine.imageio import load_image, load_label_map, resize_rgb, save_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def gradient() -> np.ndarray:
    """A 30x40 RGB image with distinct pixels, so orientation errors show."""
    y, x = np.mgrid[0:30, 0:40]
    return np.dstack([x * 6, y * 8, (x + y) * 3]).astype(np.uint8)


def test_load_real_examples() -> None:
    image = load_image(EXAMPLES / "zebra" / "img.png")
    assert image.shape == (380, 572, 3) and image.dtype == np.uint8
    tree = load_image(EXAMPLES / "tree" / "img.png")  # stored as RGBA
    assert tree.shape == (250, 250, 3)
    labels = load_label_map(EXAMPLES / "zebra" / "label.png")
    assert labels.shape == (380, 572, 4) and (labels[..., 3] == 0).sum() == 1
    rgb_labels = load_label_map(EXAMPLES / "face" / "label.png")  # stored as RGB
    assert rgb_labels.shape == (256, 256, 4) and np.all(rgb_labels[..., 3] == 255)


def test_rgba_file(tmp_path: Path, gradient: np.ndarray) -> None:
    alpha = np.full(gradient.shape[:2], 255, np.uint8)
    alpha[:5] = 0
    alpha[5:10] = 254
    path = tmp_path / "layer.png"
    Image.fromarray(np.dstack([gradient, alpha]), "RGBA").save(path)
    np.testing.assert_array_equal(load_image(path), gradient)  # alpha dropped
    labels = load_label_map(path)
    np.testing.assert_array_equal(labels[..., :3], gradient)
    np.testing.assert_array_equal(labels[..., 3], alpha)


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    index = np.zeros((8, 8), np.uint8)
    index[:, 4:] = 1
    index[0, 0] = 2
    im = Image.fromarray(index, "P")
    im.putpalette([0, 249, 0, 255, 147, 0, 9, 9, 9] + [0] * (3 * 253))
    path = tmp_path / "indexed.png"
    im.save(path, transparency=2)
    labels = load_label_map(path)
    assert tuple(labels[3, 1]) == (0, 249, 0, 255)
    assert tuple(labels[3, 6]) == (255, 147, 0, 255)
    assert labels[0, 0, 3] == 0
    assert load_image(path).shape == (8, 8, 3)


def test_grey_and_16bit_grey(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    loaded = load_image(tmp_path / "g.png")
    assert loaded.shape == (8, 8, 3) and np.all(loaded == grey[..., None])

    deep = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "g16.png")
    loaded16 = load_image(tmp_path / "g16.png")
    # Scaled to 8 bits (not clipped: 32768 would clip to 255).
    np.testing.assert_array_equal(loaded16[..., 0], [[0, 128], [255, 1]])


def test_exif_orientation_is_applied(tmp_path: Path, gradient: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    path = tmp_path / "phone.jpg"
    Image.fromarray(gradient).save(path, exif=exif, quality=100)
    loaded = load_image(path)
    assert loaded.shape == (40, 30, 3)
    expected = np.rot90(gradient, k=-1)
    assert np.abs(loaded.astype(int) - expected).mean() < 4
    assert load_label_map(path).shape == (40, 30, 4)


def test_save_png_round_trip_creates_folders(tmp_path: Path, gradient: np.ndarray) -> None:
    path = tmp_path / "a" / "b" / "out.png"
    assert save_image(path, gradient) == path
    np.testing.assert_array_equal(load_image(path), gradient)
    rgba = np.dstack([gradient, np.full(gradient.shape[:2], 7, np.uint8)])
    save_image(path, rgba)  # overwrite in place
    np.testing.assert_array_equal(load_label_map(path), rgba)
    grey = gradient[..., 0]
    save_image(tmp_path / "grey.png", grey)
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png")[..., 1], grey)
    # Nothing but the results is left behind (no temporary files).
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]


def test_save_jpeg(tmp_path: Path, gradient: np.ndarray) -> None:
    for name in ("x.jpg", "y.JPEG"):
        save_image(tmp_path / name, gradient)
        with Image.open(tmp_path / name) as im:
            assert im.format == "JPEG"
        assert np.abs(load_image(tmp_path / name).astype(int) - gradient).mean() < 3
    with pytest.raises(EngineError, match="transparency as JPEG"):
        save_image(tmp_path / "z.jpg", np.zeros((4, 4, 4), np.uint8))
    assert not (tmp_path / "z.jpg").exists()


@pytest.mark.parametrize(
    "name, array, fragment",
    [
        ("out.bmp", np.zeros((4, 4, 3), np.uint8), r"\.png, \.jpg or \.jpeg"),
        ("out.png", np.zeros((4, 4, 3), np.float32), "uint8"),
        ("out.png", np.zeros((4, 4, 2), np.uint8), "shape"),
        ("out.png", np.zeros((0, 4, 3), np.uint8), "empty"),
    ],
)
def test_save_rejects_bad_input(tmp_path: Path, name: str, array: np.ndarray, fragment: str) -> None:
    with pytest.raises(EngineError, match=fragment):
        save_image(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(tmp_path / "out.png", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(EngineError, match=r"image .*nope\.png: file not found"):
        load_image(missing)
    with pytest.raises(EngineError, match=r"label map .*nope\.png: file not found"):
        load_label_map(missing)
    text = tmp_path / "notes.png"
    text.write_text("not really a picture")
    with pytest.raises(EngineError, match=r"notes\.png is not an image file.*save it as PNG or JPEG"):
        load_image(text)
    with pytest.raises(EngineError, match="is a folder"):
        load_image(tmp_path)


def test_truncated_file_is_an_engine_error(tmp_path: Path, gradient: np.ndarray) -> None:
    path = tmp_path / "cut.png"
    save_image(path, np.tile(gradient, (4, 4, 1)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match=r"cut\.png could not be read"):
        load_image(path)


def test_resize_rgb(gradient: np.ndarray) -> None:
    out = resize_rgb(gradient, (20, 15))
    assert out.shape == (15, 20, 3) and out.dtype == np.uint8
    flat = np.full((30, 40, 3), (12, 200, 99), np.uint8)
    assert np.all(resize_rgb(flat, (97, 61)) == (12, 200, 99))  # Lanczos keeps flat colour
    same = resize_rgb(gradient, (40, 30))
    np.testing.assert_array_equal(same, gradient)
    assert same is not gradient
    # Smooth content survives a down/up round trip closely (a quality resampler).
    back = resize_rgb(resize_rgb(gradient, (20, 15)), (40, 30))
    assert np.abs(back.astype(int) - gradient).mean() < 4
    with pytest.raises(EngineError, match="positive"):
        resize_rgb(gradient, (0, 5))
