"""Encoding and decoding of multipart messages: a msgpack header frame plus raw pixel frames.

Pure functions on bytes (no sockets), used by both the client and the daemon:

    frames = encode("ping", {})                  # -> [header_bytes, *buffers]
    msg = decode(frames, sender="client")        # -> Message, or raises DecodeError

A decoded message has been checked against the catalogue in schema.py (SPEC.md):
header fields, the version, the type, every content field's type, and every image
(its width*height*4 must equal the length of the frame it points at).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import msgpack

from .errors import ProtocolError
from .images import RGBAImage
from .schema import EVENT_KINDS, HEADER_FIELDS, MESSAGES, Field, check_fields
from .version import PROTOCOL_VERSION, compatible, parse_version

MAX_HEADER_BYTES = 64 * 1024  # settings, names and ids fit easily; pixels never go here
MAX_ID_LEN = 64

IMAGE_FIELDS: tuple[Field, ...] = (Field("width", "int"), Field("height", "int"), Field("buffer", "int"))


class DecodeError(ProtocolError):
    """A received message broke the protocol; ``msg_id`` is the sender's id when it could be read."""

    def __init__(self, code: str, message: str, *, field: str | None = None, msg_id: str | None = None):
        super().__init__(code, message, field=field)
        self.msg_id = msg_id


@dataclass
class Message:
    type: str
    content: dict
    msg_id: str
    reply_to: str | None = None
    version: str = PROTOCOL_VERSION
    # Frames in bytes, kept for size accounting; images in content are already RGBAImage.
    nbytes: int = field(default=0, repr=False)


def new_msg_id() -> str:
    return uuid.uuid4().hex


def _image_fields(fields: tuple[Field, ...]) -> list[Field]:
    return [f for f in fields if "image" in f.type]


def encode(
    type_: str,
    content: dict,
    *,
    msg_id: str | None = None,
    reply_to: str | None = None,
    version: str = PROTOCOL_VERSION,
) -> list[bytes]:
    """Frames for one message. ``content`` holds RGBAImage objects where the schema says image.

    Raises ProtocolError when ``content`` does not match SPEC.md (a bug on the sending side,
    or a caller passing e.g. a list where an image belongs).
    """
    spec = MESSAGES.get(type_)
    if spec is None:
        raise ValueError(f"unknown message type {type_!r}")
    check_fields(spec.fields, content, where=f"'{type_}'", images_as="python", strict=True)
    if type_ == "event":
        _check_event(content, strict=True)
    buffers: list[bytes] = []
    wire_content = dict(content)

    def describe(img: RGBAImage) -> dict:
        buffers.append(img.data)
        return {"width": img.width, "height": img.height, "buffer": len(buffers) - 1}

    for f in _image_fields(spec.fields):
        value = content.get(f.name)
        if isinstance(value, RGBAImage):
            wire_content[f.name] = describe(value)
        elif isinstance(value, list):
            wire_content[f.name] = [describe(v) for v in value]
    header: dict = {"v": version, "type": type_, "msg_id": msg_id or new_msg_id(), "content": wire_content}
    if reply_to is not None:
        header["reply_to"] = reply_to
    packed = msgpack.packb(header, use_bin_type=True)
    if len(packed) > MAX_HEADER_BYTES:
        raise ProtocolError(
            "TOO_LARGE",
            f"the '{type_}' header is {len(packed)} bytes, over the limit of {MAX_HEADER_BYTES}; "
            "use shorter target names or fewer settings",
        )
    return [packed, *buffers]


def decode(
    frames: list[bytes],
    *,
    sender: str,
    max_pixels: int | None = None,
    strict: bool = False,
) -> Message:
    """Parse and check one message sent by ``sender`` ("client" or "daemon").

    Raises DecodeError naming the problem. ``max_pixels`` bounds each image (TOO_LARGE);
    ``strict`` also refuses fields SPEC.md does not list (used by tests).
    """
    if not frames:
        raise DecodeError("MALFORMED", "empty message: expected a msgpack header frame")
    head = frames[0]
    if len(head) == 0:
        raise DecodeError(
            "MALFORMED",
            "frame 0 (the header) is empty; send [msgpack header, pixel frames...] from a DEALER "
            "socket (a REQ socket adds an empty delimiter frame)",
        )
    if len(head) > MAX_HEADER_BYTES:
        raise DecodeError(
            "TOO_LARGE", f"the header frame is {len(head)} bytes, over the limit of {MAX_HEADER_BYTES}"
        )
    try:
        header = msgpack.unpackb(
            head,
            raw=False,
            max_str_len=MAX_HEADER_BYTES,
            max_bin_len=MAX_HEADER_BYTES,
            max_array_len=MAX_HEADER_BYTES,
            max_map_len=MAX_HEADER_BYTES,
            max_ext_len=MAX_HEADER_BYTES,
        )
    except Exception as e:  # msgpack raises many types (ExtraData, StackError, ValueError, ...)
        raise DecodeError("MALFORMED", f"frame 0 is not a valid msgpack header ({type(e).__name__}: "
                                       f"{str(e)[:120]})") from None
    if not isinstance(header, dict):
        raise DecodeError("MALFORMED", f"the header (frame 0) must be a msgpack map, got {type(header).__name__}")
    raw_id = header.get("msg_id")
    msg_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= MAX_ID_LEN else None
    try:
        return _decode_header(header, frames, sender, max_pixels, strict, msg_id)
    except DecodeError:
        raise
    except ProtocolError as e:
        raise DecodeError(e.code, e.message, field=e.field, msg_id=msg_id) from None


def _decode_header(header: dict, frames: list[bytes], sender: str, max_pixels: int | None,
                   strict: bool, msg_id: str | None) -> Message:
    version = header.get("v")
    if version is None:
        raise ProtocolError("MISSING_FIELD", "the header needs the field 'v' (protocol version)", field="v")
    try:
        parse_version(version)
    except ValueError as e:
        raise ProtocolError("BAD_VALUE", str(e), field="v") from None
    if not compatible(version):
        raise ProtocolError(
            "VERSION_MISMATCH",
            f"protocol version {version} is not compatible with this side's {PROTOCOL_VERSION} "
            f"(major versions differ); update the plugin or the daemon so both speak "
            f"{PROTOCOL_VERSION.split('.')[0]}.x",
            field="v",
        )
    check_fields(HEADER_FIELDS, header, where="the header", strict=strict)
    if msg_id is None:
        raise ProtocolError("BAD_VALUE", f"msg_id must be 1 to {MAX_ID_LEN} characters", field="msg_id")
    reply_to = header.get("reply_to")
    if reply_to is not None and not (0 < len(reply_to) <= MAX_ID_LEN):
        raise ProtocolError("BAD_VALUE", f"reply_to must be 1 to {MAX_ID_LEN} characters", field="reply_to")
    type_ = header["type"]
    spec = MESSAGES.get(type_)
    if spec is None or spec.sender != sender:
        accepted = sorted(n for n, s in MESSAGES.items() if s.sender == sender)
        raise ProtocolError(
            "UNKNOWN_TYPE",
            f"unknown message type {type_[:40]!r} from a {sender}; expected one of {', '.join(accepted)}",
            field="type",
        )
    content = dict(header["content"])
    check_fields(spec.fields, content, where=f"'{type_}'", strict=strict)
    buffers = frames[1:]
    used: set[int] = set()
    for f in _image_fields(spec.fields):
        value = content.get(f.name)
        if isinstance(value, dict):
            content[f.name] = _resolve(value, f"image '{f.name}'", buffers, used, max_pixels)
        elif isinstance(value, list):
            content[f.name] = [
                _resolve(v, f"image '{f.name}[{i}]'", buffers, used, max_pixels) for i, v in enumerate(value)
            ]
    if len(used) != len(buffers):
        raise ProtocolError(
            "MALFORMED",
            f"the message has {len(buffers)} pixel frame(s) but its images use {len(used)}",
        )
    if type_ == "event":
        _check_event(content, strict=strict)
    nbytes = sum(len(f) for f in frames)
    return Message(type_, content, msg_id, reply_to, version, nbytes)


def _resolve(desc: dict, where: str, buffers: list[bytes], used: set[int], max_pixels: int | None) -> RGBAImage:
    check_fields(IMAGE_FIELDS, desc, where=where)
    w, h, b = desc["width"], desc["height"], desc["buffer"]
    if w < 1 or h < 1:
        raise ProtocolError("BAD_IMAGE", f"{where} is {w}x{h}; width and height must be at least 1")
    if max_pixels is not None and w * h > max_pixels:
        raise ProtocolError(
            "TOO_LARGE",
            f"{where} is {w}x{h} = {w * h} pixels, over the daemon's limit of {max_pixels}; scale it down",
        )
    if not 0 <= b < len(buffers):
        raise ProtocolError(
            "MALFORMED", f"{where} points at buffer {b} but the message has {len(buffers)} pixel frame(s)"
        )
    if b in used:
        raise ProtocolError("MALFORMED", f"{where} reuses buffer {b}; each image needs its own frame")
    used.add(b)
    data = buffers[b]
    if len(data) != w * h * 4:
        raise ProtocolError(
            "BAD_IMAGE",
            f"{where} declares {w}x{h} RGBA ({w * h * 4} bytes) but its frame has {len(data)} bytes",
        )
    return RGBAImage(w, h, bytes(data))


def _check_event(content: dict, *, strict: bool) -> None:
    kind = content["kind"]
    fields = EVENT_KINDS.get(kind)
    if fields is None:
        raise ProtocolError("BAD_VALUE", f"unknown event kind {kind[:40]!r}", field="kind")
    check_fields(fields, content["data"], where=f"'{kind}' event data", strict=strict)
    n = len(content["images"])
    expected = {"preview": 1, "result": len(content["data"]["target_names"]) if kind == "result" else 0}
    want = expected.get(kind, 0)
    if n != want:
        raise ProtocolError("BAD_VALUE", f"a '{kind}' event carries {want} image(s), this one has {n}",
                            field="images")
