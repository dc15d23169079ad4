"""Semantic Analogy for Krita: a docker that sends the photo and its label layers to the
Semantic Analogy engine daemon and adds the re-arranged photo as a new layer.

Importing this package outside Krita (pytest) only exposes the pure modules.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita  # type: ignore[import-not-found]
except ImportError:  # not inside Krita
    Krita = None


def _setup_logging() -> None:
    """Log to a file in the user data folder (outside the plugin folder)."""
    from logging.handlers import RotatingFileHandler

    from .settings import user_data_dir

    try:
        folder = user_data_dir()
        folder.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(folder / "krita-plugin.log", maxBytes=1_000_000, backupCount=2,
                                      encoding="utf-8")
    except OSError:
        return  # no writable home: run without a log file
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def _register() -> None:
    from .docker import DOCKER_ID, SemanticAnalogyDocker

    Krita.instance().addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, SemanticAnalogyDocker)
    )


if Krita is not None:
    _setup_logging()
    try:
        _register()
    except Exception:  # never let Krita's modal exception dialog open at start-up
        log.exception("Semantic Analogy could not register its docker")
