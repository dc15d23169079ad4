"""The docker's managed local engine: Install, Update, Remove, Start, Stop, with progress.

The work is the shared core's (plugin_core/engine_install.py and engine_launch.py); this
class only runs it off Krita's event loop and reports back in signals. One worker thread
runs one action at a time (installing, starting, removing); a QTimer on Krita's loop
passes on what the worker queued, so every signal reaches the widgets on Krita's thread.

What it decides: after an install the engine starts by itself; the engine started here
stops when Krita quits unless the painter ticked "keep it running"; an engine already
running (the managed one from an earlier session, or any daemon on the address) is used,
never a second one started.
"""

from __future__ import annotations

import logging
import os
import queue
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from . import core
from .qt_compat import QObject, QTimer, pyqtSignal

log = logging.getLogger(__name__)

EI = core.engine_install
EL = core.engine_launch
POLL_MS = 150
WHEEL_DIR = Path(__file__).resolve().parent / "engine_wheel"  # build_zip.py puts the wheel here

INSTALLING, STARTING, REMOVING, STOPPING = "installing", "starting", "removing", "stopping"
RUNNING = "running"


class LocalEngine(QObject):
    # state: engine_install's NOT_INSTALLED/INCOMPLETE/OUTDATED/READY, RUNNING, or a busy
    # action (INSTALLING, ...); text: one line for the docker.
    stateChanged = pyqtSignal(str, str)
    progressChanged = pyqtSignal(int, str)  # percent (-1: unknown), the step in words
    started = pyqtSignal(str, str)  # address, what happened ("Started…", "Using…")
    failed = pyqtSignal(str, str)  # short message, details (with the log's tail)

    def __init__(self, data_dir: Path, wheel_dir: Path = WHEEL_DIR, keep_running: bool = False,
                 parent=None, ping: Callable[[str, float], bool] = EL.protocol_ping,
                 python: str = "") -> None:
        super().__init__(parent)
        self.home = EI.EngineHome(Path(data_dir) / "engine")
        try:
            wheel: Optional[EI.EngineWheel] = EI.EngineWheel.find(wheel_dir)
            self._no_wheel = ""
        except EI.InstallError as e:
            wheel, self._no_wheel = None, str(e)
        self.installer = EI.Installer(self.home, wheel, python=python, progress=self._queue_step)
        self.process = EL.EngineProcess(self.home, ping=ping)
        self.keep_running = keep_running
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-analogy-engine")
        self._future: Optional[Future] = None
        self._busy = ""
        self._shut_down = False
        self._address_hint = ""  # where to start after an install (the docker's address field)
        self._events: "queue.Queue[tuple]" = queue.Queue()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._tick)

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> str:
        """The action under way ("" when none)."""
        return self._busy

    @property
    def address(self) -> str:
        return self.process.address

    def install_state(self) -> EI.InstallState:
        return self.installer.state()

    def describe(self) -> tuple[str, str]:
        """(state, text) for the docker now."""
        if self._busy:
            return self._busy, {INSTALLING: "Installing the local engine…", STARTING: "Starting the local engine…",
                                REMOVING: "Removing the local engine…", STOPPING: "Stopping the local engine…"
                                }[self._busy]
        if self.process.address:
            how = "started by Krita" if self.process.started_here else "already running"
            return RUNNING, f"Local engine running at {self.process.address} ({how})"
        st = self.install_state()
        if st.state == EI.NOT_INSTALLED and self._no_wheel:
            return st.state, "No local engine: this plug-in carries no engine package"
        return st.state, st.text

    def log_text(self) -> str:
        """The install log's and the daemon log's tails, for the docker's log view."""
        parts = []
        install = self.installer.log_tail(60)
        if install:
            parts.append(f"--- {self.home.log} ---\n{install}")
        if self.home.daemon_log.exists():
            parts.append(f"--- {self.home.daemon_log} ---\n{self.process.log_tail(40)}")
        return "\n\n".join(parts) or "Nothing has been installed or started yet."

    # ------------------------------------------------------------------ actions
    def install(self, update: bool = False, address: str = "", then_start: bool = True) -> bool:
        """Install (repair, update), then start the engine on `address` (a loopback one, else
        the default); False when busy or the plug-in carries no engine."""
        self._address_hint = address
        if self._no_wheel:
            self.failed.emit("This plug-in carries no engine package.", self._no_wheel)
            return False
        return self._run(INSTALLING, lambda: self._install_then_start(update, then_start))

    def start(self, address: str = "") -> bool:
        return self._run(STARTING, lambda: self._start(address))

    def stop(self) -> bool:
        return self._run(STOPPING, self._stop)

    def remove(self) -> bool:
        return self._run(REMOVING, self._remove)

    def cancel(self) -> None:
        """Stop an install under way (pip is terminated; Install finishes it later)."""
        self.installer.cancel.set()

    def set_keep_running(self, on: bool) -> None:
        self.keep_running = on
        if on:
            self.process.detach()  # the running engine no longer stops with Krita

    def shutdown(self) -> None:
        """Krita quits: stop the engine started here, unless it is to keep running (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.installer.cancel.set()
        if not self.keep_running and self.process.started_here:
            log.info("stopping the local engine at %s", self.process.address)
            self.installer.note(f"Krita is closing: stopping the local engine at {self.process.address}")
            self.process.stop()
        self._pool.shutdown(wait=False)

    # ------------------------------------------------------------------ worker side
    def _run(self, what: str, fn: Callable[[], None]) -> bool:
        if self._busy:
            return False
        self._busy = what
        self.installer.cancel.clear()
        self._emit_state()
        self._future = self._pool.submit(self._guarded, fn)
        self._timer.start()
        return True

    def _guarded(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except core.UserError as e:
            self._events.put(("failed", EI.first_line(str(e)), f"{e}\n\n{self.log_text()}"))
        except Exception as e:  # never let a worker's surprise vanish: say it, with the logs
            log.exception("local engine action failed")
            self._events.put(("failed", f"The local engine action failed unexpectedly: {e}",
                              f"{type(e).__name__}: {e}\n\n{self.log_text()}"))
        finally:
            self._events.put(("done",))

    def _queue_step(self, step: EI.Step) -> None:
        self._events.put(("progress", round(100 * step.fraction), step.text))

    def _install_then_start(self, update: bool, then_start: bool) -> None:
        if update and (self.process.started_here or self.process.lock_holder()):
            self._events.put(("progress", 0, "Stopping the engine to update it"))
            self.process.stop()  # pip must not replace files under a running engine
        self.installer.install(update=update)
        if then_start:
            self._events.put(("progress", 100, "Installed; starting the engine"))
            self._start(self._address_hint)

    def _start(self, address: str) -> None:
        parent = None if self.keep_running else os.getpid()  # Krita's own process
        started = self.process.start(address, parent_pid=parent, cancel=self.installer.cancel)
        self._events.put(("started", started.address, started.text))

    def _stop(self) -> None:
        self.process.stop()

    def _remove(self) -> None:
        if self.process.started_here or self.process.lock_holder():
            self.process.stop()
        self.installer.remove()

    # ------------------------------------------------------------------ Krita's side
    def _tick(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            kind = event[0]
            if kind == "progress":
                self.progressChanged.emit(event[1], event[2])
            elif kind == "started":
                self.started.emit(event[1], event[2])
            elif kind == "failed":
                self.failed.emit(event[1], event[2])
            elif kind == "done":
                self._busy = ""
                self._future = None
                self._timer.stop()
                self._emit_state()

    def _emit_state(self) -> None:
        state, text = self.describe()
        self.stateChanged.emit(state, text)

