"""What a client may see of the daemon's messages: no paths of the daemon's file system."""

from __future__ import annotations

import re

# An absolute path in a message: /..., ~/... or C:\... A slash after a letter, digit, dot,
# colon or another slash ("step 5/600", "gan/patch", "tcp://", "https://") is not one.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:\\-])~?/[^\s'\"`,;:()\[\]{}<>]+"
                            r"|\b[A-Za-z]:\\[^\s'\"`,;:()\[\]{}<>]+")


def without_paths(message: str) -> str:
    """A message for a client with every absolute path cut to its last part.

    Clients may be on other machines (CURVE), and the daemon's file system is none of
    their business: messages are written without paths, and this catches those that come
    from elsewhere (an exception's text). The daemon's log keeps the full text.
    """
    def last_part(m: re.Match) -> str:
        parts = [q for q in re.split(r"[/\\]", m.group(0)) if q and q != "~" and not q.endswith(":")]
        return parts[-1] if parts else "…"

    return _ABSOLUTE_PATH.sub(last_part, message)
