"""Driver that tests/test_gimp_e2e.py runs INSIDE GIMP (python-fu-eval batch), never imported by pytest.

The test prepends CONFIG_PATH = "..." (a JSON file in the sandbox) to this code. The
driver builds an image the way a painter would (photo, label layers inside a group,
one of them larger than the canvas so it has negative offsets), calls the real
procedure through the PDB non-interactively several times (first with pyzmq hidden
from the plug-in when the test asks for it, once with method patch, last a long job whose
plug-in process the test kills mid-training; the local engine's procedure with
status and install), and writes what happened
(statuses, messages, layers, result pixels) to report.json for the test to check.
Errors are caught and reported: GIMP's batch exit code alone says too little.
"""

import hashlib
import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

FORMAT = "R'G'B'A u8"
PROC = "plug-in-semantic-analogy"
ENGINE_PROC = "plug-in-semantic-analogy-engine"
CFG = json.load(open(CONFIG_PATH))  # noqa: F821 (prepended by the test)
REPORT = {"runs": {}, "error": None}


def pixels(layer):
    w, h = layer.get_width(), layer.get_height()
    return bytes(layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, FORMAT, Gegl.AbyssPolicy.NONE))


def digest(layer):
    return hashlib.sha256(pixels(layer)).hexdigest()


def load_layer(image, path, name, parent=None, visible=True):
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path))
    layer.set_name(name)
    image.insert_layer(layer, parent, 0)
    layer.set_visible(visible)
    return layer


def all_layers(image):
    out = []

    def walk(layers, depth):
        for layer in layers:
            out.append({"name": layer.get_name(), "depth": depth, "id": layer.get_id(), "visible": layer.get_visible()})
            if layer.is_group():
                walk(layer.get_children(), depth + 1)

    walk(image.get_layers(), 0)
    return out


def call(name, image, drawables, **args):
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    if drawables:  # an empty array is refused by the property; leaving it unset means none
        config.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        config.set_property(key.replace("_", "-"), value)
    result = proc.run(config)
    status = result.index(0)
    run = {"status": status.value_nick if hasattr(status, "value_nick") else str(status)}
    if status == Gimp.PDBStatusType.SUCCESS:
        layer = result.index(1)
        _, ox, oy = layer.get_offsets()
        run.update(layer={"name": layer.get_name(), "width": layer.get_width(), "height": layer.get_height(),
                          "offsets": [ox, oy], "id": layer.get_id()})
        with open(CFG["out_dir"] + f"/{name}.rgba", "wb") as f:
            f.write(pixels(layer))
    else:
        message = result.index(1)
        run["message"] = message if isinstance(message, str) else str(message)
    REPORT["runs"][name] = run
    return run, (result.index(1) if status == Gimp.PDBStatusType.SUCCESS else None)


def call_engine(name, image, action):
    """The local engine's procedure ("Semantic Analogy Engine..."), through the PDB."""
    proc = Gimp.get_pdb().lookup_procedure(ENGINE_PROC)
    config = proc.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_property("action", action)
    result = proc.run(config)
    status = result.index(0)
    message = result.index(1)
    REPORT["runs"][name] = {"status": status.value_nick if hasattr(status, "value_nick") else str(status),
                            "message": message if isinstance(message, str) else str(message)}


try:
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(CFG["photo"]))
    photo = image.get_layers()[0]
    photo.set_name("photo")
    if CFG.get("precision") == "float-linear":
        # 32-bit float linear light: the plug-in must still exchange sRGB 8-bit pixels.
        image.convert_precision(Gimp.Precision.FLOAT_LINEAR)
    REPORT["precision"] = image.get_precision().value_nick
    group = Gimp.GroupLayer.new(image, "painting")
    image.insert_layer(group, None, 0)
    labels = load_layer(image, CFG["labels"], "labels", group)
    # Larger than the canvas, content unchanged: offsets become negative.
    labels.resize(labels.get_width() + 20, labels.get_height() + 14, 10, 7)
    target = load_layer(image, CFG["target"], "target labels", group)
    bad = load_layer(image, CFG["bad_target"], "odd colours", None, visible=False)
    second = load_layer(image, CFG["second_target"], "moved", None, visible=False)
    _, lx, ly = labels.get_offsets()
    REPORT["labels_offsets"] = [lx, ly]
    REPORT["image_size"] = [image.get_width(), image.get_height()]
    watched = {"photo": photo, "labels": labels, "target labels": target, "odd colours": bad}
    before = {name: digest(layer) for name, layer in watched.items()}
    # The trained method, named: the dialog's default is patch, which trains nothing.
    common = {"preset": "tiny", "steps": CFG["steps"], "address": CFG["address"], "method": "gan+patch"}

    if CFG.get("hide_flag"):
        # GIMP started while pyzmq was hidden from the plug-in: it must still have
        # registered, and a run must say what is missing. Then pyzmq comes back.
        REPORT["blurb_without_deps"] = Gimp.get_pdb().lookup_procedure(PROC).get_blurb()
        call("missing_deps", image, [photo], **common)
        os.remove(CFG["hide_flag"])

    # Label layers left empty: chosen by name ("labels", "target labels" inside the group).
    run, result_layer = call("analogy", image, [photo], **common)
    call("bad_target", image, [photo], source_labels=labels, target_labels=bad, **common)
    call("no_daemon", image, [photo], **{**common, "address": CFG["dead_address"]})
    if CFG.get("engine"):
        # The local engine from a clean user data folder: nothing installed; Install needs a
        # Python with venv, which this GIMP's Debian lacks (no python3-venv): it must say so.
        call_engine("engine_status", image, "status")
        call_engine("engine_install", image, "install")
    # Method patch: no training, the photo's own patches follow the target labels.
    _, patch_layer = call("patch", image, [photo], method="patch", address=CFG["address"])
    # Again with another target and the visible image as source (the earlier results and the
    # label layer not used this time hidden, as a user would): the visible image is then the
    # photo, so the daemon reuses the model trained by the first run.
    for layer in (result_layer, patch_layer, target):
        if layer is not None:
            layer.set_visible(False)
    call("visible_second", image, [], source="visible-image", source_labels=labels,
         target_labels=second, **common)

    REPORT["unchanged"] = {name: digest(layer) == before[name] for name, layer in watched.items()}
    REPORT["layers"] = all_layers(image)

    if CFG.get("gap_target"):
        # A hand-painted target with an unpainted stroke: filled, with the engine's warning.
        gap = load_layer(image, CFG["gap_target"], "gap labels", None, visible=False)
        call("gap", image, [photo], method="patch", source_labels=labels, target_labels=gap,
             address=CFG["address"])

    if CFG.get("abandon_steps"):
        # A long job whose plug-in the test kills, as GIMP does when the user cancels
        # the progress bar: the daemon must drop the job by itself.
        open(CFG["out_dir"] + "/abandon.started", "w").close()
        call("abandoned", image, [photo], **{**common, "steps": CFG["abandon_steps"]})
except Exception:
    REPORT["error"] = traceback.format_exc()
finally:
    with open(CFG["report"], "w") as f:
        json.dump(REPORT, f, indent=1)
