"""Krita plugin: the installable zip (built by plugin_krita/build_zip.py)."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin_krita"))

import build_zip  # noqa: E402

KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("zip") / "semantic_analogy_krita.zip"
    assert build_zip.main(["-o", str(out)]) == 0
    return out


def test_zip_layout(built):
    names = set(zipfile.ZipFile(built).namelist())
    pkg = "semantic_analogy_krita/"
    assert {"semantic_analogy_krita.desktop", pkg, pkg + "__init__.py", pkg + "docker.py", pkg + "qt_compat.py",
            pkg + "protocol/client.py", pkg + "protocol/images.py", pkg + "vendor/common/msgpack/fallback.py",
            pkg + "plugin_core/bundle.py", pkg + "plugin_core/choices.py", pkg + "BUILD_INFO.json"} <= names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyc"))]  # no binary of the build machine
    assert pkg + "protocol/commands.py" not in names, "the CLI's client side is not the plug-in's"
    info = json.loads(zipfile.ZipFile(built).read(pkg + "BUILD_INFO.json"))
    assert info["pyzmq_builds"] == [] and info["msgpack"]
    # The engine's wheel that "Install local engine" installs, and its pinned dependencies.
    assert info["engine_wheel"] == f"semantic_analogy-{info['project_version']}-py3-none-any.whl"
    assert pkg + "engine_wheel/" + info["engine_wheel"] in names
    pins = zipfile.ZipFile(built).read(pkg + "engine_wheel/constraints.txt").decode().splitlines()
    assert {p.split("==")[0] for p in pins if "==" in p} == {"torch", "torchvision", "numpy", "pillow", "pyzmq",
                                                            "msgpack", "tqdm"}
    with zipfile.ZipFile(built) as zf, zipfile.ZipFile(zf.open(pkg + "engine_wheel/" + info["engine_wheel"])) as wf:
        inside = set(wf.namelist())
    assert {"semantic_analogy/daemon/server.py", "semantic_analogy/engine/analogy.py",
            "semantic_analogy/protocol/SPEC.md"} <= inside


def test_krita_own_importer_accepts_the_zip(built, tmp_path):
    """Runs Krita's "Import Python Plugin from File…" logic (its plugin_importer module)."""
    if not KRITA_IMPORTER.is_file():
        pytest.skip(f"Krita's plugin importer is not installed ({KRITA_IMPORTER}); apt install krita")
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    r = subprocess.run([python, str(KRITA_IMPORTER), str(built), str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Imported plugin: Semantic Analogy" in r.stdout
    assert (tmp_path / "pykrita" / "semantic_analogy_krita.desktop").is_file()
    assert (tmp_path / "pykrita" / "semantic_analogy_krita" / "protocol" / "client.py").is_file()


def test_bundled_msgpack_works_and_missing_pyzmq_is_named(built, tmp_path):
    """In a Python with no site-packages (-S), as an embedded Krita Python may be:
    the bundled pure-Python msgpack loads, and the missing pyzmq is explained."""
    zipfile.ZipFile(built).extractall(tmp_path)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from semantic_analogy_krita import deps\n"
        "try:\n"
        "    deps.load_dependencies()\n"
        "    print('LOADED')\n"
        "except deps.MissingDependency as e:\n"
        "    print('MISSING', e)\n"
        "import msgpack\n"
        "print('MSGPACK', msgpack.__file__)\n"
        "print('ROUNDTRIP', msgpack.unpackb(msgpack.packb({'a': b'\\x00' * 5, 'n': [1, 2.5]})) == "
        "{'a': b'\\x00' * 5, 'n': [1, 2.5]})\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", script, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"MSGPACK {tmp_path}" in out and "vendor/common/msgpack" in out
    assert "ROUNDTRIP True" in out
    assert "MISSING Semantic Analogy needs pyzmq" in out and "No module named 'zmq'" in out
    assert f"Python {sys.version_info[0]}.{sys.version_info[1]} on linux" in out


def test_the_bundled_core_is_the_one_used(built, tmp_path):
    """Without the project installed (-S), the docker's settings take the shared core and the
    method names from the zip's own copies, and the core finds the bundled protocol."""
    zipfile.ZipFile(built).extractall(tmp_path)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from semantic_analogy_krita import core, settings\n"
        "print(core.choices.__name__, core.bundle.PROTOCOL, settings.METHOD_NAMES[0], settings.DEFAULT_ADDRESS)\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["semantic_analogy_krita.plugin_core.choices", "semantic_analogy_krita.protocol",
                                "patch", "tcp://127.0.0.1:5555"]


def test_build_refuses_a_protocol_with_absolute_imports(tmp_path):
    proto = tmp_path / "protocol"
    shutil.copytree(ROOT / "protocol", proto, ignore=shutil.ignore_patterns("__pycache__"))
    (proto / "wire.py").write_text((proto / "wire.py").read_text() + "\nfrom semantic_analogy.protocol import errors\n")
    with pytest.raises(build_zip.BuildError, match="relative imports only"):
        build_zip.build_tree(tmp_path / "out", [], protocol_dir=proto)


def test_build_rejects_a_non_wheel(tmp_path, capsys):
    bad = tmp_path / "pyzmq.tar.gz"
    bad.write_bytes(b"x")
    with pytest.raises(SystemExit) as e:
        build_zip.main(["-o", str(tmp_path / "z.zip"), "--zmq-wheel", str(bad)])
    assert e.value.code == 2
    assert "expected a pyzmq wheel" in capsys.readouterr().err
    assert not (tmp_path / "z.zip").exists()


def _local_pyzmq_wheel():
    """A pyzmq wheel for this Python, from $SA_PYZMQ_WHEEL_DIR or the repository's .whl/
    (fill it with: pip download pyzmq --only-binary=:all: --no-deps -d .whl)."""
    import os

    from semantic_analogy_krita import deps

    rt = deps.current_runtime()
    for folder in (os.environ.get("SA_PYZMQ_WHEEL_DIR"), ROOT / ".whl"):
        if folder and Path(folder).is_dir():
            for whl in sorted(Path(folder).glob("pyzmq-*.whl")):
                try:
                    if deps.folder_matches(deps.wheel_folder_name(whl.name), rt):
                        return whl
                except ValueError:
                    continue
    return None


def test_bundled_pyzmq_wheel_is_used_where_the_python_has_none(tmp_path):
    wheel = _local_pyzmq_wheel()
    if wheel is None:
        pytest.skip("no pyzmq wheel for this Python in $SA_PYZMQ_WHEEL_DIR or .whl/ "
                    "(pip download pyzmq --only-binary=:all: --no-deps -d .whl)")
    zip_path = tmp_path / "with_zmq.zip"
    assert build_zip.main(["-o", str(zip_path), "--zmq-wheel", str(wheel)]) == 0
    zipfile.ZipFile(zip_path).extractall(tmp_path / "x")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from semantic_analogy_krita import deps\n"
        "client, images, errors = deps.load_protocol()\n"
        "import zmq\n"
        "print('ZMQ', zmq.__file__, zmq.zmq_version())\n"
        "print('CLIENT', client.__name__)\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", script, str(tmp_path / "x")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"ZMQ {tmp_path / 'x'}" in r.stdout and "/vendor/cp3" in r.stdout
    assert "CLIENT semantic_analogy_krita.protocol.client" in r.stdout
