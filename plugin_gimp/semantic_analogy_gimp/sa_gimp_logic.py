"""Pure logic of the GIMP plug-in: no GIMP, no sockets.

It runs in GIMP's own Python (3.10+ on every platform GIMP 3 ships) and under
pytest, so everything here takes plain values (names, rectangles, bytes) and
returns plain values or raises PluginError with a message written for the user.
What the Krita plug-in does too (the choices and their words, the engine address,
progress and error texts, layer names, rectangles) is the shared core's
(plugin_core/, bundled by install.py as sa_shared/plugin_core): one behaviour in both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping, Optional, Sequence

try:
    from sa_shared.plugin_core import (
        UserError, address, bundle, choices, engine_install, engine_launch, errors, geometry, layers, naming,
        progress,
    )
except ModuleNotFoundError as _e:  # not installed by install.py: a checkout with the project installed
    if (_e.name or "").split(".")[0] != "sa_shared":
        raise
    from semantic_analogy.plugin_core import (  # type: ignore[no-redef]
        UserError, address, bundle, choices, engine_install, engine_launch, errors, geometry, layers, naming,
        progress,
    )

# The protocol's modules beside the core (client imports pyzmq and msgpack: check
# missing_modules first).
load_protocol_modules = bundle.protocol

PROC_NAME = "plug-in-semantic-analogy"
MENU_LABEL = "Semantic _Analogy..."
MENU_PATH = "<Image>/Filters/"
# The managed local engine (plugin_core/engine_install.py, engine_launch.py), in its own menu entry.
ENGINE_PROC_NAME = "plug-in-semantic-analogy-engine"
ENGINE_MENU_LABEL = "Semantic Analogy _Engine..."
DATA_DIR_ENV = "SEMANTIC_ANALOGY_GIMP_HOME"  # the plug-in's user data folder (tests set it)
WHEEL_DIR = Path(__file__).resolve().parent / "engine_wheel"  # install.py puts the engine wheel here
DEFAULT_ADDRESS = address.DEFAULT_ADDRESS
ADDRESS_ENV = address.ADDRESS_ENV
CONNECT_TIMEOUT_S = 5.0
PROGRESS_PREFIX = "Semantic Analogy: "  # GIMP's progress bar is shared with every plug-in

# The choices and their words are the shared core's; the method names are the protocol's.
PRESETS = choices.PRESETS
DEFAULT_PRESET = choices.DEFAULT_PRESET
METHODS = choices.METHODS
DEFAULT_METHOD = choices.DEFAULT_METHOD
METHOD_PATCH = "patch"  # the method that trains nothing (greys out the training settings)

SOURCE_SELECTED = "selected-layer"
SOURCE_VISIBLE = "visible-image"
SOURCES: tuple[choices.Choice, ...] = (
    choices.Choice(
        SOURCE_SELECTED,
        "Selected layer",
        "The selected layer (when a label layer is selected: the lowest other layer, usually the photo)",
    ),
    choices.Choice(SOURCE_VISIBLE, "Visible image", "What you see, without the two label layers"),
)

MAX_SIZE = choices.MAX_SIZE  # working size limit offered in the dialog (0 = the preset's)
MAX_STEPS = choices.MAX_STEPS

# How the shared error texts (plugin_core/errors.py) tell a GIMP user to go on.
GIMP_WORDS = errors.EditorWords(
    retry="run the filter again",
    connect="run the filter again",
    address_field="the engine address in the filter's dialog",
    reinstall="python plugin_gimp/install.py, then restart GIMP",
    install_local=f"run Filters › {ENGINE_MENU_LABEL.replace('_', '')} with Install: it installs and runs one on "
                  "this computer",
    log_hint="The details are on GIMP's error console (Windows > Dockable Dialogs > Error Console) or its terminal.",
)


class PluginError(UserError):
    """A problem the user can fix; str(error) is the whole message shown by GIMP."""


# --------------------------------------------------------------------------- layers


LayerInfo = layers.LayerInfo  # the shared type (plugin_core/layers.py); key = the GIMP layer id


def layer_stack(entries: Sequence[tuple]) -> list[LayerInfo]:
    """The image's layers as LayerInfo, from (id, name, is_group, groups) top first, group
    children after their group (groups: the enclosing groups' names, outermost first)."""
    out = []
    for position, (key, name, is_group, groups) in enumerate(entries):
        out.append(LayerInfo(key, name, "group" if is_group else "layer",
                             " / ".join(tuple(groups) + (name,)) if groups else "",
                             index=len(entries) - 1 - position, depth=len(groups)))
    return out


normalize_name = naming.normalize_name


def default_label_layers(stack: Sequence[LayerInfo]) -> tuple[Optional[Hashable], Optional[Hashable]]:
    """Keys of the source and target label layers chosen by name (None when none fits):
    the shared rule (plugin_core/layers.py); a group is never a label layer here."""
    return layers.choose_label_layers([layer for layer in stack if not layer.is_group])


def choose_source_layer(
    selected: Sequence[Hashable], label_keys: Iterable[Hashable], layers: Sequence[LayerInfo]
) -> Hashable:
    """The key of the photo layer for Source = selected layer.

    Painters usually have a label layer selected when they open the filter; then
    the photo is taken to be the lowest layer that is neither a label layer nor a group.
    """
    labels = set(label_keys)
    if len(selected) > 1:
        raise PluginError(
            f"{len(selected)} layers are selected. Select only the photo layer in the Layers dock, "
            "or choose Source: Visible image."
        )
    if selected and selected[0] not in labels:
        return selected[0]
    for layer in sorted(layers, key=lambda l: l.index):  # bottom first
        if not layer.is_group and layer.key not in labels:
            return layer.key
    raise PluginError(
        "There is no photo layer: the image has only the label layers. Add the photo as a layer "
        "(File > Open as Layers...) below the labels, then run the filter again."
    )


def check_label_layers(source_labels: Optional[LayerInfo], target_labels: Optional[LayerInfo]) -> None:
    """Both label layers chosen and distinct."""
    if source_labels is None:
        raise PluginError(
            "Choose the source label layer (the labels painted over the photo) in the dialog, "
            "or name that layer \"labels\"."
        )
    if target_labels is None:
        raise PluginError(
            "Choose the target label layer (the edited copy of the labels) in the dialog, "
            "or name that layer \"target labels\"."
        )
    if source_labels.key == target_labels.key:
        raise PluginError(
            f"The source and target label layers are the same layer (\"{source_labels.display_name}\"). "
            "Duplicate the label layer, edit the copy, and choose the copy as the target."
        )


BASE_TYPES_OK = ("RGB",)


def check_base_type(base_type: str) -> None:
    """Label colours need an RGB image; grayscale and indexed images are refused."""
    if base_type.upper() not in BASE_TYPES_OK:
        raise PluginError(
            f"Semantic Analogy works on RGB images and this image is {base_type.lower()}. "
            "Convert it with Image > Mode > RGB, then run the filter again."
        )


# --------------------------------------------------------------------------- pixels


Rect = geometry.Rect  # x, y, width, height in image coordinates (shared with the Krita plug-in)
crop_rgba = geometry.crop_rgba
place_on_canvas = geometry.place_on_canvas


def check_covers(label_name: str, label_rect: Rect, source_name: str, region: Rect) -> None:
    """A label layer must cover the whole source area: labels of another size are a mistake."""
    if not label_rect.contains(region):
        raise PluginError(
            f"The label layer \"{label_name}\" ({label_rect.describe()}) does not cover "
            f"the source \"{source_name}\" ({region.describe()}): the layers have different sizes or positions. "
            "Make them match (for example Layer > Layer to Image Size on each), then run the filter again."
        )


def opaque_fraction(data: bytes) -> float:
    """Share of pixels whose alpha is not 0 (alpha 0 marks 'unlabelled' for the engine)."""
    n = len(data) // 4
    if n == 0:
        return 0.0
    return sum(1 for a in data[3::4] if a) / n


def check_labels_painted(label_name: str, data: bytes) -> None:
    """A fully transparent label layer is a forgotten layer, not a layout."""
    if geometry.fully_transparent(data):  # bytes.count: no Python loop over a large layer
        raise PluginError(
            f"The label layer \"{label_name}\" is empty (fully transparent) over the source. "
            "Paint the labels on it with flat colours, or choose another layer."
        )


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class JobArgs:
    """The procedure's non-layer arguments, validated."""

    source: str
    method: str  # one of METHODS' nicks
    preset: str
    size: int  # 0: the preset's working size
    steps: int  # 0: the preset's number of steps
    seed: int
    address: str


def normalize_address(text: str) -> str:
    """A ZeroMQ endpoint from what a user types: '5555', 'host:5555' or a full 'tcp://host:port'."""
    try:
        return address.normalize_address(text)
    except address.AddressError as e:
        raise PluginError(str(e)) from None


default_address = address.default_address
cancel_if_silent = address.cancel_if_silent


def parse_job_args(values: Mapping[str, object]) -> JobArgs:
    """Validate the procedure's arguments (as read from its config) for a job.

    GIMP enforces the ranges it knows in the dialog; PDB callers can still pass
    anything, so every value is checked again here (by the shared rules).
    """
    source = str(values.get("source") or SOURCE_SELECTED)
    if source not in {s.nick for s in SOURCES}:
        raise PluginError(f"Unknown source \"{source}\"; use one of: {', '.join(s.nick for s in SOURCES)}.")
    try:
        method = choices.check_method(str(values.get("method") or DEFAULT_METHOD))
        preset = choices.check_preset(str(values.get("preset") or DEFAULT_PRESET))
        size = choices.check_size(values.get("size", 0))
        steps = choices.check_steps(values.get("steps", 0))
        seed = choices.check_seed(values.get("seed", 0))
    except choices.ChoiceError as e:
        raise PluginError(str(e)) from None
    return JobArgs(source=source, method=method, preset=preset, size=size, steps=steps, seed=seed,
                   address=normalize_address(str(values.get("address") or "")))


def build_settings(args: JobArgs) -> dict:
    """Engine TrainSettings fields for the job (the shared rule: 0 is left to the preset,
    so that the same choices give the same model key and a second run reuses the model)."""
    return choices.train_settings(args.preset, args.size, args.steps, args.seed)


def result_layer_name(target_name: str, existing: Iterable[str] = ()) -> str:
    """The new layer is named after the target label layer it realises, unique in the image."""
    return naming.result_name(target_name, existing)


# --------------------------------------------------------------------------- progress


def progress_update(
    kind: str, data: Mapping[str, object], method: Optional[str] = None
) -> tuple[Optional[float], Optional[str]]:
    """(fraction for the progress bar or None, text or None) for one daemon event.

    GIMP's progress bar has no room for a picture, so an instant preview is only
    announced in words (the shared texts, prefixed: the bar is shared with other plug-ins).
    """
    up = progress.event_update(kind, data, method)
    return up.fraction, (PROGRESS_PREFIX + up.text) if up.text else None


# --------------------------------------------------------------------------- messages for errors


def daemon_unavailable_message(addr: str) -> str:
    return errors.daemon_unavailable(addr, GIMP_WORDS)


def daemon_lost_message(addr: str) -> str:
    return errors.daemon_lost(addr, GIMP_WORDS)


def version_mismatch_message(detail: str) -> str:
    return errors.version_mismatch(detail, GIMP_WORDS)


def job_failed_message(code: str, message: str) -> str:
    """A job that ended with an error or a cancel on the daemon (codes from protocol/errors.py)."""
    return errors.job_failed(code, message, GIMP_WORDS)


job_refused_message = errors.job_refused


def image_closed_message() -> str:
    return errors.image_closed(GIMP_WORDS)


result_size_message = errors.result_size


def unexpected_error_message(error: BaseException) -> str:
    return errors.unexpected(error, GIMP_WORDS)


def warnings_message(warnings: Sequence[str]) -> str:
    """The daemon's warnings of one job, said once at its end (GIMP's message box/console)."""
    return "Semantic Analogy: the engine warned:\n" + "\n".join(f"- {w}" for w in warnings)


# --------------------------------------------------------------------------- dependencies

REQUIRED_MODULES: tuple[tuple[str, str], ...] = (("zmq", "pyzmq"), ("msgpack", "msgpack"))


def missing_modules(find_spec: Callable[[str], object]) -> list[str]:
    """Distribution names (pyzmq, msgpack) whose module GIMP's Python cannot find."""
    missing = []
    for module, dist in REQUIRED_MODULES:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing


def wheel_platform_tag(sysconfig_platform: str) -> str:
    """pip's --platform tag for a sysconfig.get_platform() string ('win-amd64' -> 'win_amd64')."""
    p = sysconfig_platform.strip().lower()
    if p.startswith("linux-"):
        return "manylinux2014_" + p[len("linux-") :].replace("-", "_")
    return re.sub(r"[-.]", "_", p)


def missing_dependencies_message(
    missing: Sequence[str], python_version: str, executable: str, sysconfig_platform: str, flatpak: bool = False
) -> str:
    """What is missing in GIMP's Python and the exact command that fixes it on this platform."""
    what = " and ".join(missing)
    mm = ".".join(python_version.split(".")[:2])
    vendor = (
        f"python plugin_gimp/install.py --vendor-deps --python-version {mm} "
        f"--platform {wheel_platform_tag(sysconfig_platform)}"
    )
    head = (
        f"The Semantic Analogy plug-in needs {what} in GIMP's Python ({python_version}, {executable}), "
        "and it is missing there. "
    )
    if sysconfig_platform.startswith("linux") and not flatpak:
        fix = (
            "GIMP uses the system Python: install them with \"sudo apt install python3-zmq python3-msgpack\" "
            "(Debian, Ubuntu) or \"sudo dnf install python3-zmq python3-msgpack\" (Fedora), "
            f"or put them in the plug-in's vendor folder with: {vendor}"
        )
    else:
        fix = f"Put them in the plug-in's vendor folder from the Semantic Analogy checkout with: {vendor}"
    return head + fix + " Then restart GIMP."


# --------------------------------------------------------------------------- the local engine

ENGINE_STATUS, ENGINE_INSTALL, ENGINE_UPDATE, ENGINE_START, ENGINE_STOP, ENGINE_REMOVE = (
    "status", "install", "update", "start", "stop", "remove")
ENGINE_ACTIONS: tuple[choices.Choice, ...] = (
    choices.Choice(ENGINE_STATUS, "Status", "Say whether the local engine is installed and running"),
    choices.Choice(ENGINE_INSTALL, "Install (or repair)", "Install the engine on this computer in its own Python "
                   "environment in the plug-in's user data folder (a few GB: torch), then start it; repairs an "
                   "unfinished install; only checks a complete one"),
    choices.Choice(ENGINE_UPDATE, "Update", "Install the engine this plug-in carries over an older one"),
    choices.Choice(ENGINE_START, "Start", "Start the installed engine (the filter also does this by itself)"),
    choices.Choice(ENGINE_STOP, "Stop", "Stop the local engine"),
    choices.Choice(ENGINE_REMOVE, "Remove", "Stop the engine and delete its environment (the logs stay)"),
)


def engine_home(env: Mapping[str, str] = os.environ) -> "engine_install.EngineHome":
    return engine_install.EngineHome(engine_install.user_data_dir("gimp", DATA_DIR_ENV, env=env) / "engine")


def _wheel(folder: Path = WHEEL_DIR) -> Optional["engine_install.EngineWheel"]:
    try:
        return engine_install.EngineWheel.find(folder)
    except engine_install.InstallError:
        return None


def engine_action(action: str, addr: str, on_step: Callable[[float, str], None],
                  env: Mapping[str, str] = os.environ, wheel_dir: Path = WHEEL_DIR,
                  parent_pid: Optional[int] = None) -> str:
    """Run one action of "Semantic Analogy Engine…"; returns what to tell the user.

    Raises PluginError with the reason (and the log's place) when it fails. `parent_pid`
    is GIMP's: an engine started here stops when GIMP quits.
    """
    home = engine_home(env)
    wheel = _wheel(wheel_dir)
    installer = engine_install.Installer(home, wheel, progress=lambda step: on_step(step.fraction, step.text))
    process = engine_launch.EngineProcess(home)
    try:
        if action == ENGINE_STATUS:
            running = process.running_address()
            state = installer.state().text
            return f"{state}; running at {running}" if running else f"{state}; not running"
        if action in (ENGINE_INSTALL, ENGINE_UPDATE):
            if action == ENGINE_UPDATE:
                process.stop()  # pip must not replace files under a running engine
            if wheel is None:
                raise PluginError(f"The plug-in carries no engine package in {wheel_dir}: reinstall it with "
                                  "python plugin_gimp/install.py.")
            installer.install(update=action == ENGINE_UPDATE)
            on_step(1.0, "Installed; starting the engine")
            started = process.start(addr, parent_pid=parent_pid)
            return f"{installer.state().text}. {started.text}."
        if action == ENGINE_START:
            return process.start(addr, parent_pid=parent_pid).text + "."
        if action == ENGINE_STOP:
            return "Stopped the local engine." if process.stop() else "The local engine was not running."
        if action == ENGINE_REMOVE:
            process.stop()
            installer.remove()
            return f"Removed the local engine's environment (its logs stay in {home.root})."
    except UserError as e:
        if isinstance(e, PluginError):
            raise
        raise PluginError(str(e)) from e
    raise PluginError(f"Unknown action {action!r}; choose one of: {', '.join(c.nick for c in ENGINE_ACTIONS)}.")


def start_local_engine(addr: str, on_step: Callable[[float, str], None], env: Mapping[str, str] = os.environ,
                       parent_pid: Optional[int] = None) -> Optional[str]:
    """When nothing answers at a loopback `addr` and a local engine is installed: start it (or
    find the one running) and return its address; None when there is none to start."""
    home = engine_home(env)
    state = engine_install.install_state(home, _wheel()).state
    if state not in (engine_install.READY, engine_install.OUTDATED):
        return None
    normalized = normalize_address(addr)
    if not normalized.startswith(("tcp://127.0.0.1:", "tcp://localhost:")):
        return None  # a remote engine was chosen: never start a local one instead
    on_step(0.0, "starting the local engine")
    try:
        return engine_launch.EngineProcess(home).start(normalized, parent_pid=parent_pid).address
    except UserError as e:
        raise PluginError(str(e)) from e
