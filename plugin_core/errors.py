"""What a painter reads when something goes wrong, in both editors.

The protocol's exceptions are matched by class name (and `code`), so the words are the
same whether the protocol was loaded from the copy bundled in a plug-in or from an
installed `semantic_analogy.protocol`. The editor-specific bits (how to retry, where
the address is typed, how to reinstall) come from each plug-in's EditorWords.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol.errors import JOB_FAILURE_CODES
from . import UserError
from .address import DEFAULT_ADDRESS

# The exact command that starts the engine after the README's set-up (scripts/demo.sh
# creates .venv in the Semantic Analogy folder): `semantic-analogy` alone is on the PATH
# only inside an activated environment.
SERVE_COMMAND = ".venv/bin/semantic-analogy serve"


@dataclass(frozen=True)
class EditorWords:
    """How one editor's plug-in tells the painter to go on."""

    retry: str  # "run the filter again" / "press Train again"
    connect: str  # what connects after the engine is started ("press Connect")
    address_field: str  # where the engine address is typed
    reinstall: str  # how to get a matching plug-in
    log_hint: str  # where the details of an unexpected error are
    # How to install and start an engine on this computer without a terminal (the managed
    # local engine, plugin_core/engine_install.py), "" where the plug-in has no such path.
    install_local: str = ""


CANCEL_CODES = frozenset({"CANCELLED", "CLIENT_SILENT", "SHUTDOWN"})


def serve_command(address: str = "") -> str:
    """The command that starts an engine listening on `address`."""
    if address and address != DEFAULT_ADDRESS:
        return f"{SERVE_COMMAND} --bind {address}"
    return SERVE_COMMAND


def daemon_unavailable(address: str, words: EditorWords) -> str:
    local = f"{words.install_local[0].upper()}{words.install_local[1:]}, or start" if words.install_local else "Start"
    return (
        f"No answer from the Semantic Analogy engine at {address or DEFAULT_ADDRESS}. {local} it in a terminal, "
        f"in the Semantic Analogy folder, with “{serve_command(address)}” (or correct {words.address_field}), "
        f"then {words.connect}."
    )


def daemon_lost(address: str, words: EditorWords) -> str:
    return (
        f"The Semantic Analogy engine at {address or DEFAULT_ADDRESS} stopped answering while it worked on this "
        f"image. Look at the terminal where “{SERVE_COMMAND}” runs, restart it if needed, and {words.retry}."
    )


def version_mismatch(detail: str, words: EditorWords) -> str:
    return (
        f"The plug-in and the engine do not speak the same protocol version ({detail}). "
        f"Install the plug-in from the same Semantic Analogy version as the engine ({words.reinstall})."
    )


def job_failed(code: str, message: str, words: EditorWords) -> str:
    """A job that ended with an error or a cancel on the daemon (codes from protocol/errors.py)."""
    text = (message or "").strip() or "no details were given"
    code = (code or "").upper()
    if code == "CANCELLED":
        return "Cancelled: no layer was added."
    if code in CANCEL_CODES:
        return f"The engine stopped the job: {text} {words.retry.capitalize()} to start over."
    if code == "OUT_OF_MEMORY":
        return f"The engine ran out of memory: choose a smaller working size or the Preview preset. ({text})"
    if code == "UNKNOWN_JOB":
        return f"The engine no longer knows this job (was it restarted?); {words.retry}. ({text})"
    return f"The engine could not make the analogy: {text}" + (f" [{code}]" if code else "")


def job_refused(code: str, message: str) -> str:
    """A submit the daemon (or the client, checking its limits) refused before any work."""
    text = (message or "").strip() or "no details were given"
    return f"The engine refused the job: {text}" + (f" [{code.upper()}]" if code else "")


def image_closed(words: EditorWords) -> str:
    return (
        "The image was closed while the engine worked on it, so the result has nowhere to go. "
        f"Open the image again and {words.retry}: the engine keeps the trained model, "
        "so the result comes back in seconds."
    )


def result_size(got: tuple[int, int], expected: tuple[int, int]) -> str:
    return (
        f"The engine returned a {got[0]}×{got[1]} result for a {expected[0]}×{expected[1]} source. "
        "This is a bug in the engine; please report it with the image size."
    )


def unexpected(error: BaseException, words: EditorWords) -> str:
    return f"Semantic Analogy failed unexpectedly ({type(error).__name__}: {error}). {words.log_hint}"


def describe_error(exc: BaseException, address: str, words: EditorWords, *,
                   during_job: bool = False) -> tuple[str, str]:
    """(the message to show, the full text to copy) for any exception a plug-in meets.

    during_job: the daemon had the job already, so a lost connection means it stopped
    answering rather than that it was never started.
    """
    name = type(exc).__name__
    code = str(getattr(exc, "code", "") or "")
    # ProtocolError's str() appends " [CODE]"; its .message is the sentence for users.
    text = str(getattr(exc, "message", "") or exc).strip() or name
    if name == "DaemonUnavailable":
        short = daemon_lost(address, words) if during_job else daemon_unavailable(address, words)
    elif name == "VersionMismatch":
        short = version_mismatch(text, words)
    elif name == "JobFailed" or code in JOB_FAILURE_CODES or code == "UNKNOWN_JOB":
        short = job_failed(code, text, words)
    elif name == "ProtocolError":  # refused at submit: too large, queue full, ...
        short = job_refused(code, text)
    elif isinstance(exc, UserError) or name in ("SelectionError", "PixelFormatError", "RequestError",
                                               "SettingsError", "MissingDependency", "PluginError"):
        short = text
    elif isinstance(exc, MemoryError):
        short = ("Not enough memory to read these layers; use a smaller document, or a source layer "
                 "instead of the visible image.")
    else:
        short = unexpected(exc, words)
    details = f"{name}: {text}"
    if code:
        details += f"\ncode: {code}"
    if address:
        details += f"\nengine address: {address}"
    return short, details
