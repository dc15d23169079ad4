"""Known-answer analogies (engine/groundtruth.py) and their benchmark (scripts/benchmark_groundtruth.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine_fixtures import EXAMPLES, one_torch_thread  # noqa: F401  (autouse: one torch thread in this module)
from semantic_analogy.engine.groundtruth import FAMILIES, OBJECT_MIN_FRACTION, cases, pick_object, score, ssim_map
from semantic_analogy.engine.imageio import load_image, load_label_map
from semantic_analogy.engine.labels import decode_labels, extract_palette
from semantic_analogy.engine.synthesis import patch_analogy

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def zebra():
    image = load_image(EXAMPLES / "zebra" / "img.png")[..., :3]
    labels = load_label_map(EXAMPLES / "zebra" / "label.png")
    palette = extract_palette(labels)
    return image, labels, palette, decode_labels(labels, palette)


@pytest.fixture(scope="module")
def zebra_cases(zebra):
    image, _, palette, index = zebra
    return {c.name: c for c in cases(image, index, palette)}


def test_identity_is_known_everywhere_and_patch_reproduces_it_exactly(zebra, zebra_cases):
    image, labels, _, _ = zebra
    case = zebra_cases["identity"]
    np.testing.assert_array_equal(case.image, image)
    assert not case.changed.any() and case.known.mean() > 0.98
    out = patch_analogy(image, labels, case.target)
    assert score(out, case.image, case.known) == {"psnr": 100.0, "ssim": pytest.approx(1.0), "pixels": int(case.known.sum())}


def test_mirror_is_exact_and_the_mirrored_photo_scores_perfectly(zebra, zebra_cases):
    image, _, _, index = zebra
    case = zebra_cases["mirror"]
    np.testing.assert_array_equal(case.image, image[:, ::-1])
    np.testing.assert_array_equal(case.index, index[:, ::-1])
    s = score(image[:, ::-1], case.image, case.changed)
    assert s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0)
    assert score(image, case.image, case.changed)["psnr"] < 15  # the photo as it is: far off


def test_target_label_maps_decode_to_the_cases_layout(zebra, zebra_cases):
    _, _, palette, _ = zebra
    for case in zebra_cases.values():
        np.testing.assert_array_equal(decode_labels(case.target, palette), case.index)


@pytest.mark.parametrize(
    "name, lo, hi",
    [
        ("mirror", 0.97, 1.0),  # everything but the resampling border
        ("shift", 0.86, 0.90),  # 10% slides out of the picture
        ("scale 1.25", 0.97, 1.0),  # enlarged: every output pixel comes from inside
        ("scale 0.8", 0.60, 0.66),  # shrunk: 0.8 x 0.8 of the picture
        ("rotate +10", 0.85, 0.95),  # the corners come from outside
        ("rotate -10", 0.85, 0.95),
    ],
)
def test_whole_image_cases_know_the_expected_share(zebra_cases, name, lo, hi):
    assert lo <= zebra_cases[name].known.mean() <= hi


def test_local_cases_move_the_object_with_its_own_pixels(zebra, zebra_cases):
    image, _, _, index = zebra
    obj = pick_object(index)
    assert (index == obj).mean() >= OBJECT_MIN_FRACTION and (index == obj).mean() < 0.5  # the zebra, not the grass
    area = (index == obj).sum()
    for name, scale in (("object copy", 1.0), ("object x1.25", 1.25), ("object x0.8", 0.8), ("object rotate 15", 1.0)):
        case = zebra_cases[name]
        assert FAMILIES[name][0] == "local"
        new = (case.index == obj) & (index != obj)  # where the copy lies on the background
        assert case.changed.sum() <= new.sum() and case.changed.sum() > 0.5 * new.sum()
        assert 0.3 * area * scale**2 < new.sum() <= 1.05 * area * scale**2
        unchanged = case.index == index
        assert case.known[unchanged].all() or case.known[unchanged].mean() > 0.99
        np.testing.assert_array_equal(case.image[~(case.index != index) & (case.index != obj)],
                                      image[~(case.index != index) & (case.index != obj)])
    copy = zebra_cases["object copy"]
    # The copied object's known pixels are the object's own (a pure translation of the photo).
    assert score(copy.image, copy.image, copy.changed)["psnr"] == 100.0


def test_ssim_is_one_for_identical_images_and_falls_with_noise(zebra):
    image = zebra[0][:64, :64]
    assert np.allclose(ssim_map(image, image), 1.0)
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 25, image.shape), 0, 255).astype(np.uint8)
    assert ssim_map(image, noisy).mean() < 0.8
    assert score(image, image, np.zeros(image.shape[:2], bool)) is None


def test_a_tiny_benchmark_run_finishes(tmp_path):
    rows = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark_groundtruth.py"), "--preset", "tiny", "--steps", "2",
         "--examples", "zebra", "--families", "identity", "mirror", "object x0.8", "--out", str(tmp_path / "gt"),
         "--json", str(rows), "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| whole-image case (mean over examples) |" in proc.stdout and "| local-image case" in proc.stdout
    data = json.loads(rows.read_text())
    assert {r["method"] for r in data} == {"gan", "gan+patch", "patch", "source unchanged", "class mean colour"}
    ident = [r for r in data if r["case"] == "identity"]
    assert all(r["changed"] is None for r in ident)
    assert [r["known"]["psnr"] for r in ident if r["method"] in ("patch", "gan+patch", "source unchanged")] == [100.0] * 3
    mirrored = {r["method"]: r["changed"]["psnr"] for r in data if r["case"] == "mirror"}
    assert mirrored["patch"] > mirrored["source unchanged"] + 3
