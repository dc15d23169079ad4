"""The protocol package next to this one: bundled in a plug-in, or the installed one.

`plugin_krita/build_zip.py` and `plugin_gimp/install.py` copy `protocol/` and this package
side by side into one parent package (semantic_analogy_krita/, sa_shared/), and the
project installs them as semantic_analogy.protocol and semantic_analogy.plugin_core: in
every case the protocol is the sibling `protocol`, found the same way.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

PARENT = __name__.rpartition(".")[0].rpartition(".")[0]  # the package holding both
PROTOCOL = f"{PARENT}.protocol" if PARENT else "protocol"


def protocol() -> SimpleNamespace:
    """The protocol modules a plug-in uses: client, images, errors, schema.

    The client imports pyzmq and msgpack: a plug-in makes those importable first (and
    says what is missing when it cannot), then calls this.
    """
    return SimpleNamespace(
        **{name: importlib.import_module(f"{PROTOCOL}.{name}") for name in ("client", "images", "errors", "schema")}
    )
