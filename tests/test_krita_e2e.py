"""End to end in real Krita: the docker's Train, Apply, Method and Keep against a real daemon.

Runs Krita 5 (Debian's package) under Xvfb in a throw-away profile with the plugin
laid out as build_zip.py makes it plus a driver plugin (plugin_krita/krita_tests),
and a real `python -m semantic_analogy.daemon serve` on a free loopback port.
Skipped, with the reason printed, where Krita or Xvfb is not installed.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin_krita" / "krita_tests"))

import run_krita  # noqa: E402

pytestmark = pytest.mark.krita
EXAMPLE = ROOT / "examples" / "zebra"
SCALE = 2  # 572x380 -> 286x190 keeps Krita and the CPU engine quick
# Below the document's 286 px, so the instant preview comes scaled down, as for a real
# photo, and "Keep this result" has to fetch the full-size patch result.
INSTANT_PX = 200
INSTANT_PATCH_CAPTION = "Instant result from the photo's patches; training continues…"


@pytest.fixture(scope="module")
def krita_available():
    missing = run_krita.missing_prerequisites()
    if missing:
        pytest.skip("real Krita is needed for this test; missing: " + "; ".join(missing))


def downscale(src: Path, dst: Path, labels: bool) -> None:
    im = Image.open(src).convert("RGBA")
    im = im.resize((im.width // SCALE, im.height // SCALE), Image.NEAREST if labels else Image.LANCZOS)
    im.save(dst)


def class_map(path: Path, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest label colour: targets use slightly other shades (SOURCES.md)."""
    x = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return ((x[:, :, None, :] - palette[None, None]) ** 2).sum(-1).argmin(-1)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for axis in (0, 1):
        acc = out.copy()
        for s in range(1, r + 1):
            acc |= np.roll(out, s, axis) | np.roll(out, -s, axis)
        out = acc
    return out


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def check_follows_target(result: Path, image: Path, labels: Path, target: Path) -> None:
    lab = np.asarray(Image.open(labels).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(lab, axis=0, return_counts=True)
    palette = colours[counts > 0.01 * len(lab)]
    changed = class_map(labels, palette) != class_map(target, palette)
    assert 0.02 < changed.mean() < 0.9, "the example target should move a real part of the picture"
    out, src = rgb(result), rgb(image)
    # Inside the edited region (less its anti-aliased rim, which the engine may decode
    # to either class) the photo is re-synthesised: most pixels change (a synthesis made
    # of the photo's own patches may copy some exactly) ...
    inside = changed & ~dilate(~changed, 2)
    assert inside.sum() > 0.01 * inside.size
    assert np.abs(out - src)[inside].mean() > 10
    assert (out != src).any(-1)[inside].mean() > 0.5
    # ... and away from it (past the engine's soft seam) it is the photo, pixel for pixel.
    far = ~dilate(changed, max(16, out.shape[1] // 20))
    assert far.sum() > 0.1 * far.size
    assert (out == src).all(-1)[far].all()


def test_train_then_apply_in_real_krita(krita_available, tmp_path):
    files = {}
    for key, name, is_label in (("image", "img.png", False), ("labels", "label.png", True),
                                ("target", "cond/1.png", True), ("target2", "cond/2.png", True)):
        files[key] = tmp_path / f"{key}.png"
        downscale(EXAMPLE / name, files[key], is_label)

    daemon_log = tmp_path / "daemon.log"
    with run_krita.engine_daemon(tmp_path / "cache", daemon_log,
                                 extra_args=("--instant-preview-size", str(INSTANT_PX))) as address:
        config = {k: str(v) for k, v in files.items()}
        # keep_steps: a second Train long enough to be stopped at its instant result.
        config.update(address=address, preset="tiny", steps=4, keep_steps=2000, timeout_s=240)
        result, krita_log = run_krita.run(config, tmp_path / "krita", timeout=280)
    out = tmp_path / "krita" / "out"
    report = json.dumps(result, indent=1)[-3000:] + "\n--- krita log tail ---\n" + krita_log[-1500:] \
        + "\n--- daemon log ---\n" + daemon_log.read_text()[-1500:]
    assert result, "the driver wrote no result.json (plugin not loaded?)\n" + report
    assert result.get("ok"), report

    # The docker chose the layers by itself, by the usual names.
    assert result["default_selection"] == {"source": "Photo", "labels": "Labels", "target": "Target 1"}, report
    # Result layers: one per run, named after the target, the document's size, at its origin.
    w, h = Image.open(files["image"]).size
    layers = {r["name"]: r for r in result["result_layers"]}
    assert set(layers) == {"Target 1 → analogy", "Target 2 → analogy", "Target 2 → analogy (2)",
                           "Target 2 → analogy (3)", "Target 2 → analogy (4)"}, report
    for r in layers.values():
        assert r["bounds"] == [0, 0, w, h] and (r["model"], r["depth"]) == ("RGBA", "U8")
        assert r["visible"], r
    # Placed above the topmost of the source and label layers (so it is seen while they are
    # shown), the newest on top, and the status line says so; the source layers are untouched.
    stack = result["layers_before_helpers"]  # bottom to top
    assert stack == ["Photo", "Labels", "Target 1", "Target 1 → analogy", "Target 2", "Target 2 → analogy"], stack
    assert "“Target 1 → analogy” on top of the label layers" in result["train"]["message"], result["train"]
    assert result["layers"][-3:] == ["Target 2 → analogy (2)", "Target 2 → analogy (3)",
                                     "Target 2 → analogy (4)"], result["layers"]
    assert (rgb(out / "photo_after.png") == rgb(files["image"])).all()

    check_follows_target(out / "result_train.png", files["image"], files["labels"], files["target"])
    check_follows_target(out / "result_apply.png", files["image"], files["labels"], files["target2"])
    assert not np.array_equal(rgb(out / "result_train.png"), rgb(out / "result_apply.png"))

    # Apply re-used the trained model instead of training again (how fast that is, is
    # measured by the benchmarks, not here).
    log = daemon_log.read_text()
    assert log.count("cached model") >= 1 and log.count("trained model") == 1, log[-2000:]

    # The Method combo starts at the default; the instant patch result reached the docker
    # during the first Train (before its finished signal), first of its previews, scaled
    # as the daemon sends it, captioned as what it is, with "Keep this result" offered.
    assert result["method_default"] == "patch", report
    train_previews = [p for p in result["previews"] if p["phase"] == "train"]
    assert train_previews and train_previews[0]["instant"], result["previews"]
    first = train_previews[0]
    assert first["size"] == [INSTANT_PX, round(h * INSTANT_PX / w)], first
    assert first["caption"] == first["docker_caption"] == INSTANT_PATCH_CAPTION and first["has_pixmap"], first
    assert first["keep_visible"] and first["keep_enabled"], first
    assert all(not p["instant"] and p["caption"].startswith("Training preview") for p in train_previews[1:])
    # Under a training preview the Keep button is still offered: the caption says what it keeps.
    assert all("Keep this result” keeps the instant result" in p["docker_caption"] for p in train_previews[1:])
    # Once the layer is in, the preview shows it and says so (not a training preview any more).
    assert result["train"]["preview_caption"] == "The result, added as the layer “Target 1 → analogy”", report
    # Apply from the cached model: an instant GAN preview, which is not offered for keeping.
    apply_previews = [p for p in result["previews"] if p["phase"] == "apply"]
    assert [p["instant"] for p in apply_previews] == [True], result["previews"]
    assert apply_previews[0]["caption"].startswith("Instant result from the trained network")
    assert not apply_previews[0]["keep_visible"]

    # Method "patch": a result layer of the document's size that follows the target layout,
    # without training (the live step painted the first target's layout into Target 2).
    assert result["patch"]["ok"] and result["patch"]["layer"] == "Target 2 → analogy (3)", result["patch"]
    check_follows_target(out / "result_patch.png", files["image"], files["labels"], files["target"])
    assert "method patch, no model" in log, log[-2000:]
    # Preset, size and steps are greyed out for patch, which trains nothing, and back for gan+patch.
    assert result["training_widgets_for_patch"] == [False, False, False], result
    assert result["training_widgets_for_gan_patch"] == [True, True, True], result

    # "Keep this result" during a second, long Train: the training was cancelled (not
    # finished: still one trained model) and the full-size patch result became the layer.
    keep = result["keep"]
    assert keep["ok"] and keep["button_visible"] and not keep["button_visible_after"], keep
    assert keep["layer"] == "Target 2 → analogy (4)", keep
    assert keep["preview_caption"] == "The kept instant result, added as the layer “Target 2 → analogy (4)”", keep
    assert keep["progress"].startswith("Done: kept the instant result"), keep
    check_follows_target(out / "result_keep.png", files["image"], files["labels"], files["target"])
    assert log.count("[CANCELLED]") == 1 and log.count("method patch, no model") == 2, log[-3000:]
    assert "CPU" in result["train"]["connection"], report

    # Live mode: repainting the target layer re-applied without a button press.
    assert result["live"]["ok"] and "Target 2 → analogy (2)" in result["live"]["message"], result["live"]

    # The label-painting helpers, pressed in the same Krita session.
    helpers = result["helpers"]
    assert helpers["new_layers"] == [{"name": "Labels (2)", "opacity": 153, "type": "paintlayer"}], helpers
    assert helpers["active_after_new"] == helpers["labels_choice_after_new"] == "Labels (2)", helpers
    assert helpers["swatch_count"] == 16 and helpers["swatch_rgb"] == helpers["expected_rgb"], helpers
    assert "semantic_analogy_labels.gpl" in helpers["palette_files"], helpers
    after = helpers["layers_after_duplicate"]
    assert after.index("Target 3") == after.index("Labels (2)") + 1, after
    assert helpers["target_choice_after_duplicate"] == "Target 3", helpers

    # Krita quit by itself (no "save changes?" box left open until the driver's forced exit).
    assert not result.get("quit_forced"), report
