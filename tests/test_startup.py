"""The client commands start without the engine: no torch, no numpy (issue 13, "Start-up").

Each case runs the real command line in a fresh interpreter and reports which heavy modules
were imported by the time it returned. Times and memory are measured by
scripts/benchmark_startup.py into BENCHMARKS.md, not here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

# Runs semantic_analogy.cli.main as the console script does, then writes what was imported.
WRAPPER = """
import json, os, sys
from semantic_analogy.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
heavy = ("torch", "torchvision", "numpy", "scipy", "semantic_analogy.daemon.server", "semantic_analogy.daemon.worker",
         "semantic_analogy.engine.api", "semantic_analogy.engine.synthesis")
with open(os.environ["SA_STARTUP_REPORT"], "w") as f:
    json.dump({"rc": rc, "loaded": sorted(m for m in heavy if m in sys.modules)}, f)
"""


def free_address() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def run_cli(tmp_path, *args: str) -> tuple[int, list[str], str, str]:
    report = tmp_path / "report.json"
    env = {**os.environ, "SA_STARTUP_REPORT": str(report)}
    env.pop("SEMANTIC_ANALOGY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    got = json.loads(report.read_text())
    return got["rc"], got["loaded"], proc.stdout, proc.stderr


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    for name, colour in (("img.png", (10, 200, 30)), ("labels.png", (255, 0, 0)), ("target.png", (0, 0, 255))):
        Image.new("RGB", (16, 12), colour).save(tmp_path / name)
    return [str(tmp_path / n) for n in ("img.png", "labels.png", "target.png")]


def _client_cases(images, address):
    return {
        "help": (["--help"], 0, "submit"),
        "ping, no daemon": (["ping", "--address", address, "--timeout", "0.3"], 1, "no engine daemon answered"),
        "status, no daemon": (["status", "--address", address, "--timeout", "0.3"], 1, "no engine daemon answered"),
        "models, no daemon": (["models", "list", "--address", address, "--timeout", "0.3"], 1,
                              "no engine daemon answered"),
        "submit, bad path": (["submit", "nope.png", images[1], images[2], "--out", "o.png", "--address", address],
                             2, "nope.png does not exist"),
        "submit, bad output": (["submit", *images, "--out", "o.xyz", "--address", address], 2, "'.xyz' is not an image"),
        "submit, no daemon": (["submit", *images, "--out", "o.png", "--address", address, "--timeout", "0.3"], 1,
                              "no engine daemon answered"),
        "result, bad id": (["result", "not-a-job", "--out", "o.png", "--address", address], 2, "is not a job id"),
        "watch, no daemon": (["watch", "0" * 32, "--address", address, "--timeout", "0.3"], 1,
                             "no engine daemon answered"),
    }


CASES = list(_client_cases([""] * 3, ""))


@pytest.mark.parametrize("case", CASES)
def test_client_commands_import_no_torch_nor_numpy(tmp_path, images, case):
    args, rc, says = _client_cases(images, free_address())[case]
    got_rc, loaded, out, err = run_cli(tmp_path, *args)
    assert got_rc == rc, err
    assert says in out + err
    assert loaded == [], f"{case} imported {loaded}"
    assert "Traceback" not in err and "Warning" not in err
    if rc:
        assert len(err.strip().splitlines()) == 1, err  # one line that says what is wrong


def test_run_with_a_bad_path_imports_no_torch(tmp_path, images):
    rc, loaded, _, err = run_cli(tmp_path, "run", "nope.png", images[1], images[2], "--out", "o.png")
    assert rc == 2 and "nope.png" in err
    assert "torch" not in loaded
