"""The random edits of scripts/benchmark_edits.py do what their names say."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> dict:
    """The script's functions (run as a module, not as __main__)."""
    return runpy.run_path(str(ROOT / "scripts" / "benchmark_edits.py"))


def scene() -> np.ndarray:
    """Class 0 above, 1 below, a 20 x 30 block of class 2 (the object) in the middle."""
    index = np.zeros((80, 100), np.int64)
    index[50:] = 1
    index[30:50, 35:65] = 2
    return index


@pytest.mark.parametrize("kind", ["remove", "shrink", "enlarge", "move", "rotate", "paint"])
def test_each_kind_of_edit_changes_the_object_as_named(bench, kind):
    index = scene()
    target = bench["edit"](index, 2, kind, 3, np.random.default_rng(0))
    before, after = (index == 2).sum(), (target == 2).sum()
    assert target.shape == index.shape and target.min() >= 0
    assert (target != index).any()
    if kind == "remove":
        assert after == 0
        # The vacated pixels take their neighbours' classes: 0 above the split, 1 below.
        assert (target[30:40, 35:65] == 0).all() and (target[40:50, 45:55] <= 1).all()
    elif kind == "shrink":
        assert 0.2 * before < after < 0.55 * before
    elif kind == "enlarge":
        assert 1.5 * before < after < 2.3 * before
    elif kind in ("move", "rotate"):
        assert abs(after - before) < 0.15 * before
        moved_away = np.argwhere(target == 2).mean(0) - np.argwhere(index == 2).mean(0)
        if kind == "move":
            assert np.abs(moved_away).max() > 1
        else:  # about its centre: the shape turns, its centre stays
            assert np.abs(moved_away).max() < 1.5 and (target[30:50, 35:65] != 2).any()
    else:  # a blob of the object's class painted over the other classes
        assert after > before and ((index != 2) & (target == 2)).any()
        assert set(np.unique(target[target != index])) == {2}


def test_the_cases_are_the_same_every_run(bench):
    a, b = bench["cases"](7), bench["cases"](7)
    assert len(a) == 36 and [c["case"] for c in a] == [c["case"] for c in b]
    assert all(np.array_equal(x["target_index"], y["target_index"]) for x, y in zip(a, b))
    for c in a:
        assert max(c["image"].shape[:2]) <= 256 and c["target"].shape[:2] == c["image"].shape[:2]
