import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine_fixtures import write_small_example

CLI = [sys.executable, "-m", "semantic_analogy"]


def run(*args, check=True):
    # Buffered standard streams, as in a user's shell: the engine's commands leave by os._exit
    # (semantic_analogy.cli._leave), and what they printed must still arrive.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


@pytest.fixture
def files(tmp_path):
    return write_small_example(tmp_path, "tree", "1", 64)


def test_train_apply_eval_end_to_end(files, tmp_path):
    img, lab, tgt = files
    model = tmp_path / "model"
    proc = run("train", img, lab, "--model", model, "--preset", "tiny", "--steps", "4", "--json-progress")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
    assert (model / "model.pt").is_file()

    out = tmp_path / "out.png"
    run("apply", "--model", model, tgt, "--out", out)
    result = np.asarray(Image.open(out))
    assert result.shape == np.asarray(Image.open(img)).shape

    # Several targets: a folder, one PNG per target named after it.
    tgt2 = tmp_path / "second.png"
    Image.open(lab).save(tgt2)
    run("apply", "--model", model, tgt, tgt2, "--out", tmp_path / "many")
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["second.png", "target.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "many" / "second.png")), np.asarray(Image.open(img).convert("RGB")))

    metrics = json.loads(run("eval", img, lab, tgt, out).stdout)
    assert metrics["edited_fraction"] > 0
    assert set(metrics["alignment"]["edited"]) == {"pixel_accuracy", "miou"}
    # Outside the edit only gan+patch's margin (3 px here) changes, re-synthesised by a 4-step model.
    assert metrics["patch_distance"]["edited"] is not None and metrics["psnr_outside"] > 20


def test_run_trains_then_reuses_the_cached_model(files, tmp_path, monkeypatch):
    img, lab, tgt = files
    monkeypatch.setenv("SEMANTIC_ANALOGY_CACHE", str(tmp_path / "cache"))
    first = run("run", img, lab, tgt, "--out", tmp_path / "a.png", "--preset", "tiny", "--steps", "3",
                "--method", "gan+patch")
    assert "wrote" in first.stdout and (tmp_path / "a.png").is_file()
    second = run("run", img, lab, tgt, "--out", tmp_path / "b.png", "--preset", "tiny", "--steps", "3",
                 "--method", "gan+patch")
    assert "using the trained model" in second.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png")))


def test_errors_are_one_clear_line(files, tmp_path):
    img, lab, tgt = files
    small = tmp_path / "small.png"
    Image.open(tgt).resize((20, 20)).save(small)
    proc = run("run", img, lab, small, "--out", tmp_path / "x.png", "--preset", "tiny", check=False)
    assert proc.returncode == 2 and "--resize-targets" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("apply", "--model", tmp_path / "nothing", tgt, "--out", tmp_path / "x.png", check=False)
    assert proc.returncode == 2 and "no trained model" in proc.stderr
    proc = run("train", tmp_path / "missing.png", lab, "--model", tmp_path / "m", check=False)
    assert proc.returncode == 2 and "missing.png" in proc.stderr


def test_patch_method_needs_no_training_and_keeps_unedited_pixels(files, tmp_path, monkeypatch):
    img, lab, tgt = files
    monkeypatch.setenv("SEMANTIC_ANALOGY_CACHE", str(tmp_path / "cache"))
    run("run", img, lab, tgt, "--out", tmp_path / "p.png", "--method", "patch")
    assert not (tmp_path / "cache").exists()  # nothing was trained or cached
    from semantic_analogy.engine.labels import decode_labels, extract_palette
    from semantic_analogy.engine.synthesis import synthesis_mask

    labels = np.asarray(Image.open(lab).convert("RGBA"))
    palette = extract_palette(labels)
    edited = decode_labels(labels, palette) != decode_labels(np.asarray(Image.open(tgt).convert("RGBA")), palette)
    # The edit, its margin and the removed shapes' halos are re-synthesised.
    kept = ~synthesis_mask(decode_labels(labels, palette), decode_labels(np.asarray(Image.open(tgt).convert("RGBA")), palette))
    source, result = np.asarray(Image.open(img).convert("RGB")), np.asarray(Image.open(tmp_path / "p.png"))
    assert kept.mean() > 0.3  # (a 64 px image: the 3 px margin is large here)
    assert np.array_equal(result[kept], source[kept]) and not np.array_equal(result, source)


def test_target_painted_with_a_gap_runs_with_one_warning_and_a_big_unknown_area_fails(tmp_path):
    # The tree example at full size (250 px): a 1-px line where a stroke was erased to white,
    # then saved as JPEG (ringing), as painters' maps come.
    from engine_fixtures import EXAMPLES

    target = np.asarray(Image.open(EXAMPLES / "tree" / "cond" / "3.png").convert("RGB")).copy()
    target[130, :] = 255
    gap = tmp_path / "gap.jpg"
    Image.fromarray(target).save(gap, quality=75)
    img, lab = EXAMPLES / "tree" / "img.png", EXAMPLES / "tree" / "label.png"
    proc = run("run", img, lab, gap, "--out", tmp_path / "o.png", "--method", "patch")
    warnings = [line for line in proc.stderr.splitlines() if "match no class" in line]
    assert len(warnings) == 1 and "take the class of their neighbours" in warnings[0], proc.stderr
    assert (tmp_path / "o.png").is_file()
    # A 20x20 block of an unknown colour is meant: an error naming it, no traceback, no output.
    target[40:60, 40:60] = (120, 30, 160)
    bad = tmp_path / "bad.png"
    Image.fromarray(target).save(bad)
    proc = run("run", img, lab, bad, "--out", tmp_path / "b.png", "--method", "patch", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert re.search(r"#781ea0 \(4\d\d px\) matches no class", proc.stderr), proc.stderr  # ~400, its edges too
    assert not (tmp_path / "b.png").exists()
