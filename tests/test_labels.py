"""Label-map decoding: palettes from painted maps, targets, errors, the bundled examples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from semantic_analogy.engine.errors import LabelError
from semantic_analogy.engine.labels import (
    Palette,
    check_same_size,
    colour_hex,
    decode_labels,
    encode_labels,
    extract_palette,
    resize_labels,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GREEN, ORANGE = (0, 249, 0), (255, 147, 0)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def cond_files(name: str) -> list[Path]:
    return sorted(p for p in (EXAMPLES / name / "cond").glob("*.png") if not p.name.startswith("mask_"))


def paint(index: np.ndarray, colours: list[tuple[int, int, int]]) -> np.ndarray:
    return np.asarray(colours, dtype=np.uint8)[index]


def blur(rgb: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def rgba(rgb: np.ndarray, alpha: np.ndarray | int = 255) -> np.ndarray:
    a = np.broadcast_to(np.asarray(alpha, dtype=np.uint8), rgb.shape[:2])
    return np.dstack([rgb, a])


@pytest.fixture
def blob_index() -> np.ndarray:
    """128x160 layout: class 0 background, class 1 an ellipse, class 2 a bar."""
    im = Image.new("L", (160, 128), 0)
    d = ImageDraw.Draw(im)
    d.ellipse([20, 15, 90, 100], fill=1)
    d.rectangle([105, 10, 140, 120], fill=2)
    return np.asarray(im).astype(np.int64)


# --------------------------------------------------------------- real examples


@pytest.mark.parametrize(
    "name, expected",
    [
        ("zebra", [GREEN, ORANGE]),
        ("tree", [(0, 253, 255), GREEN, ORANGE]),
    ],
)
def test_examples_give_exactly_their_classes(name: str, expected: list) -> None:
    palette = extract_palette(read(EXAMPLES / name / "label.png"))
    assert list(palette.colors) == expected  # by decreasing pixel count
    assert palette.num_classes == len(expected)
    assert not palette.unlabelled


def test_face_example_keeps_every_painted_class() -> None:
    # The face map is flat paint in ten Cityscapes colours, two of them only 20 apart.
    palette = extract_palette(read(EXAMPLES / "face" / "label.png"))
    assert set(palette.colors) == {
        WHITE, (119, 11, 32), (100, 170, 30), (0, 80, 100), (250, 170, 30),
        (0, 0, 230), (0, 0, 70), (0, 0, 142), (106, 0, 228), (0, 60, 100),
    }
    assert palette.colors[0] == WHITE
    assert palette.fractions == tuple(sorted(palette.fractions, reverse=True))


def test_zebra_describe_and_fractions() -> None:
    palette = extract_palette(read(EXAMPLES / "zebra" / "label.png"))
    assert palette.describe() == "#00f900 (69%), #ff9300 (31%)"
    assert sum(palette.fractions) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["zebra", "face", "tree"])
def test_every_example_target_decodes_and_rec_equals_label(name: str) -> None:
    labels = read(EXAMPLES / name / "label.png")
    palette = extract_palette(labels)
    source = decode_labels(labels, palette, what="source label map")
    assert source.shape == labels.shape[:2] and source.dtype == np.int64
    assert set(np.unique(source)) == set(range(palette.num_classes))
    for path in cond_files(name):
        index = decode_labels(read(path), palette)
        assert index.shape == labels.shape[:2]
        assert index.min() >= 0 and index.max() < palette.num_classes
        if path.stem == "rec":
            np.testing.assert_array_equal(index, source)


def test_zebra_target_painted_in_other_shades_keeps_its_classes() -> None:
    palette = extract_palette(read(EXAMPLES / "zebra" / "label.png"))
    target = read(EXAMPLES / "zebra" / "cond" / "1.png")
    index = decode_labels(target, palette)
    green = np.all(target == (49, 255, 8), axis=-1)
    orange = np.all(target == (253, 144, 10), axis=-1)
    assert green.sum() > 100_000 and orange.sum() > 40_000
    assert np.all(index[green] == palette.colors.index(GREEN))
    assert np.all(index[orange] == palette.colors.index(ORANGE))


def test_zebra_source_has_one_transparent_hole_that_is_not_a_class() -> None:
    # zebra/label.png has a single alpha == 0 pixel inside the grass: a brush gap.
    labels = read(EXAMPLES / "zebra" / "label.png")
    assert (labels[..., 3] == 0).sum() == 1
    palette = extract_palette(labels)
    assert not palette.unlabelled
    y, x = np.argwhere(labels[..., 3] == 0)[0]
    index = decode_labels(labels, palette)
    assert index[y, x] == index[y, x + 2] == index[y + 2, x]


# --------------------------------------------------------------- anti-aliasing


@pytest.mark.parametrize("radius", [0.7, 1.5, 3.0])
def test_blurred_edges_give_only_the_painted_classes(blob_index: np.ndarray, radius: float) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    soft = blur(paint(blob_index, colours), radius)
    assert len(np.unique(soft.reshape(-1, 3), axis=0)) > 50  # really anti-aliased
    palette = extract_palette(soft)
    assert set(palette.colors) == set(colours)
    index = decode_labels(soft, extract_palette(paint(blob_index, colours)))
    # Away from edges every pixel keeps its class.
    assert (index != blob_index).mean() < 0.03


def test_long_antialiased_edge_does_not_make_mixture_classes() -> None:
    # A 3-px transition band along a 600-px edge: each mixture shade covers 600
    # clustered pixels, far above the minimum count, yet it is not a class.
    h, w = 600, 200
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:, :100] = GREEN
    rgb[:, 103:] = ORANGE
    for k, t in enumerate((0.25, 0.5, 0.75)):
        rgb[:, 100 + k] = np.round((1 - t) * np.array(GREEN) + t * np.array(ORANGE))
    palette = extract_palette(rgb)
    assert palette.colors == (GREEN, ORANGE)
    decode_labels(rgb, palette)  # the band is not an unknown colour either


def test_flat_class_between_two_others_is_kept() -> None:
    # Grey lies on the black-white segment but is painted flat: a real class.
    rgb = np.zeros((90, 90, 3), np.uint8)
    rgb[:, 30:60] = 128
    rgb[:, 60:] = 255
    palette = extract_palette(rgb)
    assert set(palette.colors) == {BLACK, (128, 128, 128), WHITE}


def test_close_flat_classes_are_not_merged() -> None:
    # Cityscapes-style palettes have distinct classes only 20 apart.
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:] = (0, 60, 100)
    rgb[:, 32:] = (0, 80, 100)
    rgb[:16] = WHITE
    assert set(extract_palette(rgb).colors) == {(0, 60, 100), (0, 80, 100), WHITE}


def test_jpeg_noise_does_not_create_classes() -> None:
    labels = np.asarray(Image.open(EXAMPLES / "tree" / "label.png").convert("RGB"))
    crisp = extract_palette(labels)
    for quality in (95, 75, 50):
        noisy = extract_palette(jpeg(labels, quality))
        assert noisy.num_classes == crisp.num_classes
        for got, want in zip(noisy.colors, crisp.colors):
            assert np.linalg.norm(np.subtract(got, want)) < 12
        decode_labels(jpeg(labels, quality), crisp)


# --------------------------------------------------------------- thin strokes, small objects


@pytest.mark.parametrize("width", [1, 2, 3])
@pytest.mark.parametrize("supersample", [1, 4])
def test_edge_sketch_gives_two_classes(width: int, supersample: int) -> None:
    s = supersample
    im = Image.new("RGB", (256 * s, 256 * s), WHITE)
    d = ImageDraw.Draw(im)
    rng = np.random.default_rng(width)
    for _ in range(6):
        d.line([tuple(rng.integers(0, 256 * s, 2).tolist()) for _ in range(2)], fill=BLACK, width=width * s)
    d.ellipse([40 * s, 40 * s, 120 * s, 100 * s], outline=BLACK, width=width * s)
    # Supersampling then Lanczos gives anti-aliased grey stroke edges.
    sketch = np.asarray(im.resize((256, 256), Image.LANCZOS) if s > 1 else im)
    palette = extract_palette(sketch)
    assert len(palette.colors) == 2 and palette.colors[0] == WHITE
    dark = palette.colors[1]
    assert max(dark) < 64  # the strokes' class is (nearly) black
    index = decode_labels(sketch, palette)
    assert np.all(index[sketch.max(axis=-1) < 40] == 1)


def test_small_flat_object_is_a_class() -> None:
    rgb = np.empty((256, 256, 3), np.uint8)
    rgb[:, :128] = GREEN
    rgb[:, 128:] = ORANGE
    rgb[50:60, 50:60] = (0, 0, 255)
    palette = extract_palette(blur(rgb, 0.6))
    assert (0, 0, 255) in palette.colors
    assert len(palette.colors) == 3


def test_tiny_map_keeps_its_classes() -> None:
    rgb = np.full((6, 6, 3), GREEN, np.uint8)
    rgb[:, 3:] = ORANGE
    palette = extract_palette(rgb)
    assert set(palette.colors) == {GREEN, ORANGE}
    assert np.all(decode_labels(rgb, palette)[:, 3:] == palette.colors.index(ORANGE))


def test_a_few_stray_pixels_are_not_a_class() -> None:
    rgb = np.empty((256, 256, 3), np.uint8)
    rgb[:, :128] = GREEN
    rgb[:, 128:] = ORANGE
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 256, 300), rng.integers(0, 256, 300)
    rgb[ys, xs] = rng.integers(0, 256, (300, 3))
    assert set(extract_palette(rgb).colors) == {GREEN, ORANGE}


# --------------------------------------------------------------- targets


def test_far_colour_in_target_is_named_with_count_and_classes(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[40:80, 40:70] = (0x66, 0x33, 0x99)  # 1,200 px of a colour the source never used
    with pytest.raises(LabelError) as err:
        decode_labels(blur(target, 0.8), palette)
    msg = str(err.value)
    assert msg.startswith("target label map: colour #663399 (")
    assert "1,1" in msg or "1,2" in msg  # ~1,200 px, whatever the blur shaved off
    assert "#00f900, #ff9300, #1e3cdc" in msg
    assert "repaint it with one of those colours" in msg


def test_exact_far_colour_count(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[40:80, 40:70] = (0x66, 0x33, 0x99)
    target[0:10, 0:40] = (250, 250, 250)
    with pytest.raises(LabelError, match=r"colours #663399 \(1,200 px\), #fafafa \(400 px\) match no class"):
        decode_labels(target, palette, what="layer 'edit'")


def test_antialiased_target_between_valid_classes_decodes(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    moved = np.roll(blob_index, 17, axis=1)
    for radius in (0.7, 1.5, 3.0):
        index = decode_labels(blur(paint(moved, colours), radius), palette)
        assert (index != moved).mean() < 0.03


def test_an_antialiased_edge_takes_one_of_its_two_classes_never_a_third() -> None:
    # The face example's colours: a 50% mix of dark red skin and white background is nearer
    # to the orange lips than to either side; as lips it put a dotted line of lip patches
    # along an edited jaw (face/5). An edge pixel belongs to one of the classes it mixes.
    skin, white, lips = (119, 11, 32), (255, 255, 255), (250, 170, 30)
    index = np.zeros((60, 80), np.int64)
    index[:, 40:] = 1
    index[25:35, 10:25] = 2  # a lips region, away from the edge
    source = paint(index, [white, skin, lips])
    palette = extract_palette(source)
    target = source.copy()
    mixes = [tuple(int(round(a + f * (b - a))) for a, b in zip(skin, white)) for f in (0.25, 0.5, 0.75)]
    for column, mix in zip((38, 39, 40), mixes[::-1]):  # white -> skin across the edge, one px each
        target[:, column] = mix
    decoded = decode_labels(target, palette)
    lips_class = palette.colors.index(lips)
    assert not (decoded[:, 36:43] == lips_class).any()
    # ... and the nearer end: mostly white stays white, mostly skin skin.
    white_class, skin_class = palette.colors.index(white), palette.colors.index(skin)
    assert (decoded[:, 38] == white_class).all() and (decoded[:, 40] == skin_class).all()


def test_an_edge_mixture_near_a_third_class_takes_a_class_painted_beside_it() -> None:
    # The face example's nose (0,80,100) on skin (119,11,32): a 20% mix, (24,66,86), is 28
    # from the eye's (0,60,100) and 31 from the nose. Snapped colour by colour it became eye,
    # and the synthesis put dark eye patches in a dotted line along a narrowed nose (face/1).
    skin, nose, eye = (119, 11, 32), (0, 80, 100), (0, 60, 100)
    index = np.zeros((60, 80), np.int64)
    index[:, 40:] = 1
    index[5:15, 5:20] = 2  # an eye, away from the edge
    source = paint(index, [skin, nose, eye])
    palette = extract_palette(source)
    target = source.copy()
    for column, f in ((39, 0.8), (40, 0.2)):  # skin -> nose across the edge
        target[:, column] = [int(round(a + f * (b - a))) for a, b in zip(nose, skin)]
    decoded = decode_labels(target, palette)
    assert not (decoded[:, 36:44] == palette.colors.index(eye)).any()
    assert (decoded[:, 39] == palette.colors.index(skin)).all() and (decoded[:, 40] == palette.colors.index(nose)).all()
    # The same colour painted as a region of its own, far from any nose, is still an eye.
    alone = source.copy()
    alone[40:50, 5:20] = target[0, 40]
    assert (decode_labels(alone, palette)[40:50, 5:20] == palette.colors.index(eye)).all()


def test_slightly_different_shades_decode_to_their_classes(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    shades = [(49, 255, 8), (253, 144, 10), (60, 40, 250)]
    np.testing.assert_array_equal(decode_labels(paint(blob_index, shades), palette), blob_index)


def test_a_few_far_pixels_in_target_snap_silently(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[5, 5] = (0x33, 0x66, 0xFF)
    target[9, 100] = (200, 0, 200)
    assert decode_labels(target, palette).shape == blob_index.shape


def test_target_may_use_a_single_class(blob_index: np.ndarray) -> None:
    palette = extract_palette(paint(blob_index, [GREEN, ORANGE, (30, 60, 220)]))
    index = decode_labels(np.full((50, 60, 3), ORANGE, np.uint8), palette)
    assert np.all(index == palette.colors.index(ORANGE))


# --------------------------------------------------------------- gaps and stray colours (issue 15)

LABELS_LOG = "semantic_analogy.engine.labels"


@pytest.fixture
def big_blob_index(blob_index: np.ndarray) -> np.ndarray:
    """The blob layout at 256x320: a 1-px line across it is well under 1% of the map."""
    return np.repeat(np.repeat(blob_index, 2, 0), 2, 1)


def stray_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LABELS_LOG and r.levelname == "WARNING"]


def test_target_with_unpainted_lines_and_jpeg_ringing_decodes_with_a_warning(
    big_blob_index: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(big_blob_index, colours))
    moved = np.roll(big_blob_index, 12, axis=1)
    target = rgba(paint(moved, colours))
    target[128, :, :3] = WHITE  # a 1-px stroke erased down to the white canvas, across every class
    target[:, 60, 3] = 0  # and one erased to transparency
    with caplog.at_level("WARNING", logger=LABELS_LOG):
        index = decode_labels(target, palette)
    # Every gap pixel takes its neighbours' class; only where the line crosses a class
    # border, in the border's last pixel or two, may the neighbours' vote go either way.
    wrong = index != moved
    border = np.zeros_like(wrong)
    border[1:-1, 1:-1] = (moved[1:-1, 1:-1] != moved[:-2, 1:-1]) | (moved[1:-1, 1:-1] != moved[2:, 1:-1]) | (
        moved[1:-1, 1:-1] != moved[1:-1, :-2]) | (moved[1:-1, 1:-1] != moved[1:-1, 2:])
    border = border | np.roll(border, 1, 0) | np.roll(border, -1, 0)
    assert wrong.sum() <= 12 and not (wrong & ~border).any()
    (line,) = stray_warnings(caplog)
    assert line.startswith("target label map: 575 px match no class (")
    assert "#ffffff" in line and "transparent" in line and "take the class of their neighbours" in line


def test_painted_target_with_a_gap_saved_as_jpeg_decodes_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    palette = extract_palette(read(EXAMPLES / "tree" / "label.png"))
    target = read(EXAMPLES / "tree" / "cond" / "3.png")[..., :3].copy()
    clean = decode_labels(target, palette)
    target[120, :] = WHITE  # an unpainted 1-px gap, then JPEG rings around it and every shape
    with caplog.at_level("WARNING", logger=LABELS_LOG):
        index = decode_labels(jpeg(target, 70), palette, what="layer 'edit'")
    assert (index != clean).mean() < 0.005
    (line,) = stray_warnings(caplog)
    assert line.startswith("layer 'edit': ") and "take the class of their neighbours" in line


def test_thick_unknown_region_under_one_percent_is_still_an_error(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[50:58, 10:18] = (0x66, 0x33, 0x99)  # 64 px (0.3%), but 8 px thick: meant
    with pytest.raises(LabelError, match=r"colour #663399 \(64 px\) matches no class"):
        decode_labels(target, palette)


def test_many_thin_unknown_strokes_over_one_percent_are_an_error(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[::8] = (0x66, 0x33, 0x99)  # 16 one-pixel lines: 12% of the map
    with pytest.raises(LabelError, match=r"colour #663399 \(2,560 px\) matches no class"):
        decode_labels(target, palette)


def test_a_few_stray_pixels_fill_from_neighbours_without_a_warning(
    blob_index: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    target = paint(blob_index, colours).copy()
    target[60, 50:55] = WHITE  # inside the ellipse: nearest colour would say GREEN or ORANGE, the neighbours say 1
    with caplog.at_level("WARNING", logger=LABELS_LOG):
        index = decode_labels(target, palette)
    np.testing.assert_array_equal(index, blob_index)
    assert stray_warnings(caplog) == []


def test_source_with_an_unpainted_gap_has_no_gap_class(big_blob_index: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    source = rgba(paint(big_blob_index, colours))
    source[:, 140, :3] = WHITE  # a 1-px white gap through the background and the ellipse
    source[180, :, 3] = 0  # and a transparent one
    palette = extract_palette(source)
    assert set(palette.colors) == set(colours) and not palette.unlabelled
    with caplog.at_level("WARNING", logger=LABELS_LOG):
        index = decode_labels(source, palette, what="source label map")
    np.testing.assert_array_equal(np.asarray(palette.colors)[index], np.asarray(colours)[big_blob_index])
    (line,) = stray_warnings(caplog)
    assert line.startswith("source label map: 575 px match no class")


def test_source_thin_strokes_that_cover_the_map_stay_a_class() -> None:
    rgb = np.full((128, 128, 3), WHITE, np.uint8)
    rgb[::6] = BLACK  # a ruled sheet: thin, but 17% of the map
    palette = extract_palette(rgb)
    assert set(palette.colors) == {WHITE, BLACK}


# --------------------------------------------------------------- transparency


def test_transparent_region_is_the_unlabelled_class(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    rng = np.random.default_rng(1)
    source_rgb = paint(blob_index, colours).copy()
    alpha = np.full(blob_index.shape, 255, np.uint8)
    alpha[:, :15] = 0
    source_rgb[:, :15] = rng.integers(0, 256, (blob_index.shape[0], 15, 3))  # RGB under alpha 0 is ignored
    alpha[100:, 100:] = 254  # nearly opaque is opaque
    palette = extract_palette(rgba(source_rgb, alpha))
    assert palette.unlabelled and palette.num_classes == 4
    assert set(palette.colors) == set(colours)
    assert palette.describe().endswith("unlabelled (9%)")
    index = decode_labels(rgba(source_rgb, alpha), palette)
    assert np.all(index[:, :15] == 3)
    assert np.all(index[:, 15:] != 3)
    # A target erases another area: consistent meaning.
    target_alpha = np.full(blob_index.shape, 255, np.uint8)
    target_alpha[:40, :] = 0
    t_index = decode_labels(rgba(paint(blob_index, colours), target_alpha), palette)
    assert np.all(t_index[:40] == 3) and np.all(t_index[40:] < 3)
    # encode -> decode round trip keeps unlabelled as transparency.
    encoded = encode_labels(t_index, palette)
    assert np.all(encoded[:40, :, 3] == 0) and np.all(encoded[40:, :, 3] == 255)
    np.testing.assert_array_equal(decode_labels(encoded, palette), t_index)


def test_transparent_target_without_unlabelled_source_is_an_error(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    alpha = np.full(blob_index.shape, 255, np.uint8)
    alpha[10:30, 10:60] = 0
    with pytest.raises(LabelError, match=r"has 1,000 fully transparent px.*paint them with one of the source classes"):
        decode_labels(rgba(paint(blob_index, colours), alpha), palette)


def test_isolated_transparent_holes_take_their_neighbours_class(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    alpha = np.full(blob_index.shape, 255, np.uint8)
    holes = [(50, 50), (50, 51), (60, 120), (5, 5), (0, 0)]
    for y, x in holes:
        alpha[y, x] = 0
    index = decode_labels(rgba(paint(blob_index, colours), alpha), palette)
    np.testing.assert_array_equal(index, blob_index)


def test_partially_transparent_pixels_keep_their_colour(blob_index: np.ndarray) -> None:
    colours = [GREEN, ORANGE, (30, 60, 220)]
    palette = extract_palette(paint(blob_index, colours))
    alpha = np.full(blob_index.shape, 40, np.uint8)  # a faint layer: still labelled
    np.testing.assert_array_equal(decode_labels(rgba(paint(blob_index, colours), alpha), palette), blob_index)


# --------------------------------------------------------------- errors


def test_empty_map_is_an_error() -> None:
    with pytest.raises(LabelError, match="empty"):
        extract_palette(np.zeros((0, 10, 3), np.uint8))


def test_fully_transparent_map_is_an_error() -> None:
    with pytest.raises(LabelError, match="fully transparent: paint at least two classes"):
        extract_palette(np.zeros((20, 20, 4), np.uint8))


def test_single_colour_map_is_an_error() -> None:
    rng = np.random.default_rng(0)
    rgb = np.clip(np.full((64, 64, 3), 200.0) + rng.normal(0, 3, (64, 64, 3)), 0, 255).astype(np.uint8)
    rgb[:32] = (0, 249, 0)
    rgb[32:] = jpeg(np.full((32, 64, 3), (0, 249, 0), np.uint8), 60)  # noise of the same colour
    with pytest.raises(LabelError, match=r"only one colour \(#00f900\): paint at least two classes"):
        extract_palette(rgb)


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((4, 4), np.uint8), "shape"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_bad_arrays_are_label_errors(array, fragment: str) -> None:
    with pytest.raises(LabelError, match=fragment):
        extract_palette(array)


def test_size_mismatch_message() -> None:
    with pytest.raises(LabelError, match=r"^target label map is 300x200 but the image is 572x380: "):
        check_same_size(np.zeros((200, 300, 4)), np.zeros((380, 572, 3)), "target label map", "the image")
    check_same_size(np.zeros((5, 6, 4)), np.zeros((5, 6, 3)), "a", "b")


# --------------------------------------------------------------- palette, encode, resize


def test_palette_json_round_trip() -> None:
    palette = extract_palette(read(EXAMPLES / "face" / "label.png"))
    again = Palette.from_dict(json.loads(json.dumps(palette.to_dict())))
    assert again == palette and again.fractions == palette.fractions
    assert again.describe() == palette.describe()
    unl = Palette(colors=(GREEN, ORANGE), unlabelled=True)
    assert Palette.from_dict(unl.to_dict()) == unl and unl.num_classes == 3
    assert unl.describe() == "#00f900, #ff9300, unlabelled"


def test_malformed_palette_dict_is_a_label_error() -> None:
    with pytest.raises(LabelError):
        Palette.from_dict({"unlabelled": False})
    with pytest.raises(LabelError):
        Palette.from_dict({"colors": [[0, 300, 0]]})


def test_extract_is_deterministic() -> None:
    labels = read(EXAMPLES / "tree" / "label.png")
    assert extract_palette(labels).to_dict() == extract_palette(labels.copy()).to_dict()


def test_encode_decode_round_trip(blob_index: np.ndarray) -> None:
    palette = Palette(colors=(GREEN, ORANGE, (30, 60, 220)))
    encoded = encode_labels(blob_index, palette)
    assert encoded.shape == blob_index.shape + (4,) and encoded.dtype == np.uint8
    np.testing.assert_array_equal(decode_labels(encoded, palette), blob_index)
    with pytest.raises(LabelError, match="out of range"):
        encode_labels(blob_index + 1, palette)


def test_resize_labels_is_nearest_and_pure(blob_index: np.ndarray) -> None:
    small = resize_labels(blob_index, (40, 32))
    assert small.shape == (32, 40)
    assert set(np.unique(small)) <= set(np.unique(blob_index))
    # Same sampling rule as PIL's nearest-neighbour resize.
    pil = np.asarray(Image.fromarray(blob_index.astype(np.uint8)).resize((40, 32), Image.NEAREST))
    np.testing.assert_array_equal(small, pil)
    up = resize_labels(blob_index, (320, 256))
    np.testing.assert_array_equal(up[::2, ::2], blob_index)
    with pytest.raises(LabelError, match="positive"):
        resize_labels(blob_index, (0, 10))


def test_colour_hex() -> None:
    assert colour_hex((0, 249, 0)) == "#00f900"
