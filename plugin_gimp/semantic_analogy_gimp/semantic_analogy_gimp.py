#!/usr/bin/env python3
"""GIMP 3 plug-in "Filters > Semantic Analogy...": P -> P' :: I -> I'.

Reads the photo and two label layers, sends them to the Semantic Analogy engine
daemon over its ZeroMQ protocol, shows the training progress and inserts the
result as a new layer. The logic that needs no GIMP lives in sa_gimp_logic.py and
the shared plug-in core; plugin_gimp/install.py bundles the protocol and that core
beside this file as sa_shared/, and pyzmq/msgpack come from GIMP's Python or from
the plug-in's vendor/ folder.
"""

import importlib.util
import os
import platform
import sys
import sysconfig
import traceback
from types import SimpleNamespace

HERE = os.path.dirname(os.path.realpath(__file__))
# vendor/ holds wheels installed for GIMP's Python (install.py --vendor-deps).
for _path in (os.path.join(HERE, "vendor"), HERE):
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.insert(0, _path)

import sa_gimp_logic as logic  # noqa: E402

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GimpUi, GLib, GObject  # noqa: E402

# sRGB-encoded 8-bit RGBA whatever the image's precision ("RGBA u8" would be linear).
PIXEL_FORMAT = "R'G'B'A u8"
# The non-layer arguments, by the names parse_job_args reads (a test keeps both in step).
ARGUMENT_NAMES = ("source", "method", "preset", "size", "steps", "seed", "address")
BASE_TYPE_NAMES = {
    Gimp.ImageBaseType.RGB: "RGB",
    Gimp.ImageBaseType.GRAY: "grayscale",
    Gimp.ImageBaseType.INDEXED: "indexed",
}


# --------------------------------------------------------------------------- dependencies


def load_protocol():
    """(namespace of the protocol classes, None), or (None, message saying what is missing)."""
    missing = logic.missing_modules(importlib.util.find_spec)
    if missing:
        return None, logic.missing_dependencies_message(
            missing,
            platform.python_version(),
            sys.executable,
            sysconfig.get_platform(),
            flatpak=os.path.exists("/.flatpak-info"),
        )
    # The protocol beside the shared core: sa_shared/ as install.py bundles it, or the
    # installed semantic_analogy package in a developer's checkout.
    try:
        proto = logic.load_protocol_modules()
    except ModuleNotFoundError as exc:
        return None, (
            f"The plug-in's copy of the protocol package (sa_shared/protocol) is missing in {HERE} ({exc}). "
            "Reinstall the plug-in with: python plugin_gimp/install.py, then restart GIMP."
        )
    return (
        SimpleNamespace(
            Client=proto.client.Client,
            RGBAImage=proto.images.RGBAImage,
            ProtocolError=proto.errors.ProtocolError,
            DaemonUnavailable=proto.errors.DaemonUnavailable,
            VersionMismatch=proto.errors.VersionMismatch,
            JobFailed=proto.errors.JobFailed,
        ),
        None,
    )


# --------------------------------------------------------------------------- layers and pixels


def list_layers(image):
    """[(LayerInfo, Gimp.Layer)] for the whole stack, top first, group children after their group."""
    entries, layers = [], []

    def walk(children, groups):
        for layer in children:
            is_group = layer.is_group()
            entries.append((layer.get_id(), layer.get_name(), is_group, groups))
            layers.append(layer)
            if is_group:
                walk(layer.get_children(), groups + (layer.get_name(),))

    walk(image.get_layers(), ())
    return list(zip(logic.layer_stack(entries), layers))


def layer_rect(layer):
    _, ox, oy = layer.get_offsets()  # image coordinates, also for layers inside groups
    return logic.Rect(ox, oy, layer.get_width(), layer.get_height())


def read_layer(layer):
    """(Rect in image coordinates, RGBA bytes) of a layer's own pixels."""
    rect = layer_rect(layer)
    buffer = layer.get_buffer()  # local coordinates: (0, 0) is the layer's top-left corner
    data = buffer.get(Gegl.Rectangle.new(0, 0, rect.width, rect.height), 1.0, PIXEL_FORMAT, Gegl.AbyssPolicy.NONE)
    return rect, bytes(data)


def read_visible(image, hidden_layers):
    """RGBA bytes of the visible image with `hidden_layers` hidden, without touching the image."""
    copy = image.duplicate()
    try:
        copy.undo_disable()
        # Find each layer's twin by its place in the stack: GIMP 3.0's duplicate gives the
        # copy's layers new tattoos, so a tattoo can name another layer there (seen in the
        # end-to-end test: the labels stayed visible and the photo came out wrong).
        originals = [layer for _, layer in list_layers(image)]
        twins = [layer for _, layer in list_layers(copy)]
        if len(twins) != len(originals):
            raise RuntimeError(f"the image's copy has {len(twins)} layers, the image {len(originals)}")
        place = {layer.get_id(): index for index, layer in enumerate(originals)}
        for layer in hidden_layers:
            twins[place[layer.get_id()]].set_visible(False)
        try:
            merged = copy.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        except GLib.Error:
            merged = None
        if merged is None:
            raise logic.PluginError(
                "Nothing is visible apart from the label layers. Show the photo layer, "
                "or choose Source: Selected layer, then run the filter again."
            )
        rect, data = read_layer(merged)
        return logic.crop_rgba(data, rect, logic.Rect(0, 0, image.get_width(), image.get_height()))
    finally:
        copy.delete()


def resolve_label_layer(config, name, image, by_key, default_key):
    """The layer chosen for argument `name`, else the default by name; it must belong to `image`."""
    layer = config.get_property(name)
    if layer is None or not layer.is_valid():
        return by_key[default_key][1] if default_key is not None else None
    if layer.get_image().get_id() != image.get_id():
        raise logic.PluginError(
            f"The layer \"{layer.get_name()}\" chosen as {name.replace('-', ' ')} belongs to another image. "
            "Choose a layer of this image."
        )
    return layer


def set_default_label_layers(image, config):
    """Pre-select the label layers by name in the dialog (last run's choice if it is of this image)."""
    stack = list_layers(image)
    by_key = {info.key: layer for info, layer in stack}
    defaults = logic.default_label_layers([info for info, _ in stack])
    for name, key in zip(("source-labels", "target-labels"), defaults):
        current = config.get_property(name)
        if current is not None and current.is_valid() and current.get_image().get_id() == image.get_id():
            continue
        config.set_property(name, by_key[key] if key is not None else None)


# --------------------------------------------------------------------------- talking to the daemon


def show_progress(job_progress, kind, data):
    update = job_progress.update(kind, data)
    if update.text:
        Gimp.progress_set_text(logic.PROGRESS_PREFIX + update.text)
    if update.fraction is not None:
        Gimp.progress_update(update.fraction)
    if update.notice:  # a daemon warning: on the console now, in a message at the end
        sys.stderr.write(f"{logic.PROC_NAME}: {update.notice}\n")


def run_job(proto, args, image_px, labels_px, target_px, target_name, region):
    """Send one job and return the result's RGBA bytes (region-sized)."""
    settings = logic.build_settings(args)
    client = proto.Client(address=args.address, timeout=logic.CONNECT_TIMEOUT_S)
    try:
        Gimp.progress_set_text(f"Semantic Analogy: connecting to {args.address}")
        try:
            client.connect()
        except proto.VersionMismatch as exc:
            raise logic.PluginError(logic.version_mismatch_message(str(exc)))
        except proto.DaemonUnavailable:
            # Nothing answers: start the installed local engine (it stops when GIMP quits).
            started = logic.start_local_engine(args.address, show_step, parent_pid=os.getppid())
            if started is None:
                raise logic.PluginError(logic.daemon_unavailable_message(args.address))
            client.close()
            client = proto.Client(address=started, timeout=logic.CONNECT_TIMEOUT_S)
            try:
                client.connect()
            except proto.DaemonUnavailable:
                raise logic.PluginError(logic.daemon_unavailable_message(started))
        make = lambda data: proto.RGBAImage(width=region.width, height=region.height, data=data)  # noqa: E731
        try:
            job_id = client.submit(
                make(image_px),
                make(labels_px),
                [make(target_px)],
                settings,
                target_names=[target_name],
                cancel_if_silent=logic.cancel_if_silent(os.environ),
                method=args.method,
            )
            # wait() polls, which keeps the job's heartbeat going. If the user cancels GIMP's
            # progress, GIMP kills this process; the heartbeats stop and the daemon cancels
            # the job by itself (cancel_if_silent), without anyone telling it.
            job_progress = logic.progress.JobProgress(args.method)
            images = client.wait(job_id, on_event=lambda event: show_progress(job_progress, event.kind, event.data))
        except proto.JobFailed as exc:
            raise logic.PluginError(logic.job_failed_message(exc.code, exc.message))
        except proto.DaemonUnavailable:
            raise logic.PluginError(logic.daemon_lost_message(args.address))
        except proto.ProtocolError as exc:  # refused at submit: too large, queue full, ...
            raise logic.PluginError(logic.job_refused_message(exc.code, exc.message))
    finally:
        client.close()
    if not images:
        raise logic.PluginError(logic.job_failed_message("", "the engine sent no result image"))
    result = images[0]
    if (result.width, result.height) != (region.width, region.height):
        raise logic.PluginError(
            logic.result_size_message((result.width, result.height), (region.width, region.height)))
    return result.data, job_progress.warnings


def show_step(fraction, text):
    """A step of the local engine's install or start on GIMP's progress bar."""
    Gimp.progress_set_text(logic.PROGRESS_PREFIX + text)
    Gimp.progress_update(max(0.0, min(1.0, fraction)))


# --------------------------------------------------------------------------- the procedure


def make_analogy(image, drawables, config):
    """Everything after the dialog; returns the new layer or raises PluginError."""
    proto, problem = load_protocol()
    if problem:
        raise logic.PluginError(problem)
    args = logic.parse_job_args({name: config.get_property(name) for name in ARGUMENT_NAMES})
    logic.check_base_type(BASE_TYPE_NAMES.get(image.get_base_type(), str(image.get_base_type())))

    stack = list_layers(image)
    infos = [info for info, _ in stack]
    by_key = {info.key: (info, layer) for info, layer in stack}
    default_source, default_target = logic.default_label_layers(infos)
    source_labels = resolve_label_layer(config, "source-labels", image, by_key, default_source)
    target_labels = resolve_label_layer(config, "target-labels", image, by_key, default_target)
    info_of = lambda layer: by_key[layer.get_id()][0] if layer is not None else None  # noqa: E731
    logic.check_label_layers(info_of(source_labels), info_of(target_labels))
    label_keys = (source_labels.get_id(), target_labels.get_id())

    Gimp.progress_init("Semantic Analogy: reading the layers")
    if args.source == logic.SOURCE_VISIBLE:
        region = logic.Rect(0, 0, image.get_width(), image.get_height())
        source_name = "the visible image"
        image_px = read_visible(image, (source_labels, target_labels))
    else:
        selected = [d.get_id() for d in drawables if isinstance(d, Gimp.Layer)]
        source_info, source_layer = by_key[logic.choose_source_layer(selected, label_keys, infos)]
        source_name = source_info.display_name
        region, image_px = read_layer(source_layer)

    label_px = []
    for layer in (source_labels, target_labels):
        rect, data = read_layer(layer)
        name = info_of(layer).display_name
        logic.check_covers(name, rect, source_name, region)
        data = logic.crop_rgba(data, rect, region)
        logic.check_labels_painted(name, data)
        label_px.append(data)
    target_name = target_labels.get_name()

    result_px, warnings = run_job(proto, args, image_px, label_px[0], label_px[1], target_name, region)

    # Minutes may have passed: the user may have closed or changed the image.
    if not image.is_valid():
        raise logic.PluginError(logic.image_closed_message())
    logic.check_base_type(BASE_TYPE_NAMES.get(image.get_base_type(), str(image.get_base_type())))
    width, height = image.get_width(), image.get_height()
    canvas = logic.place_on_canvas(result_px, region, width, height)
    image.undo_group_start()
    try:
        existing = [info.name for info, _ in list_layers(image)]
        layer = Gimp.Layer.new(
            image, logic.result_layer_name(target_name, existing), width, height,
            Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL,
        )
        image.insert_layer(layer, None, 0)
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, width, height), PIXEL_FORMAT, canvas)
        buffer.flush()
        layer.update(0, 0, width, height)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    if warnings:  # once per job; GIMP shows it in its message box or error console
        Gimp.message(logic.warnings_message(warnings))
    return layer


def show_dialog(procedure, image, config):
    GimpUi.init(logic.PROC_NAME)
    set_default_label_layers(image, config)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Semantic Analogy")
    dialog.get_label("layers-title", "Layers", False, False)
    dialog.fill_box("layers-box", ["source-labels", "target-labels", "source"])
    dialog.fill_frame("layers-frame", "layers-title", False, "layers-box")
    dialog.get_label("engine-title", "Engine", False, False)
    dialog.fill_box("engine-box", ["method", "preset", "size", "steps", "seed", "address"])
    dialog.fill_frame("engine-frame", "engine-title", False, "engine-box")
    dialog.fill(["layers-frame", "engine-frame"])
    # Method patch trains nothing, so the training settings do not apply to it: grey them
    # out rather than let the user wonder what they change (the seed still does).
    patch_only = Gimp.ValueArray.new(1)
    patch_only.append(GObject.Value(GObject.TYPE_STRING, logic.METHOD_PATCH))  # needs_training() is False
    for name in ("preset", "size", "steps"):
        dialog.set_sensitive_if_in(name, None, "method", patch_only, False)

    # GIMP 3.0's layer chooser draws its thumbnail only when its layer is set, at
    # the size the widget has then (none before it is shown): set the layers again
    # once the dialog is on screen so the user sees which layers were pre-selected.
    def refresh_choosers():
        for name in ("source-labels", "target-labels"):
            layer = config.get_property(name)
            if layer is not None:
                config.set_property(name, layer)
        return False

    dialog.connect("map", lambda *_: GLib.timeout_add(150, refresh_choosers))
    try:
        return dialog.run()
    finally:
        dialog.destroy()


def error_values(procedure, message):
    sys.stderr.write(f"{logic.PROC_NAME}: {message}\n")
    error = GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0)
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, error)


def run(procedure, run_mode, image, drawables, config, data):
    Gegl.init(None)
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE:
            _, problem = load_protocol()  # say what is missing before the user fills the dialog
            if problem:
                return error_values(procedure, problem)
            if not show_dialog(procedure, image, config):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        layer = make_analogy(image, drawables, config)
    except logic.PluginError as exc:
        return error_values(procedure, str(exc))
    except Exception as exc:  # a bug: keep the traceback for the console, tell the user in GIMP
        traceback.print_exc()
        return error_values(procedure, logic.unexpected_error_message(exc))
    finally:
        Gimp.progress_end()
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    values.remove(1)
    values.insert(1, GObject.Value(Gimp.Layer, layer))
    return values


def run_engine(procedure, run_mode, image, drawables, config, data):
    """"Semantic Analogy Engine…": install, update, start, stop or remove the local engine."""
    try:
        if run_mode == Gimp.RunMode.INTERACTIVE:
            GimpUi.init(logic.ENGINE_PROC_NAME)
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Semantic Analogy Engine")
            dialog.fill(None)
            ok = dialog.run()
            dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        Gimp.progress_init("Semantic Analogy: local engine")
        # Imports pyzmq for the ping: say what is missing first.
        _, problem = load_protocol()
        if problem:
            return error_values(procedure, problem)
        keep = config.get_property("keep-running")
        message = logic.engine_action(config.get_property("action"), config.get_property("address"), show_step,
                                      parent_pid=None if keep else os.getppid())
    except logic.PluginError as exc:
        return error_values(procedure, str(exc))
    except Exception as exc:
        traceback.print_exc()
        return error_values(procedure, logic.unexpected_error_message(exc))
    finally:
        Gimp.progress_end()
    sys.stderr.write(f"{logic.ENGINE_PROC_NAME}: {message}\n")
    if run_mode == Gimp.RunMode.INTERACTIVE:
        Gimp.message(message)
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    values.remove(1)
    values.insert(1, GObject.Value(GObject.TYPE_STRING, message))
    return values


def _choice(entries):
    choice = Gimp.Choice.new()
    for index, entry in enumerate(entries):
        choice.add(entry.nick, index, entry.label, entry.help)
    return choice


class SemanticAnalogy(Gimp.PlugIn):
    def do_set_i18n(self, name):
        return False  # no translations yet; False also silences GIMP's locale warnings

    def do_query_procedures(self):
        return [logic.PROC_NAME, logic.ENGINE_PROC_NAME]

    def do_create_procedure(self, name):
        if name == logic.ENGINE_PROC_NAME:
            return self.create_engine_procedure(name)
        rw = GObject.ParamFlags.READWRITE
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE
            | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
        )
        blurb = "Re-arrange the photo to an edited label layout (P -> P' :: I -> I')"
        try:
            _, problem = load_protocol()
        except Exception as exc:  # a broken bundled copy must not hide the menu entry
            problem = logic.unexpected_error_message(exc)
        if problem:
            # Registration still succeeds so the menu entry exists and can say what is missing.
            sys.stderr.write(f"{logic.PROC_NAME}: {problem}\n")
            blurb += " [not ready: " + problem + "]"
        procedure.set_documentation(
            blurb,
            "Paint flat-colour labels over the photo on one layer (P), duplicate it and edit the copy (P'). "
            "The engine daemon (semantic-analogy serve) trains a conditional single-image GAN on the photo "
            "and its labels, and the result I' arrives as a new layer named after the target label layer. "
            "Running again with an edited target reuses the trained model. Method patch needs no training: "
            "the photo's own patches follow the target labels and the result comes in seconds. "
            "Non-interactive callers pass "
            "the same arguments; a label layer left empty is chosen by its name (\"labels\", \"target labels\").",
            name,
        )
        procedure.set_menu_label(logic.MENU_LABEL)
        procedure.set_attribution("Semantic Analogy authors", "MIT", "2025")
        procedure.add_menu_path(logic.MENU_PATH)

        procedure.add_layer_argument(
            "source-labels", "So_urce labels", "Label layer painted over the photo (P)", True, rw
        )
        procedure.add_layer_argument(
            "target-labels", "_Target labels", "Edited copy of the label layer (P')", True, rw
        )
        procedure.add_choice_argument(
            "source", "_Photo", "Where the photo comes from", _choice(logic.SOURCES), logic.SOURCE_SELECTED, rw
        )
        procedure.add_choice_argument(
            "method", "_Method", "How the result is made: patch (instant, no training; the default), "
            "gan+patch (trained, with the photo's detail) or gan (the trained network only)",
            _choice(logic.METHODS), logic.DEFAULT_METHOD, rw,
        )
        procedure.add_choice_argument(
            "preset", "_Quality", "Engine quality preset", _choice(logic.PRESETS), logic.DEFAULT_PRESET, rw
        )
        procedure.add_int_argument(
            "size", "Working si_ze", "Longest side in pixels the engine trains at (0: the preset's)",
            0, logic.MAX_SIZE, 0, rw,
        )
        procedure.add_int_argument(
            "steps", "Trai_ning steps", "Training iterations (0: the preset's)", 0, logic.MAX_STEPS, 0, rw
        )
        procedure.add_int_argument("seed", "S_eed", "Random seed of the training", 0, 2**31 - 1, 0, rw)
        procedure.add_string_argument(
            "address", "Engine _address", "ZeroMQ address of the engine daemon",
            logic.default_address(os.environ), rw
        )
        procedure.add_layer_return_value("result-layer", "Result layer", "The new layer with the result", True, rw)
        return procedure

    def create_engine_procedure(self, name):
        rw = GObject.ParamFlags.READWRITE
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_engine, None)
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
        procedure.set_documentation(
            "Install, start, stop or remove the Semantic Analogy engine on this computer",
            "Install makes a Python environment in the plug-in's user data folder, installs the engine the "
            "plug-in carries with its pinned dependencies (pip; a few GB for torch), checks it and starts it on "
            "loopback. An unfinished install is repaired by Install and deleted by Remove. Once installed, the "
            "Semantic Analogy filter starts the engine by itself when none answers; it stops when GIMP quits.",
            name,
        )
        procedure.set_menu_label(logic.ENGINE_MENU_LABEL)
        procedure.set_attribution("Semantic Analogy authors", "MIT", "2025")
        procedure.add_menu_path(logic.MENU_PATH)
        procedure.add_choice_argument(
            "action", "_Action", "What to do with the local engine", _choice(logic.ENGINE_ACTIONS),
            logic.ENGINE_STATUS, rw,
        )
        procedure.add_string_argument(
            "address", "Engine _address", "Where the local engine listens (this computer only)",
            logic.default_address(os.environ), rw
        )
        procedure.add_boolean_argument(
            "keep-running", "_Keep it running after GIMP quits", "An engine started now outlives GIMP", False, rw
        )
        procedure.add_string_return_value("message", "Message", "What was done", "", rw)
        return procedure


if __name__ == "__main__":
    Gimp.main(SemanticAnalogy.__gtype__, sys.argv)
