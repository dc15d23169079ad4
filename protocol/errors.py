"""Error codes carried on the wire and the exceptions the client raises.

Every ``error`` message and every failed/cancelled job carries one of the
codes below plus a message written for the user (what went wrong, what to do).
"""

from __future__ import annotations

# code -> when it is used. The table in SPEC.md must list exactly these (tested).
ERROR_CODES: dict[str, str] = {
    "MALFORMED": "the frames are not a protocol message (not msgpack, not a map, bad frame layout)",
    "VERSION_MISMATCH": "the peer speaks an incompatible protocol major version",
    "UNKNOWN_TYPE": "the message type is not one this side accepts",
    "MISSING_FIELD": "a required field is absent",
    "WRONG_TYPE": "a field has the wrong type",
    "BAD_VALUE": "a field has the right type but a value that cannot be used",
    "BAD_IMAGE": "an image's width/height do not match the size of its pixel buffer",
    "SIZE_MISMATCH": "labels or targets have another size than the source image",
    "TOO_LARGE": "a message, image or target list is over the daemon's limits",
    "QUEUE_FULL": "the job queue is at its maximum length; try again later",
    "BAD_SETTINGS": "the training settings were refused by the engine",
    "BAD_LABELS": "a label map cannot be used (the engine's LabelError)",
    "UNKNOWN_JOB": "no job with this id (never existed, expired, or the daemon was restarted)",
    "NOT_FINISHED": "the job's result was asked for before the job finished",
    "UNKNOWN_MODEL": "no cached model with this key",
    "ENGINE_ERROR": "the engine failed on this job (its message says why)",
    "OUT_OF_MEMORY": "the device ran out of memory; use a smaller size or preset",
    "CANCELLED": "the job was cancelled on request",
    "CLIENT_SILENT": "the job was cancelled because its client stopped sending heartbeats",
    "SHUTDOWN": "the daemon stopped before the job finished (training was checkpointed)",
    "SUPERSEDED": "a queued job replaced by a newer one from the same client for the same photo",
    "INTERNAL": "a bug in the daemon; the daemon log has the details",
    # Raised by the client only, never sent on the wire.
    "UNAVAILABLE": "no daemon answered in time",
    "TIMEOUT": "the job did not finish within the time the caller allowed",
}

# Codes that end a job (as "error" or "cancelled" events) rather than reject a request.
JOB_FAILURE_CODES = frozenset(
    {"BAD_SETTINGS", "BAD_LABELS", "ENGINE_ERROR", "OUT_OF_MEMORY", "CANCELLED", "CLIENT_SILENT",
     "SHUTDOWN", "SUPERSEDED", "INTERNAL"}
)
CLIENT_ONLY_CODES = frozenset({"UNAVAILABLE", "TIMEOUT"})


class ProtocolError(Exception):
    """A request was refused or the peer broke the protocol; ``code`` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class DaemonUnavailable(ProtocolError):
    """No daemon answered within the timeout (not started, crashed, or unreachable)."""

    def __init__(self, message: str) -> None:
        super().__init__("UNAVAILABLE", message)


class VersionMismatch(ProtocolError):
    """The daemon speaks an incompatible protocol version."""

    def __init__(self, message: str) -> None:
        super().__init__("VERSION_MISMATCH", message)


class JobFailed(ProtocolError):
    """A job ended with an error or was cancelled."""

    def __init__(self, code: str, message: str, job_id: str | None = None) -> None:
        super().__init__(code, message)
        self.job_id = job_id


class JobTimeout(ProtocolError, TimeoutError):
    """``Client.wait`` ran out of the time the caller allowed; the job itself goes on."""

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__("TIMEOUT", message)
        self.job_id = job_id
