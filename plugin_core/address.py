"""The engine's address as a painter types it, and the client's silence timeout."""

from __future__ import annotations

import re
from typing import Mapping

from . import UserError

DEFAULT_PORT = 5555
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"  # the daemon's default (protocol/SPEC.md)
ADDRESS_ENV = "SEMANTIC_ANALOGY_ADDRESS"  # the same variable the command line reads
# An editor that cannot send a cancel when it is killed (GIMP kills a plug-in whose
# progress the user cancels) asks the daemon to drop its job after this much silence.
CANCEL_IF_SILENT_S = 30.0
CANCEL_IF_SILENT_ENV = "SEMANTIC_ANALOGY_CANCEL_IF_SILENT"

_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]*)"


class AddressError(UserError):
    """An engine address that cannot be used; the message gives the form that works."""


def normalize_address(text: str) -> str:
    """A ZeroMQ endpoint from what a user types.

    "" -> the default address; "5555" or ":5555" -> tcp://127.0.0.1:5555;
    "host" -> tcp://host:5555; "host:port", "tcp://host[:port]" and "ipc://path" as given.
    """
    t = (text or "").strip()
    if not t:
        return DEFAULT_ADDRESS
    if t.startswith("ipc://"):
        if len(t) > len("ipc://"):
            return t
        raise AddressError(f"“{text}” names no socket file; use ipc://PATH or tcp://HOST:PORT.")
    if re.fullmatch(r"\d+", t):
        t = f":{t}"
    if "://" in t and not t.startswith("tcp://"):
        raise AddressError(
            f"“{text}” is not an address the engine listens on; use tcp://HOST:PORT, e.g. {DEFAULT_ADDRESS}."
        )
    rest = t[len("tcp://"):] if t.startswith("tcp://") else t
    m = re.fullmatch(_HOST + r"(?::(\w*))?", rest)
    if not m:
        raise AddressError(
            f"The engine address “{text}” is not valid; use HOST:PORT or tcp://HOST:PORT, e.g. {DEFAULT_ADDRESS}."
        )
    host, port = m.group(1) or "127.0.0.1", m.group(2)
    if port is None or port == "":
        number = DEFAULT_PORT
    elif port.isdigit() and 1 <= int(port) <= 65535:
        number = int(port)
    else:
        raise AddressError(f"“{port}” in the engine address “{text}” is not a port number (1–65535).")
    return f"tcp://{host}:{number}"


def default_address(env: Mapping[str, str]) -> str:
    """$SEMANTIC_ANALOGY_ADDRESS when it is set and valid, else the daemon's default."""
    try:
        return normalize_address(env.get(ADDRESS_ENV, ""))
    except AddressError:
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
