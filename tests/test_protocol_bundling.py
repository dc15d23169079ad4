"""The protocol folder must work when a plug-in bundles a copy of it under its own package."""

import shutil
import subprocess
import sys
from pathlib import Path

import semantic_analogy.protocol as protocol

CHECK = """
import sys
import myplugin.vendored.protocol.client as client
from myplugin.vendored.protocol.images import RGBAImage
from myplugin.vendored.protocol.wire import decode, encode
img = RGBAImage.filled(2, 2, (1, 2, 3, 4))
msg = decode(encode("submit", {"image": img, "labels": img, "targets": [img], "settings": {}}), sender="client")
assert msg.content["targets"] == [img]
assert client.Client("tcp://127.0.0.1:1").timeout == 5.0
heavy = sorted(m for m in ("semantic_analogy", "numpy", "torch") if m in sys.modules)
assert not heavy, heavy
print("ok")
"""


def test_a_bundled_copy_imports_under_another_name_without_numpy_or_torch(tmp_path):
    pkg = tmp_path / "myplugin" / "vendored"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "myplugin", pkg):
        (d / "__init__.py").write_text("")
    shutil.copytree(Path(protocol.__file__).parent, pkg / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    # -I: isolated mode, so only the copy (and site-packages' pyzmq and msgpack) can be found.
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + CHECK],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "ok", out.stderr
