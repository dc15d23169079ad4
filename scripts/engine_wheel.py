"""The engine's wheel and pinned constraints that the editor plug-ins carry.

`plugin_krita/build_zip.py` and `plugin_gimp/install.py` call `build(folder)`, which writes
folder/semantic_analogy-VERSION-py3-none-any.whl and folder/constraints.txt: the plug-in's
"Install local engine" then needs only the package registry (or a local wheel cache) for
torch and friends, and installs the very versions this project was tested with.

    python scripts/engine_wheel.py DIR      # the same, by hand
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The engine's run-time dependencies (pyproject.toml), pinned to what this checkout runs with.
PINNED = ("torch", "torchvision", "numpy", "pillow", "pyzmq", "msgpack", "tqdm")
# What the wheel is built from: the packages, and what setuptools reads.
SOURCES = ("pyproject.toml", "README.md", "semantic_analogy", "engine", "daemon", "protocol", "plugin_core")


class WheelError(RuntimeError):
    pass


def constraints_text() -> str:
    lines = ["# The engine's dependencies at the versions this plug-in was built and tested with."]
    for name in PINNED:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise WheelError(f"{name} is not installed in {sys.executable}: build from the project's "
                             "environment (scripts/env.sh makes it)") from None
    return "\n".join(lines) + "\n"


def build(folder: Path, repo: Path = REPO) -> Path:
    """Write the engine wheel and constraints.txt into `folder` (emptied first); returns the wheel."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sa-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCES:  # a clean copy: no build/ or egg-info left in the checkout
            path = repo / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif path.is_file():
                shutil.copy2(path, src / name)
            else:
                raise WheelError(f"{path} is missing: is this a checkout of the project?")
        # With setuptools here the build needs nothing from the network; without, pip fetches it.
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--quiet", "-w", str(folder), str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise WheelError(f"building the engine wheel failed: {(r.stderr or r.stdout).strip()[-1500:]}")
    wheels = sorted(folder.glob("semantic_analogy-*.whl"))
    if len(wheels) != 1:
        raise WheelError(f"expected one engine wheel in {folder}, found {[w.name for w in wheels]}")
    (folder / "constraints.txt").write_text(constraints_text(), encoding="utf-8")
    return wheels[0]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(build(Path(sys.argv[1])))
