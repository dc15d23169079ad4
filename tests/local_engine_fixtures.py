"""Shared by the local-engine tests: the real engine wheel, and an installed-looking engine
environment whose python is this project's (so its daemon starts in seconds)."""

import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import engine_wheel  # noqa: E402

# The install check without torch: these tests install the wheel without its dependencies.
LIGHT_CHECK = "import semantic_analogy; print(semantic_analogy.__version__)"


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    """The engine wheel and constraints.txt, as the plug-ins carry them."""
    folder = tmp_path_factory.mktemp("wheel")
    engine_wheel.build(folder)
    return folder


def shell_script(path: Path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def make_installed(home, version: str = "0.1.0") -> None:
    """A complete environment whose python is the project's (as after a real install)."""
    shell_script(home.python, f'exec "{sys.executable}" "$@"')
    home.write_state(status="complete", version=version, wheel_size=-2)
