"""Settings the docker remembers: the engine address, and per document the chosen
layers, quality preset, working size and synthesis method.

Stored as JSON in the user's data folder, outside the plugin folder, because
Krita's "Import Python Plugin" replaces the plugin folder on every reinstall.
Pure logic plus plain file I/O; no Krita, no Qt.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional

from . import core
from .layers import LayerRef

log = logging.getLogger(__name__)

DATA_DIR_ENV = "SEMANTIC_ANALOGY_KRITA_HOME"
DEFAULT_ADDRESS = core.address.DEFAULT_ADDRESS
# The choices, their words and limits are the shared core's; the method names the protocol's.
PRESETS = core.choices.PRESETS
PRESET_NAMES = core.choices.PRESET_NAMES
METHODS = core.choices.METHODS
METHOD_NAMES = core.choices.METHOD_NAMES
DEFAULT_METHOD = core.choices.DEFAULT_METHOD
MIN_SIZE, MAX_SIZE = core.choices.MIN_SIZE, core.choices.MAX_SIZE
MAX_STEPS = core.choices.MAX_STEPS
MAX_DOCUMENTS = 200  # oldest per-document entries are dropped past this


class SettingsError(core.UserError):
    """A setting the user typed that cannot be used; the message says what to change."""


def user_data_dir(platform: str = sys.platform, env: Optional[Mapping[str, str]] = None,
                  home: Optional[str] = None) -> Path:
    """Where settings, logs and the local engine live, per platform (never inside the plugin folder)."""
    return core.engine_install.user_data_dir("krita", DATA_DIR_ENV, platform, env, home)


def normalize_address(text: str) -> str:
    """The engine endpoint from what the user typed (the shared rule: "5555", "host:port", ...)."""
    return core.address.normalize_address(text)


@dataclass(frozen=True)
class DocSettings:
    source: Optional[LayerRef] = None  # uid "" = the visible image
    labels: Optional[LayerRef] = None
    target: Optional[LayerRef] = None
    preset: str = "preview"
    size: int = 0  # working size in px; 0 = the preset's own
    steps: int = 0  # training iterations; 0 = the preset's own
    seed: int = 0
    live: bool = False
    # Not part of train_settings(): the daemon's model key ignores the method, so a model
    # trained under one method serves an Apply under another.
    method: str = DEFAULT_METHOD

    def validated(self) -> "DocSettings":
        try:
            core.choices.check_preset(self.preset)
            core.choices.check_method(self.method)
            core.choices.check_size(self.size)
            core.choices.check_steps(self.steps)
            core.choices.check_seed(self.seed)
        except core.choices.ChoiceError as e:
            raise SettingsError(str(e)) from None
        return self

    def train_settings(self, overrides: Optional[Mapping[str, object]] = None) -> dict:
        """The `settings` dict of Client.submit (engine TrainSettings fields).

        Only fields that change the result are sent, so that the daemon's model cache
        key stays the same between Train and Apply.
        """
        self.validated()
        return core.choices.train_settings(self.preset, int(self.size), int(self.steps), int(self.seed), overrides)

    def to_dict(self) -> dict:
        return {
            "source": self.source.to_dict() if self.source else None,
            "labels": self.labels.to_dict() if self.labels else None,
            "target": self.target.to_dict() if self.target else None,
            "preset": self.preset,
            "size": self.size,
            "steps": self.steps,
            "seed": self.seed,
            "live": self.live,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: object) -> "DocSettings":
        """Tolerant: a hand-edited or older file keeps whatever still makes sense."""
        if not isinstance(d, dict):
            return cls()
        preset = d.get("preset") if d.get("preset") in PRESET_NAMES else cls.preset
        size = d.get("size") if isinstance(d.get("size"), int) and (
            d["size"] == 0 or MIN_SIZE <= d["size"] <= MAX_SIZE) else 0
        steps = d.get("steps") if isinstance(d.get("steps"), int) and 0 <= d["steps"] <= MAX_STEPS else 0
        seed = d.get("seed") if isinstance(d.get("seed"), int) else 0
        # Files written before the Method combo existed have no "method": the default.
        method = d.get("method") if d.get("method") in METHOD_NAMES else DEFAULT_METHOD
        return cls(
            source=LayerRef.from_dict(d.get("source")),
            labels=LayerRef.from_dict(d.get("labels")),
            target=LayerRef.from_dict(d.get("target")),
            preset=preset,
            size=size,
            steps=steps,
            seed=seed,
            live=bool(d.get("live", False)),
            method=method,
        )


def document_key(file_name: str, doc_name: str) -> str:
    """Saved documents are keyed by their path; unsaved ones by their title for the session."""
    if file_name:
        return os.path.normcase(os.path.abspath(file_name))
    return f"unsaved:{doc_name}"


@dataclass
class SettingsStore:
    """Global and per-document settings in one JSON file."""

    path: Path
    address: str = DEFAULT_ADDRESS
    documents: dict = field(default_factory=dict)  # key -> {"settings": {...}, "used": epoch seconds}
    extra: dict = field(default_factory=dict)  # window-level choices, kept verbatim

    @classmethod
    def load(cls, path: Path) -> "SettingsStore":
        store = cls(Path(path))
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return store
        except (OSError, ValueError) as e:
            # A broken file must not stop the docker; start fresh and say why in the log.
            log.warning("ignoring unreadable settings file %s: %s", path, e)
            return store
        if not isinstance(raw, dict):
            return store
        if isinstance(raw.get("address"), str):
            try:
                store.address = normalize_address(raw["address"])
            except core.UserError:
                pass
        docs = raw.get("documents")
        if isinstance(docs, dict):
            store.documents = {k: v for k, v in docs.items() if isinstance(k, str) and isinstance(v, dict)}
        if isinstance(raw.get("extra"), dict):
            store.extra = raw["extra"]
        return store

    def for_document(self, key: str) -> DocSettings:
        entry = self.documents.get(key)
        return DocSettings.from_dict(entry.get("settings")) if entry else DocSettings()

    def set_document(self, key: str, settings: DocSettings, now: Optional[float] = None) -> None:
        self.documents[key] = {"settings": settings.to_dict(), "used": time.time() if now is None else now}
        if len(self.documents) > MAX_DOCUMENTS:
            by_age = sorted(self.documents, key=lambda k: self.documents[k].get("used", 0))
            for old in by_age[: len(self.documents) - MAX_DOCUMENTS]:
                del self.documents[old]

    def update_document(self, key: str, **changes) -> DocSettings:
        new = replace(self.for_document(key), **changes)
        self.set_document(key, new)
        return new

    def save(self) -> None:
        """Write atomically, so a crash mid-write never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "address": self.address, "documents": self.documents, "extra": self.extra}
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=str(self.path.parent))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
