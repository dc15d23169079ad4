"""Start-up of the client commands: wall time and peak memory of a fresh `semantic-analogy`.

    .venv/bin/python scripts/benchmark_startup.py [--runs 5]

Runs each command in a new process, as a user's script does: `--help`, `ping` with no
daemon there (its --timeout wait is subtracted), bad-path errors of `submit` and of `run`,
and `ping` answered by a live daemon (started first, not measured). Peak memory is the
largest resident set size of the measured children (resource.getrusage(RUSAGE_CHILDREN),
one measuring process per row; the live daemon is reaped only after the row's runs, so it
does not count). Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PING_TIMEOUT = 0.2  # seconds `ping` waits for the absent daemon; subtracted in the table


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of one run."""
    env = {k: v for k, v in os.environ.items() if k != "SEMANTIC_ANALOGY_ADDRESS"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    # ru_maxrss of the children is the largest of any child so far: runs go from the
    # lightest command up, and each row starts its own interpreter.
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kb / 1024, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    exe = [sys.executable, "-m", "semantic_analogy"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        from PIL import Image

        for name in ("img.png", "labels.png", "target.png"):
            Image.new("RGB", (64, 48), (200, 30, 30)).save(cwd / name)
        address = free_address()
        rows = [
            ("`--help`", [*exe, "--help"], 0.0),
            (f"`ping` (no daemon, `--timeout {PING_TIMEOUT}`)", [*exe, "ping", "--address", address,
                                                                "--timeout", str(PING_TIMEOUT)], PING_TIMEOUT),
            ("`submit` with a bad path", [*exe, "submit", "nope.png", "labels.png", "target.png", "--out", "o.png",
                                          "--address", address], 0.0),
            ("`submit` with a bad `--out` type", [*exe, "submit", "img.png", "labels.png", "target.png",
                                                  "--out", "o.xyz", "--address", address], 0.0),
            ("`run` with a bad path (engine command)", [*exe, "run", "nope.png", "labels.png", "target.png",
                                                        "--out", "o.png"], 0.0),
            ("`ping` (a daemon answers, ipc)", [*exe, "ping", "--address", f"ipc://{cwd}/d.sock"], 0.0),
        ]
        # Each row in its own measuring process, so that ru_maxrss is that row's peak.
        if os.environ.get("_SA_BENCH_ROW"):
            row = int(os.environ["_SA_BENCH_ROW"])
            label, cmd, wait = rows[row]
            daemon = None
            if "ipc://" in cmd[-1]:  # a live daemon, started first (a child, but reaped only at the end)
                daemon = subprocess.Popen([*exe, "serve", "--bind", cmd[-1], "--cache-dir", str(cwd / "cache"),
                                           "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                          text=True)
                if "listening on" not in daemon.stdout.readline():
                    print(f"| {label} | the daemon did not start | | |")
                    return 1
            walls, peaks = [], []
            for _ in range(args.runs):
                wall, peak, _ = measure(cmd, cwd)
                walls.append(wall - wait)
                peaks.append(peak)
            if daemon is not None:
                daemon.terminate()
                daemon.wait(60)
            print(f"| {label} | {statistics.median(walls):.3f} | {min(walls):.3f}–{max(walls):.3f} | "
                  f"{max(peaks):.0f} |")
            return 0
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPU cores, {args.runs} runs each; "
          "time: median (range) of the wall time, less ping's wait for the absent daemon; memory: peak RSS.\n")
    print("| command | wall time (s) | range (s) | peak RSS (MB) |")
    print("|---|---|---|---|")
    for i in range(6):
        out = subprocess.run([sys.executable, __file__, "--runs", str(args.runs)], capture_output=True, text=True,
                             env={**os.environ, "_SA_BENCH_ROW": str(i)})
        sys.stdout.write(out.stdout or f"| row {i} failed: {out.stderr.strip()[-200:]} | | | |\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
