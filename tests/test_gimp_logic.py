"""Pure logic of the GIMP plug-in (plugin_gimp/semantic_analogy_gimp/sa_gimp_logic.py): no GIMP needed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugin_gimp" / "semantic_analogy_gimp"


@pytest.fixture(scope="module")
def logic():
    spec = importlib.util.spec_from_file_location("sa_gimp_logic", PLUGIN_DIR / "sa_gimp_logic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sa_gimp_logic"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("sa_gimp_logic", None)


def rgba(w: int, h: int, fn) -> bytes:
    """RGBA bytes whose pixel (x, y) is fn(x, y)."""
    return b"".join(bytes(fn(x, y)) for y in range(h) for x in range(w))


def pixel(data: bytes, w: int, x: int, y: int) -> tuple:
    i = (y * w + x) * 4
    return tuple(data[i : i + 4])


# ----------------------------------------------------------------------------- layer choice


def S(key, name, is_group=False, groups=()):
    """One layer of a GIMP stack as the plug-in's list_layers reads it."""
    return (key, name, is_group, tuple(groups))


def test_label_layers_found_by_name_including_groups(logic):
    layers = [
        S(1, "Result (analogy)"),
        S(2, "painting", is_group=True),
        S(3, "Target Labels", groups=("painting",)),
        S(4, "labels", groups=("painting",)),
        S(5, "Background"),
    ]
    assert logic.default_label_layers(logic.layer_stack(layers)) == (4, 3)


def test_label_layer_names_from_files_and_duplicates(logic):
    # File > Open as Layers names a layer after its file; Duplicate Layer appends " copy".
    assert logic.default_label_layers(logic.layer_stack([S(1, "label.png #1"), S(2, "img.png")])) == (1, None)
    assert logic.default_label_layers(logic.layer_stack([S(1, "labels copy"), S(2, "labels"), S(3, "photo")])) == (2, 1)
    assert logic.default_label_layers(logic.layer_stack([S(1, "my_target-labels"), S(2, "label_map.png")])) == (2, 1)


def test_exact_names_beat_partial_names_and_groups_are_skipped(logic):
    layers = [
        S(1, "old labels sketch"),  # partial match, above the exact one
        S(2, "labels", is_group=True),  # a group is never a label layer
        S(3, "labels", groups=("labels",)),
        S(4, "target"),
    ]
    assert logic.default_label_layers(logic.layer_stack(layers)) == (3, 4)
    assert logic.default_label_layers(logic.layer_stack([S(1, "Background"), S(2, "sky")])) == (None, None)


def test_source_is_selected_layer_or_lowest_non_label_layer(logic):
    layers = logic.layer_stack(
        [S(1, "target labels"), S(2, "labels"), S(9, "grp", is_group=True), S(3, "photo"), S(4, "paper")])
    assert logic.choose_source_layer([3], [1, 2], layers) == 3
    # A label layer is selected (what painters usually have): take the lowest other layer.
    assert logic.choose_source_layer([1], [1, 2], layers) == 4
    assert logic.choose_source_layer([], [1, 2], layers) == 4
    with pytest.raises(logic.PluginError, match="Select only the photo layer"):
        logic.choose_source_layer([3, 4], [1, 2], layers)
    with pytest.raises(logic.PluginError, match="no photo layer"):
        logic.choose_source_layer([1], [1, 2], logic.layer_stack([S(1, "target labels"), S(2, "labels"),
                                                                  S(9, "grp", is_group=True)]))


def test_label_layers_must_be_chosen_and_distinct(logic):
    def one(*spec, **kw):
        return logic.layer_stack([S(*spec, **kw)])[0]

    with pytest.raises(logic.PluginError, match="source label layer"):
        logic.check_label_layers(None, one(1, "t"))
    with pytest.raises(logic.PluginError, match="target label layer"):
        logic.check_label_layers(one(1, "s"), None)
    with pytest.raises(logic.PluginError, match="same layer .*grp / labels"):
        logic.check_label_layers(one(1, "labels", groups=("grp",)), one(1, "labels", groups=("grp",)))
    logic.check_label_layers(one(1, "labels"), one(2, "target labels"))


def test_only_rgb_images(logic):
    logic.check_base_type("RGB")
    with pytest.raises(logic.PluginError, match=r"grayscale.*Image > Mode > RGB"):
        logic.check_base_type("grayscale")


# ----------------------------------------------------------------------------- pixels


def test_crop_respects_layer_offsets(logic):
    # A 4x3 layer at (2, 1) in image coordinates; the region is the 5x4 image corner.
    layer = logic.Rect(2, 1, 4, 3)
    data = rgba(4, 3, lambda x, y: (x, y, 7, 255))
    region = logic.Rect(0, 0, 5, 4)
    out = logic.crop_rgba(data, layer, region)
    assert len(out) == 5 * 4 * 4
    assert pixel(out, 5, 2, 1) == (0, 0, 7, 255)  # the layer's own (0, 0)
    assert pixel(out, 5, 4, 3) == (2, 2, 7, 255)
    assert pixel(out, 5, 1, 1) == (0, 0, 0, 0)  # left of the layer: transparent
    assert pixel(out, 5, 3, 0) == (0, 0, 0, 0)  # above it


def test_crop_from_larger_layer_and_negative_offsets(logic):
    layer = logic.Rect(-3, -2, 10, 8)
    data = rgba(10, 8, lambda x, y: (x, y, 0, 255))
    out = logic.crop_rgba(data, layer, logic.Rect(1, 1, 3, 2))
    assert [pixel(out, 3, x, y)[:2] for y in range(2) for x in range(3)] == [
        (4, 3), (5, 3), (6, 3), (4, 4), (5, 4), (6, 4)
    ]
    # Disjoint: all transparent, right size.
    assert logic.crop_rgba(data, layer, logic.Rect(50, 50, 2, 2)) == bytes(16)
    with pytest.raises(ValueError, match="expected 10x8x4"):
        logic.crop_rgba(data[:-4], layer, logic.Rect(0, 0, 1, 1))


def test_result_placed_on_image_sized_canvas(logic):
    result = rgba(2, 2, lambda x, y: (200, x, y, 255))
    canvas = logic.place_on_canvas(result, logic.Rect(3, 1, 2, 2), 6, 4)
    assert len(canvas) == 6 * 4 * 4
    assert pixel(canvas, 6, 3, 1) == (200, 0, 0, 255)
    assert pixel(canvas, 6, 4, 2) == (200, 1, 1, 255)
    assert pixel(canvas, 6, 0, 0) == (0, 0, 0, 0)
    # Image cropped meanwhile: the part outside is dropped, not an error.
    small = logic.place_on_canvas(result, logic.Rect(3, 1, 2, 2), 4, 2)
    assert pixel(small, 4, 3, 1) == (200, 0, 0, 255) and len(small) == 4 * 2 * 4


def test_label_layer_must_cover_source(logic):
    region = logic.Rect(0, 0, 100, 80)
    logic.check_covers("labels", logic.Rect(-5, 0, 120, 80), "photo", region)
    with pytest.raises(logic.PluginError, match=r'"labels" \(50×80 at \(0, 0\)\).*"photo" \(100×80 at \(0, 0\)\)'):
        logic.check_covers("labels", logic.Rect(0, 0, 50, 80), "photo", region)
    with pytest.raises(logic.PluginError, match="Layer to Image Size"):
        logic.check_covers("labels", logic.Rect(1, 0, 100, 80), "photo", region)


def test_empty_label_layer_is_refused(logic):
    logic.check_labels_painted("labels", bytes(15) + b"\x01")
    with pytest.raises(logic.PluginError, match="empty"):
        logic.check_labels_painted("labels", bytes(32))
    assert logic.opaque_fraction(bytes([0, 0, 0, 255, 0, 0, 0, 0])) == 0.5


# ----------------------------------------------------------------------------- arguments


def test_arguments_validated_and_turned_into_settings(logic):
    args = logic.parse_job_args(
        {"source": "visible-image", "preset": "tiny", "size": 0, "steps": 5, "seed": 3, "address": "localhost:6000"}
    )
    assert args.address == "tcp://localhost:6000"
    assert logic.build_settings(args) == {"preset": "tiny", "seed": 3, "steps": 5}
    args = logic.parse_job_args({"preset": "standard", "size": 384, "steps": 0, "seed": 0, "address": ""})
    assert args.source == "selected-layer" and args.address == logic.DEFAULT_ADDRESS
    assert logic.build_settings(args) == {"preset": "standard", "seed": 0, "size": 384}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"preset": "ultra"}, "Unknown quality preset “ultra”"),
        ({"source": "clipboard"}, "Unknown source"),
        ({"size": 16}, "32–4096 px, got 16"),
        ({"steps": -1}, "number of training steps"),
        ({"seed": -2}, "seed must be 0 or more"),
        ({"size": 2.5}, "whole number"),
        ({"address": "http://x:1"}, "not an address the engine listens on"),
        ({"address": "tcp://host:70000"}, "“70000” .* is not a port number"),
    ],
)
def test_bad_arguments_say_what_to_fix(logic, values, message):
    base = {"source": "selected-layer", "preset": "tiny", "size": 0, "steps": 0, "seed": 0, "address": ""}
    with pytest.raises(logic.PluginError, match=message):
        logic.parse_job_args({**base, **values})


def test_method_argument(logic):
    base = {"source": "selected-layer", "preset": "tiny", "size": 0, "steps": 0, "seed": 0, "address": ""}
    # Absent or empty (an older saved config): the protocol's default.
    assert logic.parse_job_args(base).method == "patch"
    assert logic.parse_job_args({**base, "method": ""}).method == "patch"
    for method in ("gan", "patch", "gan+patch"):
        args = logic.parse_job_args({**base, "method": method})
        assert args.method == method
        # The method is no training setting: the same model key serves every method.
        assert "method" not in logic.build_settings(args)
    with pytest.raises(logic.PluginError, match=r'Unknown method “GAN”; choose one of patch, gan\+patch, gan \(patch, the default: instant'):
        logic.parse_job_args({**base, "method": "GAN"})
    # Labels a painter understands: no nicks.
    labels = [m.label for m in logic.METHODS]
    assert all(label and label not in ("gan", "patch", "gan+patch") for label in labels) and len(set(labels)) == 3


def test_methods_and_arguments_match_the_protocol_and_the_plug_in(logic):
    import ast
    import dataclasses

    from semantic_analogy.protocol import schema

    assert {m.nick for m in logic.METHODS} == set(schema.METHODS)
    assert logic.DEFAULT_METHOD == schema.DEFAULT_METHOD
    # The plug-in reads its config by ARGUMENT_NAMES and hands them to parse_job_args: every
    # JobArgs field must be an argument (the plug-in itself needs GIMP, so read its source).
    tree = ast.parse((PLUGIN_DIR / "semantic_analogy_gimp.py").read_text())
    names = next(
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENT_NAMES"
    )
    assert set(names) == {f.name for f in dataclasses.fields(logic.JobArgs)}


def test_default_address_from_environment(logic):
    assert logic.default_address({}) == logic.DEFAULT_ADDRESS
    assert logic.default_address({"SEMANTIC_ANALOGY_ADDRESS": "gpu:6000"}) == "tcp://gpu:6000"
    assert logic.default_address({"SEMANTIC_ANALOGY_ADDRESS": "http://nope"}) == logic.DEFAULT_ADDRESS


def test_cancel_if_silent_from_environment(logic):
    assert logic.cancel_if_silent({}) == 30.0
    assert logic.cancel_if_silent({"SEMANTIC_ANALOGY_CANCEL_IF_SILENT": "4"}) == 4.0
    for bad in ("0.5", "soon", "1e9"):
        assert logic.cancel_if_silent({"SEMANTIC_ANALOGY_CANCEL_IF_SILENT": bad}) == 30.0


def test_result_layer_is_named_after_target(logic):
    # The shared naming (as in Krita), unique among the image's layers rather than GIMP's "#1".
    assert logic.result_layer_name("target labels") == "target labels → analogy"
    assert logic.result_layer_name("  ") == "target → analogy"
    assert logic.result_layer_name("t", ["t → analogy"]) == "t → analogy (2)"


# ----------------------------------------------------------------------------- progress and messages


def test_progress_text_is_prefixed_for_gimps_shared_bar(logic):
    # The words are the shared core's (tests/test_plugin_core.py); GIMP's bar names the plug-in.
    fraction, text = logic.progress_update(
        "progress", {"stage": "train", "step": 120, "total": 400, "eta_s": 65.0, "elapsed_s": 30.0, "losses": {}}
    )
    assert fraction == pytest.approx(0.3) and text == "Semantic Analogy: Training 120/400, ~1 min left"
    assert logic.progress_update("preview", {}) == (None, None)
    assert logic.progress_update("progress", {"stage": "train", "step": "x", "total": None}) == (
        None, "Semantic Analogy: Training…")


def test_warnings_are_said_once_at_the_end(logic):
    text = logic.warnings_message(["no VGG19 weights: using the weight-free descriptor"])
    assert text.startswith("Semantic Analogy: the engine warned:") and "weight-free" in text


def test_error_messages_say_what_to_do(logic):
    assert "“.venv/bin/semantic-analogy serve”" in logic.daemon_unavailable_message("tcp://127.0.0.1:5555")
    assert "tcp://127.0.0.1:5555" in logic.daemon_unavailable_message("tcp://127.0.0.1:5555")
    msg = logic.job_failed_message("BAD_LABELS", "target colour (1, 2, 3) matches no source class")
    assert msg.startswith("The engine could not make the analogy: target colour") and "[BAD_LABELS]" in msg
    assert logic.job_failed_message("CLIENT_SILENT", "client went silent.").startswith("The engine stopped the job")
    assert "[QUEUE_FULL]" in logic.job_refused_message("QUEUE_FULL", "the queue is full; try again later")
    assert "comes back in seconds" in logic.image_closed_message()
    assert "install.py" in logic.version_mismatch_message("plug-in 1, engine 2")
    assert "ValueError: boom" in logic.unexpected_error_message(ValueError("boom"))


# ----------------------------------------------------------------------------- dependencies


def test_missing_modules_are_named(logic):
    present = {"msgpack"}
    assert logic.missing_modules(lambda m: object() if m in present else None) == ["pyzmq"]

    def broken(module):
        raise ValueError("bad spec")

    assert logic.missing_modules(broken) == ["pyzmq", "msgpack"]
    assert logic.missing_modules(lambda m: object()) == []


def test_missing_dependencies_message_per_platform(logic):
    linux = logic.missing_dependencies_message(["pyzmq"], "3.13.5", "/usr/bin/python3", "linux-x86_64")
    assert "needs pyzmq" in linux and "3.13.5" in linux and "apt install python3-zmq python3-msgpack" in linux
    assert "--platform manylinux2014_x86_64" in linux
    win = logic.missing_dependencies_message(
        ["pyzmq", "msgpack"], "3.12.4", r"C:\Program Files\GIMP 3\bin\python.exe", "win-amd64"
    )
    assert "pyzmq and msgpack" in win and "apt" not in win
    assert "--vendor-deps --python-version 3.12 --platform win_amd64" in win
    mac = logic.missing_dependencies_message(["msgpack"], "3.11.9", "/Applications/GIMP.app/python3", "macosx-11.0-arm64")
    assert "--platform macosx_11_0_arm64" in mac
    flatpak = logic.missing_dependencies_message(["pyzmq"], "3.12.1", "/usr/bin/python3", "linux-x86_64", flatpak=True)
    assert "apt" not in flatpak and "--vendor-deps" in flatpak


# --------------------------------------------------------------------------- the local engine


def test_local_engine_actions_from_a_clean_data_folder(logic, tmp_path):
    env = {logic.DATA_DIR_ENV: str(tmp_path / "gimpdata")}
    steps = []
    on_step = lambda fraction, text: steps.append(text)  # noqa: E731
    assert logic.engine_action("status", "", on_step, env=env) == "No local engine installed; not running"
    assert logic.engine_action("stop", "", on_step, env=env) == "The local engine was not running."
    with pytest.raises(logic.PluginError) as e:
        logic.engine_action("install", "", on_step, env=env, wheel_dir=tmp_path / "none")
    assert "carries no engine package" in str(e.value) and "plugin_gimp/install.py" in str(e.value)
    with pytest.raises(logic.PluginError) as e:
        logic.engine_action("start", "", on_step, env=env)
    assert "not installed: press Install first" in str(e.value)
    with pytest.raises(logic.PluginError) as e:
        logic.engine_action("dance", "", on_step, env=env)
    assert "choose one of: status, install, update, start, stop, remove" in str(e.value)
    # Nothing installed: the filter has no engine to start, and says where to install one.
    assert logic.start_local_engine("", on_step, env=env) is None
    text = logic.daemon_unavailable_message("tcp://127.0.0.1:5555")
    assert "Run Filters › Semantic Analogy Engine... with Install" in text, text
    assert logic.engine_home(env).root == tmp_path / "gimpdata" / "engine"


def test_the_filter_never_starts_a_local_engine_for_a_remote_address(logic, tmp_path):
    env = {logic.DATA_DIR_ENV: str(tmp_path / "gimpdata")}
    home = logic.engine_home(env)
    home.python.parent.mkdir(parents=True)
    home.python.write_text("")
    home.write_state(status="complete", version="0.1.0")
    assert logic.start_local_engine("tcp://render-box:5555", lambda f, t: None, env=env) is None
