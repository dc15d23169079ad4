"""Run real GIMP 3 headless in the Debian 13 chroot that prepare_gimp_chroot.sh makes.

Used by tests/test_gimp_e2e.py and screenshot_dialog.py (developer tools, not
installed for users). A GimpSandbox is a throw-away folder inside the chroot with
its own GIMP profile, into which install.py puts the plug-in, so runs never touch
a real profile and leave nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Optional, Sequence

HERE = Path(__file__).resolve().parent
PREPARE = HERE / "prepare_gimp_chroot.sh"
INSTALL = HERE / "install.py"
DEFAULT_ROOT = "/var/cache/semantic-analogy/trixie"


def chroot_root() -> Path:
    return Path(os.environ.get("SA_GIMP_CHROOT", DEFAULT_ROOT))


def not_ready_reason() -> Optional[str]:
    """None when GIMP can run in the chroot, else why not (and how to fix it)."""
    root = chroot_root()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"running GIMP in the chroot {root} needs root (chroot(2))"
    if shutil.which("chroot") is None:
        return "the chroot command is missing on this machine"
    done = subprocess.run(["bash", str(PREPARE), "--check"], capture_output=True, text=True)
    if done.returncode != 0:
        # The script's message names the folder and the command that prepares it.
        return done.stderr.strip() or f"no ready GIMP chroot at {root}"
    return None


def gimp_program(gui: bool, batch: str) -> list[str]:
    """GIMP's command line: no data or fonts to load (fast); -i (no interface) unless gui."""
    if gui:
        return ["gimp-3.0", "-sdf", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"]
    return ["gimp-console-3.0", "-idf", "--batch-interpreter=python-fu-eval", "-b", batch, "--quit"]


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a process started with start_new_session=True and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def plug_in_pids(marker: str) -> list[int]:
    """Ids of running processes whose command line contains `marker` (a sandbox path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


class GimpSandbox:
    """A temporary folder inside the chroot with a fresh GIMP profile holding the installed plug-in."""

    def __init__(self, root: Optional[Path] = None, prefix: str = "sa-gimp-") -> None:
        self.root = root or chroot_root()
        (self.root / "tmp").mkdir(exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))
        os.chmod(self.path, 0o755)
        self.profile = self.path / "profile"
        self.profile.mkdir()

    def inside(self, host_path: Path) -> str:
        """The path a process inside the chroot sees for a host path under the chroot."""
        rel = Path(host_path).resolve().relative_to(self.root.resolve())
        return "/" + rel.as_posix()

    def install_plugin(self) -> Path:
        """Install the plug-in with the project's installer into this profile's plug-ins/ folder."""
        plug_ins = self.profile / "plug-ins"
        subprocess.run(
            [sys.executable, str(INSTALL), "--plug-in-dir", str(plug_ins)],
            check=True, capture_output=True, text=True,
        )
        return plug_ins / "semantic_analogy_gimp"

    def command(self, program: Sequence[str], env: Optional[Mapping[str, str]] = None) -> list[str]:
        """A chroot command line with a clean environment pointing GIMP at this profile."""
        base = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.inside(self.profile),
            "GIMP3_DIRECTORY": self.inside(self.profile),
            "TMPDIR": self.inside(self.path),  # GIMP's swap and temp files go away with the sandbox
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        base.update(env or {})
        return ["chroot", str(self.root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in base.items()), *program]

    def start_batch(
        self, code: str, *, gui: bool = False, env: Optional[Mapping[str, str]] = None
    ) -> subprocess.Popen:
        """Start GIMP running Python code (python-fu-eval, fed on stdin), then quitting.

        GIMP runs in its own process group (kill_group() ends it with its plug-ins);
        its output goes to files so that a long run can never block on a full pipe.
        """
        batch = self.path / "batch.py"
        batch.write_text(code)
        with open(batch) as stdin, open(self.path / "gimp.out", "w") as stdout, \
                open(self.path / "gimp.err", "w") as stderr:
            return subprocess.Popen(self.command(gimp_program(gui, "-"), env), stdin=stdin, stdout=stdout,
                                    stderr=stderr, cwd="/", start_new_session=True)

    def finish(self, proc: subprocess.Popen, timeout: float) -> subprocess.CompletedProcess:
        """Wait for a started batch; kill its whole group and raise TimeoutExpired after `timeout` s."""
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
            raise subprocess.TimeoutExpired(proc.args, timeout, *self._output()) from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, *self._output())

    def _output(self) -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            (self.path / name).read_text(errors="replace") if (self.path / name).exists() else ""
            for name in ("gimp.out", "gimp.err")
        )

    def run_batch(
        self, code: str, *, timeout: float, gui: bool = False, env: Optional[Mapping[str, str]] = None
    ) -> subprocess.CompletedProcess:
        """start_batch() and finish(): GIMP's exit status and output."""
        return self.finish(self.start_batch(code, gui=gui, env=env), timeout)

    def popen_batch(self, code: str, *, gui: bool, env: Optional[Mapping[str, str]] = None) -> subprocess.Popen:
        """Like run_batch but in the background (for a dialog that waits for a click)."""
        program = gimp_program(gui, code)
        return subprocess.Popen(
            self.command(program, env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd="/",
            start_new_session=True,
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "GimpSandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
