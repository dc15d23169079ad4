"""Protocol version and the compatibility rule.

Versions are "MAJOR.MINOR". Peers with the same MAJOR understand each other
(a MINOR step only adds optional fields, which receivers ignore); a different
MAJOR is refused on both sides with a VERSION_MISMATCH error.
"""

from __future__ import annotations

PROTOCOL_VERSION = "1.3"  # 1.1: submit.method, instant previews; 1.2: warnings; 1.3: running_jobs, SUPERSEDED (SPEC.md, Versioning)


def parse_version(text: object) -> tuple[int, int]:
    """Return (major, minor) of a "MAJOR.MINOR" string; ValueError if it is not one."""
    if not isinstance(text, str) or len(text) > 16:
        raise ValueError(f"protocol version must be a 'MAJOR.MINOR' string, got {text!r}")
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"protocol version must look like 'MAJOR.MINOR', got {text!r}")
    return int(parts[0]), int(parts[1])


def compatible(theirs: str, ours: str = PROTOCOL_VERSION) -> bool:
    """True when two protocol versions can talk (same major version)."""
    try:
        return parse_version(theirs)[0] == parse_version(ours)[0]
    except ValueError:
        return False
