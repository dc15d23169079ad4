"""Finding the plugin's third-party modules inside Krita's own Python.

Krita runs plugins in its embedded Python (the system Python 3 for a Linux
distribution's Krita; a Python bundled with Krita on Windows, macOS and the
AppImage), never a virtual environment. So:

* msgpack is bundled in pure-Python form (vendor/common/msgpack): its C speed-up
  is optional and msgpack falls back to msgpack/fallback.py by itself.
* pyzmq is compiled against one Python version and one OS: a zip built with
  `build_zip.py --zmq-wheel WHEEL` carries each given wheel unpacked in
  vendor/<python>-<abi>-<os>-<arch>/ and the matching one is used; otherwise the
  pyzmq that Krita's Python already has (Debian/Ubuntu: `apt install python3-zmq`).
* the protocol package is bundled as semantic_analogy_krita/protocol and the shared
  editor-side core as semantic_analogy_krita/plugin_core (relative imports only, so
  the copies work under these names; plugin_core/bundle.py finds its sibling protocol).

A module already importable from Krita's Python wins over a bundled one, so a
distribution's compiled msgpack/pyzmq is preferred; a bundled one is the fallback.
"""

from __future__ import annotations

import importlib
import platform as _platform
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional, Sequence

PACKAGE_DIR = Path(__file__).resolve().parent
VENDOR_DIR = PACKAGE_DIR / "vendor"


class MissingDependency(ImportError):
    """A module the plugin needs is not importable; the message says how to get it."""


@dataclass(frozen=True)
class Runtime:
    """The interpreter the plugin runs in, in wheel-tag terms."""

    major: int
    minor: int
    os: str  # "linux" | "windows" | "macos" | other sys.platform values
    arch: str  # "x86_64" | "arm64" | "aarch64" | ...

    @property
    def python_tag(self) -> str:
        return f"cp{self.major}{self.minor}"

    def describe(self) -> str:
        return f"Python {self.major}.{self.minor} on {self.os} {self.arch}"


def _norm_arch(arch: str) -> str:
    a = arch.lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(a, a)


def current_runtime() -> Runtime:
    if sys.platform.startswith("win"):
        os_name = "windows"
    elif sys.platform == "darwin":
        os_name = "macos"
    elif sys.platform.startswith("linux"):
        os_name = "linux"
    else:
        os_name = sys.platform
    return Runtime(sys.version_info[0], sys.version_info[1], os_name, _norm_arch(_platform.machine()))


def wheel_folder_name(wheel_filename: str) -> str:
    """vendor/ sub-folder for a wheel: '<python>-<abi>-<os>-<arch>'.

    pyzmq-27.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    -> cp311-cp311-linux-x86_64
    """
    name = Path(wheel_filename).name
    if not name.endswith(".whl"):
        raise ValueError(f"{name} is not a wheel (.whl) file")
    parts = name[:-4].split("-")
    if len(parts) < 5:
        raise ValueError(f"{name} is not a wheel file name (name-version-python-abi-platform.whl)")
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    py = py.split(".")[0]
    plat0 = plat.split(".")[0]
    if plat0.startswith(("manylinux", "musllinux", "linux")):
        os_name = "linux"
        arch = plat0.split("_", 1)[1] if plat0.startswith("linux_") else plat0.split("_", 3)[-1]
    elif plat0.startswith("win"):
        os_name, arch = "windows", {"win32": "x86", "win_amd64": "x86_64", "win_arm64": "arm64"}.get(plat0, plat0)
    elif plat0.startswith("macosx"):
        os_name, arch = "macos", plat0.split("_", 3)[-1]
    else:
        raise ValueError(f"{name}: unsupported platform tag {plat}")
    return f"{py}-{abi}-{os_name}-{_norm_arch(arch)}"


def folder_matches(folder: str, rt: Runtime) -> bool:
    """Whether a vendor/<folder> built from a wheel can load in this runtime."""
    parts = folder.split("-")
    if len(parts) != 4:
        return False
    py, abi, os_name, arch = parts
    if os_name != rt.os:
        return False
    if arch != rt.arch and not (os_name == "macos" and arch == "universal2" and rt.arch in ("x86_64", "arm64")):
        return False
    if abi == "abi3":  # stable ABI: built for cp3X, loads in 3.X and later
        if not (py.startswith("cp3") and py[3:].isdigit()):
            return False
        return rt.major == 3 and rt.minor >= int(py[3:])
    return py == rt.python_tag and abi == rt.python_tag


def matching_vendor_dirs(vendor_dir: Path, rt: Runtime) -> list[Path]:
    """Bundled folders usable here: the pure-Python ones, then compiled ones that match."""
    out = []
    common = vendor_dir / "common"
    if common.is_dir():
        out.append(common)
    if vendor_dir.is_dir():
        for sub in sorted(vendor_dir.iterdir()):
            if sub.is_dir() and sub.name != "common" and folder_matches(sub.name, rt):
                out.append(sub)
    return out


def bundled_builds(vendor_dir: Path) -> list[str]:
    return sorted(p.name for p in vendor_dir.iterdir() if p.is_dir() and p.name != "common") \
        if vendor_dir.is_dir() else []


def zmq_missing_message(rt: Runtime, error: str, bundled: Sequence[str]) -> str:
    """Exactly what is missing and how to get it on this platform."""
    lines = [
        f"Semantic Analogy needs pyzmq (ZeroMQ for Python), but Krita's {rt.describe()} cannot import it "
        f"({error}).",
    ]
    if bundled:
        lines.append(f"This plugin zip carries pyzmq only for: {', '.join(bundled)}.")
    else:
        lines.append("This plugin zip carries no pyzmq build.")
    if rt.os == "linux":
        lines.append(
            "With your distribution's Krita (Debian, Ubuntu): install python3-zmq "
            "(sudo apt install python3-zmq) and restart Krita."
        )
        lines.append(
            f"With the Krita AppImage or Flatpak: install a plugin zip built with a pyzmq wheel for "
            f"{rt.python_tag}-{rt.python_tag}-linux-{rt.arch}."
        )
    else:
        lines.append(
            f"Install a plugin zip built with a pyzmq wheel for {rt.python_tag} on {rt.os} {rt.arch} "
            f"(python plugin_krita/build_zip.py --zmq-wheel pyzmq-…-{rt.python_tag}-…whl), then restart Krita."
        )
    return "\n".join(lines)


def _try_import(name: str) -> tuple[Optional[ModuleType], str]:
    try:
        return importlib.import_module(name), ""
    except ImportError as e:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]
        return None, str(e) or type(e).__name__


def _import_preferring_system(name: str, dirs: Sequence[Path]) -> tuple[Optional[ModuleType], str]:
    """Import `name` from Krita's Python; if that fails, from the bundled folders."""
    mod, err = _try_import(name)
    if mod is not None:
        return mod, ""
    added = [str(d) for d in dirs if str(d) not in sys.path]
    if not added:
        return None, err
    sys.path[:0] = added  # in front, so a broken system copy does not shadow ours again
    mod, err2 = _try_import(name)
    if mod is None:
        return None, f"{err}; bundled copy: {err2}"
    return mod, ""


def load_dependencies(vendor_dir: Path = VENDOR_DIR, rt: Optional[Runtime] = None) -> None:
    """Make msgpack and zmq importable, or raise MissingDependency saying what to install."""
    rt = rt or current_runtime()
    dirs = matching_vendor_dirs(vendor_dir, rt)
    mp, err = _import_preferring_system("msgpack", dirs)
    if mp is None:
        raise MissingDependency(
            f"Semantic Analogy needs msgpack, and Krita's {rt.describe()} cannot import it ({err}). "
            "The plugin zip bundles a pure-Python msgpack: reinstall the zip built by "
            "plugin_krita/build_zip.py (Tools › Scripts › Import Python Plugin from File…)."
        )
    zmq, err = _import_preferring_system("zmq", dirs)
    if zmq is None:
        raise MissingDependency(zmq_missing_message(rt, err, bundled_builds(vendor_dir)))


def load_protocol():
    """The protocol package: the copy bundled in the plugin (beside the shared core,
    which finds it), else an installed one. Returns (client, images, errors) modules."""
    load_dependencies()
    try:
        from .core import bundle

        proto = bundle.protocol()
    except ImportError as e:
        raise MissingDependency(
            f"The plugin is incomplete: its bundled protocol or shared core is missing ({e}). "
            "Install the zip made by “python plugin_krita/build_zip.py” rather than copying the source folder."
        ) from e
    return proto.client, proto.images, proto.errors
