"""The workflow behind the docker: connect, read layers, submit, follow progress, add
the result layer. No widgets here, so the end-to-end test drives exactly this.

Krita's window must never freeze on the network: the blocking calls (handshake,
submit with its image upload) run on one worker thread, and everything else is a
non-blocking Client.poll() from a QTimer on Krita's event loop. The client socket
is used by one thread at a time only (the worker, or the timer while no worker
runs), which is what ZeroMQ requires of a socket.

"Keep this result" (keep_instant) stops a training job at its instant patch preview:
the training job is cancelled (the daemon checkpoints it, so a later Train resumes),
and once its terminal event is in, the preview becomes the result layer, or, when the
daemon had scaled it down, a method "patch" job makes it again at full size.
"""

from __future__ import annotations

import logging
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

from . import core, krita_io
from . import layers as L
from .messages import (
    CANCELLED_CAPTION, FAILED_CAPTION, KEEP_NOTE, KEEPING_CAPTION, KEEPING_FULL_SIZE_CAPTION,
    Request, build_request, connection_text, describe_error, keep_uses_preview, patch_request, preview_view,
    result_caption, view_of,
)
from .pixels import make_opaque
from .qt_compat import QObject, QTimer, pyqtSignal, qimage_from_rgba
from .settings import DocSettings, normalize_address

log = logging.getLogger(__name__)

KEPT_DONE = "Done: kept the instant result (a later Train resumes the training)"

CONNECT_TIMEOUT_S = 5.0
POLL_INTERVAL_MS = 100


class Controller(QObject):
    connectionChanged = pyqtSignal(bool, str)  # connected, text for the status line
    busyChanged = pyqtSignal(bool)
    progressChanged = pyqtSignal(int, str)  # percent (-1: unknown), caption
    previewReady = pyqtSignal(object, str, bool)  # QImage, caption, instant result?
    keepAvailable = pyqtSignal(bool)  # whether keep_instant() can take an instant result now
    # The preview's state outside the engine's previews: what is being kept, the result that
    # was added, or that the job ended without one (QImage or None to keep the picture, caption).
    previewChanged = pyqtSignal(object, str)
    resultAdded = pyqtSignal(str, str)  # name of the new layer, where it went ("on top of the label layers")
    failed = pyqtSignal(str, str)  # short message, full text to copy
    # Said once per job: a daemon warning, or that an Apply has to train first (shared core's JobProgress).
    noticeAdded = pyqtSignal(str)
    finished = pyqtSignal(bool)  # True when a job ended with a result

    def __init__(self, protocol_modules, parent=None) -> None:
        super().__init__(parent)
        self._client_mod, self._images_mod, self._errors_mod = protocol_modules
        self._client = None
        self._address = ""
        self._info: dict = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-analogy")
        self._future: Optional[Future] = None
        self._on_done: Optional[Callable] = None
        self._job_id: Optional[str] = None
        self._job: Optional[dict] = None  # what the result needs: doc, region, names, above
        self._cancel_requested = False
        self._request: Optional[Request] = None  # the running job's request (keep resubmits it)
        self._instant = None  # the job's instant patch preview (RGBAImage) while it can be kept
        self._keeping = False  # keep_instant() pressed: the training job's end leads to the kept result
        self._kept = False  # the job's result is a kept instant result (for the preview's caption)
        self._pending: Optional[tuple] = None  # (Request, address) waiting for a connect under way
        self._progress = core.progress.JobProgress()  # the running job's events in words
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)

    # ------------------------------------------------------------------ state
    @property
    def address(self) -> str:
        return self._address

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def busy(self) -> bool:
        return self._future is not None or self._job_id is not None

    def device(self) -> str:
        return str(self._info.get("device", ""))

    # ------------------------------------------------------------------ connection
    def connect_to(self, address_text: str) -> None:
        """(Re)connect in the background; connectionChanged reports the outcome."""
        if self._future is not None:
            return
        try:
            address = normalize_address(address_text)
        except ValueError as e:
            self._fail(e)
            return
        self._drop_client()
        self._address = address
        self.connectionChanged.emit(False, f"Connecting to {address}…")
        self._start(self._connect_blocking, self._connected)

    def _connect_blocking(self):
        client = self._client_mod.Client(address=self._address, timeout=CONNECT_TIMEOUT_S)
        try:
            info = client.connect()
        except BaseException:
            client.close()
            raise
        return client, info

    def _connected(self, value, error) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and pending[1] != self._address:
            # The job was started for another address than this connect's: go there instead.
            if error is None:
                value[0].close()
            self._address = pending[1]
            self.progressChanged.emit(-1, f"Connecting to {self._address}…")
            self._start(lambda: self._submit_blocking(pending[0]), self._submitted)
            return
        if error is not None:
            self.connectionChanged.emit(False, "Not connected")
            if pending is not None:  # the job that waited for this connection fails with it
                self._end_job()
                self._fail(error)
            else:
                self.failed.emit(*self._describe(error))
            return
        self._client, self._info = value
        log.info("connected to %s: %s", self._address, self._info)
        self.connectionChanged.emit(True, connection_text(self._info))
        if pending is not None:
            self.progressChanged.emit(-1, "Sending layers to the engine…")
            self._start(lambda: self._submit_blocking(pending[0]), self._submitted)

    def _drop_client(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a dead socket must not stop a reconnect
                log.exception("closing the old client")
        self._client = None
        self._info = {}

    # ------------------------------------------------------------------ jobs
    def run(self, doc, sel: L.Selection, settings: DocSettings, mode: str, address: str = "") -> bool:
        """Read the layers and submit one job (connecting to `address` first when not
        connected). False, with `failed` emitted, if it cannot start."""
        connecting = self._future is not None and self._job is None
        if self.busy and not connecting:
            self.failed.emit("A job is already running; wait for it or press Cancel.", "")
            return False
        try:
            wanted = normalize_address(address or self._address)
            if self._client is not None and wanted != self._address:
                self._drop_client()  # the user typed another address: the job goes there
                self.connectionChanged.emit(False, "Not connected")
            if not connecting:
                self._address = wanted
            request, placement = self._read_request(doc, sel, settings, mode)
        except Exception as e:  # shown in the docker, never as Krita's traceback dialog
            self._fail(e)
            return False
        self._job = placement
        self._request = request
        self._progress = core.progress.JobProgress(
            request.method, expects_model=(mode == "apply"), preset=settings.preset, steps=settings.steps,
            device=self.device())
        self._cancel_requested = False
        self._kept = False
        self.busyChanged.emit(True)
        if connecting:  # a (re)connect is under way: submit when it is done
            self._pending = (request, wanted)
            self.progressChanged.emit(-1, f"Connecting to {self._address}…")
            return True
        self.progressChanged.emit(-1, "Sending layers to the engine…" if self.connected
                                  else f"Connecting to {self._address}…")
        self._start(lambda: self._submit_blocking(request), self._submitted)
        return True

    def _read_request(self, doc, sel: L.Selection, settings: DocSettings, mode: str):
        if doc is None:
            raise L.SelectionError("Open or create a document first.")
        infos, nodes = krita_io.walk(doc)
        L.validate(infos, sel, need_target=(mode == "apply"))
        source = nodes.get(sel.source_uid) if sel.source_uid != L.VISIBLE_IMAGE else None
        labels = nodes[sel.labels_uid]
        target = nodes.get(sel.target_uid) if sel.target_uid else None
        region = krita_io.region_for(doc, source)
        if source is None:
            hide = [nodes[u] for u in L.hidden_for_visible_image(infos, sel)]
            image = krita_io.read_visible(doc, region, hide)
        else:
            image = krita_io.read_node(source, region, f"The source layer “{source.name()}”")
        label_data = krita_io.read_node(labels, region, f"The label layer “{labels.name()}”")
        if target is not None:
            targets, names = [krita_io.read_node(target, region, f"The target layer “{target.name()}”")], \
                [target.name()]
        else:  # Train with no target yet: reconstruct the photo from its own labels
            targets, names = [label_data], [labels.name()]
        request = build_request(region, image, label_data, targets, names,
                                settings.train_settings(), mode, labels_name=f"The label layer “{labels.name()}”",
                                method=settings.method)
        # has_target: a Train without target only reconstructs the photo; nothing worth keeping early.
        # sel: the result goes above these layers (L.result_placement), decided when it arrives.
        placement = {"doc": doc, "region": region, "names": names, "has_target": target is not None, "sel": sel}
        return request, placement

    def _submit_blocking(self, request: Request):
        if self._client is None:
            self._client, self._info = self._connect_blocking()
        RGBAImage = self._images_mod.RGBAImage
        to_img = lambda d: RGBAImage(d.width, d.height, d.rgba)  # noqa: E731
        return self._client.submit(
            to_img(request.image), to_img(request.labels), [to_img(t) for t in request.targets],
            request.settings, target_names=list(request.target_names), method=request.method,
        )

    def _submitted(self, job_id, error) -> None:
        if self._info:
            self.connectionChanged.emit(self._client is not None, connection_text(self._info)
                                        if self._client is not None else "Not connected")
        if error is not None:
            self._end_job()
            self._fail(error)
            return
        self._job_id = job_id
        log.info("submitted job %s", job_id)
        self.progressChanged.emit(-1, "Queued…")
        if self._cancel_requested:
            self.cancel()

    def cancel(self) -> None:
        # Cancel also withdraws a pending "Keep this result": the job then ends as cancelled.
        self._keeping = False
        self._kept = False
        if self._future is not None:  # still uploading: cancel as soon as we have the id
            self._cancel_requested = True
            self.progressChanged.emit(-1, "Cancelling…")
            return
        if self._job_id is None or self._client is None:
            return
        try:
            self._client.cancel(self._job_id)
            self.progressChanged.emit(-1, "Cancelling…")
        except Exception as e:
            self._end_job()
            self._fail(e)

    @property
    def can_keep(self) -> bool:
        """A training job sent its instant patch result and is still training."""
        return self._instant is not None and self._job_id is not None and not self._keeping

    def keep_instant(self) -> bool:
        """Stop the training and keep the instant patch result as the result layer.
        False, with `failed` emitted, when there is nothing to keep."""
        if self._keeping:
            return True
        if not self.can_keep:
            self.failed.emit("There is no instant result to keep now: it comes at the start of a Train.", "")
            return False
        self._keeping = True
        self._kept = True
        self.keepAvailable.emit(False)
        # Show again what will be kept: training previews may have replaced it meanwhile.
        im = self._instant
        self.previewChanged.emit(qimage_from_rgba(im.width, im.height, im.data), KEEPING_CAPTION)
        self.progressChanged.emit(-1, "Stopping the training to keep the instant result…")
        try:
            self._client.cancel(self._job_id)
        except Exception as e:
            self._end_job()
            self._fail(e)
            return False
        return True

    def _finish_keep(self) -> None:
        """The training job is over (cancelled, or it ended first): turn the instant
        result into the result layer."""
        job, request, instant = self._job, self._request, self._instant
        self._job_id, self._keeping, self._instant = None, False, None
        log.info("keeping the instant result (%dx%d)", instant.width, instant.height)
        if keep_uses_preview((instant.width, instant.height), job["region"]):
            self._end_job()
            self.progressChanged.emit(100, "Adding the result layer…")
            self._add_results(job, [instant])
            self.progressChanged.emit(100, KEPT_DONE)
            self.finished.emit(True)
            return
        # The preview was scaled down: the same layers with method "patch" give it at full
        # size in seconds, without training; its result event then adds the layer as usual.
        self._request = patch_request(request)
        self.previewChanged.emit(None, KEEPING_FULL_SIZE_CAPTION)
        self.progressChanged.emit(-1, "Making the instant result at full size…")
        self._start(lambda: self._submit_blocking(self._request), self._submitted)

    # ------------------------------------------------------------------ event loop side
    def _start(self, fn: Callable, on_done: Callable) -> None:
        self._future = self._pool.submit(fn)
        self._on_done = on_done
        self._timer.start()

    def _tick(self) -> None:
        try:
            if self._future is not None:
                if not self._future.done():
                    return
                fut, done = self._future, self._on_done
                self._future, self._on_done = None, None
                err = fut.exception()
                done(None if err else fut.result(), err)
                return
            if self._job_id is None:
                self._timer.stop()
                return
            for ev in self._client.poll(self._job_id, timeout=0.0):
                self._handle(ev)
                if self._job_id is None:
                    break
        except Exception as e:  # a dead daemon or a bug: report in the docker, keep Krita running
            during_job = self._job_id is not None
            self._end_job()
            self._fail(e, during_job=during_job)

    def _handle(self, ev) -> None:
        update = self._progress.update(ev.kind, ev.data or {})
        if update.notice:
            self.noticeAdded.emit(update.notice)
        view = view_of(update)
        if self._keeping and ev.terminal:
            # Whatever ended the training (the cancel, or it finished or failed first), the
            # user chose the instant result, which is still valid.
            self._finish_keep()
            return
        if ev.kind == "preview" and ev.images:
            im = ev.images[0]
            pv = preview_view(ev.data or {})
            caption = pv.caption
            if pv.instant and view.text:
                # The queued event said "Starting…"; the instant result is in and the job goes on.
                self.progressChanged.emit(view.percent, view.text)
            if pv.keepable and self._job is not None and self._job.get("has_target"):
                self._instant = im
                self.keepAvailable.emit(True)
            elif self.can_keep and not pv.instant:
                caption += KEEP_NOTE  # the Keep button is still offered under a training preview
            self.previewReady.emit(qimage_from_rgba(im.width, im.height, im.data), caption, pv.instant)
            return
        if ev.kind in ("queued", "progress"):
            self.progressChanged.emit(view.percent, view.text)
            return
        if ev.kind == "result":
            job = self._job
            self._end_job()
            self.progressChanged.emit(100, "Adding the result layer…")
            self._add_results(job, ev.images)
            self.progressChanged.emit(100, KEPT_DONE if self._kept else "Done")
            self.finished.emit(True)
            return
        if ev.kind in ("error", "cancelled"):
            self._end_job()
            code = (ev.data or {}).get("code", "CANCELLED" if ev.kind == "cancelled" else "ENGINE_ERROR")
            message = (ev.data or {}).get("message", "")
            err = self._errors_mod.JobFailed(code, message or ev.kind)
            self.progressChanged.emit(0, view.text)
            self.previewChanged.emit(None, CANCELLED_CAPTION if ev.kind == "cancelled" else FAILED_CAPTION)
            self._fail(err)

    def _add_results(self, job: dict, images) -> None:
        doc = job["doc"]
        region = job["region"]
        try:
            infos, nodes = krita_io.walk(doc)
        except Exception as e:  # RuntimeError from a deleted C++ document
            raise L.SelectionError("The document was closed before the result arrived.") from e
        place = L.result_placement(infos, job["sel"])
        above = nodes.get(place.above_uid)
        where = place.where
        existing = [i.name for i in infos]
        for name, im in zip(job["names"], images):
            if (im.width, im.height) != (region.width, region.height):
                raise L.SelectionError(
                    f"The engine returned {im.width}×{im.height} pixels for a {region.width}×{region.height} area."
                )
            layer_name = L.result_name(name, existing)
            existing.append(layer_name)
            opaque = make_opaque(im.data)
            # Several targets: each result right above the one before, so the newest is on top.
            above = krita_io.add_result_layer(doc, above, layer_name, region, opaque)
            log.info("added result layer %r %s", layer_name, where)
            self.resultAdded.emit(layer_name, where)
            self.previewChanged.emit(qimage_from_rgba(im.width, im.height, opaque),
                                     result_caption(layer_name, kept=self._kept))
            where = f"above “{layer_name}”"

    def _end_job(self) -> None:
        was_busy = self._job_id is not None or self._job is not None
        had_instant = self._instant is not None
        self._job_id = None
        self._job = None
        self._request = None
        self._instant = None
        self._keeping = False
        if had_instant:
            self.keepAvailable.emit(False)
        if self._future is None:
            self._timer.stop()
        if was_busy:
            self.busyChanged.emit(False)

    # ------------------------------------------------------------------ errors
    def _describe(self, error: BaseException, during_job: bool = False) -> tuple[str, str]:
        short, details = describe_error(error, self._address, during_job=during_job)
        if short.startswith("Semantic Analogy failed unexpectedly"):
            details += "\n\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))
        if type(error).__name__ == "DaemonUnavailable":
            self._drop_client()
            self.connectionChanged.emit(False, "Not connected")
        return short, details

    def _fail(self, error: BaseException, during_job: bool = False) -> None:
        short, details = self._describe(error, during_job)
        log.warning("%s", details)
        self.failed.emit(short, details)
        self.finished.emit(False)

    def shutdown(self) -> None:
        self._timer.stop()
        if self._job_id is not None and self._client is not None:
            try:
                self._client.cancel(self._job_id)
            except Exception:
                pass
        self._pool.shutdown(wait=False)
        self._drop_client()
