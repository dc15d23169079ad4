"""End to end in real Krita: the docker installs the engine itself, starts it, trains, quits.

From a clean user data folder, the driver presses "Install local engine": the docker
finds a Python (Debian's, on Krita's PATH), makes a virtual environment in the user data
folder, has pip install the engine wheel that the zip carries with its pinned
dependencies (torch from this machine's local wheel files), checks it, starts `serve` on
loopback and connects. Then a `tiny` Train adds the result layer, Krita quits, and no
daemon is left running. Skipped where Krita, Xvfb or a usable Python is not installed.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin_krita" / "krita_tests"))
sys.path.insert(0, str(ROOT / "tests"))

import run_krita  # noqa: E402
from test_krita_e2e import EXAMPLE, check_follows_target, downscale  # noqa: E402

from semantic_analogy.plugin_core import engine_launch as EL  # noqa: E402

pytestmark = [pytest.mark.krita, pytest.mark.slow]
KRITA_PYTHON = "/usr/bin/python3"  # the first python3 on the PATH the profile gives Krita


@pytest.fixture(scope="module")
def krita_available():
    missing = run_krita.missing_prerequisites()
    if missing:
        pytest.skip("real Krita is needed for this test; missing: " + "; ".join(missing))
    r = subprocess.run([KRITA_PYTHON, "-c", "import venv, ensurepip"], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"{KRITA_PYTHON} has no venv/ensurepip (apt install python3-venv)")


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that run from `path` (the engine's environment)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_the_docker_installs_starts_and_stops_the_engine(krita_available, tmp_path):
    files = {}
    for key, name, is_label in (("image", "img.png", False), ("labels", "label.png", True),
                                ("target", "cond/1.png", True)):
        files[key] = tmp_path / f"{key}.png"
        downscale(EXAMPLE / name, files[key], is_label)
    address = f"tcp://127.0.0.1:{EL.free_port()}"
    config = {k: str(v) for k, v in files.items()}
    config.update(scenario="install", address=address, preset="tiny", steps=4, timeout_s=840)
    work = tmp_path / "krita"
    try:
        result, krita_log = run_krita.run(config, work, timeout=900)
        check(result, krita_log, work, files, address)
    finally:  # the environment holds torch (about 6 GB): not left in pytest's kept temp folders
        shutil.rmtree(work / "userdata" / "engine" / "venv", ignore_errors=True)


def check(result, krita_log, work, files, address):
    userdata = work / "userdata"  # SEMANTIC_ANALOGY_KRITA_HOME, fresh: nothing installed before
    engine = userdata / "engine"
    logs = ""
    for name in ("install.log", "daemon.log"):
        if (engine / name).exists():
            logs += f"\n--- {name} ---\n" + (engine / name).read_text(errors="replace")[-2500:]
    report = json.dumps(result, indent=1)[-4000:] + "\n--- krita log ---\n" + krita_log[-1500:] + logs
    assert result.get("ok"), report
    eng = result["engine"]

    # Before: nothing installed, Install offered, Start not.
    before = eng["before_install"]
    assert before["state"] == "No local engine installed" and before["install_text"] == "Install local engine"
    assert before["install_visible"] and before["install_enabled"] and not before["start_enabled"], before
    assert eng["pressed"]["install_text"] == "Cancel install", eng["pressed"]
    # Progress by step, in words, each big package on its own line.
    texts = [s["text"] for s in eng["steps"]]
    for step in ("Finding Python", "Creating the environment", "Installing the engine and its packages",
                 "Checking the install", "Installed; starting the engine"):
        assert step in texts, texts
    assert any(t.startswith("Getting torch") for t in texts), texts
    assert any(t.startswith("Installing ") and "torch" in t for t in texts), texts
    # The environment is in the user data folder, complete, and the plug-in folder untouched.
    state = json.loads((engine / "install.json").read_text())
    assert state["status"] == "complete" and state["version"] == "0.1.0", state
    assert (engine / "venv" / "bin" / "python").exists()
    assert not list((work / "home" / ".local" / "share" / "krita" / "pykrita").rglob("pyvenv.cfg"))
    # Started on the address in the docker, and connected.
    assert eng["started"]["address"] == address and eng["started"]["text"].startswith("Started the local engine")
    assert eng["connected"]["address_field"] == address
    assert eng["connected"]["widgets"]["state"] == f"Local engine running at {address} (started by Krita)"
    assert eng["connected"]["widgets"]["start_text"] == "Stop"

    # A tiny Train through the installed engine added its result layer.
    assert result["train"]["ok"], result["train"]
    assert "Target 1 → analogy" in [r["name"] for r in result["result_layers"]], result["result_layers"]
    check_follows_target(work / "out" / "result_train.png", files["image"], files["labels"], files["target"])
    assert "trained model" in (engine / "daemon.log").read_text()

    # Krita quit, and no daemon is left running.
    assert not result.get("quit_forced"), report
    daemon_log = (engine / "daemon.log").read_text()
    # Stopped by the docker as Krita closed (not only by its watch on Krita's PID, the net for a crash).
    assert "SIGTERM received" in daemon_log, daemon_log[-1500:]
    assert not processes_using(engine / "venv"), processes_using(engine / "venv")
    assert not EL.protocol_ping(address, 1.0)
    assert "stopped" in daemon_log.splitlines()[-1], logs
