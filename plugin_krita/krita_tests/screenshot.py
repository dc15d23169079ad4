"""Take docs/krita_docker.png from a real Krita run (Xvfb) against a real daemon.

    .venv/bin/python plugin_krita/krita_tests/screenshot.py [--steps 120]

Trains the zebra example with the tiny preset, grabs the floating docker while it
shows a live preview, and once the result layer is in, the docker and the window.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import run_krita  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args(argv)
    missing = run_krita.missing_prerequisites()
    if missing:
        print("cannot run Krita here; missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    ex = REPO / "examples" / "zebra"
    with tempfile.TemporaryDirectory(prefix="sa-krita-shot-") as tmp:
        work = Path(tmp)
        with run_krita.engine_daemon(work / "cache", work / "daemon.log") as address:
            config = {"image": str(ex / "img.png"), "labels": str(ex / "label.png"),
                      "target": str(ex / "cond" / "1.png"), "address": address, "preset": "tiny",
                      "steps": args.steps, "timeout_s": 400, "docker_size": [430, 1020],
                      "screenshot_on_preview": True, "start_delay_ms": 3000}
            result, log = run_krita.run(config, work / "krita", timeout=460)
        out = work / "krita" / "out"
        if not result.get("ok"):
            print(log[-3000:], result, (work / "daemon.log").read_text()[-2000:], sep="\n", file=sys.stderr)
            return 1
        args.out.mkdir(parents=True, exist_ok=True)
        copies = {"docker_training.png": "krita_docker.png", "screen_docker.png": "krita_window.png"}
        for src, dst in copies.items():
            if (out / src).is_file():
                shutil.copy2(out / src, args.out / dst)
                print("wrote", args.out / dst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
