"""Installing the engine into its own virtual environment, from the editor: no terminal.

The plug-in carries the engine's wheel and a constraints file pinning its dependencies
(`plugin_krita/build_zip.py`, `plugin_gimp/install.py` put them in `engine_wheel/`). Install
finds a Python the user has, makes a virtual environment in the plug-in's *user data*
folder (reinstalling the plug-in replaces the plug-in folder, not this one), and has pip
install the wheel with its pinned dependencies. The pip used is the user's pip with its
own configuration (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS), so a local wheel cache or a
company mirror works as it does in a terminal.

Never a half-state that blocks: the environment counts as installed only once
`install.json` says "complete", written last, after a check imported the engine. An
interrupted or failed install leaves "installing" or nothing, which Install repairs (it
starts the environment afresh) and Remove deletes. Prebuilt packages only
(--only-binary): no C compiler is ever needed, and a platform without a prebuilt torch
gets that said, not a compiler error.

Standard library only, like the rest of the core: it runs in Krita's and GIMP's Pythons.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from . import UserError

# Pythons that the pinned torch has wheels for; requires-python in pyproject.toml is the floor.
MIN_PYTHON = (3, 10)
MAX_PYTHON = (3, 13)
PYTHON_ENV = "SEMANTIC_ANALOGY_PYTHON"  # a Python to use instead of searching PATH
WHEEL_PREFIX = "semantic_analogy-"
CONSTRAINTS = "constraints.txt"
# What the check imports: the daemon and everything it needs at run time.
CHECK_CODE = ("import torch, torchvision, numpy, PIL, zmq, msgpack, tqdm; "
              "import semantic_analogy, semantic_analogy.daemon.server; print(semantic_analogy.__version__)")
PIP_ARGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--only-binary", ":all:",
            "--timeout", "60", "--retries", "5")
LOG_TAIL_LINES = 40


class InstallError(UserError):
    """An install step failed; the message says what happened and what to do."""


class InstallCancelled(InstallError):
    pass


class NoPython(InstallError):
    """No Python on this computer fits; the message lists what was tried and what is missing."""


# --------------------------------------------------------------------------- where things live


def user_data_dir(editor: str, override_env: str, platform: str = sys.platform,
                  env: Optional[Mapping[str, str]] = None, home: Optional[str] = None) -> Path:
    """An editor plug-in's own data folder (settings, logs, the local engine), per platform:
    never inside the plug-in folder, which reinstalling the plug-in replaces."""
    env = os.environ if env is None else env
    if env.get(override_env):
        return Path(env[override_env])
    home = home or os.path.expanduser("~")
    if platform.startswith("win"):
        base = env.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
        return Path(base) / "SemanticAnalogy" / editor
    if platform == "darwin":
        return Path(home) / "Library" / "Application Support" / "SemanticAnalogy" / editor
    base = env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return Path(base) / "semantic-analogy" / editor



@dataclass(frozen=True)
class EngineHome:
    """The managed engine's folder inside the plug-in's user data folder."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        if os.name == "nt":
            return self.venv / "Scripts" / "python.exe"
        return self.venv / "bin" / "python"

    @property
    def state_file(self) -> Path:
        return self.root / "install.json"

    @property
    def log(self) -> Path:
        return self.root / "install.log"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def read_state(self) -> dict:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, **data) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)  # never a half-written state file


@dataclass(frozen=True)
class EngineWheel:
    """The engine's wheel that the plug-in carries, with its constraints file."""

    path: Path
    constraints: Optional[Path]

    @property
    def version(self) -> str:
        # semantic_analogy-0.1.0-py3-none-any.whl
        return self.path.name[len(WHEEL_PREFIX):].split("-")[0]

    @staticmethod
    def find(folder: Path) -> "EngineWheel":
        wheels = sorted(Path(folder).glob(f"{WHEEL_PREFIX}*.whl")) if Path(folder).is_dir() else []
        if not wheels:
            raise InstallError(
                f"The plug-in carries no engine package (no {WHEEL_PREFIX}*.whl in {folder}). Install the plug-in "
                "from a zip made by “python plugin_krita/build_zip.py” (or plugin_gimp/install.py), which adds it.")
        c = Path(folder) / CONSTRAINTS
        return EngineWheel(wheels[-1], c if c.is_file() else None)


# --------------------------------------------------------------------------- states

NOT_INSTALLED = "not-installed"
INCOMPLETE = "incomplete"  # interrupted or failed: Install repairs it, Remove deletes it
OUTDATED = "outdated"  # complete, but the plug-in carries a newer engine: Update
READY = "ready"


@dataclass(frozen=True)
class InstallState:
    state: str
    text: str  # one line for the docker's status
    installed_version: str = ""
    bundled_version: str = ""


def install_state(home: EngineHome, wheel: Optional[EngineWheel]) -> InstallState:
    """What is in the engine folder now, in words (reads files only: cheap enough for a UI)."""
    st = home.read_state()
    bundled = wheel.version if wheel else ""
    if not home.venv.exists() and not st:
        return InstallState(NOT_INSTALLED, "No local engine installed", bundled_version=bundled)
    if st.get("status") != "complete" or not home.python.exists():
        what = st.get("error") or "the last install did not finish"
        return InstallState(INCOMPLETE, f"The local engine's install is incomplete ({what}): "
                            "press Install to repair it, or Remove", bundled_version=bundled)
    installed = str(st.get("version", ""))
    if wheel is not None and (installed != bundled or st.get("wheel_size") != _size(wheel.path)):
        return InstallState(OUTDATED, f"Local engine {installed} installed; this plug-in brings {bundled}: "
                            "press Update engine", installed, bundled)
    return InstallState(READY, f"Local engine {installed} installed", installed, bundled)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


# --------------------------------------------------------------------------- finding Python

Runner = Callable[..., subprocess.CompletedProcess]

_PROBE = ("import sys, venv, ensurepip; "
          "print('%d.%d.%d' % sys.version_info[:3], sys.executable)")


def python_candidates(env: Optional[Mapping[str, str]] = None, platform: str = sys.platform,
                      which: Callable[[str], Optional[str]] = shutil.which,
                      configured: str = "") -> list[list[str]]:
    """Commands that may start a usable Python, best first, each once."""
    env = os.environ if env is None else env
    out: list[list[str]] = []
    for explicit in (configured, env.get(PYTHON_ENV, "")):
        if explicit:
            out.append([explicit])
    if platform.startswith("win"):
        launcher = which("py")
        if launcher:
            out += [[launcher, f"-3.{m}"] for m in range(MAX_PYTHON[1], MIN_PYTHON[1] - 1, -1)]
    names = [f"python3.{m}" for m in range(MAX_PYTHON[1], MIN_PYTHON[1] - 1, -1)] + ["python3", "python"]
    for name in names:
        path = which(name)
        if path:
            out.append([path])
    # The editor's own Python is a candidate only when it is a python executable: inside Krita
    # sys.executable is Krita itself, which must never be started with -c.
    exe = Path(sys.executable or "")
    if exe.name.lower().startswith("python") and exe.is_file():
        out.append([str(exe)])
    seen, unique = set(), []
    for cmd in out:
        key = tuple(cmd)
        if key not in seen:
            seen.add(key)
            unique.append(cmd)
    return unique


def probe_python(cmd: Sequence[str], run: Runner = subprocess.run) -> tuple[Optional[tuple], str]:
    """(version, "") when `cmd` is a Python that can make a virtual environment, else (None, why)."""
    try:
        r = run([*cmd, "-c", _PROBE], capture_output=True, text=True, timeout=30,
                env=_clean_env(os.environ), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"does not start ({e})"
    if r.returncode != 0:
        err = (r.stderr or r.stdout or "").strip().splitlines()
        last = err[-1] if err else f"exit code {r.returncode}"
        if "No module named 'venv'" in last or "No module named 'ensurepip'" in last:
            return None, (f"has no venv module ({last}); on Debian or Ubuntu: sudo apt install python3-venv")
        return None, f"does not run ({last})"
    try:
        text = r.stdout.strip().split()[0]
        version = tuple(int(p) for p in text.split(".")[:3])
    except (IndexError, ValueError):
        return None, f"printed no version ({r.stdout.strip()[:80]!r})"
    if version[:2] < MIN_PYTHON or version[:2] > MAX_PYTHON:
        return None, (f"is Python {text}; the engine's torch needs Python "
                      f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} to {MAX_PYTHON[0]}.{MAX_PYTHON[1]}")
    return version, ""


def find_python(configured: str = "", run: Runner = subprocess.run,
                candidates: Optional[list[list[str]]] = None) -> list[str]:
    """The first Python that fits, or NoPython saying what was tried and what is missing."""
    cands = python_candidates(configured=configured) if candidates is None else candidates
    tried = []
    for cmd in cands:
        version, why = probe_python(cmd, run)
        if version is not None:
            return list(cmd)
        tried.append(f"  {' '.join(cmd)}: {why}")
    lo, hi = f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}", f"{MAX_PYTHON[0]}.{MAX_PYTHON[1]}"
    found = "\n".join(tried) if tried else "  no python3 or python on PATH"
    raise NoPython(
        f"The local engine needs Python {lo} to {hi} with its venv module, and none was found.\n"
        f"Tried:\n{found}\n"
        f"Install Python {hi} from python.org (Windows, macOS) or your distribution (Linux: python3 and "
        f"python3-venv), or set {PYTHON_ENV} to a Python's path, then press Install again.")


def _clean_env(env: Mapping[str, str]) -> dict:
    """The environment for the child Pythons: without the editor's Python settings, which
    point Krita's or GIMP's Python at their own modules and would break a plain Python."""
    return {k: v for k, v in env.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP",
                                                        "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")}


# --------------------------------------------------------------------------- pip's output in words

_COLLECT = re.compile(r"^\s*Collecting ([A-Za-z0-9_.\-]+)")
_DOWNLOAD = re.compile(r"^\s*Downloading ([^\s]+?)(?:-\d[^\s]*)?\.(?:whl|tar\.gz)\b.*?(\([^)]*\))?\s*$")
_PROCESS = re.compile(r"^\s*Processing ([^\s]+)")
_INSTALLING = re.compile(r"^\s*Installing collected packages: (.+)$")
_BIG = ("torch", "torchvision", "numpy", "pillow", "pyzmq")  # "each big package" gets its own line


def pip_line_words(line: str) -> Optional[str]:
    """A step to show for one line of pip's output, or None for lines that say nothing new."""
    m = _DOWNLOAD.match(line)
    if m:
        name = Path(m.group(1)).name
        size = f" {m.group(2)}" if m.group(2) else ""
        return f"Downloading {name}{size}"
    m = _PROCESS.match(line)
    if m and m.group(1).endswith(".whl"):
        name = Path(m.group(1)).name.split("-")[0]
        if name.lower() in _BIG:
            return f"Getting {name} (a wheel on this computer)"
    m = _COLLECT.match(line)
    if m and m.group(1).lower().replace("_", "-").split("[")[0] in _BIG:
        return f"Getting {m.group(1)}"
    m = _INSTALLING.match(line)
    if m:
        names = [n.strip() for n in m.group(1).split(",") if n.strip()]
        big = [n for n in names if n.lower() in _BIG]
        rest = len(names) - len(big)
        listed = ", ".join(big) + (f" and {rest} more" if big and rest else "") if big else f"{len(names)} packages"
        return f"Installing {listed} (this can take several minutes)"
    return None


def explain_pip_failure(log_lines: Sequence[str], python_version: str = "") -> str:
    """The reason a pip run failed, in words, from its output."""
    text = "\n".join(log_lines)
    low = text.lower()
    if "no space left on device" in low:
        return "the disk is full: the engine with torch needs about 6 GB. Free some space, then press Install."
    if any(s in low for s in ("newconnectionerror", "temporary failure in name resolution", "read timed out",
                              "readtimeouterror", "connection refused", "could not fetch url",
                              "connectionreseterror", "proxyerror", "max retries exceeded")):
        return ("pip could not reach the package index (no internet, a proxy, or a timeout). Check the "
                "connection, then press Install: what was downloaded already is reused.")
    m = re.search(r"No matching distribution found for ([^\s]+)", text)
    if m:
        py = f" for Python {python_version}" if python_version else ""
        return (f"pip found no prebuilt package of {m.group(1)}{py} on this system. Use a Python the "
                f"engine supports ({MIN_PYTHON[0]}.{MIN_PYTHON[1]} to {MAX_PYTHON[0]}.{MAX_PYTHON[1]}, set "
                f"{PYTHON_ENV}), or check pip's index settings.")
    if "the conflict is caused by:" in low:
        at = [ln.strip().lower() for ln in log_lines].index("the conflict is caused by:")
        causes = [ln.strip() for ln in log_lines[at + 1:at + 6] if ln.startswith("    ") and ln.strip()]
        return ("pip found no set of versions that fit together: " + "; ".join(causes) + ". Check pip's "
                "constraints (pip.conf, PIP_CONSTRAINT) or reinstall the plug-in.")
    if "externally-managed-environment" in low:
        return "pip refused to install outside the virtual environment (externally managed); press Remove, then Install."
    errors = [ln.strip() for ln in log_lines if ln.strip().lower().startswith(("error:", "error "))]
    last = errors[-1] if errors else (log_lines[-1].strip() if log_lines else "no output")
    return f"pip failed: {last}"


# --------------------------------------------------------------------------- the installer


@dataclass
class Step:
    """Progress of an install: step `index` of `count`, in words."""

    index: int
    count: int
    text: str

    @property
    def fraction(self) -> float:
        return min(1.0, max(0.0, (self.index - 1) / self.count)) if self.count else 0.0


@dataclass
class Installer:
    """Install, update, check and remove the engine in `home`, from `wheel`.

    `progress(step)` is called from the thread that runs the method; `cancel` (a
    threading.Event) set from another thread stops a running pip at once.
    """

    home: EngineHome
    wheel: Optional[EngineWheel]
    python: str = ""  # a configured Python; empty: search
    progress: Callable[[Step], None] = lambda step: None
    cancel: threading.Event = field(default_factory=threading.Event)
    run: Runner = subprocess.run
    pip_extra: Sequence[str] = ()
    check_code: str = CHECK_CODE

    STEPS = 4

    def state(self) -> InstallState:
        return install_state(self.home, self.wheel)

    # -- public actions -------------------------------------------------------------
    def install(self, update: bool = False) -> InstallState:
        """Install (or repair, or update) the engine; a complete, current one is only checked."""
        if self.wheel is None:
            raise InstallError("The plug-in carries no engine package; reinstall the plug-in from its zip.")
        self.cancel.clear()
        self.home.root.mkdir(parents=True, exist_ok=True)
        current = self.state()
        self._log_header("update" if update else "install")
        if current.state == READY:
            self._step(1, "Checking the installed engine")
            try:
                self._check()
                return self.state()
            except InstallError as e:
                self.note(f"the check failed ({e}): installing again")
        try:
            return self._install(fresh=current.state in (NOT_INSTALLED, INCOMPLETE))
        except InstallError as e:
            st = self.home.read_state()
            if not self.home.venv.exists():  # failed before anything was made (no Python): nothing to repair
                self.home.state_file.unlink(missing_ok=True)
            elif st.get("status") != "complete":
                self.home.write_state(**{**st, "status": "failed", "error": first_line(str(e))})
            raise

    def remove(self) -> None:
        """Delete the environment and its install record (the daemon must be stopped first)."""
        self._log_header("remove")
        for path in (self.home.venv, self.home.state_file):
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
            except OSError as e:
                raise InstallError(f"Could not remove {path}: {e.strerror or e}. Close programs using it "
                                   "(a running engine), then press Remove again.") from e

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return "\n".join(self.home.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- the steps ----------------------------------------------------------------
    def _install(self, fresh: bool) -> InstallState:
        self._step(1, "Finding Python")
        python = find_python(self.python, run=self.run)
        self.note(f"python: {' '.join(python)}")
        if fresh and self.home.venv.exists():
            self._step(1, "Removing the unfinished environment")
            shutil.rmtree(self.home.venv, ignore_errors=True)
        self.home.write_state(status="installing", version=self.wheel.version, started=time.time())
        if not self.home.python.exists():
            self._step(2, "Creating the environment")
            self._call([*python, "-m", "venv", str(self.home.venv)], "creating the virtual environment")
        self._step(3, "Installing the engine and its packages")
        pip = [str(self.home.python), "-m", "pip", "install", *PIP_ARGS, *self.pip_extra]
        if self.wheel.constraints:
            pip += ["--constraint", str(self.wheel.constraints)]
        self._call([*pip, str(self.wheel.path)], "installing the engine's packages", pip_output=True)
        # The same version number may be a newer build: put this wheel's files in place.
        self._call([*pip, "--force-reinstall", "--no-deps", str(self.wheel.path)], "installing the engine")
        self._step(4, "Checking the install")
        version = self._check()
        self.home.write_state(status="complete", version=version, wheel=self.wheel.path.name,
                              wheel_size=_size(self.wheel.path), python=" ".join(python), installed=time.time())
        self.note("install complete")
        return self.state()

    def _check(self) -> str:
        r = self._call([str(self.home.python), "-c", self.check_code], "checking the engine", capture=True)
        version = r.strip().splitlines()[-1] if r.strip() else ""
        if self.wheel is not None and version != self.wheel.version:
            raise InstallError(f"The check found engine {version or '(none)'}, not {self.wheel.version}.")
        return version

    def _step(self, index: int, text: str) -> None:
        if self.cancel.is_set():
            raise InstallCancelled("The install was cancelled; press Install to finish it, or Remove.")
        self.note(f"== {text}")
        self.progress(Step(index, self.STEPS, text))

    def _call(self, cmd: list[str], what: str, pip_output: bool = False, capture: bool = False) -> str:
        """Run one command, its output into the log (and into progress words for pip)."""
        self.note("$ " + " ".join(cmd))
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace", env=_clean_env(os.environ), stdin=subprocess.DEVNULL,
                                    cwd=str(self.home.root))
        except OSError as e:
            raise InstallError(f"Could not start {cmd[0]} for {what}: {e.strerror or e}.") from e
        stopper = threading.Thread(target=self._stop_on_cancel, args=(proc,), daemon=True)
        stopper.start()
        lines: list[str] = []
        with open(self.home.log, "a", encoding="utf-8") as log:
            for line in proc.stdout:  # type: ignore[union-attr]
                line = line.rstrip("\n")
                lines.append(line)
                log.write(line + "\n")
                log.flush()
                words = pip_line_words(line) if pip_output else None
                if words:
                    self.progress(Step(3, self.STEPS, words))
        code = proc.wait()
        if self.cancel.is_set():
            raise InstallCancelled("The install was cancelled; press Install to finish it, or Remove.")
        if code != 0:
            self.note(f"exit code {code}")
            if "pip" in cmd:
                reason = explain_pip_failure(lines[-200:])
            else:
                reason = f"{lines[-1].strip() if lines else 'no output'} (exit code {code})"
            raise InstallError(f"Installing the local engine failed while {what}: {reason}\n"
                               f"The log is {self.home.log}.")
        return "\n".join(lines) if capture else ""

    def _stop_on_cancel(self, proc: subprocess.Popen) -> None:
        while proc.poll() is None:
            if self.cancel.wait(0.2):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                return

    def note(self, text: str) -> None:
        """Append a line to the install log (the log view shows it)."""
        try:
            with open(self.home.log, "a", encoding="utf-8") as log:
                log.write(text + "\n")
        except OSError:
            pass

    def _log_header(self, action: str) -> None:
        self.home.root.mkdir(parents=True, exist_ok=True)
        self.note(f"\n##### {action} at {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"(plug-in's engine {self.wheel.version if self.wheel else 'none'})")


def first_line(text: str) -> str:
    """The first line of a message (for a status line or a short error)."""
    return text.strip().splitlines()[0] if text.strip() else ""

