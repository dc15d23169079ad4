"""Errors the engine raises for the user to read (no traceback needed)."""


class EngineError(Exception):
    """A problem with the user's input or setup; the message says what to fix."""


class LabelError(EngineError, ValueError):
    """A label map that cannot be used as given (colours, size, classes)."""


class Cancelled(EngineError):
    """Training or synthesis was stopped on request; a checkpoint may remain."""
