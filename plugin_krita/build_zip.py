"""Build semantic_analogy_krita.zip for Krita's "Tools › Scripts › Import Python Plugin from File…".

    python plugin_krita/build_zip.py                       # -> dist/semantic_analogy_krita.zip
    python plugin_krita/build_zip.py --zmq-wheel pyzmq-27.1.0-cp310-cp310-win_amd64.whl ...
    python plugin_krita/build_zip.py --install ~/.local/share/krita/pykrita   # unpack for a local Krita

The zip holds the .desktop file and one package folder, semantic_analogy_krita/, which
carries everything Krita's Python cannot be expected to have:

* protocol/          a copy of the project's protocol package (relative imports only),
* plugin_core/       the editor-side core shared with the GIMP plug-in (plugin_core/),
* vendor/common/     msgpack's pure-Python modules (the C speed-up is left out: it is
                     tied to one Python version and msgpack falls back by itself),
* vendor/<py>-<abi>-<os>-<arch>/   each pyzmq wheel given with --zmq-wheel, unpacked;
                     the plugin picks the one matching Krita's Python at run time,
* engine_wheel/      the engine's own wheel and constraints.txt pinning its dependencies,
                     which the docker's "Install local engine" installs (scripts/engine_wheel.py).

pyzmq per platform (see plugin_krita/README.md): Debian/Ubuntu's Krita uses the system
Python, so `apt install python3-zmq` is the way there and no wheel is needed; for
Windows, macOS and the AppImage, get the wheel for Krita's embedded Python with
`pip download pyzmq --only-binary=:all: --no-deps --python-version 3.X --platform TAG -d wheels/`
and pass it with --zmq-wheel.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLUGIN = "semantic_analogy_krita"
ZIP_NAME = f"{PLUGIN}.zip"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))
import engine_wheel  # noqa: E402
from semantic_analogy_krita.deps import wheel_folder_name  # noqa: E402  (pure module, no Krita)

log = logging.getLogger("build_zip")

# A bundled protocol copy must not reach outside itself, or it breaks under the new name.
_ABSOLUTE_IMPORT = re.compile(r"^\s*(from|import)\s+(semantic_analogy|protocol|numpy|torch)\b", re.MULTILINE)


class BuildError(RuntimeError):
    pass


PROTOCOL_SKIP = ("commands.py", "files.py")


def _copy_py_tree(src: Path, dst: Path, extra: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> list[Path]:
    """Copy the .py files (and named extras) of a package, without caches and the `skip` names."""
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts or not path.is_file() or path.name in skip:
            continue
        if path.suffix == ".py" or path.name in extra:
            out = dst / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
            copied.append(out)
    return copied


def _bundle_package(src: Path, dst: Path, what: str, marker: str, extra: tuple[str, ...] = (),
                    skip: tuple[str, ...] = ()) -> None:
    """Copy a pure-Python package that the plug-in carries under a new name."""
    if not (src / marker).is_file():
        raise BuildError(f"{src} has no {marker}: is the {what} package there?")
    for path in _copy_py_tree(src, dst, extra=extra, skip=skip):
        if path.suffix != ".py":
            continue
        m = _ABSOLUTE_IMPORT.search(path.read_text(encoding="utf-8"))
        if m:
            raise BuildError(
                f"{path.name} in the {what} package imports {m.group(2)!r} absolutely; the bundled copy "
                "needs relative imports only and no numpy/torch (DEVELOPERS.md)."
            )


def bundle_protocol(protocol_dir: Path, dst: Path) -> None:
    # commands.py and files.py are the command line's client side: a plug-in never runs them.
    _bundle_package(protocol_dir, dst, "protocol", "client.py", extra=("SPEC.md",), skip=PROTOCOL_SKIP)


def bundle_core(core_dir: Path, dst: Path) -> None:
    """The editor-side core shared with the GIMP plug-in, beside the protocol it imports."""
    _bundle_package(core_dir, dst, "plugin_core", "bundle.py")


def bundle_msgpack(dst: Path) -> str:
    """Copy the pure-Python part of the msgpack this Python has; returns its version."""
    import msgpack

    src = Path(msgpack.__file__).parent
    _copy_py_tree(src, dst / "msgpack")
    if not (dst / "msgpack" / "fallback.py").is_file():
        raise BuildError(f"msgpack at {src} has no fallback.py (pure-Python implementation)")
    version = importlib.metadata.version("msgpack")
    try:
        dist = importlib.metadata.distribution("msgpack")
        for f in dist.files or []:
            if f.name in ("COPYING", "LICENSE", "LICENSE.txt"):
                shutil.copy2(dist.locate_file(f), dst / "msgpack" / "COPYING")
    except importlib.metadata.PackageNotFoundError:
        pass
    return version


def bundle_wheel(wheel: Path, vendor: Path) -> str:
    """Unpack one wheel into vendor/<py>-<abi>-<os>-<arch>/ (wheels are made to be unpacked)."""
    folder = wheel_folder_name(wheel.name)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(vendor / folder)
    return folder


def build_tree(out_dir: Path, zmq_wheels: list[Path] = (), protocol_dir: Path = REPO / "protocol",
               core_dir: Path = REPO / "plugin_core") -> Path:
    """Lay out the plugin as Krita installs it: out_dir/NAME.desktop and out_dir/NAME/."""
    src_pkg = HERE / PLUGIN
    pkg = out_dir / PLUGIN
    if pkg.exists():
        shutil.rmtree(pkg)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / f"{PLUGIN}.desktop", out_dir / f"{PLUGIN}.desktop")
    _copy_py_tree(src_pkg, pkg, extra=("manual.html",))
    for stale in ("protocol", "plugin_core", "vendor", "engine_wheel"):  # never ship a developer's leftovers from the source folder
        if (src_pkg / stale).exists():
            raise BuildError(f"{src_pkg / stale} should not exist in the source tree; remove it")
    bundle_protocol(protocol_dir, pkg / "protocol")
    bundle_core(core_dir, pkg / "plugin_core")
    vendor = pkg / "vendor"
    msgpack_version = bundle_msgpack(vendor / "common")
    builds = [bundle_wheel(Path(w), vendor) for w in zmq_wheels]
    try:  # what "Install local engine" installs (local_engine.py)
        wheel = engine_wheel.build(pkg / "engine_wheel")
    except engine_wheel.WheelError as e:
        raise BuildError(str(e)) from e
    info = {"plugin": PLUGIN, "project_version": _project_version(), "msgpack": msgpack_version,
            "pyzmq_builds": builds, "engine_wheel": wheel.name}
    (pkg / "BUILD_INFO.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return pkg


def _project_version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return m.group(1) if m else "unknown"


def write_zip(tree: Path, zip_path: Path) -> Path:
    """Zip with explicit folder entries: Krita's importer finds the package by its
    'semantic_analogy_krita/' entry and an __init__.py inside it."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            rel = path.relative_to(tree).as_posix()
            if path.is_dir():
                zf.writestr(rel + "/", b"")
            elif "__pycache__" not in rel:
                zf.write(path, rel)
    return zip_path


def build_zip(zip_path: Path, zmq_wheels: list[Path] = ()) -> Path:
    with tempfile.TemporaryDirectory(prefix="sa-krita-") as tmp:
        build_tree(Path(tmp), list(zmq_wheels))
        return write_zip(Path(tmp), zip_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=REPO / "dist" / ZIP_NAME, help="zip file to write")
    ap.add_argument("--zmq-wheel", type=Path, action="append", default=[], metavar="WHEEL",
                    help="a pyzmq wheel to bundle (repeat for each platform / Python version)")
    ap.add_argument("--install", type=Path, metavar="PYKRITA_DIR",
                    help="also unpack the plugin into this pykrita folder (e.g. ~/.local/share/krita/pykrita)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for w in args.zmq_wheel:
        if not w.is_file():
            ap.error(f"{w}: no such wheel file")
        if not w.name.startswith("pyzmq-"):
            ap.error(f"{w.name}: expected a pyzmq wheel (pyzmq-VERSION-PY-ABI-PLATFORM.whl)")
    try:
        out = build_zip(args.output, args.zmq_wheel)
        log.info("wrote %s", out)
        if args.install:
            build_tree(args.install, args.zmq_wheel)
            log.info("installed into %s; enable “Semantic Analogy” in Settings › Configure Krita › "
                     "Python Plugin Manager and restart Krita", args.install)
    except (BuildError, ValueError, OSError) as e:
        log.error("error: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
