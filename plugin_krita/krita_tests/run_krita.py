"""Start real Krita under Xvfb in a throw-away profile with the Semantic Analogy plugin
(as build_zip.py lays it out) and the test driver plugin enabled.

    python plugin_krita/krita_tests/run_krita.py CONFIG.json WORKDIR

Used by tests/test_krita_e2e.py; also handy by hand to take docs/krita_docker.png.
The driver writes WORKDIR/out/result.json; Krita's own exit code says nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import build_zip  # noqa: E402

PLUGINS = ("semantic_analogy_krita", "sa_krita_driver")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def engine_daemon(cache_dir: Path, log_path: Path, python: str = sys.executable,
                  ready_timeout: float = 90, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """A real daemon subprocess (`python -m semantic_analogy.daemon serve`) on a free
    loopback port; yields its address and stops it afterwards. `extra_args` go to `serve`."""
    from semantic_analogy.protocol.client import Client
    from semantic_analogy.protocol.errors import DaemonUnavailable

    address = f"tcp://127.0.0.1:{free_port()}"
    log_file = open(log_path, "w")
    proc = subprocess.Popen(
        [python, "-m", "semantic_analogy.daemon", "serve", "--bind", address, "--device", "cpu",
         "--cache-dir", str(cache_dir), "--preview-interval", "1", "--log-level", "info", *extra_args],
        stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with Client(address, timeout=2.0) as c:
                    c.connect()
                break
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not answer within {ready_timeout} s") from None
        yield address
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the end-to-end test, in words (empty: all there)."""
    missing = [f"{t} (apt install {pkg})" for t, pkg in (("krita", "krita"), ("xvfb-run", "xvfb xauth"))
               if shutil.which(t) is None]
    # Debian's Krita runs the system Python 3; the plugin needs pyzmq there.
    system_python = "/usr/bin/python3"
    if not missing and os.path.exists(system_python):
        r = subprocess.run([system_python, "-c", "import zmq"], capture_output=True, text=True)
        if r.returncode != 0:
            missing.append("pyzmq for Krita's system Python (apt install python3-zmq)")
    return missing


def prepare_profile(work: Path) -> dict:
    """A fresh HOME with both plugins installed and enabled; returns the environment."""
    home = work / "home"
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    build_zip.build_tree(pykrita)
    shutil.copytree(HERE / "sa_krita_driver", pykrita / "sa_krita_driver",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shutil.copy2(HERE / "sa_krita_driver.desktop", pykrita / "sa_krita_driver.desktop")
    config = home / ".config"
    config.mkdir(parents=True, exist_ok=True)
    # Enable the plugins; skip the first-start notices that would wait for a click.
    (config / "kritarc").write_text(
        "[python]\n" + "".join(f"enable_{p}=true\n" for p in PLUGINS)
        + "\n[General]\nshowSplashScreen=false\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "QT_", "DISPLAY", "WAYLAND", "PYTHON", "VIRTUAL_ENV"))}
    # Krita's embedded Python finds its prefix through the first `python3` on PATH: an
    # activated virtual environment (as the test runner has) would hide Debian's
    # dist-packages, PyQt5 included, and the plugin would never load.
    env["PATH"] = "/usr/bin:/bin"
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(config), XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_RUNTIME_DIR=str(work / "runtime"),
               SEMANTIC_ANALOGY_KRITA_HOME=str(work / "userdata"))
    (work / "runtime").mkdir(mode=0o700, exist_ok=True)
    return env


def run(config: dict, work: Path, timeout: float) -> tuple[dict, str]:
    """Run Krita with the driver; returns (result.json contents or {}, Krita's output)."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.mkdir(exist_ok=True)
    config = dict(config, out_dir=str(out))
    cfg_path = work / "driver.json"
    cfg_path.write_text(json.dumps(config), encoding="utf-8")
    env = prepare_profile(work)
    env["SA_KRITA_DRIVER_CONFIG"] = str(cfg_path)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1020x24", "krita", "--nosplash"]
    # Own process group, so that on a timeout Krita and Xvfb go with xvfb-run.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        log += f"\n[run_krita] Krita did not exit within {timeout} s and was killed"
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    return result, log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--timeout", type=float, default=180)
    args = ap.parse_args(argv)
    result, log = run(json.loads(args.config.read_text()), args.workdir, args.timeout)
    print(log[-4000:])
    print(json.dumps(result, indent=1))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
