"""The managed local engine (plugin_core/engine_install.py, engine_launch.py): finding a
Python, installing into its own environment with the real pip, repairing and removing a
failed install, starting the real daemon, reusing a running one, a port held by a
foreign program, and the daemon stopping with the editor that started it.

The full install (torch included) runs in the real-Krita end-to-end test; here pip
installs the real engine wheel without its dependencies, so each case takes seconds.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from semantic_analogy.plugin_core import engine_install as EI
from semantic_analogy.plugin_core import engine_launch as EL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from local_engine_fixtures import LIGHT_CHECK, make_installed, shell_script, wheel_dir  # noqa: E402,F401

script = shell_script


# --------------------------------------------------------------------------- finding Python


def test_no_python_found_says_what_was_tried_and_what_to_install(tmp_path):
    old = script(tmp_path / "python3.8", 'echo "3.8.10 /usr/bin/python3.8"')
    novenv = script(tmp_path / "python3.12", "echo \"ModuleNotFoundError: No module named 'venv'\" >&2; exit 1")
    with pytest.raises(EI.NoPython) as e:
        EI.find_python(candidates=[[str(tmp_path / "missing" / "python3")], [old], [novenv]])
    text = str(e.value)
    assert "needs Python 3.10 to 3.13" in text
    assert "python3.8: is Python 3.8.10" in text
    assert "has no venv module" in text and "python3-venv" in text
    assert "does not start" in text
    assert EI.PYTHON_ENV in text and "press Install again" in text


def test_a_real_python_fits_and_the_editor_binary_is_never_a_candidate(monkeypatch, tmp_path):
    version, why = EI.probe_python([sys.executable])
    assert version[:2] == sys.version_info[:2] and why == ""
    krita = script(tmp_path / "krita", "exit 0")
    monkeypatch.setattr(sys, "executable", krita)
    cands = EI.python_candidates(env={}, which=lambda name: None)
    assert cands == []
    cands = EI.python_candidates(env={EI.PYTHON_ENV: "/opt/py/bin/python3"}, which=lambda n: f"/usr/bin/{n}",
                                 configured="/my/python")
    assert cands[:2] == [["/my/python"], ["/opt/py/bin/python3"]]
    assert ["/usr/bin/python3.13"] in cands and ["/usr/bin/python3"] in cands
    assert len(cands) == len({tuple(c) for c in cands})


def test_pip_output_in_steps_and_failures_in_words():
    assert EI.pip_line_words("Collecting torch==2.14.1") == "Getting torch"
    assert EI.pip_line_words("Collecting filelock") is None
    assert EI.pip_line_words("Processing /opt/w/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (from x)") \
        == "Getting torch (a wheel on this computer)"
    assert EI.pip_line_words("  Downloading torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl (900.3 MB)") \
        == "Downloading torch (900.3 MB)"
    words = EI.pip_line_words("Installing collected packages: mpmath, sympy, numpy, torch, torchvision")
    assert words == "Installing numpy, torch, torchvision and 2 more (this can take several minutes)"
    assert "could not reach the package index" in EI.explain_pip_failure(
        ["WARNING: Retrying ... ReadTimeoutError(\"HTTPSConnectionPool(host='pypi.org')\")", "ERROR: x"])
    assert "no prebuilt package of torch==2.14.1 for Python 3.9" in EI.explain_pip_failure(
        ["ERROR: No matching distribution found for torch==2.14.1"], "3.9")
    assert "disk is full" in EI.explain_pip_failure(["OSError: [Errno 28] No space left on device"])


# --------------------------------------------------------------------------- install, repair, remove


def test_pip_failing_half_way_leaves_a_state_that_install_repairs_and_remove_deletes(wheel_dir, tmp_path):
    home = EI.EngineHome(tmp_path / "engine")
    good = EI.EngineWheel.find(wheel_dir)
    assert good.version == "0.1.0" and good.constraints is not None
    assert EI.install_state(home, good).state == EI.NOT_INSTALLED
    bad_constraints = tmp_path / "constraints.txt"
    bad_constraints.write_text("msgpack==0.0.0.dev0\n")  # no such release: pip fails after the venv exists
    steps = []
    bad = EI.Installer(home, EI.EngineWheel(good.path, bad_constraints), python=sys.executable,
                       progress=steps.append)
    with pytest.raises(EI.InstallError) as e:
        bad.install()
    assert "installing the engine's packages" in str(e.value), e.value
    assert "no set of versions that fit together" in str(e.value) and "msgpack==0.0.0.dev0" in str(e.value)
    assert str(home.log) in str(e.value)
    assert [s.text for s in steps][:3] == ["Finding Python", "Creating the environment",
                                           "Installing the engine and its packages"]
    assert home.python.exists()  # half way: the environment is there, the packages are not
    st = EI.install_state(home, good)
    assert st.state == EI.INCOMPLETE and "press Install to repair it, or Remove" in st.text, st
    assert "msgpack" in bad.log_tail()

    # Retry works: a fresh environment, then a complete install.
    retry = EI.Installer(home, good, python=sys.executable, pip_extra=["--no-deps"])
    retry.check_code = LIGHT_CHECK
    assert retry.install().state == EI.READY
    assert home.read_state()["status"] == "complete"
    log_before = home.log.read_text()
    # A second install with the environment complete is a check, nothing more.
    steps.clear()
    again = EI.Installer(home, good, python=sys.executable, progress=steps.append)
    again.check_code = LIGHT_CHECK
    assert again.install().state == EI.READY
    assert [s.text for s in steps] == ["Checking the installed engine"]
    assert " -m pip " not in home.log.read_text()[len(log_before):]

    # Remove works, and leaves the logs (the user may want to read them).
    again.remove()
    assert EI.install_state(home, good).state == EI.NOT_INSTALLED
    assert not home.venv.exists() and home.log.exists()


def test_a_newer_plugin_offers_an_update_and_a_cancelled_install_can_be_finished(wheel_dir, tmp_path):
    home = EI.EngineHome(tmp_path / "engine")
    good = EI.EngineWheel.find(wheel_dir)
    home.venv.mkdir(parents=True)
    home.python.parent.mkdir(parents=True)
    home.python.write_text("")
    home.write_state(status="complete", version="0.0.9", wheel_size=1)
    st = EI.install_state(home, good)
    assert st.state == EI.OUTDATED and "press Update engine" in st.text and st.installed_version == "0.0.9"

    shutil_home = EI.EngineHome(tmp_path / "engine2")
    cancel = threading.Event()

    def on_step(step):
        if step.text == "Creating the environment":
            threading.Timer(0.3, cancel.set).start()  # while venv/ensurepip runs

    inst = EI.Installer(shutil_home, good, python=sys.executable, progress=on_step, cancel=cancel)
    with pytest.raises(EI.InstallCancelled):
        inst.install()
    assert EI.install_state(shutil_home, good).state == EI.INCOMPLETE


# --------------------------------------------------------------------------- the daemon


@pytest.fixture
def engine_home(tmp_path):
    """An engine folder whose environment's python is the project's (a launcher script)."""
    home = EI.EngineHome(tmp_path / "engine")
    make_installed(home)
    return home


def free_port():
    return EL.free_port()


def test_start_reuse_stop_and_a_port_held_by_a_foreign_program(engine_home):
    port = free_port()
    first = EL.EngineProcess(engine_home)
    started = first.start(f"127.0.0.1:{port}", device="cpu")
    try:
        assert not started.reused and started.address == f"tcp://127.0.0.1:{port}", started
        assert first.started_here and "Started the local engine" in started.text
        # An existing daemon is reused: by the managed cache's lock, even for another address.
        second = EL.EngineProcess(engine_home)
        again = second.start(f"127.0.0.1:{free_port()}")
        assert again.reused and again.address == started.address and not second.started_here
        assert EL.protocol_ping(started.address, 2.0)
    finally:
        assert first.stop()
    assert not EL.protocol_ping(started.address, 1.0)
    assert first.lock_holder() == {}

    # A foreign program on the port: said, with another port to type; no engine started.
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        taken = foreign.getsockname()[1]
        with pytest.raises(EL.PortTaken) as e:
            EL.EngineProcess(engine_home).start(f"127.0.0.1:{taken}")
    assert f"Port {taken} on this computer is used by another program" in str(e.value)


def test_a_failing_start_shows_the_log_tail(engine_home):
    script(engine_home.python, 'echo "ImportError: libtorch_cpu.so: cannot open shared object file" >&2; exit 3')
    with pytest.raises(EL.EngineStartError) as e:
        EL.EngineProcess(engine_home).start(f"127.0.0.1:{free_port()}")
    assert "exit code 3" in str(e.value) and "libtorch_cpu.so" in str(e.value)


def test_the_engine_stops_when_the_editor_that_started_it_ends(engine_home):
    editor = subprocess.Popen(["sleep", "120"])
    proc = EL.EngineProcess(engine_home)
    started = proc.start(f"127.0.0.1:{free_port()}", parent_pid=editor.pid, device="cpu")
    daemon = proc._proc
    try:
        editor.kill()  # an editor crash: no clean quit, no stop() from the plug-in
        editor.wait()
        daemon.wait(timeout=30)
        assert daemon.returncode == 0
        assert "has ended: stopping" in engine_home.daemon_log.read_text()
    finally:
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGKILL)
    assert not EL.protocol_ping(started.address, 1.0)


def test_a_detached_engine_outlives_the_editor(engine_home):
    editor = subprocess.Popen(["sleep", "120"])
    proc = EL.EngineProcess(engine_home)
    started = proc.start(f"127.0.0.1:{free_port()}", parent_pid=editor.pid, device="cpu")
    try:
        assert proc.detach()  # "Keep the engine running after Krita quits", ticked while it runs
        for _ in range(50):
            if "keeps running after" in engine_home.daemon_log.read_text():
                break
            time.sleep(0.1)
        editor.kill()
        editor.wait()
        time.sleep(2.5)  # two of the watch's checks
        assert EL.protocol_ping(started.address, 2.0)
    finally:
        assert proc.stop()
