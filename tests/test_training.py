import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine_fixtures import small_example
from semantic_analogy.engine.api import Cancelled, LabelError, TrainSettings, load_model, model_key, train
from semantic_analogy.engine.source import Source, one_hot, to_tensor
from semantic_analogy.engine.synthesis import synthesis_mask

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def example():
    return small_example("tree", "1", 64)


def reconstruction_l1(model) -> float:
    return float(np.abs(model.synthesize(model.source.index).astype(float) - model.source.work_image().astype(float)).mean())


def test_short_training_improves_reconstruction(example):
    image, labels, _ = example
    untrained = train(image, labels, TrainSettings(preset="tiny", steps=1, seed=3))
    before = reconstruction_l1(untrained)
    trained = train(image, labels, TrainSettings(preset="tiny", steps=60, seed=3, rec_every=3))
    after = reconstruction_l1(trained)
    assert after < 0.6 * before, (before, after)


def test_training_is_deterministic_for_a_seed_on_cpu(example):
    image, labels, _ = example
    a = train(image, labels, TrainSettings(preset="tiny", steps=4, seed=7, device="cpu"))
    b = train(image, labels, TrainSettings(preset="tiny", steps=4, seed=7, device="cpu"))
    for (ka, va), (kb, vb) in zip(a.G.state_dict().items(), b.G.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka


def test_progress_reports_steps_eta_losses_and_previews(example):
    image, labels, target = example
    events = []
    train(image, labels, TrainSettings(preset="tiny", steps=6, preview_every=3), progress=events.append, preview_targets=[target])
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6] and all(e.total == 6 for e in events)
    assert events[-1].eta_s == 0 and events[0].eta_s > 0
    assert {"S", "D", "G"} <= set(events[0].losses)
    previews = [e.preview for e in events if e.preview is not None]
    assert len(previews) == 2 and previews[0].dtype == np.uint8 and previews[0].shape[2] == 3


def test_cancel_checkpoints_and_resume_matches_uninterrupted_training(example, tmp_path):
    image, labels, _ = example
    settings = TrainSettings(preset="tiny", steps=8, seed=5)
    steps_seen = []

    def stop_after_four():
        return len(steps_seen) >= 4

    with pytest.raises(Cancelled, match="step 4/8"):
        train(image, labels, settings, progress=lambda p: steps_seen.append(p.step), should_stop=stop_after_four, workdir=tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file() and not (tmp_path / "model.pt").exists()
    resumed_steps = []
    resumed = train(image, labels, settings, progress=lambda p: resumed_steps.append(p.step), workdir=tmp_path)
    assert resumed_steps == [5, 6, 7, 8]
    assert (tmp_path / "model.pt").is_file() and not (tmp_path / "checkpoint.pt").exists()
    straight = train(image, labels, settings)
    for (k, va), vb in zip(resumed.G.state_dict().items(), straight.G.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_save_load_apply_round_trip(example, tmp_path):
    image, labels, target = example
    model = train(image, labels, TrainSettings(preset="tiny", steps=3))
    out = model.apply(target)
    assert out.shape == image.shape and out.dtype == np.uint8
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert loaded.key == model.key == model_key(image, labels, TrainSettings(preset="tiny", steps=3))
    assert np.array_equal(loaded.apply(target), out)
    # Unedited pixels are the source's own; edited ones come from the synthesis.
    src_idx, tgt_idx = model.source.index, model.source.decode_target(target)
    assert np.array_equal(model.apply(labels), image)
    assert (src_idx != tgt_idx).any()


def test_bad_target_fails_before_training(example):
    image, labels, target = example
    bad = target.copy()
    bad[:20, :20, :3] = (40, 60, 250)  # a colour that is no class of the source
    with pytest.raises(LabelError, match="#283cfa"):
        train(image, labels, TrainSettings(preset="tiny", steps=50), preview_targets=[bad])
    with pytest.raises(LabelError, match="target label map"):
        train(image, labels, TrainSettings(preset="tiny", steps=1)).apply(bad[:30])


@pytest.mark.parametrize("method", ["gan", "patch", "gan+patch"])
def test_every_method_keeps_unedited_pixels_and_changes_the_edited_region(example, method):
    image, labels, target = example
    model = train(image, labels, TrainSettings(preset="tiny", steps=2))
    out = model.apply(target, method)
    edited = model.source.index != model.source.decode_target(target)
    kept = ~synthesis_mask(model.source.index, model.source.decode_target(target)) if method != "gan" else ~edited
    assert np.array_equal(out[kept], image[kept])
    assert np.abs(out[edited].astype(int) - image[edited].astype(int)).mean() > 5
