"""The engine's one entry point, make_analogy: every method, with and without a trained model."""

from __future__ import annotations

import numpy as np
import pytest

from engine_fixtures import one_torch_thread, small_example  # noqa: F401  (fixture)
from semantic_analogy.engine.analogy import FolderStore, make_analogy, preview_size
from semantic_analogy.engine.errors import EngineError, LabelError
from semantic_analogy.engine.model import WEIGHTS
from semantic_analogy.engine.presets import TrainSettings
from semantic_analogy.engine.synthesis import patch_analogy
from semantic_analogy.protocol.schema import DEFAULT_METHOD, METHODS

TINY = TrainSettings(preset="tiny", steps=2, seed=0)


class Recorder:
    def __init__(self) -> None:
        self.progress, self.previews, self.results = [], [], []

    def on_progress(self, p) -> None:
        self.progress.append((p.stage, p.step, p.total))

    def on_preview(self, image, kind) -> None:
        self.previews.append((kind, image.shape))

    def on_result(self, i, image) -> None:
        self.results.append(i)

    def calls(self) -> dict:
        return {"progress": self.on_progress, "preview": self.on_preview, "on_result": self.on_result}


def test_method_names_are_defined_once_in_the_protocol():
    from semantic_analogy.engine import synthesis

    assert synthesis.METHODS is METHODS and synthesis.DEFAULT_METHOD == DEFAULT_METHOD


def test_patch_needs_no_model_and_equals_patch_analogy(tmp_path):
    image, labels, target = small_example()
    rec = Recorder()
    store = FolderStore(root=tmp_path)
    done = make_analogy(image, labels, [target, labels], TINY, "patch", store=store, **rec.calls())
    assert (done.method, done.model_key, done.cached, done.model) == ("patch", "", False, None)
    assert np.array_equal(done.results[0], patch_analogy(image, labels, target))
    assert np.array_equal(done.results[1], image), "the source's own layout gives the source back"
    assert rec.previews == [], "patch is the instant result itself: no preview before it"
    assert rec.progress == [("apply", 1, 2), ("apply", 2, 2)] and rec.results == [0, 1]
    assert not any(tmp_path.iterdir()), "nothing trained, nothing stored"


@pytest.mark.parametrize("method", ["gan", "gan+patch"])
def test_gan_methods_train_then_serve_from_the_store(tmp_path, method):
    image, labels, target = small_example()
    store = FolderStore(root=tmp_path)
    rec = Recorder()
    first = make_analogy(image, labels, [target], TINY, method, store=store, preview_px=32, **rec.calls())
    assert not first.cached and first.model_key
    assert (tmp_path / first.model_key / WEIGHTS).is_file(), "trained into the store's folder"
    kinds = [k for k, _ in rec.previews]
    assert kinds == ["patch"] and max(rec.previews[0][1][:2]) == 32, "an instant patch look, at preview size"
    stages = [s for s, _, _ in rec.progress]
    assert stages == ["train", "train", "apply"], "training steps, then one event per target"

    rec = Recorder()
    again = make_analogy(image, labels, [target], TINY, method, store=store, **rec.calls())
    assert again.cached and again.model_key == first.model_key
    assert np.array_equal(again.results[0], first.results[0]), "the stored model gives the same result"
    assert [s for s, _, _ in rec.progress] == ["apply"], "no training the second time"
    assert [k for k, _ in rec.previews] == (["gan"] if method == "gan+patch" else [])

    retrained = make_analogy(image, labels, [target], TINY, method, store=FolderStore(root=tmp_path, retrain=True))
    assert not retrained.cached


def test_a_model_in_hand_renders_every_method():
    image, labels, target = small_example()
    model = make_analogy(image, labels, [target], TINY, "gan").model
    outs = {m: make_analogy(None, None, [target], method=m, model=model) for m in METHODS}
    for m, done in outs.items():
        assert done.cached and done.model_key == model.key and done.results[0].shape == image.shape, m
    assert np.array_equal(outs["patch"].results[0], patch_analogy(image, labels, target))


def test_bad_inputs_fail_before_any_work(tmp_path):
    image, labels, target = small_example()
    rec = Recorder()
    bad = target.copy()
    bad[10:40, 10:40, :3] = (200, 0, 200)  # a thick block of a colour that is no class
    with pytest.raises(LabelError, match="#c800c8"):
        make_analogy(image, labels, [target, bad], TINY, "gan", store=FolderStore(root=tmp_path), **rec.calls())
    with pytest.raises(EngineError, match="unknown method 'pix2pix'; choose one of gan, patch, gan\\+patch"):
        make_analogy(image, labels, [target], TINY, "pix2pix", **rec.calls())
    with pytest.raises(LabelError, match="is 64x"):
        make_analogy(image, labels, [target[:-2]], TINY, "patch", **rec.calls())
    with pytest.raises(EngineError, match="no target"):
        make_analogy(image, labels, [], TINY, "patch")
    assert (rec.progress, rec.previews, rec.results) == ([], [], [])
    assert not any(tmp_path.iterdir()), "no training started"


def test_apply_only_store_refuses_to_train(tmp_path):
    image, labels, target = small_example()
    with pytest.raises(EngineError, match="holds no trained model"):
        make_analogy(image, labels, [target], TINY, "gan", store=FolderStore(folder=tmp_path / "m", can_train=False))


def test_preview_size_keeps_small_images_and_scales_large_ones():
    assert preview_size(48, 40, 512) == (48, 40)
    assert preview_size(512, 300, 512) == (512, 300)
    assert preview_size(4000, 3000, 512) == (512, 384)
    assert preview_size(3000, 4000, 512) == (384, 512)
    assert preview_size(5000, 3, 512) == (512, 1), "never a side of 0 pixels"
