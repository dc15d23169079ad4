"""The editor-side core shared with the GIMP plug-in (plugin_core/ in the project).

build_zip.py bundles it as semantic_analogy_krita/plugin_core, beside the bundled
protocol it reads the method names from; running from a checkout (the tests), the
installed semantic_analogy.plugin_core is the same code.
"""

from __future__ import annotations

try:
    from .plugin_core import (
        UserError, address, bundle, choices, engine_install, engine_launch, errors, geometry, layers, naming,
        progress,
    )
except ModuleNotFoundError as e:  # not bundled: a checkout with the project installed
    if not (e.name or "").startswith(__package__ + "."):
        raise
    from semantic_analogy.plugin_core import (  # type: ignore[no-redef]
        UserError, address, bundle, choices, engine_install, engine_launch, errors, geometry, layers, naming,
        progress,
    )

__all__ = ["UserError", "address", "bundle", "choices", "engine_install", "engine_launch", "errors", "geometry",
           "layers", "naming", "progress"]
