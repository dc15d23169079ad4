"""The message catalogue of SPEC.md as data, and the type checks both sides use.

SPEC.md is normative; tests parse its tables and compare them with this file, so
the two cannot drift apart. Field types use a small notation (also in SPEC.md):

    str, int, number (int or float), bool, nil, map, image,
    list<T>, map<str,T>, and unions "A|B".

``image`` fields appear only at the top level of a message's content; on the wire
an image is a descriptor map ``{width, height, buffer}`` pointing at a raw frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ProtocolError
from .images import RGBAImage


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class MessageSpec:
    name: str
    sender: str  # "client" or "daemon"
    fields: tuple[Field, ...]
    reply: str | None = None  # for requests: the reply type on success

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def _f(name: str, type_: str, required: bool = True) -> Field:
    return Field(name, type_, required)


HEADER_FIELDS: tuple[Field, ...] = (
    _f("v", "str"),
    _f("type", "str"),
    _f("msg_id", "str"),
    _f("reply_to", "str|nil", False),
    _f("content", "map"),
)

_JOB = (_f("job_id", "str"),)

# How a job makes its result (protocol 1.1), defined here once: the engine, the daemon,
# the CLI and the plug-ins all take the names from this module (the plug-ins cannot import
# the engine: no torch there).
METHODS: tuple[str, ...] = ("gan", "patch", "gan+patch")
# What a front end (CLI, plug-in) picks when the user chooses none: `patch`, the method that
# is best or tied on every family of the known-answer benchmark and needs no training
# (BENCHMARKS.md, "Known answers"); `gan+patch` when a trained model is already in hand.
DEFAULT_METHOD = "patch"
TRAINED_DEFAULT_METHOD = "gan+patch"
# What a submit *without* `method` gets: 1.0 clients, which always trained (SPEC.md, 1.1).
OMITTED_METHOD = "gan+patch"

MESSAGES: dict[str, MessageSpec] = {
    spec.name: spec
    for spec in [
        # --- requests: client -> daemon ---------------------------------------------
        MessageSpec("hello", "client", (_f("protocol_version", "str"), _f("client", "str", False)), "welcome"),
        MessageSpec("ping", "client", (), "pong"),
        MessageSpec("status", "client", (), "status_reply"),
        MessageSpec(
            "submit",
            "client",
            (
                _f("image", "image"),
                _f("labels", "image"),
                _f("targets", "list<image>"),
                _f("settings", "map"),
                _f("target_names", "list<str>|nil", False),
                _f("cancel_if_silent", "number|nil", False),
                _f("method", "str|nil", False),
            ),
            "submitted",
        ),
        MessageSpec("watch", "client", _JOB, "watching"),
        MessageSpec("heartbeat", "client", _JOB, "heartbeat_ack"),
        MessageSpec("cancel", "client", _JOB, "cancel_reply"),
        MessageSpec("result", "client", _JOB, "result_reply"),
        MessageSpec("list_models", "client", (), "models_reply"),
        MessageSpec("delete_model", "client", (_f("key", "str"),), "model_deleted"),
        # --- replies and events: daemon -> client -----------------------------------
        MessageSpec(
            "welcome",
            "daemon",
            (
                _f("protocol_version", "str"),
                _f("engine_version", "str"),
                _f("device", "str"),
                _f("limits", "map<str,int>"),
            ),
        ),
        MessageSpec("pong", "daemon", (_f("time", "number"),)),
        MessageSpec(
            "status_reply",
            "daemon",
            (
                _f("protocol_version", "str"),
                _f("engine_version", "str"),
                _f("device", "str"),
                _f("queue_length", "int"),
                _f("running_job", "str|nil"),
                _f("running_progress", "map|nil"),
                _f("jobs", "map<str,int>"),
                _f("models_cached", "int"),
                _f("cache_bytes", "int"),
                _f("cache_limit_bytes", "int"),
                _f("uptime_s", "number"),
                _f("limits", "map<str,int>"),
                _f("backend", "str", False),
                _f("running_jobs", "list<map>", False),
            ),
        ),
        MessageSpec("submitted", "daemon", (_f("job_id", "str"), _f("position", "int"))),
        MessageSpec(
            "watching", "daemon", (_f("job_id", "str"), _f("state", "str"), _f("position", "int|nil"))
        ),
        MessageSpec("heartbeat_ack", "daemon", (_f("job_id", "str"), _f("state", "str"))),
        MessageSpec("cancel_reply", "daemon", (_f("job_id", "str"), _f("state", "str"))),
        MessageSpec(
            "result_reply",
            "daemon",
            (
                _f("job_id", "str"),
                _f("target_names", "list<str>"),
                _f("model_key", "str"),
                _f("images", "list<image>"),
                _f("method", "str", False),
            ),
        ),
        MessageSpec("models_reply", "daemon", (_f("models", "list<map>"),)),
        MessageSpec("model_deleted", "daemon", (_f("key", "str"),)),
        MessageSpec(
            "error",
            "daemon",
            (
                _f("code", "str"),
                _f("message", "str"),
                _f("job_id", "str|nil", False),
                _f("field", "str|nil", False),
            ),
        ),
        MessageSpec(
            "event",
            "daemon",
            (
                _f("job_id", "str"),
                _f("seq", "int"),
                _f("kind", "str"),
                _f("data", "map"),
                _f("images", "list<image>"),
            ),
        ),
    ]
}

REQUESTS = frozenset(n for n, s in MESSAGES.items() if s.sender == "client")

# Event kinds: the fields of their ``data`` map and how many images they carry.
EVENT_KINDS: dict[str, tuple[Field, ...]] = {
    "queued": (_f("position", "int"),),
    "progress": (
        _f("stage", "str"),
        _f("step", "int"),
        _f("total", "int"),
        _f("eta_s", "number"),
        _f("elapsed_s", "number"),
        _f("losses", "map<str,number>"),
        _f("warnings", "list<str>", False),
    ),
    "preview": (
        _f("stage", "str"),
        _f("step", "int"),
        _f("total", "int"),
        _f("kind", "str", False),
        _f("instant", "bool", False),
        _f("target", "int", False),
    ),
    "result": (
        _f("target_names", "list<str>"),
        _f("model_key", "str"),
        _f("cached", "bool"),
        _f("method", "str", False),
        _f("warnings", "list<str>", False),
    ),
    "error": (_f("code", "str"), _f("message", "str")),
    "cancelled": (_f("code", "str"), _f("message", "str")),
}
TERMINAL_KINDS = frozenset({"result", "error", "cancelled"})

# The entries of models_reply.models.
MODEL_ENTRY: tuple[Field, ...] = (
    _f("key", "str"),
    _f("size_bytes", "int"),
    _f("created", "number"),
    _f("last_used", "number"),
    _f("width", "int"),
    _f("height", "int"),
    _f("settings", "map"),
)

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")

LIMIT_NAMES = ("max_pixels", "max_targets", "max_queue", "max_message_bytes")


def check_method(value: object) -> str:
    """A submit's ``method`` (nil: OMITTED_METHOD) -> one of METHODS; BAD_VALUE naming the choices."""
    if value is None:
        return OMITTED_METHOD
    if not isinstance(value, str) or value not in METHODS:
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise ProtocolError(
            "BAD_VALUE", f"unknown method {shown}; choose one of {', '.join(METHODS)}", field="method"
        )
    return value


# --- type checking -----------------------------------------------------------------


def _split_union(type_: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in type_:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def type_matches(value: object, type_: str, *, images_as: str = "wire") -> bool:
    """Does ``value`` have type ``type_``? ``images_as``: "wire" (descriptor maps) or "python"."""
    for alt in _split_union(type_):
        if _matches_one(value, alt, images_as):
            return True
    return False


def _matches_one(value: object, t: str, images_as: str) -> bool:
    if t == "str":
        return isinstance(value, str)
    if t == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "bool":
        return isinstance(value, bool)
    if t == "nil":
        return value is None
    if t == "map":
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if t == "image":
        if images_as == "python":
            return isinstance(value, RGBAImage)
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if t.startswith("list<") and t.endswith(">"):
        inner = t[5:-1]
        return isinstance(value, list) and all(type_matches(v, inner, images_as=images_as) for v in value)
    if t.startswith("map<str,") and t.endswith(">"):
        inner = t[8:-1]
        return isinstance(value, dict) and all(
            isinstance(k, str) and type_matches(v, inner, images_as=images_as) for k, v in value.items()
        )
    raise ValueError(f"unknown type notation {t!r} in the schema")


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "nil": "nil",
    "map": "a map",
    "image": "an image",
}


def describe_type(type_: str) -> str:
    """Human words for a type, for error messages."""
    words = []
    for alt in _split_union(type_):
        if alt.startswith("list<"):
            words.append(f"a list of {describe_type(alt[5:-1]).removeprefix('a ').removeprefix('an ')}s")
        elif alt.startswith("map<str,"):
            words.append(f"a map of strings to {describe_type(alt[8:-1]).removeprefix('a ').removeprefix('an ')}s")
        else:
            words.append(_TYPE_WORDS.get(alt, alt))
    return " or ".join(words)


def _type_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float {value}"
    return type(value).__name__


def check_fields(
    fields: tuple[Field, ...],
    content: dict,
    *,
    where: str,
    images_as: str = "wire",
    strict: bool = False,
) -> None:
    """Raise ProtocolError (MISSING_FIELD / WRONG_TYPE) when ``content`` breaks ``fields``.

    Unknown fields are ignored (a newer minor version may add some) unless ``strict``,
    which tests use to check that each side sends exactly what SPEC.md lists.
    """
    for f in fields:
        if f.name not in content:
            if f.required:
                raise ProtocolError("MISSING_FIELD", f"{where} needs the field '{f.name}'", field=f.name)
            continue
        value = content[f.name]
        if not type_matches(value, f.type, images_as=images_as):
            raise ProtocolError(
                "WRONG_TYPE",
                f"{where} field '{f.name}' must be {describe_type(f.type)}, got {_type_name(value)}",
                field=f.name,
            )
    if strict:
        extra = set(content) - {f.name for f in fields}
        if extra:
            raise ProtocolError("BAD_VALUE", f"{where} has fields SPEC.md does not list: {sorted(extra)}")
