"""The Ray backend against the local one: throughput of a fixed batch, and a cache hit's latency.

    .venv/bin/python scripts/benchmark_cluster.py [--steps 30]

Three set-ups on this machine, each with a fresh cache and a `python -m semantic_analogy.daemon
serve` process in front:
  local    the local backend, one job at a time, torch on all cores;
  ray-1    --backend ray, one worker node with all the cores, one job at a time (--cpus-per-job = cores);
  ray-2    --backend ray, two worker nodes with half the cores each, two jobs at a time.
The Ray clusters are started with ray.cluster_utils.Cluster (a head node that runs no jobs).

Per set-up: a warm-up (not timed) trains one model and runs one job of each kind, so that
every worker process has imported torch; then one client submits the batch at once and
waits for all of it: 2 `patch` jobs, 2 tiny GAN trainings (new models) and 2 `gan` jobs
whose model is cached (zebra, 572x380), each from a connection of its own. Then three single cache-hit jobs, one after the
other: submit to result, as a painter's client sees it. Prints lines for BENCHMARKS.md.
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
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from semantic_analogy.protocol.client import Client  # noqa: E402
from semantic_analogy.protocol.images import RGBAImage  # noqa: E402


def load(path: Path) -> RGBAImage:
    with Image.open(path) as im:
        im = im.convert("RGBA")
        return RGBAImage(im.width, im.height, im.tobytes())


def start_daemon(cache: Path, extra: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--bind", "tcp://127.0.0.1:0",
         "--cache-dir", str(cache), "--log-level", "warning", "--instant-preview-size", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 180)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the daemon did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def run_setup(name: str, address: str, steps: int) -> dict:
    d = ROOT / "examples" / "zebra"
    image, labels = load(d / "img.png"), load(d / "label.png")
    targets = [load(p) for p in sorted((d / "cond").glob("[0-9].png"))]
    tiny = {"preset": "tiny", "steps": steps}
    with Client(address, timeout=30) as c:
        # Warm-up: the cached model, and every worker process's first (slow) torch import.
        warm = [c.submit(image, labels, [targets[0]], {**tiny, "seed": 0}, method="gan"),
                c.submit(image, labels, [targets[1]], {}, method="patch")]
        for job in warm:
            c.wait(job, timeout=900)
        # One connection per job, as from six painters: one connection's newer job for a photo
        # would supersede its queued older one (--backend ray).
        jobs = [*(([targets[i]], {}, "patch") for i in (2, 3)),
                *(([targets[0]], {**tiny, "seed": s}, "gan") for s in (1, 2)),
                *(([targets[i]], {**tiny, "seed": 0}, "gan") for i in (1, 2))]
        painters = [Client(address, timeout=30) for _ in jobs]
        t0 = time.monotonic()
        batch = [p.submit(image, labels, t, settings, method=method) for p, (t, settings, method) in zip(painters, jobs)]
        for p, job in zip(painters, batch):
            p.wait(job, timeout=1800)
            p.close()
        batch_s = time.monotonic() - t0
        hits = []
        for i in range(3):
            t = time.monotonic()
            c.wait(c.submit(image, labels, [targets[i]], {**tiny, "seed": 0}, method="gan"), timeout=300)
            hits.append(time.monotonic() - t)
        device = c.status()["device"]
    print(f"  {name}: batch of 6 in {batch_s:.1f} s; cache hit {statistics.median(hits):.2f} s "
          f"(median of 3: {', '.join(f'{h:.2f}' for h in hits)}); device {device}", flush=True)
    return {"batch_s": batch_s, "hit_s": statistics.median(hits)}


def ray_cluster(nodes: int, cpus: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="training steps of each tiny GAN job (default 30)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {cores} cores, Python {platform.python_version()}, "
          f"command: python scripts/benchmark_cluster.py --steps {args.steps}", flush=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_daemon(Path(tmp) / "local", ["--threads", str(cores)], cores)
        try:
            out["local"] = run_setup("local", address, args.steps)
        finally:
            proc.terminate()
            proc.wait(60)
        for name, nodes in (("ray-1", 1), ("ray-2", 2)):
            per_node = max(1, cores // nodes)
            cluster = ray_cluster(nodes, per_node)
            try:
                proc, address = start_daemon(Path(tmp) / name, ["--backend", "ray", "--ray-address", cluster.address,
                                                                "--cpus-per-job", str(per_node)], per_node)
                try:
                    out[name] = run_setup(name, address, args.steps)
                finally:
                    proc.terminate()
                    proc.wait(60)
            finally:
                cluster.shutdown()
    base = out["local"]
    print("| set-up | batch of 6 (s) | throughput vs local | one cache hit (s) | added latency vs local (s) |")
    print("|---|---|---|---|---|")
    for name, r in out.items():
        print(f"| {name} | {r['batch_s']:.1f} | {base['batch_s'] / r['batch_s']:.2f}x | {r['hit_s']:.2f} | "
              f"{r['hit_s'] - base['hit_s']:+.2f} |")


if __name__ == "__main__":
    main()
