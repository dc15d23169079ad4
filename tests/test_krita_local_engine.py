"""The docker's local engine (plugin_krita/semantic_analogy_krita/local_engine.py) against a
fake Krita: its states and signals through no Python found, pip failing half way (retry
works, remove works), a port held by a foreign program, a running daemon reused, and
the engine stopping when Krita quits (or not, when the painter keeps it running).

pip, the virtual environments and the daemons are real; only Krita and Qt are the
fakes of tests/fake_krita (the timer is pumped by hand). The full install with torch
runs in the real-Krita end-to-end test.
"""

import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin_krita"))
sys.path.insert(0, str(ROOT / "tests"))

import fake_krita  # noqa: E402
from local_engine_fixtures import LIGHT_CHECK, make_installed, wheel_dir  # noqa: E402,F401
from semantic_analogy.plugin_core import engine_install as EI  # noqa: E402
from semantic_analogy.plugin_core import engine_launch as EL  # noqa: E402


@pytest.fixture
def LE(monkeypatch, tmp_path):
    with fake_krita.installed(monkeypatch, tmp_path / "appdata"):
        from semantic_analogy_krita import local_engine

        yield local_engine


class Recorder:
    def __init__(self, engine):
        self.states, self.progress, self.started, self.failed = [], [], [], []
        engine.stateChanged.connect(lambda s, t: self.states.append((s, t)))
        engine.progressChanged.connect(lambda p, t: self.progress.append((p, t)))
        engine.started.connect(lambda a, t: self.started.append((a, t)))
        engine.failed.connect(lambda s, d: self.failed.append((s, d)))


def pump(engine, rounds=400):
    """What Krita's event loop does: let the worker finish, then fire the timer."""
    for _ in range(rounds):
        if engine._future is not None:
            engine._future.exception(timeout=300)
        engine._tick()
        if not engine._timer.active:
            return
    raise AssertionError("the local engine's action did not end")


def test_no_python_found(LE, wheel_dir, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(EI.PYTHON_ENV, raising=False)
    monkeypatch.setattr(sys, "executable", "/usr/bin/krita")  # inside Krita, sys.executable is Krita
    engine = LE.LocalEngine(tmp_path / "data", wheel_dir)
    rec = Recorder(engine)
    assert engine.describe() == (EI.NOT_INSTALLED, "No local engine installed")
    assert engine.install()
    assert rec.states[-1][0] == LE.INSTALLING
    pump(engine)
    short, details = rec.failed[-1]
    assert short.startswith("The local engine needs Python 3.10 to 3.13 with its venv module"), short
    assert "no python3 or python on PATH" in details and "Install Python 3.13" in details
    # Nothing was made, so nothing blocks: the docker offers Install again, not a repair.
    assert rec.states[-1][0] == EI.NOT_INSTALLED and not engine.busy
    assert not rec.started


def test_pip_failing_half_way_then_retry_and_remove(LE, wheel_dir, tmp_path):
    bad = tmp_path / "bad_wheel"
    bad.mkdir()
    wheel = next(wheel_dir.glob("*.whl"))
    (bad / wheel.name).write_bytes(wheel.read_bytes())
    (bad / "constraints.txt").write_text("pyzmq==0.0.0.dev0\n")
    engine = LE.LocalEngine(tmp_path / "data", bad, python=sys.executable)
    rec = Recorder(engine)
    assert engine.install(then_start=False)
    pump(engine)
    short, details = rec.failed[-1]
    assert short.startswith("Installing the local engine failed while installing the engine's packages"), short
    assert "pyzmq==0.0.0.dev0" in short and "install.log" in details
    # The progress came by step, in words.
    texts = [t for _, t in rec.progress]
    assert texts[:3] == ["Finding Python", "Creating the environment", "Installing the engine and its packages"]
    assert [p for p, _ in rec.progress] == sorted(p for p, _ in rec.progress)
    state, text = rec.states[-1]
    assert state == EI.INCOMPLETE and "press Install to repair it, or Remove" in text, text

    # Retry works (here without the dependencies, which the end-to-end test installs).
    (bad / "constraints.txt").write_text("")
    engine.installer.pip_extra = ["--no-deps"]
    engine.installer.check_code = LIGHT_CHECK
    rec.failed.clear()
    assert engine.install(then_start=False)
    pump(engine)
    assert not rec.failed, rec.failed
    assert rec.states[-1] == (EI.READY, "Local engine 0.1.0 installed")

    # A newer plug-in: Update engine.
    engine.home.write_state(**{**engine.home.read_state(), "version": "0.0.9"})
    assert engine.describe()[0] == EI.OUTDATED

    # Remove works and says so in the state.
    assert engine.remove()
    pump(engine)
    assert rec.states[-1][0] == EI.NOT_INSTALLED and not engine.home.venv.exists()
    assert "install.log" in engine.log_text()


def test_port_taken_by_a_foreign_program(LE, wheel_dir, tmp_path):
    engine = LE.LocalEngine(tmp_path / "data", wheel_dir)
    make_installed(engine.home)
    rec = Recorder(engine)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        assert engine.start(f"127.0.0.1:{port}")
        pump(engine)
    short, _ = rec.failed[-1]
    assert short.startswith(f"Port {port} on this computer is used by another program"), short
    assert not rec.started and rec.states[-1][0] != LE.RUNNING


def test_an_existing_daemon_is_reused_and_krita_quitting_stops_only_its_own(LE, wheel_dir, tmp_path):
    # An engine left running by an earlier Krita session ("keep it running").
    engine = LE.LocalEngine(tmp_path / "data", wheel_dir, keep_running=True)
    make_installed(engine.home)
    earlier = EL.EngineProcess(engine.home)
    first = earlier.start(f"127.0.0.1:{EL.free_port()}", device="cpu")
    try:
        rec = Recorder(engine)
        assert engine.start("")  # the docker's first show with the default address
        pump(engine)
        assert rec.started == [(first.address, f"Using the local engine already running at {first.address}")]
        assert rec.states[-1] == (LE.RUNNING, f"Local engine running at {first.address} (already running)")
        engine.shutdown()  # Krita quits: the engine it did not start keeps running
        assert EL.protocol_ping(first.address, 2.0)
    finally:
        earlier.stop()

    # Started by this Krita: it stops when Krita quits...
    mine = LE.LocalEngine(tmp_path / "data", wheel_dir)
    rec = Recorder(mine)
    port = EL.free_port()
    assert mine.start(f"127.0.0.1:{port}")
    pump(mine)
    assert not rec.failed, rec.failed
    address, text = rec.started[-1]
    assert address == f"tcp://127.0.0.1:{port}" and text.startswith("Started the local engine")
    assert rec.states[-1] == (LE.RUNNING, f"Local engine running at {address} (started by Krita)")
    mine.shutdown()
    assert not EL.protocol_ping(address, 1.0)
