"""Pure logic of the GIMP plug-in: no GIMP, no sockets.

It runs in GIMP's own Python (3.10+ on every platform GIMP 3 ships) and under
pytest, so everything here takes plain values (names, rectangles, bytes) and
returns plain values or raises PluginError with a message written for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Mapping, Optional, Sequence

PROC_NAME = "plug-in-semantic-analogy"
MENU_LABEL = "Semantic _Analogy..."
MENU_PATH = "<Image>/Filters/"
# The daemon's default endpoint (protocol/SPEC.md); the dialog lets the user change it.
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_PORT = 5555
ADDRESS_ENV = "SEMANTIC_ANALOGY_ADDRESS"  # the same variable the command line reads
# GIMP kills a plug-in whose progress the user cancels, so the plug-in cannot
# send a cancel: the daemon drops the job once we have been silent this long.
CANCEL_IF_SILENT_S = 30.0
CANCEL_IF_SILENT_ENV = "SEMANTIC_ANALOGY_CANCEL_IF_SILENT"
CONNECT_TIMEOUT_S = 5.0

# (nick, label, help) of the engine presets, in dialog order; the engine owns
# their meaning (engine/presets.py) and the daemon validates the nick.
PRESETS: tuple[tuple[str, str, str], ...] = (
    ("preview", "Preview (128 px, minutes on a CPU)", "Quick look; the default without a GPU"),
    ("standard", "Standard (256 px, for a GPU)", "Minutes on a GPU"),
    ("best", "Best (512 px, long GPU training)", "Long training on a GPU"),
    ("tiny", "Tiny (64 px, seconds; for tests)", "Smoke tests; the result is not meant to look good"),
)
DEFAULT_PRESET = "preview"

# (nick, label, help) of the synthesis methods (protocol/SPEC.md, submit `method`), in
# dialog order. The nicks are the protocol's (protocol/schema.py METHODS; a test keeps
# them equal); this module must not import the protocol, so they are repeated here.
METHOD_GAN = "gan"
METHOD_PATCH = "patch"
METHOD_GAN_PATCH = "gan+patch"
METHODS: tuple[tuple[str, str, str], ...] = (
    (
        METHOD_PATCH,
        "Photo patches by the labels (instant, no training)",
        "The photo's own patches re-arranged by the labels: no training, full size in seconds; "
        "as good as the trained methods in our tests",
    ),
    (
        METHOD_GAN_PATCH,
        "Trained network, with the photo's own detail",
        "A network trained on the photo (minutes) lays the image out, then the photo's own patches give it detail",
    ),
    (METHOD_GAN, "Trained network only", "The trained network's output as it is (softer)"),
)
DEFAULT_METHOD = METHOD_PATCH

SOURCE_SELECTED = "selected-layer"
SOURCE_VISIBLE = "visible-image"
SOURCES: tuple[tuple[str, str, str], ...] = (
    (
        SOURCE_SELECTED,
        "Selected layer",
        "The selected layer (when a label layer is selected: the lowest other layer, usually the photo)",
    ),
    (SOURCE_VISIBLE, "Visible image", "What you see, without the two label layers"),
)

MAX_SIZE = 4096  # working size limit offered in the dialog (0 = the preset's)
MAX_STEPS = 1_000_000


class PluginError(Exception):
    """A problem the user can fix; str(error) is the whole message shown by GIMP."""


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerInfo:
    """What the logic needs to know about one layer of the image."""

    key: Hashable  # the GIMP layer id (any hashable in tests)
    name: str
    is_group: bool = False
    groups: tuple[str, ...] = ()  # names of the enclosing groups, outermost first

    @property
    def display_name(self) -> str:
        return " / ".join(self.groups + (self.name,))


_EXTENSIONS = re.compile(r"\.(png|jpe?g|webp|tiff?|xcf|bmp|gif|ora|psd|exr)$", re.IGNORECASE)
# GIMP names duplicates "labels #1", "labels copy #2": the counter is noise.
_COUNTER = re.compile(r"\s*#\d+$")

SOURCE_LABEL_NAMES = frozenset(
    {"labels", "label", "source labels", "source label", "labels source", "label map", "segmentation", "p"}
)
TARGET_LABEL_NAMES = frozenset(
    {
        "target labels",
        "target label",
        "labels target",
        "target",
        "edited labels",
        "new labels",
        "labels copy",
        "label copy",
        "p'",
    }
)


def normalize_name(name: str) -> str:
    """Lower-case words of a layer name without file extension or GIMP's '#n' counter."""
    n = _COUNTER.sub("", name.strip())
    n = _EXTENSIONS.sub("", n)
    n = re.sub(r"[\s_\-.]+", " ", n.lower())
    return n.strip()


def _label_role(name: str) -> tuple[Optional[str], bool]:
    """('source' | 'target' | None, exact) for a layer name."""
    n = normalize_name(name)
    if n in TARGET_LABEL_NAMES:
        return "target", True
    if n in SOURCE_LABEL_NAMES:
        return "source", True
    words = n.split()
    has_label = any(w.startswith("label") for w in words)
    if "target" in words or (has_label and "copy" in words):
        return "target", False
    if has_label:
        return "source", False
    return None, False


def default_label_layers(layers: Sequence[LayerInfo]) -> tuple[Optional[Hashable], Optional[Hashable]]:
    """Keys of the source and target label layers chosen by name (None when none fits).

    `layers` is the whole stack top first, group children included. Exact names
    ("labels", "target labels", "label.png", "labels copy"...) win over names that
    merely contain "label"/"target"; among equals the top-most layer wins.
    """
    best: dict[str, tuple[int, int, Hashable]] = {}
    for index, layer in enumerate(layers):
        if layer.is_group:
            continue
        role, exact = _label_role(layer.name)
        if role is None:
            continue
        rank = (0 if exact else 1, index)
        if role not in best or rank < best[role][:2]:
            best[role] = (*rank, layer.key)
    source = best["source"][2] if "source" in best else None
    target = best["target"][2] if "target" in best else None
    return source, target


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
    for layer in reversed(layers):
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


@dataclass(frozen=True)
class Rect:
    """A rectangle in image coordinates (x, y may be negative for layers off the canvas)."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def contains(self, other: "Rect") -> bool:
        return (
            self.x <= other.x and self.y <= other.y and other.right <= self.right and other.bottom <= self.bottom
        )

    def intersect(self, other: "Rect") -> Optional["Rect"]:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def describe(self) -> str:
        return f"{self.w}x{self.h} at ({self.x}, {self.y})"


def _check_len(data: bytes, w: int, h: int, what: str) -> None:
    if len(data) != w * h * 4:
        raise ValueError(f"{what}: expected {w}x{h}x4 = {w * h * 4} bytes of RGBA, got {len(data)}")


def crop_rgba(data: bytes, rect: Rect, region: Rect) -> bytes:
    """The pixels of `region` (image coordinates) from RGBA `data` that covers `rect`.

    A layer's buffer is local to the layer (its pixel (0, 0) is at the layer's
    offsets), so rect is (offset_x, offset_y, width, height). Pixels of region
    outside rect come out fully transparent.
    """
    _check_len(data, rect.w, rect.h, "layer pixels")
    out = bytearray(region.w * region.h * 4)
    common = rect.intersect(region)
    if common is None:
        return bytes(out)
    row = common.w * 4
    for y in range(common.y, common.bottom):
        src = ((y - rect.y) * rect.w + (common.x - rect.x)) * 4
        dst = ((y - region.y) * region.w + (common.x - region.x)) * 4
        out[dst : dst + row] = data[src : src + row]
    return bytes(out)


def check_covers(label_name: str, label_rect: Rect, source_name: str, region: Rect) -> None:
    """A label layer must cover the whole source area: labels of another size are a mistake."""
    if not label_rect.contains(region):
        raise PluginError(
            f"The label layer \"{label_name}\" ({label_rect.describe()}) does not cover "
            f"the source \"{source_name}\" ({region.describe()}): the layers have different sizes or positions. "
            "Make them match (for example Layer > Layer to Image Size on each), then run the filter again."
        )


def place_on_canvas(data: bytes, region: Rect, canvas_w: int, canvas_h: int) -> bytes:
    """A canvas_w x canvas_h RGBA buffer holding `data` (region-sized) at region; transparent elsewhere."""
    _check_len(data, region.w, region.h, "result pixels")
    return crop_rgba(data, region, Rect(0, 0, canvas_w, canvas_h))


def opaque_fraction(data: bytes) -> float:
    """Share of pixels whose alpha is not 0 (alpha 0 marks 'unlabelled' for the engine)."""
    n = len(data) // 4
    if n == 0:
        return 0.0
    return sum(1 for a in data[3::4] if a) / n


def check_labels_painted(label_name: str, data: bytes) -> None:
    """A fully transparent label layer is a forgotten layer, not a layout."""
    if opaque_fraction(data) == 0.0:
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
    t = (text or "").strip()
    if not t:
        return DEFAULT_ADDRESS
    if re.fullmatch(r"\d+", t):
        t = f"tcp://127.0.0.1:{t}"
    elif "://" not in t:
        t = f"tcp://{t}"
    m = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::(\d+))?", t)
    if t.startswith("tcp://"):
        if not m:
            raise PluginError(
                f"The engine address \"{text}\" is not valid. Use the form tcp://HOST:PORT, "
                f"for example {DEFAULT_ADDRESS}."
            )
        port = int(m.group(2) or DEFAULT_PORT)
        if not 0 < port < 65536:
            raise PluginError(f"The engine address \"{text}\" has port {port}; ports go from 1 to 65535.")
        return f"tcp://{m.group(1)}:{port}"
    if t.startswith("ipc://") and len(t) > len("ipc://"):
        return t
    raise PluginError(
        f"The engine address \"{text}\" is not valid. Use tcp://HOST:PORT (for example {DEFAULT_ADDRESS})."
    )


def default_address(env: Mapping[str, str]) -> str:
    """The dialog's default engine address: $SEMANTIC_ANALOGY_ADDRESS when set and valid."""
    try:
        return normalize_address(env.get(ADDRESS_ENV, ""))
    except PluginError:
        return DEFAULT_ADDRESS


def cancel_if_silent(env: Mapping[str, str]) -> float:
    """Seconds of silence after which the daemon drops our job: $SEMANTIC_ANALOGY_CANCEL_IF_SILENT or 30.

    The client heartbeats every second, so anything from 2 s up is safe; tests use a
    few seconds to see a killed plug-in's job stop without waiting half a minute.
    """
    try:
        value = float(env.get(CANCEL_IF_SILENT_ENV, ""))
    except ValueError:
        return CANCEL_IF_SILENT_S
    return value if 2.0 <= value <= 3600.0 else CANCEL_IF_SILENT_S


def parse_job_args(values: Mapping[str, object]) -> JobArgs:
    """Validate the procedure's arguments (as read from its config) for a job.

    GIMP enforces the ranges it knows in the dialog; PDB callers can still pass
    anything, so every value is checked again here.
    """
    source = str(values.get("source") or SOURCE_SELECTED)
    if source not in {s[0] for s in SOURCES}:
        raise PluginError(f"Unknown source \"{source}\"; use one of: {', '.join(s[0] for s in SOURCES)}.")
    method = str(values.get("method") or DEFAULT_METHOD)
    if method not in {m[0] for m in METHODS}:
        raise PluginError(
            f"Unknown method \"{method}\"; use one of: {', '.join(m[0] for m in METHODS)} "
            f"({DEFAULT_METHOD}, the default: instant, no training; {METHOD_GAN_PATCH}: trains a network first)."
        )
    preset = str(values.get("preset") or DEFAULT_PRESET)
    if preset not in {p[0] for p in PRESETS}:
        raise PluginError(f"Unknown quality preset \"{preset}\"; use one of: {', '.join(p[0] for p in PRESETS)}.")
    size = _int(values.get("size", 0), "size")
    if size != 0 and not 32 <= size <= MAX_SIZE:
        raise PluginError(
            f"The working size must be 0 (the preset's) or between 32 and {MAX_SIZE} pixels, got {size}."
        )
    steps = _int(values.get("steps", 0), "steps")
    if not 0 <= steps <= MAX_STEPS:
        raise PluginError(f"The number of steps must be 0 (the preset's) or up to {MAX_STEPS}, got {steps}.")
    seed = _int(values.get("seed", 0), "seed")
    if seed < 0:
        raise PluginError(f"The seed must be 0 or more, got {seed}.")
    address = normalize_address(str(values.get("address") or ""))
    return JobArgs(
        source=source, method=method, preset=preset, size=size, steps=steps, seed=seed, address=address
    )


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PluginError(f"The argument \"{name}\" must be a whole number, got {value!r}.")
    return value


def build_settings(args: JobArgs) -> dict:
    """Engine TrainSettings fields for the job; 0 means 'the preset decides' and is left out.

    Identical settings for the same pixels give the same model key on the daemon,
    which is what lets a second run with an edited target reuse the trained model.
    The method is not a setting (it is not part of the model key): one model serves all.
    """
    settings: dict = {"preset": args.preset, "seed": args.seed}
    if args.size:
        settings["size"] = args.size
    if args.steps:
        settings["steps"] = args.steps
    return settings


def result_layer_name(target_name: str) -> str:
    """The new layer is named after the target label layer it realises."""
    return f"{target_name.strip() or 'target'} (analogy)"


# --------------------------------------------------------------------------- progress


def format_eta(seconds: Optional[float]) -> str:
    """'~40 s left', '~3 min left', '~1 h 20 min left' (rounded like a person would)."""
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or unknown
        return "estimating time left"
    if seconds < 1:
        return "almost done"
    if seconds < 10:
        return f"~{int(round(seconds))} s left"
    if seconds < 57.5:  # nearest 5 s; from 57.5 s on it reads better as a minute
        return f"~{int(round(seconds / 5.0)) * 5} s left"
    minutes = max(1, int(round(seconds / 60.0)))
    if minutes < 60:
        return f"~{minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"~{hours} h {minutes} min left" if minutes else f"~{hours} h left"


def progress_update(
    kind: str, data: Mapping[str, object], method: Optional[str] = None
) -> tuple[Optional[float], Optional[str]]:
    """(fraction for the progress bar or None, text or None) for one daemon event.

    `method` is the job's method (None: the default). GIMP's progress bar has no room
    for a picture, so an instant preview is only announced in words.
    """
    method = method or DEFAULT_METHOD
    if kind == "queued":
        position = int(data.get("position", 0) or 0)  # type: ignore[arg-type]
        if position <= 0:
            if method == METHOD_PATCH:
                # Nothing else arrives until the result is made: say what takes the seconds.
                return 0.0, "Semantic Analogy: making the result from the photo's patches (no training)"
            return 0.0, "Semantic Analogy: starting"
        jobs = "job" if position == 1 else "jobs"
        return 0.0, f"Semantic Analogy: waiting, {position} {jobs} ahead on the engine"
    if kind == "progress":
        step = _num(data.get("step"))
        total = _num(data.get("total"))
        stage = str(data.get("stage") or "train")
        fraction = min(1.0, max(0.0, step / total)) if total and total > 0 and step is not None else None
        if stage == "train":
            if step is None or not total:
                return fraction, "Semantic Analogy: training"
            eta = format_eta(_num(data.get("eta_s")))
            return fraction, f"Semantic Analogy: training {int(step)}/{int(total)}, {eta}"
        if stage == "apply":
            return fraction, "Semantic Analogy: " + _apply_text(method, step, total)
        return fraction, f"Semantic Analogy: {stage}"
    if kind == "preview" and data.get("instant") is True:
        return _instant_preview_update(data)
    if kind == "result":
        return 1.0, "Semantic Analogy: inserting the result"
    return None, None  # training previews: a picture GIMP's progress bar cannot show


def _apply_text(method: str, step: Optional[float], total: Optional[float]) -> str:
    """What the 'apply' stage does for the method; 'i/n' once there is more than one target."""
    if method == METHOD_PATCH:
        text = "making the result from the photo's patches"
    elif method == METHOD_GAN_PATCH:
        text = "making the result (adding the photo's detail)"
    else:
        text = "making the result"
    if step is not None and total and total > 1:
        text += f", {int(step)}/{int(total)} done"
    return text


def _instant_preview_update(data: Mapping[str, object]) -> tuple[Optional[float], Optional[str]]:
    """The instant preview (SPEC.md, Instant result): the job goes on, and the text says to what."""
    stage = str(data.get("stage") or "")
    total = _num(data.get("total"))
    what = "GAN" if data.get("kind") == "gan" else "patch"
    if stage == "train":
        steps = f" 0/{int(total)}" if total and total > 0 else ""
        return 0.0, f"Semantic Analogy: instant {what} result ready; training{steps}\u2026"
    # From the model cache: the GAN's layout is ready, the patch pass makes the result.
    return None, f"Semantic Analogy: instant {what} result ready; adding the photo's detail\u2026"


def _num(value: object) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# --------------------------------------------------------------------------- messages for errors


def daemon_unavailable_message(address: str) -> str:
    return (
        f"Cannot reach the Semantic Analogy engine at {address}. Start it in a terminal with "
        "\"semantic-analogy serve\" (or check that it listens on this address), or correct "
        "the engine address in the filter's dialog, then run the filter again."
    )


def daemon_lost_message(address: str) -> str:
    return (
        f"The Semantic Analogy engine at {address} stopped answering while it worked on this image. "
        "Look at the terminal where \"semantic-analogy serve\" runs, restart it if needed, "
        "and run the filter again."
    )


def version_mismatch_message(detail: str) -> str:
    return (
        f"The plug-in and the engine do not speak the same protocol version ({detail}). "
        "Install the plug-in from the same Semantic Analogy version as the engine "
        "(python plugin_gimp/install.py), restart GIMP, and run the filter again."
    )


CANCEL_CODES = frozenset({"CANCELLED", "CLIENT_SILENT", "SHUTDOWN"})


def job_failed_message(code: str, message: str) -> str:
    """A job that ended with an error or a cancel on the daemon (codes from protocol/errors.py)."""
    text = (message or "").strip() or "no details were given"
    code = (code or "").upper()
    if code in CANCEL_CODES:
        return f"The engine stopped the job: {text} Run the filter again to start over."
    return f"The engine could not make the analogy: {text}" + (f" [{code}]" if code else "")


def job_refused_message(code: str, message: str) -> str:
    """A submit the daemon (or the client, checking its limits) refused before any work."""
    text = (message or "").strip() or "no details were given"
    return f"The engine refused the job: {text}" + (f" [{code.upper()}]" if code else "")


def image_closed_message() -> str:
    return (
        "The image was closed while the engine worked on it, so the result has nowhere to go. "
        "Open the image again and run the filter: the trained model is kept by the engine, "
        "so the result comes back in about a second."
    )


def result_size_message(got: tuple[int, int], expected: tuple[int, int]) -> str:
    return (
        f"The engine returned a {got[0]}x{got[1]} result for a {expected[0]}x{expected[1]} source. "
        "This is a bug in the engine; please report it with the image size."
    )


def unexpected_error_message(error: BaseException) -> str:
    return (
        f"Semantic Analogy failed unexpectedly: {type(error).__name__}: {error}. "
        "The details are on GIMP's error console (Windows > Dockable Dialogs > Error Console) or its terminal."
    )


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
