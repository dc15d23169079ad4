"""Label-guided patch synthesis (engine/patch_synthesis.py, engine/patchmatch.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine_fixtures import one_torch_thread  # noqa: F401  (autouse: one torch thread in this module)
from semantic_analogy.engine.errors import Cancelled, EngineError, LabelError
from semantic_analogy.engine.labels import decode_labels, extract_palette
from semantic_analogy.engine.patch_synthesis import PatchSettings, boundary_distance, level_sizes, push_pull, synthesize
from semantic_analogy.engine.progress import Progress

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COLOURS = np.array([[200, 40, 40], [40, 170, 60], [50, 60, 210]])


def layout(h: int, w: int, cx: float, cy: float, split: float) -> np.ndarray:
    """Class 0 left of `split`, 1 right of it, a disc of class 2 centred at (cx, cy) (fractions)."""
    yy, xx = np.mgrid[:h, :w]
    labels = (xx >= split * w).astype(np.int64)
    labels[(yy - cy * h) ** 2 + (xx - cx * w) ** 2 < (0.2 * min(h, w)) ** 2] = 2
    return labels


def painted(labels: np.ndarray, noise: int, seed: int = 0) -> np.ndarray:
    """Each class a distinct flat colour plus uniform noise of +-`noise`."""
    rng = np.random.default_rng(seed)
    img = COLOURS[labels] + rng.integers(-noise, noise + 1, labels.shape + (3,))
    return img.clip(0, 255).astype(np.uint8)


def near(mask: np.ndarray, reach: int) -> np.ndarray:
    """(H, W) bool: pixels within `reach` px (chessboard) of `mask`."""
    window = 2 * reach + 1
    return np.lib.stride_tricks.sliding_window_view(np.pad(mask, reach), (window, window)).any((2, 3))


def assert_colours_from_classes_around(out: np.ndarray, src: np.ndarray, src_lab: np.ndarray, tgt_lab: np.ndarray,
                                       reach: int = 3) -> None:
    """Every output pixel lies within the per-channel colour range, in the source, of the target
    classes within `reach` px of it: its own class alone away from class borders (the vote's
    contract: a patch centred on a neighbour of another class may blend its class in there).
    With reach 0, every pixel within its own class's range."""
    h, w = tgt_lab.shape
    classes = np.unique(tgt_lab)
    lo = np.full((h, w, 3), 255)
    hi = np.zeros((h, w, 3), int)
    for c in classes:
        have = src[src_lab == c].astype(int)
        around = near(tgt_lab == c, reach)
        lo[around] = np.minimum(lo[around], have.min(0))
        hi[around] = np.maximum(hi[around], have.max(0))
    got = out.astype(int)
    bad = ((got < lo) | (got > hi)).any(-1)
    assert not bad.any(), f"{bad.sum()} pixels got a colour of a class not within {reach} px, e.g. at {np.argwhere(bad)[0]}"


@pytest.mark.parametrize("noise", [0, 25])
def test_unchanged_layout_reproduces_the_source_exactly(noise):
    labels = layout(60, 80, 0.3, 0.4, 0.55)
    img = painted(labels, noise)
    out = synthesize(img, labels, labels, seed=3)
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, img)


def test_unchanged_layout_reproduces_a_real_photo_exactly():
    img = np.asarray(Image.open(EXAMPLES / "face" / "img.png").convert("RGB"))
    painted_labels = np.asarray(Image.open(EXAMPLES / "face" / "label.png"))
    index = decode_labels(painted_labels, extract_palette(painted_labels), what="source label map")
    # Coarse start and upsample-only finest level both have to keep the identity.
    settings = PatchSettings(search_pixels=20_000)
    np.testing.assert_array_equal(synthesize(img, index, index, settings=settings), img)


@pytest.mark.parametrize("search_pixels", [2_000_000, 1_000])  # searched up to the top / top levels only upsampled
@pytest.mark.parametrize("blend", [1, 3, 0])
def test_uses_only_source_patches_of_the_same_class(search_pixels, blend):
    src_lab = layout(64, 96, 0.3, 0.4, 0.6)
    tgt_lab = layout(64, 96, 0.7, 0.55, 0.35)  # disc moved across the split, split moved
    src = painted(src_lab, 30)
    settings = PatchSettings(search_pixels=search_pixels, border_blend=blend)
    out = synthesize(src, src_lab, tgt_lab, seed=1, settings=settings)
    # Votes across classes come only from patches centred within `blend` px.
    assert_colours_from_classes_around(out, src, src_lab, tgt_lab, reach=blend)
    # Not trivially true: where the class changed the colour changed with it (away from the
    # disc's border, where votes across classes blend in the neighbouring class).
    moved = (src_lab != 2) & (tgt_lab == 2) & ~near(tgt_lab != 2, blend)
    assert moved.any()
    assert np.abs(out[moved].astype(int) - COLOURS[2]).max() <= 30


def test_outside_the_mask_is_the_source_exactly():
    src_lab = layout(72, 96, 0.3, 0.5, 0.6)
    tgt_lab = layout(72, 96, 0.45, 0.5, 0.6)
    src = painted(src_lab, 20)
    mask = src_lab != tgt_lab
    out = synthesize(src, src_lab, tgt_lab, mask=mask, seed=2)
    np.testing.assert_array_equal(out[~mask], src[~mask])
    assert (out[mask] != src[mask]).any(axis=-1).mean() > 0.9
    assert_colours_from_classes_around(out, src, src_lab, tgt_lab)


def test_empty_mask_returns_the_source():
    labels = layout(40, 40, 0.5, 0.5, 0.5)
    img = painted(labels, 10)
    out = synthesize(img, labels, layout(40, 40, 0.3, 0.5, 0.5), mask=np.zeros(labels.shape, bool))
    np.testing.assert_array_equal(out, img)


def test_the_guide_decides_between_patches_of_one_class():
    # Class 0 comes in two shades (reddish top, yellowish bottom); the guide asks for yellow
    # in the middle band, which labels alone cannot tell.
    h, w = 64, 64
    labels = np.zeros((h, w), np.int64)
    labels[:, 48:] = 1
    rng = np.random.default_rng(0)
    img = np.where(np.arange(h)[:, None, None] < h // 2, [200, 40, 40], [210, 200, 40]) + rng.integers(-10, 11, (h, w, 3))
    img[labels == 1] = [40, 60, 200]
    img = img.clip(0, 255).astype(np.uint8)
    band = np.zeros((h, w), bool)
    band[8:28, 4:44] = True
    guide = img.copy()
    guide[band] = [210, 200, 40]
    out = synthesize(img, labels, labels, guide=guide, mask=band, seed=0)
    assert np.abs(out[band].astype(int) - [210, 200, 40]).mean() < 25
    np.testing.assert_array_equal(out[~band], img[~band])


def test_a_small_guide_is_resampled():
    labels = layout(48, 64, 0.3, 0.5, 0.6)
    img = painted(labels, 10)
    tgt = layout(48, 64, 0.6, 0.5, 0.6)
    guide = np.asarray(Image.fromarray(img).resize((16, 12)))
    out = synthesize(img, labels, tgt, guide=guide, mask=labels != tgt)
    assert_colours_from_classes_around(out, img, labels, tgt)


@pytest.mark.parametrize("patch_size, fine", [(5, 5), (7, 4)])
def test_levels_over_the_pixel_budget_take_fewer_passes(monkeypatch, patch_size, fine):
    """Levels of more than `large_pixels` pixels take `large_passes` search-and-vote passes; the
    finer ones below it 5 with 5 px patches, 4 with 7 px ones (a pass costs more)."""
    import semantic_analogy.engine.patch_synthesis as ps

    calls: list[tuple[int, int]] = []
    real = ps.patchmatch

    def counting(search, nnf, *args, **kwargs):
        calls.append(search.source_shape)
        return real(search, nnf, *args, **kwargs)

    monkeypatch.setattr(ps, "patchmatch", counting)
    labels = layout(64, 64, 0.3, 0.5, 0.25)
    target = layout(64, 64, 0.7, 0.5, 0.25)
    img = painted(labels, 3)
    synthesize(img, labels, target, settings=PatchSettings(coarsest=16, large_pixels=32 * 32), patch_size=patch_size)
    per_level = {shape: calls.count(shape) for shape in dict.fromkeys(calls)}
    st = PatchSettings()
    assert per_level == {(16, 16): st.coarse_passes, (32, 32): fine, (64, 64): st.large_passes}
    assert PatchSettings(fine_passes=2).passes_at(patch_size) == 2


def test_same_seed_same_result_other_seed_other_result():
    src_lab = layout(48, 64, 0.3, 0.4, 0.6)
    tgt_lab = layout(48, 64, 0.6, 0.5, 0.4)
    src = painted(src_lab, 30)
    a = synthesize(src, src_lab, tgt_lab, seed=5)
    np.testing.assert_array_equal(a, synthesize(src, src_lab, tgt_lab, seed=5))
    assert (a != synthesize(src, src_lab, tgt_lab, seed=6)).any()


def test_should_stop_raises_cancelled():
    src_lab = layout(48, 64, 0.3, 0.4, 0.6)
    tgt_lab = layout(48, 64, 0.6, 0.5, 0.4)
    src = painted(src_lab, 30)
    with pytest.raises(Cancelled):
        synthesize(src, src_lab, tgt_lab, should_stop=lambda: True)
    calls = []

    def later() -> bool:  # stops in the middle, not only before the start
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        synthesize(src, src_lab, tgt_lab, should_stop=later)
    assert len(calls) == 6


def test_progress_reports_every_level():
    src_lab = layout(64, 64, 0.3, 0.4, 0.6)
    tgt_lab = layout(64, 64, 0.6, 0.5, 0.4)
    events: list[Progress] = []
    synthesize(painted(src_lab, 20), src_lab, tgt_lab, progress=events.append)
    levels = level_sizes(64, 64, PatchSettings().coarsest, PatchSettings().ratio, 7)
    assert [e.step for e in events] == list(range(1, len(levels) + 1))
    assert all(e.total == len(levels) and e.stage == "apply" for e in events)
    assert events[-1].eta_s == 0 and np.isfinite(events[-1].losses["patch_distance"])


def test_bad_input_is_explained():
    labels = layout(32, 32, 0.5, 0.5, 0.5)
    img = painted(labels, 5)
    with pytest.raises(LabelError, match="class.*does not have"):
        synthesize(img, labels, np.full_like(labels, 7))
    with pytest.raises(LabelError, match="is 16x32 but the source image is 32x32"):
        synthesize(img, labels, labels[:, :16])
    with pytest.raises(LabelError, match="integer class-index map"):
        synthesize(img, labels, labels.astype(float))
    with pytest.raises(EngineError, match="8-bit RGB"):
        synthesize(img.astype(np.float32), labels, labels)
    with pytest.raises(EngineError, match="odd"):
        synthesize(img, labels, labels, patch_size=6)
    with pytest.raises(EngineError, match="mask"):
        synthesize(img, labels, labels, mask=np.ones((8, 8), bool))
    with pytest.raises(EngineError, match="large_passes must be at least 1"):
        synthesize(img, labels, labels, settings=PatchSettings(large_passes=0))
    with pytest.raises(EngineError, match="border_blend is a distance in pixels, 0 or more; got -1"):
        synthesize(img, labels, labels, settings=PatchSettings(border_blend=-1))
    for bad in ({"mode_steps": -1}, {"mode_bandwidth": 0.0}):
        with pytest.raises(EngineError, match="mode_steps must be 0 or more and mode_bandwidth above 0"):
            synthesize(img, labels, labels, settings=PatchSettings(**bad))
    for bad in ({"smooth_row_weight": -1.0}, {"smooth_spread": 0.0}):
        with pytest.raises(EngineError, match="smooth_row_weight must be 0 or more and smooth_spread above 0"):
            synthesize(img, labels, labels, settings=PatchSettings(**bad))
    for share in (-0.1, 1.5):
        with pytest.raises(EngineError, match="height_share is a share of a class's colour variance, from 0 to 1"):
            synthesize(img, labels, labels, settings=PatchSettings(height_share=share))


def test_pyramid_and_helpers():
    assert level_sizes(3000, 4000, 32, 2.0, 7)[0] == (23, 31)
    assert level_sizes(3000, 4000, 32, 2.0, 7)[-1] == (3000, 4000)
    assert level_sizes(20, 20, 32, 2.0, 7) == [(20, 20)]
    assert level_sizes(2000, 40, 32, 2.0, 7)[0][1] >= 7  # never thinner than a patch
    lab = torch.zeros(9, 9, dtype=torch.uint8)
    lab[:, 5:] = 1
    dist = boundary_distance(lab, 3)
    assert dist[0].tolist() == [3, 3, 2, 1, 0, 0, 1, 2, 3]
    values = torch.tensor([[[1.0, 0.0, 0.0, 3.0]]])
    known = torch.tensor([[True, False, False, True]])
    filled = push_pull(values, known)[0, 0]
    assert filled[0] == 1 and filled[3] == 3 and 1 < filled[1] < 3 and 1 < filled[2] < 3


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    sys.path.insert(0, sys.argv[1])
    from test_patch_synthesis import layout, painted
    from semantic_analogy.engine.patch_synthesis import synthesize
    torch.set_num_threads(1)
    h, w = 1000, 1500
    src_lab = layout(h, w, 0.3, 0.45, 0.6)
    tgt_lab = layout(h, w, 0.45, 0.45, 0.6)
    img = painted(src_lab, 20)
    mask = src_lab != tgt_lab
    mask[400:600, 200:1300] = True  # about a fifth of the image in all
    def peak():
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
    open("/proc/self/clear_refs", "w").write("5")  # restart the peak from here
    before = peak()
    out = synthesize(img, src_lab, tgt_lab, mask=mask)
    print(json.dumps({"extra": peak() - before, "fraction": float(mask.mean()),
                      "outside_exact": bool((out[~mask] == img[~mask]).all())}))
    """
)


def test_memory_stays_bounded_on_a_large_image():
    res = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0.15 < report["fraction"] < 0.3 and report["outside_exact"]
    # 1.5 MPix: the pyramid, features and matches in chunks stay far below what a
    # dense patch-distance matrix would take (terabytes); measured ~BOUND/3.
    bound = 700 * 1500 * 1000  # bytes: 700 per pixel of the image
    assert report["extra"] < bound, f"peak grew by {report['extra'] / 2**20:.0f} MiB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_the_contract():
    src_lab = layout(64, 96, 0.3, 0.4, 0.6)
    tgt_lab = layout(64, 96, 0.7, 0.55, 0.35)
    src = painted(src_lab, 30)
    np.testing.assert_array_equal(synthesize(src, src_lab, src_lab, device="cuda"), src)
    out = synthesize(src, src_lab, tgt_lab, device="cuda", seed=1)
    assert_colours_from_classes_around(out, src, src_lab, tgt_lab)
    np.testing.assert_array_equal(out, synthesize(src, src_lab, tgt_lab, device="cuda", seed=1))


@pytest.mark.parametrize("patch_size", [1, 3, 7])
@pytest.mark.parametrize("blend, modes", [(0, 0), (1, 0), (3, 0), (1, 1), (2, 1), (0, 2)])
def test_the_vote_is_the_mean_of_the_allowed_pixels_of_the_matched_patches(patch_size, blend, modes):
    # The padded, vectorised vote against the definition, pixel by pixel, on matches that reach
    # every border of the source and of the box, with classes mixed so that some votes are refused:
    # a vote counts when its source pixel is of the output pixel's class or, from a patch
    # centred at most `blend` px away, of the class of that patch's centre. With `modes`, that
    # many mean-shift steps follow: votes weighted by a Gaussian of their distance to the estimate.
    from semantic_analogy.engine.patch_synthesis import _vote

    gen = torch.Generator().manual_seed(1)
    hs, ws, bh, bw = 9, 11, 6, 7
    source = torch.randint(0, 256, (hs * ws, 3), generator=gen, dtype=torch.uint8)
    src_lab = torch.randint(0, 3, (hs * ws,), generator=gen, dtype=torch.uint8)
    grid = torch.randint(0, hs * ws, (bh, bw), generator=gen)
    grid[0, 0], grid[-1, -1] = 0, hs * ws - 1  # the source's corners
    free = torch.tensor([0, 3, 8, 20, 24, bh * bw - 1])
    fy, fx = free // bw, free % bw
    tl = src_lab[grid.reshape(-1)[free]]  # each free pixel of its match's class, as the synthesis keeps it
    bandwidth = 60.0
    got = _vote(grid, free, fy, fx, tl, source, src_lab, (hs, ws), patch_size, blend=blend, modes=modes,
                bandwidth=bandwidth, chunk=4)  # two chunks
    r = patch_size // 2
    refused = 0
    for i, (y, x) in enumerate(zip(fy.tolist(), fx.tolist())):
        votes = []
        for oy in range(-r, r + 1):
            for ox in range(-r, r + 1):
                py, px = y - oy, x - ox  # the patch centred there covers (y, x) at offset (oy, ox)
                if not (0 <= py < bh and 0 <= px < bw):
                    continue
                m = int(grid[py, px])
                sy, sx = m // ws + oy, m % ws + ox
                if not (0 <= sy < hs and 0 <= sx < ws):
                    continue
                if src_lab[sy * ws + sx] == tl[i] or (max(abs(oy), abs(ox)) <= blend and src_lab[sy * ws + sx] == src_lab[m]):
                    votes.append(source[sy * ws + sx].float())
                else:
                    refused += 1
        v = torch.stack(votes).double()
        want = v.mean(0)
        for _ in range(modes):
            w = torch.exp(-((v - want) ** 2).sum(1) / (2 * bandwidth**2))
            want = (v * w[:, None]).sum(0) / w.sum()
        assert torch.allclose(got[i].double(), want, atol=1e-3)
    assert refused > 0 or patch_size == 1


def test_a_mean_shift_vote_takes_the_colour_most_patches_agree_on():
    # A pixel covered by 9 patches, 6 matched into a black block and 3 into a white one (a
    # stripe's two sides): the plain mean is a grey no patch has; one mean-shift step is black.
    from semantic_analogy.engine.patch_synthesis import _vote

    source = torch.zeros(3, 6, 3, dtype=torch.uint8)
    source[:, 3:] = 255
    labels = torch.zeros(3 * 6, dtype=torch.uint8)
    black, white = 1 * 6 + 1, 1 * 6 + 4  # the blocks' centres
    grid = torch.full((3, 3), black)
    grid[0, :] = white  # the three patches above the free pixel vote white
    free, fy, fx = torch.tensor([4]), torch.tensor([1]), torch.tensor([1])
    args = (grid, free, fy, fx, torch.zeros(1, dtype=torch.uint8), source.view(-1, 3), labels, (3, 6), 3)
    assert _vote(*args)[0].tolist() == pytest.approx([85.0] * 3)
    assert max(_vote(*args, modes=1, bandwidth=30.0)[0].tolist()) < 1.0


def test_patches_are_5_px_on_small_images_and_7_above():
    from semantic_analogy.engine.patch_synthesis import SMALL_IMAGE, default_patch_size

    assert default_patch_size((170, 256)) == default_patch_size((SMALL_IMAGE, 10)) == 5
    assert default_patch_size((200, SMALL_IMAGE + 1)) == default_patch_size((2000, 3000)) == 7


@pytest.mark.parametrize("n, dims", [(588, 8), (147, 16), (20, 16)])
def test_principal_axes_span_the_exact_leading_subspace(n, dims):
    """The randomised solver (large problems) and the exact one (small) both give the leading
    principal axes: orthonormal, strongest first, spanning what the full eigendecomposition spans."""
    from semantic_analogy.engine.patchmatch import principal_axes

    gen = torch.Generator().manual_seed(0)
    # Rows with a decaying spectrum, as patches of a photo or of label maps have.
    scales = 0.8 ** torch.arange(n, dtype=torch.float32)
    x = torch.randn(4096, n, generator=gen) * scales
    x = x @ torch.linalg.qr(torch.randn(n, n, generator=gen)).Q  # axes not along the coordinates
    x = x - x.mean(0, keepdim=True)
    axes = principal_axes(x, dims, gen).double()
    assert axes.shape == (dims, n)
    assert torch.allclose(axes @ axes.T, torch.eye(dims, dtype=torch.float64), atol=1e-6)
    exact = torch.linalg.eigh((x.T @ x).double())[1][:, -dims:].flip(1).T
    # The two subspaces coincide: the exact axes lie within the found ones.
    captured = (exact @ axes.T).pow(2).sum(1)
    assert captured.min() > 0.99
    # Strongest first: the variance along each axis falls.
    var = (x.double() @ axes.T).var(0)
    assert bool((var[:-1] >= var[1:] * 0.999).all())
