import numpy as np

from semantic_analogy.engine.compose import compose, seam_alpha


def test_unedited_layout_returns_the_source_exactly():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    idx = np.zeros((300, 400), np.int64)
    out = compose(src, np.zeros((30, 40, 3), np.uint8), idx, idx)
    assert np.array_equal(out, src)


def test_source_pixels_kept_outside_edit_and_seam_is_soft_and_narrow():
    rng = np.random.default_rng(1)
    src = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
    src_idx = np.zeros((400, 400), np.int64)
    tgt_idx = src_idx.copy()
    tgt_idx[100:200, 100:200] = 1
    synth = np.full((40, 40, 3), 7, np.uint8)  # working size 40 -> scale 10
    out = compose(src, synth, src_idx, tgt_idx)
    assert np.all(out[125:175, 125:175] == 7)  # inside: the synthesis
    unchanged = tgt_idx == src_idx
    assert np.array_equal(out[unchanged], src[unchanged])  # every unedited pixel: the source, exactly
    alpha = seam_alpha(~unchanged, 20)
    assert 0 < alpha[150, 103] < 1  # a soft band just inside the edited region
    assert alpha[150, 150] == 1 and alpha[150, 99] == 0
