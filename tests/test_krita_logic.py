"""Krita plugin: layer selection rules, per-document settings, message building,
the label palette and dependency lookup (pure logic, no Krita needed)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugin_krita"))

from semantic_analogy_krita import layers as L  # noqa: E402
from semantic_analogy_krita import deps, palette  # noqa: E402
from semantic_analogy_krita.messages import (  # noqa: E402
    INSTANT_GAN_CAPTION, INSTANT_PATCH_CAPTION, ImageData, RequestError, build_request, connection_text,
    describe_error, keep_uses_preview, patch_request, preview_view, progress_view, ProgressView,
)
from semantic_analogy_krita.pixels import Rect  # noqa: E402
from semantic_analogy_krita.settings import (  # noqa: E402
    DEFAULT_METHOD, METHOD_NAMES, METHODS, DocSettings, SettingsError, SettingsStore, document_key,
    normalize_address, user_data_dir,
)


def info(uid, name, index, kind="paintlayer", depth=0, visible=True):
    return L.LayerInfo(uid, name, kind, name, visible, index, depth)


@pytest.fixture
def doc_layers():
    # bottom to top, as krita_io.walk lists them
    return [
        info("p", "Background", 0),
        info("l", "Labels", 1),
        info("t1", "Target 1", 2),
        info("r", "Target 1 → analogy", 3),
        info("t2", "Target 2", 4),
        info("m", "Transparency Mask", 5, kind="transparencymask"),
    ]


# ---------------------------------------------------------------- layer selection
def test_defaults_pick_photo_labels_and_topmost_target(doc_layers):
    sel = L.choose(doc_layers, None, None, None)
    assert sel == L.Selection("p", "l", "t2")


def test_remembered_choices_win_and_survive_renames_by_uid(doc_layers):
    sel = L.choose(doc_layers, L.LayerRef("p", "old photo name"), L.LayerRef("l", "x"), L.LayerRef("t1", "y"))
    assert sel == L.Selection("p", "l", "t1")


def test_remembered_layer_found_by_unique_name_when_uid_is_gone(doc_layers):
    sel = L.choose(doc_layers, None, None, L.LayerRef("gone", "Target 1"))
    assert sel.target_uid == "t1"
    # an ambiguous name is not guessed
    dup = doc_layers + [info("t1b", "Target 1", 6)]
    assert L.resolve(dup, L.LayerRef("gone", "Target 1")) is None


def test_visible_image_is_remembered_as_source(doc_layers):
    assert L.choose(doc_layers, L.LayerRef(L.VISIBLE_IMAGE, "Visible"), None, None).source_uid == L.VISIBLE_IMAGE


def test_no_photo_layer_falls_back_to_visible_image():
    assert L.default_source([info("l", "labels", 0)]) == L.VISIBLE_IMAGE


def test_target_never_defaults_to_the_label_layer():
    layers = [info("p", "photo", 0), info("l", "Labels", 1)]
    assert L.choose(layers, None, None, L.LayerRef("l", "Labels")).target_uid == ""


@pytest.mark.parametrize(
    "sel, need_target, words",
    [
        (L.Selection("p", "", ""), False, "New label layer"),
        (L.Selection("p", "gone", ""), False, "no longer exists"),
        (L.Selection("l", "l", ""), False, "same layer"),
        (L.Selection("p", "l", ""), True, "Duplicate as target"),
        (L.Selection("p", "l", "l"), True, "edit a copy"),
        (L.Selection("p", "m", ""), False, "not a layer with pixels"),
    ],
)
def test_invalid_selections_say_what_to_pick(doc_layers, sel, need_target, words):
    with pytest.raises(L.SelectionError, match=words):
        L.validate(doc_layers, sel, need_target=need_target)


def test_valid_selections_pass(doc_layers):
    L.validate(doc_layers, L.Selection("p", "l", "t1"), need_target=True)
    L.validate(doc_layers, L.Selection(L.VISIBLE_IMAGE, "l", ""), need_target=False)


def test_visible_image_hides_labels_targets_and_results(doc_layers):
    hidden = L.hidden_for_visible_image(doc_layers, L.Selection(L.VISIBLE_IMAGE, "l", "t1"))
    assert set(hidden) == {"l", "t1", "t2", "r"}


def test_names_for_new_layers():
    assert L.next_target_name(["Labels", "Target 1", "Target 3"]) == "Target 2"
    assert L.result_name("Target 1", ["Target 1 → analogy"]) == "Target 1 → analogy (2)"
    assert L.is_result_name("Target 1 → analogy (2)") and not L.is_result_name("Target 1")
    assert L.is_label_name("label map") and L.is_label_name("Labels (2)") and not L.is_label_name("Tablecloth")


# ---------------------------------------------------------------- settings
def test_user_data_dir_is_per_platform_and_outside_krita_plugin_folder():
    assert user_data_dir("linux", {}, "/home/ann") == Path("/home/ann/.local/share/semantic-analogy/krita")
    assert user_data_dir("linux", {"XDG_DATA_HOME": "/x"}, "/h") == Path("/x/semantic-analogy/krita")
    assert user_data_dir("win32", {"APPDATA": "C:/Users/ann/AppData/Roaming"}, "C:/Users/ann") == \
        Path("C:/Users/ann/AppData/Roaming/SemanticAnalogy/krita")
    assert user_data_dir("darwin", {}, "/Users/ann") == \
        Path("/Users/ann/Library/Application Support/SemanticAnalogy/krita")
    assert user_data_dir("linux", {"SEMANTIC_ANALOGY_KRITA_HOME": "/t"}, "/h") == Path("/t")
    assert "pykrita" not in str(user_data_dir("linux", {}, "/home/ann"))


@pytest.mark.parametrize("text, expected", [
    ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555"), ("localhost:6000", "tcp://localhost:6000"),
    (":7000", "tcp://127.0.0.1:7000"), (" 10.0.0.2:5555 ", "tcp://10.0.0.2:5555"), ("ipc:///tmp/sa", "ipc:///tmp/sa"),
    # The shared rule (plugin_core/address.py), the same as in GIMP's dialog:
    ("5555", "tcp://127.0.0.1:5555"), ("", "tcp://127.0.0.1:5555"), ("localhost", "tcp://localhost:5555"),
])
def test_addresses_are_normalized(text, expected):
    assert normalize_address(text) == expected


@pytest.mark.parametrize("text, words", [("host:99999", "not a port"), ("http://x:1", "tcp://HOST:PORT")])
def test_bad_addresses_say_how_to_write_them(text, words):
    with pytest.raises(ValueError, match=words):
        normalize_address(text)


def test_per_document_settings_round_trip(tmp_path):
    path = tmp_path / "sub" / "settings.json"
    store = SettingsStore.load(path)
    key = document_key("/art/zebra.kra", "zebra")
    store.address = "tcp://127.0.0.1:6001"
    store.set_document(key, DocSettings(source=L.LayerRef("p", "Photo"), labels=L.LayerRef("l", "Labels"),
                                        preset="best", size=384, steps=900, seed=3))
    store.set_document(document_key("", "Untitled"), DocSettings(preset="tiny"))
    store.save()
    again = SettingsStore.load(path)
    assert again.address == "tcp://127.0.0.1:6001"
    ds = again.for_document(key)
    assert (ds.source, ds.labels, ds.target, ds.preset, ds.size, ds.steps, ds.seed) == \
        (L.LayerRef("p", "Photo"), L.LayerRef("l", "Labels"), None, "best", 384, 900, 3)
    assert again.for_document("unsaved:Untitled").preset == "tiny"
    assert again.for_document("/never/seen.kra") == DocSettings()


def test_corrupt_or_hand_edited_settings_do_not_break_the_docker(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert SettingsStore.load(path).documents == {}
    path.write_text(json.dumps({"address": "http://nonsense", "documents": {
        "k": {"settings": {"preset": "huge", "size": 5, "seed": "x", "labels": {"uid": 3}}}}}))
    store = SettingsStore.load(path)
    assert store.address == "tcp://127.0.0.1:5555"
    ds = store.for_document("k")
    assert (ds.preset, ds.size, ds.seed, ds.labels) == ("preview", 0, 0, None)


def test_old_documents_are_forgotten_past_the_limit(tmp_path, monkeypatch):
    from semantic_analogy_krita import settings as S

    monkeypatch.setattr(S, "MAX_DOCUMENTS", 3)
    store = SettingsStore(tmp_path / "s.json")
    for i in range(5):
        store.set_document(f"doc{i}", DocSettings(seed=i), now=float(i))
    assert sorted(store.documents) == ["doc2", "doc3", "doc4"]


def test_train_settings_dict_and_validation():
    assert DocSettings(preset="tiny").train_settings({"steps": 4}) == {"preset": "tiny", "seed": 0, "steps": 4}
    assert DocSettings(preset="standard", size=320, steps=50, seed=2).train_settings() == \
        {"preset": "standard", "seed": 2, "size": 320, "steps": 50}
    with pytest.raises(SettingsError, match="number of training steps"):
        DocSettings(steps=-1).train_settings()
    with pytest.raises(SettingsError, match="32–4096 px, got 16"):
        DocSettings(size=16).train_settings()
    with pytest.raises(SettingsError, match="Unknown quality preset"):
        DocSettings(preset="ultra").train_settings()


def test_method_is_remembered_per_document_and_old_files_get_the_default(tmp_path):
    path = tmp_path / "settings.json"
    store = SettingsStore.load(path)
    store.set_document("a", DocSettings(method="gan"))
    store.set_document("b", DocSettings())
    store.save()
    again = SettingsStore.load(path)
    assert again.for_document("a").method == "gan" and again.for_document("b").method == DEFAULT_METHOD
    # A file from before the Method combo, and a hand-edited nonsense value.
    path.write_text(json.dumps({"documents": {"old": {"settings": {"preset": "tiny"}},
                                              "odd": {"settings": {"method": ["gan"]}}}}))
    store = SettingsStore.load(path)
    assert store.for_document("old") == DocSettings(preset="tiny")
    assert store.for_document("old").method == DEFAULT_METHOD == "patch"
    assert store.for_document("odd").method == DEFAULT_METHOD
    assert DocSettings.from_dict(DocSettings(method="gan").to_dict()).method == "gan"


def test_methods_match_the_protocol_and_stay_out_of_the_model_settings():
    from semantic_analogy.protocol.schema import DEFAULT_METHOD as PROTOCOL_DEFAULT, METHODS as PROTOCOL_METHODS

    assert set(METHOD_NAMES) == set(PROTOCOL_METHODS) and DEFAULT_METHOD == PROTOCOL_DEFAULT
    assert METHODS[0].nick == DEFAULT_METHOD  # the combo's first entry is the default
    assert all("gan" not in m.label.lower() for m in METHODS)  # plain words, not the protocol names
    # The settings dict feeds the daemon's model key: the method must not change it, so a
    # model trained under one method is reused by an Apply under another.
    assert DocSettings(method="patch").train_settings() == DocSettings(method="gan").train_settings()
    with pytest.raises(SettingsError, match="Unknown method"):
        DocSettings(method="magic").validated()


# ---------------------------------------------------------------- messages
def img(w, h, rgba=(10, 20, 30, 255)):
    return ImageData(w, h, bytes(rgba) * (w * h))


def test_build_request_checks_sizes_and_emptiness():
    r = Rect(5, 6, 4, 3)
    req = build_request(r, img(4, 3), img(4, 3), [img(4, 3)], ["Target 1"], {"preset": "tiny"}, "apply")
    assert req.region == r and req.target_names == ("Target 1",) and req.settings == {"preset": "tiny"}
    with pytest.raises(RequestError, match="target “Target 1” is 4×2"):
        build_request(r, img(4, 3), img(4, 3), [img(4, 2)], ["Target 1"], {})
    with pytest.raises(RequestError, match="Labels” is empty"):
        build_request(r, img(4, 3), img(4, 3, (0, 0, 0, 0)), [img(4, 3)], ["T"], {}, labels_name="“Labels”")
    with pytest.raises(RequestError, match="“T” is empty"):
        build_request(r, img(4, 3), img(4, 3), [img(4, 3, (1, 1, 1, 0))], ["T"], {})
    with pytest.raises(RequestError, match="choose a target"):
        build_request(r, img(4, 3), img(4, 3), [], [], {})
    with pytest.raises(ValueError):
        ImageData(2, 2, bytes(15))


def test_request_carries_the_method_and_keep_resubmits_with_patch():
    r = Rect(0, 0, 4, 3)
    req = build_request(r, img(4, 3), img(4, 3), [img(4, 3)], ["Target 1"], {"preset": "tiny"}, "train")
    assert req.method == "patch", "the protocol's default"
    req = build_request(r, img(4, 3), img(4, 3), [img(4, 3)], ["Target 1"], {"preset": "tiny"}, "train",
                        method="gan")
    assert req.method == "gan" and "method" not in req.settings
    with pytest.raises(RequestError, match="Unknown method"):
        build_request(r, img(4, 3), img(4, 3), [img(4, 3)], ["T"], {}, method="Patch")
    keep = patch_request(req)
    assert (keep.method, keep.mode) == ("patch", "apply")
    # the same layers and settings: only the method differs
    assert (keep.region, keep.image, keep.labels, keep.targets, keep.target_names, keep.settings) == \
        (req.region, req.image, req.labels, req.targets, req.target_names, req.settings)


def test_preview_captions_tell_the_instant_result_from_training_previews():
    instant = preview_view({"stage": "train", "step": 0, "total": 120, "kind": "patch", "instant": True,
                            "target": 0})
    assert instant.caption == INSTANT_PATCH_CAPTION == "Instant result from the photo's patches; training continues…"
    assert instant.instant and instant.keepable
    cached = preview_view({"stage": "apply", "step": 0, "total": 1, "kind": "gan", "instant": True})
    assert cached.caption == INSTANT_GAN_CAPTION and cached.instant and not cached.keepable
    training = preview_view({"stage": "train", "step": 40, "total": 120})
    assert training.caption == "Training preview: step 40 / 120"
    assert not training.instant and not training.keepable
    # protocol 1.0 daemons send no `instant`; `kind` alone does not make it instant
    assert not preview_view({"stage": "train", "step": 0, "total": 4, "kind": "patch"}).instant
    assert preview_view({}).caption == "Preview"


def test_keep_uses_the_preview_only_at_full_size():
    assert keep_uses_preview((286, 190), Rect(0, 0, 286, 190))
    assert not keep_uses_preview((512, 340), Rect(10, 10, 1144, 760))  # the daemon scaled it down


def test_progress_captions():
    # The shared words (plugin_core/progress.py); Krita shows "busy" (-1) where the fraction is unknown.
    v = progress_view("progress", {"step": 30, "total": 120, "eta_s": 75.4, "stage": "train"})
    assert (v.percent, v.text) == (25, "Training 30/120, ~1 min left")
    assert progress_view("progress", {"step": 1, "total": 1, "stage": "apply"}, "gan+patch").text == \
        "Making the result (adding the photo's detail)"
    assert progress_view("queued", {"position": 2}).text.startswith("Waiting: 2 jobs ahead")
    assert progress_view("progress", {"stage": "train"}).percent == -1
    assert progress_view("queued", {"position": 0}, "gan+patch") == ProgressView(-1, "Starting…")


def test_connection_text_shows_device():
    assert connection_text({"engine_version": "0.1.0", "device": "cuda"}) == "Connected · engine 0.1.0 · CUDA"
    assert "CPU" in connection_text({"device": "cpu"}) and "Preview" in connection_text({"device": "cpu"})


def test_errors_are_described_in_plain_words():
    from semantic_analogy.protocol.errors import DaemonUnavailable, JobFailed, VersionMismatch

    short, details = describe_error(DaemonUnavailable("no reply in 5 s"), "tcp://127.0.0.1:5555")
    # Unreachable at the default address: the exact command after the README's set-up, and the
    # button's own name (it reads "Connect" while not connected).
    assert "“.venv/bin/semantic-analogy serve”" in short and "press Connect" in short
    assert "--bind tcp://127.0.0.1:6000" in describe_error(DaemonUnavailable("x"), "tcp://127.0.0.1:6000")[0]
    assert "stopped answering" in describe_error(DaemonUnavailable("x"), "tcp://h:1", during_job=True)[0]
    assert "no reply in 5 s" in details and "tcp://127.0.0.1:5555" in details
    assert describe_error(JobFailed("CANCELLED", "cancelled"))[0] == "Cancelled: no layer was added."
    short, details = describe_error(JobFailed("BAD_LABELS", "the label map has only one colour"))
    assert short == "The engine could not make the analogy: the label map has only one colour [BAD_LABELS]"
    assert "BAD_LABELS" in details
    assert "same protocol version" in describe_error(VersionMismatch("daemon speaks 2.0"))[0]
    assert describe_error(L.SelectionError("Choose the label layer."))[0] == "Choose the label layer."
    assert describe_error(KeyError("x"))[0].startswith("Semantic Analogy failed unexpectedly (KeyError")


# ---------------------------------------------------------------- palette
def test_palette_colours_are_far_apart_and_export_as_gpl():
    colours = [rgb for _, rgb in palette.LABEL_COLOURS]
    assert len(colours) >= 12 and palette.min_pairwise_distance(colours) > 70
    text = palette.gpl_text()
    lines = text.splitlines()
    assert lines[0] == "GIMP Palette" and lines[1] == f"Name: {palette.PALETTE_NAME}"
    assert lines[4].split()[:3] == ["230", "25", "75"] and len(lines) == 4 + len(colours)


# ---------------------------------------------------------------- dependencies
@pytest.mark.parametrize("wheel, folder", [
    ("pyzmq-27.1.0-cp311-cp311-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl", "cp311-cp311-linux-x86_64"),
    ("pyzmq-27.1.0-cp310-cp310-win_amd64.whl", "cp310-cp310-windows-x86_64"),
    ("pyzmq-27.1.0-cp312-abi3-macosx_10_15_universal2.whl", "cp312-abi3-macos-universal2"),
    ("pyzmq-26.0.0-cp39-cp39-musllinux_1_1_aarch64.whl", "cp39-cp39-linux-aarch64"),
])
def test_wheel_folders(wheel, folder):
    assert deps.wheel_folder_name(wheel) == folder


def test_vendor_folder_matching():
    win310 = deps.Runtime(3, 10, "windows", "x86_64")
    mac_arm = deps.Runtime(3, 13, "macos", "arm64")
    assert deps.folder_matches("cp310-cp310-windows-x86_64", win310)
    assert not deps.folder_matches("cp311-cp311-windows-x86_64", win310)
    assert not deps.folder_matches("cp310-cp310-linux-x86_64", win310)
    assert deps.folder_matches("cp312-abi3-macos-universal2", mac_arm)
    assert not deps.folder_matches("cp312-abi3-windows-x86_64", win310)  # abi3 needs >= 3.12
    assert not deps.folder_matches("common", win310)


def test_missing_pyzmq_message_names_python_platform_and_fix():
    linux = deps.zmq_missing_message(deps.Runtime(3, 11, "linux", "x86_64"), "No module named 'zmq'", [])
    assert "Python 3.11 on linux x86_64" in linux and "No module named 'zmq'" in linux
    assert "apt install python3-zmq" in linux and "cp311-cp311-linux-x86_64" in linux
    win = deps.zmq_missing_message(deps.Runtime(3, 10, "windows", "x86_64"), "DLL load failed",
                                   ["cp311-cp311-windows-x86_64"])
    assert "cp310 on windows x86_64" in win and "only for: cp311-cp311-windows-x86_64" in win and "apt" not in win
