"""Checks on requests beyond the wire format, and pixel conversions (pure logic).

The protocol layer has already checked field types and that each image's pixel
buffer matches its size; here come the daemon's own rules: limits, equal sizes,
target names, silence timeouts, id formats.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..protocol.errors import ProtocolError
from ..protocol.images import RGBAImage
from ..protocol.schema import OMITTED_METHOD, check_method
from .config import Limits

MAX_NAME_LEN = 200
MIN_SILENCE_S, MAX_SILENCE_S = 0.5, 24 * 3600.0
_HEX_ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass
class SubmitRequest:
    image: np.ndarray  # (H, W, 4) uint8
    labels: np.ndarray  # (H, W, 4) uint8
    targets: list[np.ndarray]  # each (H, W, 4) uint8
    settings: dict
    target_names: list[str]
    cancel_if_silent: float | None
    width: int
    height: int
    method: str = OMITTED_METHOD


def to_array(img: RGBAImage) -> np.ndarray:
    """(H, W, 4) uint8 view of an RGBAImage's bytes (read-only, no copy)."""
    return np.frombuffer(img.data, dtype=np.uint8).reshape(img.height, img.width, 4)


def to_rgba_image(arr: np.ndarray) -> RGBAImage:
    """(H, W, 3|4) uint8 -> RGBAImage (opaque alpha for RGB)."""
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3|4) uint8 array, got {arr.shape} {arr.dtype}")
    h, w = arr.shape[:2]
    if arr.shape[2] == 3:
        out = np.empty((h, w, 4), np.uint8)
        out[..., :3] = arr
        out[..., 3] = 255
        arr = out
    return RGBAImage(w, h, np.ascontiguousarray(arr).tobytes())


def check_id(value: str, what: str, field: str) -> str:
    if not _HEX_ID.match(value):
        code = "UNKNOWN_MODEL" if field == "key" else "UNKNOWN_JOB"
        raise ProtocolError(code, f"{value[:80]!r} is not a {what} (expected lowercase hex)", field=field)
    return value


def parse_submit(content: dict, limits: Limits) -> SubmitRequest:
    """A checked job request; raises ProtocolError naming the problem."""
    image, labels, targets = content["image"], content["labels"], content["targets"]
    w, h = image.width, image.height
    if w * h > limits.max_pixels:
        raise ProtocolError("TOO_LARGE", f"the image has {w * h} pixels ({w}x{h}), over this daemon's limit of "
                            f"{limits.max_pixels}; scale it down", field="image")
    if not targets:
        raise ProtocolError("BAD_VALUE", "a job needs at least one target label map", field="targets")
    if len(targets) > limits.max_targets:
        raise ProtocolError("TOO_LARGE", f"{len(targets)} targets in one job, the limit is {limits.max_targets}; "
                            "split them over several jobs (the trained model is reused)", field="targets")
    if labels.size != image.size:
        raise ProtocolError("SIZE_MISMATCH", f"the labels are {labels.width}x{labels.height} but the image is "
                            f"{w}x{h}; the label layer must have the image's size", field="labels")
    for i, t in enumerate(targets):
        if t.size != image.size:
            raise ProtocolError("SIZE_MISMATCH", f"target {i + 1} is {t.width}x{t.height} but the image is {w}x{h}; "
                                "targets must have the image's size", field="targets")
    names = content.get("target_names")
    if names is None:
        names = [f"target-{i + 1}" for i in range(len(targets))]
    if len(names) != len(targets):
        raise ProtocolError("BAD_VALUE", f"{len(names)} target_names for {len(targets)} targets",
                            field="target_names")
    for n in names:
        if not 0 < len(n) <= MAX_NAME_LEN:
            raise ProtocolError("BAD_VALUE", f"target names must be 1 to {MAX_NAME_LEN} characters",
                                field="target_names")
    silence = content.get("cancel_if_silent")
    if silence is not None and not (math.isfinite(silence) and MIN_SILENCE_S <= silence <= MAX_SILENCE_S):
        raise ProtocolError("BAD_VALUE", f"cancel_if_silent must be between {MIN_SILENCE_S} and "
                            f"{MAX_SILENCE_S:.0f} seconds, got {silence}", field="cancel_if_silent")
    method = check_method(content.get("method"))
    return SubmitRequest(
        image=to_array(image),
        labels=to_array(labels),
        targets=[to_array(t) for t in targets],
        settings=dict(content["settings"]),
        target_names=list(names),
        cancel_if_silent=None if silence is None else float(silence),
        width=w,
        height=h,
        method=method,
    )
