"""Starting and stopping the managed engine: `serve` from the engine's environment, on loopback.

One engine per cache, never two: before starting, the daemon that holds the managed
cache's lock (CACHE/daemon.lock names its PID and address) or any daemon answering on
the wanted address is used instead. A port that a foreign program holds is reported
(or, for the default port, a free one is taken). The engine started here is told the
editor's PID (`serve --parent-pid`), so it stops with the editor even when the editor
crashes, unless the painter chose to keep it running.

Standard library only, plus the bundled protocol's client for the ping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from . import UserError
from .address import DEFAULT_ADDRESS, normalize_address
from .engine_install import EngineHome, _clean_env

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
START_TIMEOUT_S = 120.0  # the first start after an install compiles torch's bytecode
STOP_TIMEOUT_S = 20.0  # the daemon checkpoints a running training before it exits
LOG_TAIL_LINES = 25

Ping = Callable[[str, float], bool]


class EngineStartError(UserError):
    """The engine could not be started; the message says why (with the log's tail)."""


class PortTaken(EngineStartError):
    """Another program (not a Semantic Analogy engine) listens on the port."""


@dataclass(frozen=True)
class Started:
    address: str
    reused: bool  # a daemon that was already running
    text: str  # for the status line


def protocol_ping(address: str, timeout: float) -> bool:
    """Whether a Semantic Analogy daemon answers at `address` within `timeout` s."""
    from .bundle import protocol

    proto = protocol()
    try:
        with proto.client.Client(address, timeout=timeout) as c:
            c.ping()
        return True
    except Exception:  # unavailable, a foreign program, a bad reply: not an engine we can use
        return False


def split_tcp(address: str) -> tuple[str, int]:
    host, _, port = address[len("tcp://"):].rpartition(":")
    return host.strip("[]"), int(port)


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now (set as ZeroMQ sets its listeners)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if os.name == "nt":
            s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", socket.SO_REUSEADDR), 1)
        else:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - the daemon is POSIX-only today
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EngineProcess:
    """The managed engine's daemon process: find it, start it, stop it."""

    def __init__(self, home: EngineHome, ping: Ping = protocol_ping) -> None:
        self.home = home
        self.ping = ping
        self._proc: Optional[subprocess.Popen] = None
        self._log_file = None
        self.address = ""

    # -- what runs --------------------------------------------------------------
    def lock_holder(self) -> dict:
        """PID and address of the daemon holding the managed cache ({} when none)."""
        try:
            data = json.loads((self.home.cache_dir / "daemon.lock").read_text() or "{}")
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or not _pid_alive(int(data.get("pid", 0) or 0)):
            return {}
        return data

    def running_address(self, timeout: float = 2.0) -> str:
        """The managed cache's daemon's address if it answers, else ""."""
        holder = self.lock_holder()
        address = str(holder.get("address", ""))
        if address and self.ping(address, timeout):
            return address
        return ""

    @property
    def started_here(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- start --------------------------------------------------------------------
    def start(self, address: str = "", parent_pid: Optional[int] = None, timeout_s: float = START_TIMEOUT_S,
              cancel: Optional[threading.Event] = None, device: str = "auto") -> Started:
        """Use the engine already running, or launch one and wait until it answers."""
        running = self.running_address()
        if running:
            self.address = running
            return Started(running, True, f"Using the local engine already running at {running}")
        wanted = normalize_address(address)
        if not wanted.startswith("tcp://") or split_tcp(wanted)[0] not in [h.strip("[]") for h in LOOPBACK]:
            wanted = DEFAULT_ADDRESS  # the managed engine listens on this computer only
        if self.ping(wanted, 2.0):
            self.address = wanted
            return Started(wanted, True, f"Using the engine already running at {wanted}")
        host, port = split_tcp(wanted)
        note = ""
        if not port_free(host, port):
            if wanted != DEFAULT_ADDRESS:
                raise PortTaken(
                    f"Port {port} on this computer is used by another program, which is not a Semantic Analogy "
                    f"engine. Type another port in the address field (e.g. {free_port()}), or close that program.")
            old, port = port, free_port(host)
            wanted = f"tcp://{host}:{port}"
            note = f" (port {old} is used by another program)"
        if not self.home.python.exists():
            raise EngineStartError("The local engine is not installed: press Install first.")
        self._spawn(wanted, parent_pid, device)
        self._wait_ready(wanted, timeout_s, cancel)
        self.address = wanted
        return Started(wanted, False, f"Started the local engine at {wanted}{note}")

    def serve_command(self, address: str, parent_pid: Optional[int], device: str = "auto") -> list[str]:
        cmd = [str(self.home.python), "-m", "semantic_analogy.daemon", "serve", "--bind", address,
               "--cache-dir", str(self.home.cache_dir), "--device", device]
        if parent_pid:
            cmd += ["--parent-pid", str(parent_pid)]
        return cmd

    def _spawn(self, address: str, parent_pid: Optional[int], device: str) -> None:
        self.home.root.mkdir(parents=True, exist_ok=True)
        log = self.home.daemon_log
        if log.exists():
            os.replace(log, log.with_name(log.name + ".1"))  # the previous run's log stays one click away
        self._log_file = open(log, "w", encoding="utf-8")
        kwargs: dict = {"start_new_session": True} if os.name != "nt" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        try:
            self._proc = subprocess.Popen(self.serve_command(address, parent_pid, device), stdout=self._log_file,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=_clean_env(os.environ), cwd=str(self.home.root), **kwargs)
        except OSError as e:
            raise EngineStartError(f"Could not start the local engine ({e.strerror or e}); press Install to "
                                   "repair it.") from e

    def _wait_ready(self, address: str, timeout_s: float, cancel: Optional[threading.Event]) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                self._proc = None
                raise EngineStartError(f"The local engine stopped while starting (exit code {code}). "
                                       f"The end of its log ({self.home.daemon_log}):\n{self.log_tail()}")
            if self.ping(address, 1.0):
                return
            if cancel is not None and cancel.is_set():
                self.stop()
                raise EngineStartError("Starting the local engine was cancelled.")
            if time.monotonic() > deadline:
                self.stop()
                raise EngineStartError(f"The local engine did not answer within {timeout_s:.0f} s. The end of "
                                       f"its log ({self.home.daemon_log}):\n{self.log_tail()}")
            time.sleep(0.25)

    def detach(self) -> bool:
        """Let the engine started here outlive the editor (`serve --parent-pid` stops watching)."""
        if self.started_here and hasattr(signal, "SIGUSR1"):
            self._proc.send_signal(signal.SIGUSR1)
            return True
        return False

    # -- stop ---------------------------------------------------------------------
    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the engine started here, or the one holding the managed cache; True if one stopped."""
        proc, self._proc = self._proc, None
        stopped = False
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the daemon checkpoints a running job and exits
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            stopped = True
        else:
            pid = int(self.lock_holder().get("pid", 0) or 0)
            if pid and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pid = 0
                deadline = time.monotonic() + timeout_s
                while pid and _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                stopped = bool(pid)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.address = ""
        return stopped

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.home.daemon_log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

