"""The GIMP plug-in installer (plugin_gimp/install.py) and the chroot preparation script."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "plugin_gimp" / "prepare_gimp_chroot.sh"


@pytest.fixture(scope="module")
def installer():
    spec = importlib.util.spec_from_file_location("sa_gimp_install", REPO / "plugin_gimp" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_repo(tmp_path):
    """A checkout with the real plug-in and a small protocol package (relative imports only)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "plugin_gimp", repo / "plugin_gimp", ignore=shutil.ignore_patterns("__pycache__"))
    proto = repo / "protocol"
    proto.mkdir()
    (proto / "__init__.py").write_text("")
    (proto / "images.py").write_text("KIND = 'rgba'\n")
    (proto / "client.py").write_text("from .images import KIND\n")
    (proto / "__pycache__").mkdir()
    (proto / "__pycache__" / "client.cpython-311.pyc").write_bytes(b"junk")
    shutil.copytree(REPO / "plugin_core", repo / "plugin_core", ignore=shutil.ignore_patterns("__pycache__"))
    # What the engine wheel is built from (the plug-in carries it for "Semantic Analogy Engine…").
    for name in ("semantic_analogy", "engine", "daemon"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, repo / name)
    return repo


def test_profile_dirs_per_platform(installer):
    home = Path("/home/ann")
    linux = installer.profile_dirs("Linux", {}, home)
    assert linux[0] == home / ".config/GIMP/3.0"
    assert home / ".var/app/org.gimp.GIMP/config/GIMP/3.0" in linux  # Flatpak
    assert installer.profile_dirs("Linux", {"XDG_CONFIG_HOME": "/cfg"}, home)[0] == Path("/cfg/GIMP/3.0")
    assert installer.profile_dirs("Windows", {"APPDATA": r"C:\Users\ann\AppData\Roaming"}, home) == [
        Path(r"C:\Users\ann\AppData\Roaming") / "GIMP" / "3.0"
    ]
    assert installer.profile_dirs("Darwin", {}, home) == [home / "Library/Application Support/GIMP/3.0"]
    assert installer.profile_dirs("Linux", {"GIMP3_DIRECTORY": "/p"}, home) == [Path("/p")]


def test_plug_in_dir_prefers_an_existing_profile(installer):
    native, flatpak = Path("/h/.config/GIMP/3.0"), Path("/h/.var/app/org.gimp.GIMP/config/GIMP/3.0")
    assert installer.choose_plug_in_dir([native, flatpak], exists=lambda p: p == flatpak) == flatpak / "plug-ins"
    assert installer.choose_plug_in_dir([native, flatpak], exists=lambda p: False) == native / "plug-ins"


def test_vendor_command_targets_gimps_python(installer):
    cmd = installer.vendor_command("py", Path("/v"), "3.12", "win_amd64")
    assert cmd[:4] == ["py", "-m", "pip", "install"]
    assert cmd[cmd.index("--target") + 1] == "/v"
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--platform") + 1] == "win_amd64"
    assert "--only-binary=:all:" in cmd and cmd[-2:] == ["pyzmq", "msgpack"]
    assert "--only-binary=:all:" not in installer.vendor_command("py", Path("/v"))


def test_install_layout_exec_bit_and_reinstall_keeps_vendor(installer, fake_repo, tmp_path):
    plug_ins = tmp_path / "plug-ins"
    plug_ins.mkdir()
    main = installer.install(plug_ins, fake_repo)
    folder = plug_ins / "semantic_analogy_gimp"
    assert main == folder / "semantic_analogy_gimp.py"
    assert main.stat().st_mode & stat.S_IXUSR
    assert (folder / "sa_gimp_logic.py").is_file()
    assert (folder / "sa_shared" / "protocol" / "client.py").is_file()
    assert (folder / "sa_shared" / "plugin_core" / "bundle.py").is_file()
    assert not (folder / "sa_shared" / "protocol" / "__pycache__").exists()
    assert sorted(p.name for p in (folder / "engine_wheel").iterdir()) == ["constraints.txt",
                                                                     "semantic_analogy-0.1.0-py3-none-any.whl"]
    # The bundled copy imports under its new name: relative imports only.
    out = subprocess.run(
        [sys.executable, "-c", "import sa_shared.protocol.client as c; print(c.KIND)"],
        cwd=folder, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "rgba"

    (folder / "vendor").mkdir()
    (folder / "vendor" / "zmq.txt").write_text("wheel")
    (folder / "stale.py").write_text("")
    installer.install(plug_ins, fake_repo)
    assert (folder / "vendor" / "zmq.txt").read_text() == "wheel"
    assert not (folder / "stale.py").exists()
    assert not list(plug_ins.glob(".*"))  # no staging folder left behind

    assert installer.uninstall(plug_ins) is True
    assert not folder.exists()
    assert installer.uninstall(plug_ins) is False


def test_install_refuses_a_checkout_without_protocol(installer, fake_repo, tmp_path):
    shutil.rmtree(fake_repo / "protocol")
    with pytest.raises(installer.InstallError, match="protocol package is missing"):
        installer.install(tmp_path, fake_repo)


def test_command_line_installs_and_uninstalls(tmp_path):
    if not (REPO / "protocol" / "client.py").is_file():
        pytest.skip("protocol/client.py is not in this checkout yet")
    cmd = [sys.executable, str(REPO / "plugin_gimp" / "install.py")]
    env = {**os.environ, "GIMP3_DIRECTORY": str(tmp_path / "profile")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "profile" / "plug-ins" / "semantic_analogy_gimp"
    assert "installed" in done.stderr and (installed / "sa_shared" / "protocol" / "client.py").is_file()
    assert not (installed / "sa_shared" / "protocol" / "commands.py").exists(), "the CLI's client side is not the plug-in's"
    # The plug-in's logic takes the shared core and the method names from the bundled copies,
    # without the project installed (-S: no site-packages, as in GIMP's own Python).
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import sa_gimp_logic as g; from sa_shared.plugin_core import bundle; "
         "import importlib; s = importlib.import_module(bundle.PROTOCOL + '.schema'); "
         "print(g.choices.__name__, g.METHODS[0].nick, s.DEFAULT_METHOD)"],
        cwd=installed, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["sa_shared.plugin_core.choices", "patch", "patch"]
    done = subprocess.run(cmd + ["--uninstall"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and not installed.exists()


def test_prepare_script_check_reports_missing_chroot(tmp_path):
    env = {**os.environ, "SA_GIMP_CHROOT": str(tmp_path / "none")}
    done = subprocess.run(["bash", str(PREPARE), "--check"], env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "prepare_gimp_chroot" in done.stderr and str(tmp_path / "none") in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap"), reason="needs root and debootstrap")
def test_prepare_script_fails_clearly_without_registry(tmp_path):
    # Port 9 (discard) on loopback: nothing answers, like a machine without the Debian registry.
    env = {**os.environ, "SA_GIMP_CHROOT": str(tmp_path / "root"), "SA_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    done = subprocess.run(["bash", str(PREPARE)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot reach the Debian registry at http://127.0.0.1:9/debian" in done.stderr
    assert not (tmp_path / "root" / ".semantic-analogy-gimp-ready").exists()
