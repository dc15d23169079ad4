"""The editor-side core shared by the Krita and GIMP plug-ins (plugin_core/): its rules,
and that both plug-ins behave the same through it."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from semantic_analogy.plugin_core import address, choices, errors, geometry, layers, naming, progress
from semantic_analogy.protocol import schema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugin_krita"))

from semantic_analogy_krita import layers as krita_layers  # noqa: E402
from semantic_analogy_krita import messages as krita_messages  # noqa: E402
from semantic_analogy_krita import settings as krita_settings  # noqa: E402


@pytest.fixture(scope="module")
def gimp():
    path = REPO / "plugin_gimp" / "semantic_analogy_gimp" / "sa_gimp_logic.py"
    spec = importlib.util.spec_from_file_location("sa_gimp_logic_core_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- address
@pytest.mark.parametrize("text, expected", [
    ("", "tcp://127.0.0.1:5555"), ("5556", "tcp://127.0.0.1:5556"), (":7000", "tcp://127.0.0.1:7000"),
    ("localhost:6000", "tcp://localhost:6000"), (" tcp://gpu-box ", "tcp://gpu-box:5555"),
    ("gpu-box", "tcp://gpu-box:5555"), ("[::1]:7000", "tcp://[::1]:7000"), ("ipc:///tmp/sa.sock", "ipc:///tmp/sa.sock"),
])
def test_addresses_the_same_in_both_editors(gimp, text, expected):
    assert address.normalize_address(text) == expected
    assert krita_settings.normalize_address(text) == expected
    assert gimp.normalize_address(text) == expected


@pytest.mark.parametrize("text, words", [
    ("host:99999", "not a port number"), ("http://x:1", "tcp://HOST:PORT"), ("tcp://a b", "not valid"),
    ("ipc://", "names no socket file"), ("host:port", "not a port number"),
])
def test_bad_addresses_say_the_form_that_works(gimp, text, words):
    with pytest.raises(address.AddressError, match=words):
        address.normalize_address(text)
    with pytest.raises(ValueError, match=words):
        krita_settings.normalize_address(text)
    with pytest.raises(gimp.PluginError, match=words):
        gimp.normalize_address(text)


# ---------------------------------------------------------------- choices
def test_methods_come_from_the_protocol_default_first():
    assert set(choices.METHOD_NAMES) == set(schema.METHODS)
    assert choices.METHOD_NAMES[0] == choices.DEFAULT_METHOD == schema.DEFAULT_METHOD
    assert [m.nick for m in choices.METHODS] == list(choices.METHOD_NAMES)
    assert all(m.label and m.help and m.label != m.nick for m in choices.METHODS)
    assert not choices.needs_training("patch") and choices.needs_training("gan+patch") and choices.needs_training("gan")


def test_presets_mirror_the_engine():
    from semantic_analogy.engine.presets import PRESETS

    assert set(choices.PRESET_NAMES) == set(PRESETS) and choices.DEFAULT_PRESET in PRESETS
    assert choices.PRESET_STEPS == {name: p.steps for name, p in PRESETS.items()}


def test_train_settings_leave_the_preset_its_say():
    assert choices.train_settings("tiny", 0, 5, 3) == {"preset": "tiny", "seed": 3, "steps": 5}
    assert choices.train_settings("standard", 384) == {"preset": "standard", "seed": 0, "size": 384}
    for bad, words in [(dict(preset="ultra"), "Unknown quality preset"), (dict(preset="tiny", size=16), "got 16"),
                       (dict(preset="tiny", steps=-1), "training steps"), (dict(preset="tiny", seed=True), "whole")]:
        with pytest.raises(choices.ChoiceError, match=words):
            choices.train_settings(**bad)


def test_training_estimate_from_measured_cpu_speed():
    assert choices.training_estimate("preview", 0, "cpu") == "about 3 min"
    assert choices.training_estimate("standard", 0, "cpu") == "about 56 min"
    assert choices.training_estimate("tiny", 0, "cpu") == "about a minute"
    assert choices.training_estimate("preview", 0, "cuda:0") == ""  # not measured: the ETA will say


# ---------------------------------------------------------------- progress
@pytest.mark.parametrize("seconds, text", [
    (None, "estimating time left"), (0.2, "almost done"), (7.4, "~7 s left"), (42, "~40 s left"),
    (58, "~1 min left"), (70, "~1 min left"), (150, "~2 min left"), (3600, "~1 h left"), (4850, "~1 h 21 min left"),
])
def test_eta(seconds, text):
    assert progress.format_eta(seconds) == text


def test_progress_words_for_every_event():
    up = progress.event_update
    train = {"stage": "train", "step": 120, "total": 400, "eta_s": 65.0, "elapsed_s": 30.0, "losses": {}}
    assert up("progress", train, "gan+patch") == progress.Update(0.3, "Training 120/400, ~1 min left")
    assert up("queued", {"position": 2}).text == "Waiting: 2 jobs ahead in the engine's queue"
    assert up("queued", {"position": 1}).text.endswith("1 job ahead in the engine's queue")
    assert up("queued", {"position": 0}, "gan+patch").text == "Starting…"
    # The default method trains nothing: it says what the seconds go into.
    assert up("queued", {"position": 0}).text == "Making the result from the photo's patches (no training)…"
    apply = {"stage": "apply", "step": 1, "total": 1, "eta_s": 0.0}
    assert up("progress", apply, "patch") == progress.Update(1.0, "Making the result from the photo's patches")
    assert up("progress", {**apply, "total": 3}, "patch").text.endswith("patches, 1/3 done")
    assert up("progress", apply, "gan+patch").text.endswith("(adding the photo's detail)")
    assert up("progress", apply, "gan").text == "Making the result"
    instant = {"stage": "train", "step": 0, "total": 400, "kind": "patch", "instant": True}
    assert up("preview", instant) == progress.Update(0.0, "Instant patch result ready; training 0/400…")
    cached = {"stage": "apply", "step": 0, "total": 1, "kind": "gan", "instant": True}
    assert up("preview", cached, "gan+patch") == progress.Update(None, "Instant GAN result ready; adding the photo's detail…")
    assert up("preview", {"stage": "train", "step": 50, "total": 400}) == progress.Update()  # a picture only
    assert up("result", {}).fraction == 1.0 and up("cancelled", {}).text == "Cancelled"
    # Malformed data from a newer daemon must not break a plug-in.
    assert up("progress", {"stage": "train", "step": "x", "total": None}) == progress.Update(None, "Training…")
    assert up("progress", {"stage": "warmup", "step": 1, "total": 2}).text == "Warmup…"


def test_progress_the_same_in_both_editors(gimp):
    events = [("queued", {"position": 0}), ("queued", {"position": 3}),
              ("progress", {"stage": "train", "step": 5, "total": 10, "eta_s": 12}),
              ("progress", {"stage": "apply", "step": 1, "total": 2}),
              ("preview", {"stage": "train", "step": 0, "total": 9, "kind": "patch", "instant": True})]
    for method in choices.METHOD_NAMES:
        for kind, data in events:
            krita = krita_messages.progress_view(kind, data, method).text
            _, text = gimp.progress_update(kind, data, method)
            assert text == gimp.PROGRESS_PREFIX + krita, (method, kind, data)


def test_job_progress_says_warnings_and_training_first_once():
    job = progress.JobProgress("gan+patch", expects_model=True, preset="preview", device="cpu")
    first = job.update("preview", {"stage": "train", "step": 0, "total": 600, "kind": "patch", "instant": True})
    assert first.notice == "No trained model for this photo yet: training first, about 3 min."
    assert first.text.startswith("Instant patch result ready")
    assert job.update("progress", {"stage": "train", "step": 1, "total": 600, "eta_s": 100}).notice == ""
    gap = "target labels: 240 pixels of (255, 255, 255) filled from the neighbouring classes"
    vgg = "VGG19 weights not found; using the weight-free patch descriptor"
    step = {"stage": "train", "step": 2, "total": 600, "eta_s": 99}
    assert job.update("progress", {**step, "warnings": [gap]}).notice == f"Engine warning: {gap}"
    # Each event carries all warnings so far: only the new one is said.
    assert job.update("progress", {**step, "warnings": [gap, vgg]}).notice == f"Engine warning: {vgg}"
    assert job.update("result", {"warnings": [gap, vgg]}).notice == ""
    assert job.update("progress", {**step, "warnings": "not a list"}).notice == ""  # a broken daemon
    assert job.warnings == [gap, vgg] and job.trains
    # A job asked to train, or one that needs no model, has nothing to announce.
    for j in (progress.JobProgress("gan+patch"), progress.JobProgress("patch", expects_model=True)):
        assert j.update("progress", {"stage": "train", "step": 1, "total": 9}).notice == ""
    # A cached model: no training stage, nothing said.
    cached = progress.JobProgress("gan+patch", expects_model=True)
    assert cached.update("progress", {"stage": "apply", "step": 1, "total": 1}).notice == "" and not cached.trains


# ---------------------------------------------------------------- names
@pytest.mark.parametrize("name, role", [
    ("labels", "source"), ("Label.png", "source"), ("label map", "source"), ("Labels (2)", "source"),
    ("segmentation", "source"), ("labels #1", "source"), ("sky labels", "source"),
    ("target labels", "target"), ("labels copy", "target"), ("labels copy #2", "target"), ("Target 3", "target"),
    ("edited labels", "target"), ("P'", "target"),
    ("Target 1 → analogy", None), ("Target 1 → analogy (2)", None), ("target labels (analogy) #1", None),
    ("photo", None), ("Tablecloth", None), ("Background", None),
])
def test_label_roles_by_name(name, role):
    assert naming.label_role(name)[0] == role


def test_label_layers_chosen_the_same_in_both_editors(gimp):
    # Top first: exact names beat partial ones, the top-most among equals.
    stack = [("r", "Target 1 → analogy"), ("t2", "target for later"), ("t1", "target labels"),
             ("l2", "old labels"), ("l1", "labels"), ("p", "photo")]
    infos = [layers.LayerInfo(k, n, index=len(stack) - i) for i, (k, n) in enumerate(stack)]
    assert layers.choose_label_layers(infos) == ("l1", "t1")
    assert gimp.default_label_layers(gimp.layer_stack([(k, n, False, ()) for k, n in stack])) == ("l1", "t1")
    assert krita_layers.default_labels(infos).key == "l1"
    assert krita_layers.default_target(infos, krita_layers.default_labels(infos)).key == "t1"


def test_result_names_the_same_in_both_editors(gimp):
    existing = ["Target 1 → analogy", "Target 1 → analogy (2)"]
    assert naming.result_name("Target 1", existing) == "Target 1 → analogy (3)"
    assert krita_layers.result_name("Target 1", existing) == gimp.result_layer_name("Target 1", existing)
    assert naming.is_result_name(naming.result_name("x", [])) and naming.next_target_name(["Target 1"]) == "Target 2"


# ---------------------------------------------------------------- errors
def test_errors_in_plain_words_by_class_name_and_code():
    from semantic_analogy.protocol.errors import DaemonUnavailable, JobFailed, ProtocolError, VersionMismatch

    words = errors.EditorWords("try again", "press Connect", "the address box", "reinstall it", "see the log")
    short, details = errors.describe_error(DaemonUnavailable("no reply"), "tcp://127.0.0.1:5555", words)
    assert "“.venv/bin/semantic-analogy serve”" in short and "press Connect" in short and "no reply" in details
    assert "stopped answering" in errors.describe_error(DaemonUnavailable("x"), "", words, during_job=True)[0]
    assert "reinstall it" in errors.describe_error(VersionMismatch("2.0"), "", words)[0]
    assert errors.describe_error(JobFailed("CANCELLED", "c"), "", words)[0] == "Cancelled: no layer was added."
    assert "smaller working size" in errors.describe_error(JobFailed("OUT_OF_MEMORY", "oom"), "", words)[0]
    assert errors.describe_error(ProtocolError("TOO_LARGE", "too big"), "", words)[0] == \
        "The engine refused the job: too big [TOO_LARGE]"
    assert errors.describe_error(choices.ChoiceError("Pick one."), "", words)[0] == "Pick one."
    assert errors.describe_error(KeyError("k"), "", words)[0].endswith("see the log")


# ---------------------------------------------------------------- geometry
def test_crop_and_place_round_trip():
    data = bytes(range(4 * 3 * 2)) * 1
    rect = geometry.Rect(-1, 2, 3, 2)
    region = geometry.Rect(0, 2, 2, 2)
    crop = geometry.crop_rgba(data, rect, region)
    assert crop[:8] == data[4:12] and len(crop) == 16
    assert geometry.Rect(0, 0, 4, 4).contains(region) and not region.contains(rect)
    assert rect.intersect(geometry.Rect(5, 5, 1, 1)) is None and region.describe() == "2×2 at (0, 2)"
    assert geometry.fully_transparent(bytes(8)) and not geometry.fully_transparent(bytes(3) + b"\x01")


# ---------------------------------------------------------------- bundling rules
def test_core_is_pure_python_with_relative_imports_only():
    """It runs inside Krita's and GIMP's Pythons: the standard library, and the sibling protocol."""
    allowed = set(sys.stdlib_module_names) - {"tkinter", "asyncio", "sqlite3", "ctypes"}
    for path in sorted((REPO / "plugin_core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: this package, or ..protocol
                    assert node.level == 1 or (node.module or "").startswith("protocol"), (path.name, node.module)
                    continue
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, (path.name, names)
