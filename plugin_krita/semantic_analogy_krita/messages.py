"""What the docker sends and what it shows: request building, progress and error text.

Pure logic: no Krita, no Qt, no socket. The protocol's error classes are matched
by name so this module also works against a bundled copy of the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Sequence

from . import core
from .pixels import Rect
from .settings import DEFAULT_METHOD, METHOD_NAMES

# How the shared error texts (plugin_core/errors.py) tell a Krita user to go on.
KRITA_WORDS = core.errors.EditorWords(
    retry="press Train or Apply again",
    connect="press Connect",
    address_field="the address in the docker's Engine box",
    reinstall="the plugin zip built by plugin_krita/build_zip.py from the engine's release",
    log_hint="Press Details… for the full text, and report it with that text.",
    install_local="press “Install local engine” (or Start) in the docker's Engine box: it installs and runs one "
                  "on this computer",
)


@dataclass(frozen=True)
class ImageData:
    """8-bit RGBA pixels of one canvas region (becomes a protocol RGBAImage)."""

    width: int
    height: int
    rgba: bytes

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"empty image {self.width}×{self.height}")
        if len(self.rgba) != self.width * self.height * 4:
            raise ValueError(f"{len(self.rgba)} bytes do not fill {self.width}×{self.height} RGBA")


@dataclass(frozen=True)
class Request:
    """One submit: the photo, its labels, the target layouts and the training settings."""

    region: Rect  # where on the canvas the images come from and the result goes
    image: ImageData
    labels: ImageData
    targets: tuple[ImageData, ...]
    target_names: tuple[str, ...]
    settings: dict = field(default_factory=dict)
    mode: str = "train"  # "train" | "apply": only changes what the docker says
    method: str = DEFAULT_METHOD  # submit's `method`; not in `settings`, so not in the model key


class RequestError(ValueError):
    """Layers that cannot make a request; the message says what to paint or choose."""


def build_request(region: Rect, image: ImageData, labels: ImageData, targets: Sequence[ImageData],
                  target_names: Sequence[str], settings: Mapping[str, object], mode: str = "train",
                  *, labels_name: str = "the label layer", method: str = DEFAULT_METHOD) -> Request:
    """Check sizes and content before anything is sent."""
    if not targets:
        raise RequestError("No target label layout to apply; choose a target label layer.")
    if len(targets) != len(target_names):
        raise RequestError(f"{len(targets)} targets but {len(target_names)} names")
    for im, what in [(image, "source image"), (labels, "label layer"),
                     *[(t, f"target “{n}”") for t, n in zip(targets, target_names)]]:
        if (im.width, im.height) != (region.width, region.height):
            raise RequestError(
                f"The {what} is {im.width}×{im.height} but the region is {region.width}×{region.height}."
            )
    if _fully_transparent(labels.rgba):
        raise RequestError(
            f"{labels_name} is empty: paint the photo's regions on it in flat colours first "
            "(“New label layer” gives you a palette)."
        )
    for t, n in zip(targets, target_names):
        if _fully_transparent(t.rgba):
            raise RequestError(f"The target label layer “{n}” is empty: duplicate the labels as target, then edit them.")
    if _fully_transparent(image.rgba):
        raise RequestError("The source image is empty in this area; choose the photo layer or “Visible image”.")
    if mode not in ("train", "apply"):
        raise ValueError(f"mode must be 'train' or 'apply', got {mode!r}")
    if method not in METHOD_NAMES:
        raise RequestError(f"Unknown method “{method}”; choose one of {', '.join(METHOD_NAMES)}.")
    return Request(region, image, labels, tuple(targets), tuple(target_names), dict(settings), mode, method)


def patch_request(request: Request) -> Request:
    """The same layers again with method "patch": what "Keep this result" submits to get
    the instant result at full resolution (seconds, no training, nothing cached)."""
    return replace(request, method="patch", mode="apply")


_fully_transparent = core.geometry.fully_transparent


@dataclass(frozen=True)
class ProgressView:
    percent: int  # 0..100, or -1 for "busy, unknown"
    text: str


def progress_view(kind: str, data: Mapping[str, object], method: Optional[str] = None) -> ProgressView:
    """Map a protocol event to the progress bar and its caption (the shared words)."""
    return view_of(core.progress.event_update(kind, data, method))


def view_of(update: "core.progress.Update") -> ProgressView:
    """The bar's percent (-1: busy, unknown) and caption of a shared progress update."""
    pct = -1 if update.fraction is None else max(0, min(100, round(100 * update.fraction)))
    return ProgressView(pct, update.text)


INSTANT_PATCH_CAPTION = "Instant result from the photo's patches; training continues…"
INSTANT_GAN_CAPTION = "Instant result from the trained network; adding the photo's detail…"
# What the preview and the progress line say once the instant patch result is in and the
# training goes on, and when the job ends: they must agree with the job's state (issue 10).
KEEP_NOTE = " · “Keep this result” keeps the instant result, not this preview"
KEEPING_CAPTION = "Keeping the instant result: stopping the training…"
KEEPING_FULL_SIZE_CAPTION = "Keeping the instant result: making it at full size…"
CANCELLED_CAPTION = "Cancelled: no layer was added."
FAILED_CAPTION = "Stopped: no layer was added."


def result_caption(layer_name: str, kept: bool = False) -> str:
    """The preview's caption once the result layer is in the document."""
    what = "The kept instant result" if kept else "The result"
    return f"{what}, added as the layer “{layer_name}”"


@dataclass(frozen=True)
class PreviewView:
    caption: str  # shown under the preview picture
    instant: bool  # the instant result (SPEC.md, Instant result), not a picture of training so far
    keepable: bool  # an instant patch result of a job that trains: "Keep this result" may take it


def preview_view(data: Mapping[str, object]) -> PreviewView:
    """Caption a `preview` event: the instant result says what it is, so that it is not
    mistaken for the trained result; training previews say which step they show."""
    if data.get("instant") is True:
        if data.get("kind") == "patch":
            # Sent only by a job that must train first (stage "train"): the patch result
            # is all there is to keep until the training ends.
            return PreviewView(INSTANT_PATCH_CAPTION, True, data.get("stage", "train") == "train")
        return PreviewView(INSTANT_GAN_CAPTION, True, False)
    step, total = data.get("step"), data.get("total")
    if data.get("stage", "train") == "train" and isinstance(step, int) and isinstance(total, int) and total > 0:
        return PreviewView(f"Training preview: step {step} / {total}", False, False)
    return PreviewView("Preview", False, False)


def keep_uses_preview(preview_size: tuple[int, int], region: Rect) -> bool:
    """Whether the kept instant result can become the layer as it is: only when the daemon
    sent it at the region's full size (it scales bigger images down to at most 512 px),
    else a "patch" job makes it again at full resolution."""
    return tuple(preview_size) == (region.width, region.height)


def connection_text(info: Mapping[str, object]) -> str:
    """"Connected · engine 0.1.0 · CUDA" from the handshake dict."""
    device = str(info.get("device") or "?")
    dev = device.upper() if device.lower().split(":")[0] in ("cuda", "cpu", "mps") else device
    parts = ["Connected"]
    if info.get("engine_version"):
        parts.append(f"engine {info['engine_version']}")
    parts.append(dev)
    text = " · ".join(parts)
    if device.lower() == "cpu":
        text += " (slow: use the Preview preset)"
    return text


def describe_error(exc: BaseException, address: str = "", *, during_job: bool = False) -> tuple[str, str]:
    """(short message for the docker, full text to copy): the shared words, Krita's hints."""
    return core.errors.describe_error(exc, address, KRITA_WORDS, during_job=during_job)
