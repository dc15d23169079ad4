"""Bad input through the real CLI: one clear line on stderr, no traceback, and no work done first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine_fixtures import write_small_example

CLI = [sys.executable, "-m", "semantic_analogy"]


def fails(*args: object, env: dict | None = None) -> str:
    """Run the CLI, expect exit 2 with one error line and no progress event; return the error."""
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert not [e for e in events if e.get("event") == "progress"], "the error came after work had started"
    return lines[0]


@pytest.fixture
def files(tmp_path):
    return write_small_example(tmp_path, "tree", "1", 64)


# Enough steps that training, had it started, would emit progress events before failing.
TRAIN = ("--preset", "tiny", "--steps", "50", "--json-progress", "--method", "gan+patch")


def test_output_under_an_existing_file(files, tmp_path):
    img, lab, tgt = files
    err = fails("run", img, lab, tgt, "--out", img / "o.png", *TRAIN)
    assert f"{img} is a file, not a folder" in err


@pytest.mark.parametrize("name, says", [("o.xyz", "'.xyz' is not an image type"), ("o", "no extension")])
def test_output_of_an_unknown_type(files, tmp_path, name, says):
    img, lab, tgt = files
    err = fails("run", img, lab, tgt, "--out", tmp_path / name, *TRAIN)
    assert says in err and ".png, .jpg or .jpeg" in err
    err = fails("run", img, lab, tgt, "--out", tmp_path / name, "--method", "patch", "--json-progress")
    assert says in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_output_in_a_folder_without_write_permission(files, tmp_path):
    img, lab, tgt = files
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    err = fails("run", img, lab, tgt, "--out", locked / "o.png", *TRAIN)
    assert "is not writable" in err


def test_model_folder_under_a_file(files, tmp_path):
    img, lab, _ = files
    err = fails("train", img, lab, "--model", img / "model", *TRAIN[:-2])  # train has no --method
    assert "is a file, not a folder" in err
    err = fails("run", img, lab, files[2], "--out", tmp_path / "o.png", "--model", img / "m", *TRAIN)
    assert "is a file, not a folder" in err


def test_a_noise_label_map_is_named_as_such(files, tmp_path):
    img, _, tgt = files
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noise)
    err = fails("run", img, noise, tgt, "--out", tmp_path / "o.png", *TRAIN)
    assert "not a flat-colour label map" in err and "distinct colours" in err


def test_an_image_over_the_pixel_limit_fails_before_decoding_without_a_library_warning(files, tmp_path):
    _, lab, tgt = files
    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 4000)).save(big)  # 20 MP: over the default 16.8 MP limit
    err = fails("run", big, lab, tgt, "--out", tmp_path / "o.png", *TRAIN)
    assert "5000x4000 (20.0 megapixels)" in err and "--max-pixels" in err
    # The limit is the user's to raise: then the next problem (the label map's size) is reported.
    err = fails("run", big, lab, tgt, "--out", tmp_path / "o.png", "--max-pixels", "0", *TRAIN)
    assert "but the image is 5000x4000" in err


def test_results_follow_the_umask(files, tmp_path):
    img, lab, tgt = files
    out = tmp_path / "o.png"
    proc = subprocess.run(["sh", "-c", f'umask 022 && exec "$@"', "sh", *CLI, "run", str(img), str(lab), str(tgt),
                           "--out", str(out), "--method", "patch"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out.stat().st_mode & 0o777) == 0o644
