"""Engine daemon: round trip, cache-hit latency, cancel latency and throughput under load.

    .venv/bin/python scripts/benchmark_daemon.py [--clients 8] [--jobs 3] [--steps 5] [--threads 1]

Starts `python -m semantic_analogy.daemon serve` on an ipc socket with a fresh cache and
drives it with real clients on the bundled examples (zebra 572x380, face 256x256, tree
250x250; "tiny" preset). In the load phase each client submits all its jobs and then
waits for them; the examples give three models to train, every other job is a cache hit.
Prints lines for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from semantic_analogy.protocol.client import Client  # noqa: E402
from semantic_analogy.protocol.errors import JobFailed  # noqa: E402
from semantic_analogy.protocol.images import RGBAImage  # noqa: E402

EXAMPLES = ["zebra", "face", "tree"]


def load(path: Path) -> RGBAImage:
    with Image.open(path) as im:
        im = im.convert("RGBA")
        return RGBAImage(im.width, im.height, im.tobytes())


def example(name: str) -> tuple[RGBAImage, RGBAImage, list[RGBAImage]]:
    d = ROOT / "examples" / name
    targets = [load(p) for p in sorted((d / "cond").glob("[0-9].png"))]
    return load(d / "img.png"), load(d / "label.png"), targets


def start_daemon(cache: Path, sock: Path, threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--bind", f"ipc://{sock}",
         "--cache-dir", str(cache), "--threads", str(threads), "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the daemon did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def load_phase(address: str, clients: int, jobs: int, steps: int) -> tuple[float, int]:
    data = {name: example(name) for name in EXAMPLES}
    done: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            image, labels, targets = data[EXAMPLES[i % len(EXAMPLES)]]
            with Client(address, timeout=30) as c:
                ids = [c.submit(image, labels, [targets[(i + j) % len(targets)]], {"preset": "tiny", "steps": steps})
                       for j in range(jobs)]
                for job in ids:
                    c.wait(job, timeout=3600)
                    with lock:
                        done.append(job)
        except BaseException as e:
            with lock:
                errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"load phase failed: {errors[0]!r}")
    return wall, len(set(done))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=3, help="jobs per client")
    ap.add_argument("--steps", type=int, default=5, help="training steps of each new model (tiny preset)")
    ap.add_argument("--threads", type=int, default=1, help="the daemon's CPU threads")
    ap.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="machine description for the table")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_daemon(Path(tmp) / "cache", Path(tmp) / "d.sock", args.threads)
        try:
            with Client(address, timeout=30) as c:
                device = c.connect()["device"]
                c.ping()
                rtts = sorted(c.ping() for _ in range(200))

            wall, completed = load_phase(address, args.clients, args.jobs, args.steps)

            image, labels, targets = example("zebra")
            hits, firsts, gan_hits = [], [], []
            settings = {"preset": "tiny", "steps": args.steps}
            with Client(address, timeout=30) as c:
                for t in targets:  # the zebra model is cached by now
                    # gan+patch (what a submit without `method` gets): the GAN's instant preview first, then the result.
                    t0 = time.perf_counter()
                    first = None
                    for ev in c.events(c.submit(image, labels, [t], settings), timeout=600):
                        if first is None and (ev.instant or ev.kind == "result"):
                            first = time.perf_counter() - t0
                        if ev.terminal and ev.kind != "result":
                            raise SystemExit(f"cache-hit job ended with {ev.kind}: {ev.data}")
                    hits.append(time.perf_counter() - t0)
                    firsts.append(first)
                    t0 = time.perf_counter()
                    c.wait(c.submit(image, labels, [t], settings, method="gan"), timeout=600)
                    gan_hits.append(time.perf_counter() - t0)
                cancels = []
                for _ in range(3):
                    job = c.submit(image, labels, [targets[0]],
                                   {"preset": "tiny", "steps": 100000, "seed": uuid.uuid4().int % 10**6})
                    for ev in c.events(job, timeout=600):
                        if ev.kind == "progress" and ev.data["stage"] == "train":
                            break
                    t0 = time.perf_counter()
                    c.cancel(job)
                    try:
                        c.wait(job, timeout=600)
                    except JobFailed:
                        cancels.append(time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(120)

    day = time.strftime("%Y-%m-%d")
    cmd = f"python scripts/benchmark_daemon.py --clients {args.clients} --jobs {args.jobs} --steps {args.steps} " \
          f"--threads {args.threads}"
    print(f"\n## Engine daemon ({day}, {args.machine}, device {device}, Python {platform.python_version()})\n")
    print(f"Command: `{cmd}`\n")
    print("| measure | value |\n|---|---|")
    print(f"| ping round trip (median of 200, ipc) | {statistics.median(rtts) * 1000:.2f} ms |")
    print(f"| load: {args.clients} clients x {args.jobs} tiny jobs (3 models trained, {steps_note(args)}) | "
          f"{completed} jobs in {wall:.1f} s = {completed / wall:.2f} jobs/s |")
    print(f"| cache hit, zebra 572x380, gan+patch: submit to the instant GAN preview (median of {len(firsts)}) | "
          f"{statistics.median(firsts):.2f} s |")
    print(f"| cache hit, zebra 572x380, gan+patch: submit to result (median of {len(hits)}) | {statistics.median(hits):.2f} s |")
    print(f"| cache hit, zebra 572x380, gan: submit to result (median of {len(gan_hits)}) | {statistics.median(gan_hits):.2f} s |")
    print(f"| cancel of a running training, cancel to `cancelled` event (max of {len(cancels)}) | "
          f"{max(cancels):.2f} s |")
    return 0


def steps_note(args: argparse.Namespace) -> str:
    return f"{args.steps} steps each, daemon on {args.threads} thread(s)"


if __name__ == "__main__":
    sys.exit(main())
