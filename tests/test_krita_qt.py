"""Krita plugin: the Qt compatibility module, in the Python that Krita itself uses.

The venv has no PyQt; Debian's Krita runs /usr/bin/python3 with python3-pyqt5, so the
module is checked there (offscreen Qt, no display needed)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"

SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from semantic_analogy_krita import qt_compat as q
app = q.QApplication([])
img = q.qimage_from_rgba(2, 1, bytes([255, 0, 0, 255, 0, 0, 255, 128]))
print(q.QT_API, img.width(), img.height(), hex(img.pixel(0, 0)), hex(img.pixelColor(1, 0).rgba()))
# the scoped enum spellings the docker uses exist in this PyQt
print(q.ALIGN_CENTER is not None, q.KEEP_ASPECT is not None, q.FORMAT_RGBA8888 is not None)
"""


def test_qt_compat_in_krita_python():
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import PyQt5"], capture_output=True) \
        if Path(SYSTEM_PYTHON).exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} with PyQt5 (Debian's python3-pyqt5, as Krita uses) is not installed")
    r = subprocess.run([SYSTEM_PYTHON, "-c", SCRIPT, str(ROOT / "plugin_krita")], capture_output=True, text=True,
                       timeout=60, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "PyQt5 2 1 0xffff0000 0x800000ff", r.stdout
    assert lines[1] == "True True True"
