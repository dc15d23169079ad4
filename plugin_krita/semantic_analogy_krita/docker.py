"""The "Semantic Analogy" docker: engine connection, layer pickers, settings, Train /
Apply / Cancel, progress, preview (with "Keep this result" for the instant result)
and errors in plain words."""

from __future__ import annotations

import atexit
import logging
from dataclasses import replace
from typing import Optional

from krita import DockWidget, Krita  # type: ignore[import-not-found]

from . import core, krita_io, palette
from . import layers as L
from .deps import MissingDependency, load_protocol
from .qt_compat import (
    ALIGN_CENTER, KEEP_ASPECT, TOOLTIP_ROLE, SMOOTH, QApplication, QCheckBox, QComboBox, QFormLayout, QGridLayout, QGroupBox,
    QGuiApplication, QHBoxLayout, QLabel, QLineEdit, QPixmap, QPlainTextEdit, QProgressBar, QPushButton,
    QScrollArea, QSpinBox, QTimer, QToolButton, QVBoxLayout, QWidget,
)
from .settings import DEFAULT_METHOD, METHODS, PRESETS, SettingsStore, document_key, user_data_dir

log = logging.getLogger(__name__)

DOCKER_ID = "semantic_analogy_docker"
TITLE = "Semantic Analogy"
PREVIEW_PX = 160
LIVE_CHECK_MS = 1000


class _LayerCombo(QComboBox):
    """Refreshes its layer list right before it opens: Krita sends no signal when
    layers are added or renamed."""

    def __init__(self, refresh, parent=None) -> None:
        super().__init__(parent)
        self._refresh = refresh

    def showPopup(self) -> None:  # noqa: N802 (Qt naming)
        self._refresh()
        super().showPopup()


class SemanticAnalogyDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(TITLE)
        self.setObjectName(DOCKER_ID)
        self.store = SettingsStore.load(user_data_dir() / "settings.json")
        self.controller = None
        self._doc_key: Optional[str] = None
        self._filling = False  # True while the combos are refilled, to ignore their signals
        self._live_key: Optional[int] = None
        self._trained_doc: Optional[str] = None  # document key the last successful job ran on
        self._build_ui()
        try:
            from .controller import Controller

            self.controller = Controller(load_protocol(), self)
        except MissingDependency as e:
            self._set_enabled(False)
            self.show_error(str(e).splitlines()[0], str(e))
            self.state.setText("Not available: a module is missing (see below)")
        else:
            c = self.controller
            c.connectionChanged.connect(self._on_connection)
            c.busyChanged.connect(self._on_busy)
            c.progressChanged.connect(self._on_progress)
            c.previewReady.connect(self._on_preview)
            c.keepAvailable.connect(self._on_keep_available)
            c.previewChanged.connect(self._on_preview_changed)
            c.resultAdded.connect(self._on_result)
            c.failed.connect(self.show_error)
            c.noticeAdded.connect(self._on_notice)
            c.finished.connect(self._on_finished)
            # close the socket and stop the worker before Krita tears Qt down
            QApplication.instance().aboutToQuit.connect(c.shutdown)
            self._make_local_engine()
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(LIVE_CHECK_MS)
        self._live_timer.timeout.connect(self._live_check)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        body = QWidget(self)
        root = QVBoxLayout(body)

        engine = QGroupBox("Engine", body)
        g = QGridLayout(engine)
        self.address = QLineEdit(self.store.address, engine)
        self.address.setToolTip("Where `semantic-analogy serve` listens, e.g. tcp://127.0.0.1:5555")
        self.connect_btn = QPushButton("Connect", engine)
        self.connect_btn.clicked.connect(self._connect)
        self.state = QLabel("Not connected", engine)
        self.state.setWordWrap(True)
        g.addWidget(self.address, 0, 0)
        g.addWidget(self.connect_btn, 0, 1)
        g.addWidget(self.state, 1, 0, 1, 2)
        # The managed local engine: installed into the plug-in's user data folder, started
        # and stopped with Krita (local_engine.py; the work is plugin_core's).
        self.local_state = QLabel("", engine)
        self.local_state.setWordWrap(True)
        g.addWidget(self.local_state, 2, 0, 1, 2)
        buttons = QHBoxLayout()
        self.install_btn = QPushButton("Install local engine", engine)
        self.install_btn.setToolTip("Install the engine on this computer, in its own Python environment in "
                                    "Semantic Analogy's user data folder (a few GB: torch), then start it")
        self.install_btn.clicked.connect(lambda *_: self._install_pressed())
        self.start_btn = QPushButton("Start", engine)
        self.start_btn.setToolTip("Start the installed local engine on this computer and connect to it")
        self.start_btn.clicked.connect(lambda *_: self._start_pressed())
        self.remove_btn = QPushButton("Remove", engine)
        self.remove_btn.setToolTip("Stop and delete the local engine's environment (its logs are kept)")
        self.remove_btn.clicked.connect(lambda *_: self._remove_pressed())
        self.log_btn = QPushButton("Log", engine)
        self.log_btn.setToolTip("Show the end of the install log and the engine's log")
        self.log_btn.clicked.connect(lambda *_: self._show_engine_log())
        for b in (self.install_btn, self.start_btn, self.remove_btn, self.log_btn):
            buttons.addWidget(b)
        g.addLayout(buttons, 3, 0, 1, 2)
        self.keep_engine = QCheckBox("Keep the engine running after Krita quits", engine)
        self.keep_engine.setChecked(bool(self.store.extra.get("keep_engine_running", False)))
        self.keep_engine.toggled.connect(self._on_keep_engine)
        g.addWidget(self.keep_engine, 4, 0, 1, 2)
        self.engine_progress = QProgressBar(engine)
        self.engine_progress.setRange(0, 100)
        self.engine_progress.setVisible(False)
        self.engine_step = QLabel("", engine)
        self.engine_step.setWordWrap(True)
        self.engine_step.setVisible(False)
        g.addWidget(self.engine_progress, 5, 0, 1, 2)
        g.addWidget(self.engine_step, 6, 0, 1, 2)
        root.addWidget(engine)

        lay = QGroupBox("Layers", body)
        f = QFormLayout(lay)
        self.source = _LayerCombo(self.refresh_layers, lay)
        self.labels = _LayerCombo(self.refresh_layers, lay)
        self.target = _LayerCombo(self.refresh_layers, lay)
        self.source.setToolTip("The photo: a layer, or the visible image without the label layers")
        self.labels.setToolTip("Flat colours painted over the photo, one colour per region")
        self.target.setToolTip("An edited copy of the labels: the layout you want")
        for combo in (self.source, self.labels, self.target):
            combo.currentIndexChanged.connect(self._remember)
        f.addRow("Source image", self.source)
        f.addRow("Label layer", self.labels)
        f.addRow("Target labels", self.target)
        helpers = QHBoxLayout()
        self.new_labels_btn = QPushButton("New label layer", lay)
        self.new_labels_btn.clicked.connect(self._new_label_layer)
        self.dup_btn = QPushButton("Duplicate as target", lay)
        self.dup_btn.clicked.connect(self._duplicate_as_target)
        helpers.addWidget(self.new_labels_btn)
        helpers.addWidget(self.dup_btn)
        f.addRow(helpers)
        swatches = QGridLayout()
        swatches.setSpacing(2)
        for i, (name, rgb) in enumerate(palette.LABEL_COLOURS):
            b = QToolButton(lay)
            b.setFixedSize(20, 20)
            b.setStyleSheet(f"background-color: {palette.hex_colour(rgb)}; border: 1px solid #444;")
            b.setToolTip(f"Class {i + 1}: {name} — paint with this colour")
            b.clicked.connect(lambda _=False, c=rgb: krita_io.set_foreground(c))
            swatches.addWidget(b, i // 8, i % 8)
        f.addRow(swatches)
        hint = QLabel(palette.ANTIALIAS_HINT, lay)
        hint.setWordWrap(True)
        font = hint.font()
        font.setPointSizeF(font.pointSizeF() * 0.9)
        font.setItalic(True)
        hint.setFont(font)
        f.addRow(hint)
        root.addWidget(lay)

        opts = QGroupBox("Quality", body)
        f2 = QFormLayout(opts)
        self.preset = QComboBox(opts)
        for i, choice in enumerate(PRESETS):
            self.preset.addItem(choice.label, choice.nick)
            self.preset.setItemData(i, choice.help, TOOLTIP_ROLE)
        self.preset.currentIndexChanged.connect(self._remember)
        self.size = QSpinBox(opts)
        self.size.setRange(0, core.choices.MAX_SIZE)
        self.size.setSingleStep(32)
        self.size.setSpecialValueText("Auto (preset)")
        self.size.setSuffix(" px")
        self.size.setToolTip("Working size: the longest side the engine trains at")
        self.size.valueChanged.connect(self._remember)
        self.steps = QSpinBox(opts)
        self.steps.setRange(0, core.choices.MAX_STEPS)
        self.steps.setSingleStep(100)
        self.steps.setSpecialValueText("Auto (preset)")
        self.steps.setToolTip("Training iterations: more is slower and usually better")
        self.steps.valueChanged.connect(self._remember)
        self.method = QComboBox(opts)
        for i, choice in enumerate(METHODS):
            self.method.addItem(choice.label, choice.nick)
            self.method.setItemData(i, choice.help, TOOLTIP_ROLE)
        self.method.setToolTip(
            "How the result is made. Photo patches (the default): no training, a full-size result in "
            "seconds, as good as the trained methods in our tests. Trained layout + photo detail: a network "
            "trained on the photo decides the layout, the photo's own patches give detail. Changing it "
            "after Train reuses the trained model.")
        self.method.currentIndexChanged.connect(self._remember)
        self.method.currentIndexChanged.connect(lambda *_: self._sync_training_widgets())
        f2.addRow("Method", self.method)
        f2.addRow("Preset", self.preset)
        f2.addRow("Working size", self.size)
        f2.addRow("Training steps", self.steps)
        root.addWidget(opts)

        run = QHBoxLayout()
        self.train_btn = QPushButton("Train", body)
        self.train_btn.setToolTip("Train on the photo and its labels, then apply the target (if any)")
        self.apply_btn = QPushButton("Apply", body)
        self.apply_btn.setToolTip("Re-arrange the photo to the target labels (about a second once trained)")
        self.cancel_btn = QPushButton("Cancel", body)
        self.cancel_btn.setEnabled(False)
        self.train_btn.clicked.connect(lambda: self.start("train"))
        self.apply_btn.clicked.connect(lambda: self.start("apply"))
        self.cancel_btn.clicked.connect(self._cancel)
        for b in (self.train_btn, self.apply_btn, self.cancel_btn):
            run.addWidget(b)
        root.addLayout(run)
        self.live = QCheckBox("Live: apply again when the target layer changes", body)
        self.live.toggled.connect(self._on_live_toggled)
        root.addWidget(self.live)

        self.progress = QProgressBar(body)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_text = QLabel("", body)
        self.progress_text.setWordWrap(True)
        root.addWidget(self.progress)
        root.addWidget(self.progress_text)
        # What the engine says once per job (a warning, or that an Apply trains first).
        self.notice = QLabel("", body)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b07000;")
        self.notice.setVisible(False)
        root.addWidget(self.notice)
        self.preview = QLabel(body)
        self.preview.setAlignment(ALIGN_CENTER)
        self.preview.setMinimumHeight(PREVIEW_PX // 2)
        self.preview.setToolTip("Live preview while training")
        root.addWidget(self.preview)
        self.preview_caption = QLabel("", body)
        self.preview_caption.setWordWrap(True)
        self.preview_caption.setAlignment(ALIGN_CENTER)
        root.addWidget(self.preview_caption)
        self.keep_btn = QPushButton("Keep this result", body)
        self.keep_btn.setToolTip("Stop the training here and add the instant result as the result layer "
                                 "(the training is saved: a later Train continues it)")
        self.keep_btn.setVisible(False)  # shown with an instant result that can be kept
        self.keep_btn.clicked.connect(lambda *_: self.keep_instant())
        root.addWidget(self.keep_btn)

        self.error = QLabel("", body)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d04040;")
        self.details_btn = QPushButton("Details…", body)
        self.details_btn.setCheckable(True)
        self.details_btn.setVisible(False)
        self.details = QPlainTextEdit(body)
        self.details.setReadOnly(True)
        self.details.setVisible(False)
        self.details.setMaximumHeight(140)
        self.copy_btn = QPushButton("Copy error text", body)
        self.copy_btn.setVisible(False)
        self.copy_btn.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.details.toPlainText()))
        self.details_btn.toggled.connect(self.details.setVisible)
        self.details_btn.toggled.connect(self.copy_btn.setVisible)
        root.addWidget(self.error)
        row = QHBoxLayout()
        row.addWidget(self.details_btn)
        row.addWidget(self.copy_btn)
        root.addLayout(row)
        root.addWidget(self.details)
        root.addStretch(1)

        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setWidget(scroll)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.connect_btn, self.train_btn, self.apply_btn, self.live, self.install_btn, self.start_btn,
                  self.remove_btn, self.log_btn, self.keep_engine):
            w.setEnabled(on)

    # ------------------------------------------------------------------ the local engine
    def _make_local_engine(self) -> None:
        from .local_engine import LocalEngine

        # No Qt parent: it must outlive the docker's widgets while Krita closes.
        self.engine = LocalEngine(user_data_dir(), keep_running=self.keep_engine.isChecked())
        self.engine.stateChanged.connect(self._on_engine_state)
        self.engine.progressChanged.connect(self._on_engine_progress)
        self.engine.started.connect(self._on_engine_started)
        self.engine.failed.connect(self._on_engine_failed)
        # Stop the engine started here when Krita quits. Krita closes its windows, and so this
        # docker and its children, before Qt's aboutToQuit: the notifier's applicationClosing
        # comes first (it emits only once activated), and atexit is the net when Krita's Python
        # shuts down. A crash is the daemon's own watch on Krita's PID (serve --parent-pid).
        notifier = Krita.instance().notifier()
        notifier.setActive(True)
        notifier.applicationClosing.connect(self.engine.shutdown)
        QApplication.instance().aboutToQuit.connect(self.engine.shutdown)
        atexit.register(self.engine.shutdown)
        self._on_engine_state(*self.engine.describe())

    def _on_engine_state(self, state: str, text: str) -> None:
        from . import local_engine as LE

        self.local_state.setText(text)
        busy = state in (LE.INSTALLING, LE.STARTING, LE.REMOVING, LE.STOPPING)
        installed = state in (LE.EI.READY, LE.EI.OUTDATED, LE.RUNNING)
        self.install_btn.setText({LE.INSTALLING: "Cancel install", LE.EI.INCOMPLETE: "Repair install",
                                  LE.EI.OUTDATED: "Update engine"}.get(state, "Install local engine"))
        self.install_btn.setVisible(state not in (LE.EI.READY, LE.RUNNING))
        self.install_btn.setEnabled(state == LE.INSTALLING or not busy)
        managed = state == LE.RUNNING and (self.engine.process.started_here or bool(self.engine.process.lock_holder()))
        self.start_btn.setText("Stop" if state == LE.RUNNING else "Start")
        self.start_btn.setEnabled(not busy and ((installed and state != LE.RUNNING) or managed))
        self.remove_btn.setEnabled(not busy and state != LE.EI.NOT_INSTALLED)
        self.engine_progress.setVisible(state == LE.INSTALLING)
        self.engine_step.setVisible(busy and bool(self.engine_step.text()))
        if not busy:
            self.engine_step.setText("")

    def _on_engine_progress(self, percent: int, text: str) -> None:
        self.engine_progress.setValue(max(0, min(100, percent)))
        self.engine_step.setText(text)
        self.engine_step.setVisible(True)

    def _on_engine_started(self, address: str, text: str) -> None:
        self.engine_step.setText("")
        self.engine_step.setVisible(False)
        self.address.setText(address)
        self.show_info(text + ".")
        self._connect()

    def _on_engine_failed(self, short: str, details: str) -> None:
        self.engine_step.setVisible(False)
        self.show_error(short, details)

    def _install_pressed(self) -> None:
        from . import local_engine as LE

        if self.engine.busy == LE.INSTALLING:
            self.engine.cancel()
            return
        self.clear_error()
        self.engine.install(update=self.engine.install_state().state == LE.EI.OUTDATED, address=self.address.text())

    def _start_pressed(self) -> None:
        from . import local_engine as LE

        self.clear_error()
        if self.engine.describe()[0] == LE.RUNNING:
            self.engine.stop()
        else:
            self.engine.start(self.address.text())

    def _remove_pressed(self) -> None:
        self.clear_error()
        self.engine.remove()

    def _show_engine_log(self) -> None:
        self.show_error("The local engine's logs (Details… shows them):", self.engine.log_text())
        self.details_btn.setChecked(True)

    def _on_keep_engine(self, on: bool) -> None:
        self.store.extra["keep_engine_running"] = bool(on)
        self._save()
        if getattr(self, "engine", None) is not None:
            self.engine.set_keep_running(on)

    def _auto_start_local(self) -> bool:
        """At the docker's first show: start the installed local engine (or use the one that
        runs) when the address is this computer's; False when there is none to start."""
        from . import local_engine as LE

        engine = getattr(self, "engine", None)
        if engine is None or engine.describe()[0] not in (LE.EI.READY, LE.EI.OUTDATED):
            return False
        try:
            address = core.address.normalize_address(self.address.text())
        except core.UserError:
            return False
        if not address.startswith(("tcp://127.0.0.1:", "tcp://localhost:")):
            return False  # a remote engine was chosen: connect to that one
        return engine.start(address)

    def _sync_training_widgets(self) -> None:
        """Method patch trains nothing: preset, size and steps do not apply to it, so they are
        greyed out (as in GIMP's dialog) rather than left for the user to wonder about."""
        method = self.method.currentData() or DEFAULT_METHOD
        on = core.choices.needs_training(method) and not (self.controller is not None and self.controller.busy)
        for w in (self.preset, self.size, self.steps):
            w.setEnabled(on)

    # ------------------------------------------------------------------ Krita hooks
    def canvasChanged(self, canvas) -> None:  # noqa: N802 (Krita's name)
        """Called when the active view changes: show that document's choices."""
        self.refresh_layers()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self.controller is not None and not self.controller.connected and not self.controller.busy:
            first, self._shown = not getattr(self, "_shown", False), True
            # First show: start the local engine if one is installed (it connects once it
            # answers); otherwise, and at later shows, try the remembered address.
            QTimer.singleShot(0, lambda: (first and self._auto_start_local()) or self._connect())

    # ------------------------------------------------------------------ documents and layers
    def _doc(self):
        return Krita.instance().activeDocument()

    def refresh_layers(self) -> None:
        """Fill the pickers for the active document and select its remembered layers."""
        try:
            self._refresh_layers()
        except Exception as e:  # called from Krita's signals: never reach Krita's modal exception hook
            self._report(e)

    def _refresh_layers(self) -> None:
        doc = self._doc()
        self._filling = True
        try:
            for combo in (self.source, self.labels, self.target):
                combo.clear()
            if doc is None:
                self._doc_key = None
                return
            self._doc_key = document_key(doc.fileName(), doc.name() or "untitled")
            infos, _ = krita_io.walk(doc)
            ds = self.store.for_document(self._doc_key)
            sel = L.choose(infos, ds.source, ds.labels, ds.target)
            self.source.addItem("Visible image (without label layers)", L.VISIBLE_IMAGE)
            self.labels.addItem("— choose —", "")
            self.target.addItem("— none (Train reconstructs the photo) —", "")
            for info in reversed(infos):  # top of the stack first, as in the Layers docker
                if not L.is_readable(info):
                    continue
                text = "  " * info.depth + info.name
                for combo in (self.source, self.labels, self.target):
                    combo.addItem(text, info.key)
            for combo, uid in ((self.source, sel.source_uid), (self.labels, sel.labels_uid),
                               (self.target, sel.target_uid)):
                i = combo.findData(uid)
                combo.setCurrentIndex(max(i, 0))
            i = self.preset.findData(ds.preset)
            self.preset.setCurrentIndex(max(i, 0))
            self.size.setValue(ds.size)
            self.steps.setValue(ds.steps)
            self.method.setCurrentIndex(max(self.method.findData(ds.method), 0))
            self.live.setChecked(ds.live)
        finally:
            self._filling = False
        self._sync_training_widgets()

    def selection(self) -> L.Selection:
        return L.Selection(self.source.currentData() or "", self.labels.currentData() or "",
                           self.target.currentData() or "")

    def _ref(self, combo) -> Optional[L.LayerRef]:
        uid = combo.currentData()
        if uid is None:
            return None
        name = combo.currentText().strip()
        return L.LayerRef(uid, name)

    def _remember(self, *_args) -> None:
        if self._filling or self._doc_key is None:
            return
        src = self._ref(self.source)
        self.store.update_document(
            self._doc_key,
            source=src,
            labels=self._ref(self.labels) if self.labels.currentData() else None,
            target=self._ref(self.target) if self.target.currentData() else None,
            preset=self.preset.currentData() or "preview",
            size=int(self.size.value()),
            steps=int(self.steps.value()),
            live=self.live.isChecked(),
            method=self.method.currentData() or DEFAULT_METHOD,
        )
        self._save()

    def _save(self) -> None:
        try:
            self.store.save()
        except OSError as e:  # a read-only home must not break painting
            log.warning("could not save settings: %s", e)

    # ------------------------------------------------------------------ helpers
    def _new_label_layer(self) -> None:
        doc = self._doc()
        if doc is None:
            self.show_error("Open the photo first, then add a label layer over it.", "")
            return
        try:
            infos, nodes = krita_io.walk(doc)
            src = nodes.get(self.source.currentData() or "")
            above = src or doc.activeNode()
            node = krita_io.new_label_layer(doc, above)
            krita_io.set_foreground(palette.LABEL_COLOURS[0][1])
            where = krita_io.install_palette_file()
            self.refresh_layers()
            self.labels.setCurrentIndex(max(self.labels.findData(node.uniqueId().toString()), 0))
            self._remember()
            note = f" The palette is also saved as {where.name} for the Palette docker (after a restart)." \
                if where else ""
            self.show_info(f"Added “{node.name()}”. Pick a class colour below and paint each region "
                           f"of the photo in flat colour.{note}")
        except Exception as e:
            self._report(e)

    def _duplicate_as_target(self) -> None:
        doc = self._doc()
        uid = self.labels.currentData()
        if doc is None or not uid:
            self.show_error("Choose the label layer first; “Duplicate as target” copies it.", "")
            return
        try:
            _, nodes = krita_io.walk(doc)
            node = krita_io.duplicate_as_target(doc, nodes[uid])
            self.refresh_layers()
            self.target.setCurrentIndex(max(self.target.findData(node.uniqueId().toString()), 0))
            self._remember()
            self.show_info(f"Added “{node.name()}”: move, reshape or repaint its regions, then press Apply.")
        except Exception as e:
            self._report(e)

    # ------------------------------------------------------------------ actions
    def _connect(self) -> None:
        if self.controller is None:
            return
        self.store.address = self.address.text().strip() or self.store.address
        self._save()
        self.controller.connect_to(self.address.text())

    def start(self, mode: str) -> bool:
        """Train or Apply on the active document (also what the end-to-end test presses)."""
        if self.controller is None:
            return False
        self.clear_error()
        doc = self._doc()
        self.refresh_layers_keep()
        if self._doc_key is None:
            self.show_error("Open or create a document first.", "")
            return False
        ds = replace(self.store.for_document(self._doc_key), preset=self.preset.currentData() or "preview",
                     size=int(self.size.value()), steps=int(self.steps.value()),
                     method=self.method.currentData() or DEFAULT_METHOD)
        self._live_key = self._target_key(doc)
        started = self.controller.run(doc, self.selection(), ds, mode, address=self.address.text())
        if started:
            self.preview.clear()
            self.preview_caption.setText("")
            self.notice.setText("")
            self.notice.setVisible(False)
        return started

    def refresh_layers_keep(self) -> None:
        """Refresh the lists but keep what the user picked (layers may have been renamed)."""
        self._remember()
        self.refresh_layers()

    def _cancel(self) -> None:
        if self.controller is not None:
            self.controller.cancel()

    def keep_instant(self) -> bool:
        """"Keep this result" (also what the end-to-end test presses)."""
        if self.controller is None:
            return False
        try:
            return self.controller.keep_instant()
        except Exception as e:  # a button's slot: never reach Krita's modal exception hook
            self._report(e)
            return False

    # ------------------------------------------------------------------ live mode
    def _on_live_toggled(self, on: bool) -> None:
        self._remember()
        if on:
            self._live_key = self._target_key(self._doc())
            self._live_timer.start()
        else:
            self._live_timer.stop()

    def _target_key(self, doc) -> Optional[int]:
        uid = self.target.currentData()
        if doc is None or not uid:
            return None
        try:
            infos, nodes = krita_io.walk(doc)
            node = nodes.get(uid)
            src = nodes.get(self.source.currentData() or "")
            return krita_io.node_content_key(node, krita_io.region_for(doc, src)) if node else None
        except Exception:  # live mode is best effort; Apply still reports errors
            return None

    def _live_check(self) -> None:
        if self.controller is None or self.controller.busy or not self.isVisible():
            return
        if self._trained_doc is None or self._trained_doc != self._doc_key:
            return  # only after a first successful Train on this document
        key = self._target_key(self._doc())
        if key is not None and key != self._live_key:
            self.start("apply")

    # ------------------------------------------------------------------ controller signals
    def _on_connection(self, ok: bool, text: str) -> None:
        self.state.setText(("● " if ok else "○ ") + text)
        self.connect_btn.setText("Reconnect" if ok else "Connect")

    def _on_busy(self, busy: bool) -> None:
        for w in (self.train_btn, self.apply_btn, self.connect_btn):
            w.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)
        self._sync_training_widgets()

    def _on_notice(self, text: str) -> None:
        lines = [line for line in self.notice.text().split("\n") if line]
        if text not in lines:
            lines.append(text)
        self.notice.setText("\n".join(lines))
        self.notice.setVisible(True)

    def _on_progress(self, percent: int, text: str) -> None:
        if percent < 0:
            self.progress.setRange(0, 0)  # busy indicator
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(percent)
        self.progress_text.setText(text)

    def _on_preview(self, qimage, caption: str = "", instant: bool = False) -> None:
        pix = QPixmap.fromImage(qimage).scaled(PREVIEW_PX, PREVIEW_PX, KEEP_ASPECT, SMOOTH)
        self.preview.setPixmap(pix)
        self.preview_caption.setText(caption)

    def _on_preview_changed(self, qimage, caption: str) -> None:
        """The job's state changed the preview: what is kept, the added result, or no result."""
        if qimage is not None:
            self._on_preview(qimage, caption)
        else:
            self.preview_caption.setText(caption)

    def _on_keep_available(self, on: bool) -> None:
        self.keep_btn.setVisible(on)
        self.keep_btn.setEnabled(on)

    def _on_result(self, name: str, where: str = "") -> None:
        self._trained_doc = self._doc_key
        place = f" {where}" if where else ""
        self.show_info(f"Added layer “{name}”{place}. Delete it to undo; the source layers are unchanged.")

    def _on_finished(self, ok: bool) -> None:
        if not ok:
            self.progress.setRange(0, 100)
            self.progress.setValue(0)
            self.progress_text.setText("Stopped: see the message below.")

    # ------------------------------------------------------------------ messages
    def show_error(self, short: str, details: str) -> None:
        self.error.setStyleSheet("color: #d04040;")
        self.error.setText(short)
        self.details.setPlainText(details or short)
        self.details_btn.setVisible(bool(short))

    def show_info(self, text: str) -> None:
        self.error.setStyleSheet("")
        self.error.setText(text)
        self.details_btn.setChecked(False)
        self.details_btn.setVisible(False)

    def clear_error(self) -> None:
        self.show_info("")

    def _report(self, e: BaseException) -> None:
        from .messages import describe_error

        short, details = describe_error(e)
        if short.startswith("Semantic Analogy failed unexpectedly"):
            import traceback

            details += "\n\n" + "".join(traceback.format_exception(type(e), e, e.__traceback__))
        log.warning("%s", details)
        self.show_error(short, details)
