"""Training speed and peak memory of the engine, by working size and device.

    .venv/bin/python scripts/benchmark_engine.py [--sizes 128 256 512] [--iters 10] [--device cpu]

Each size runs in a fresh subprocess so that peak memory (ru_maxrss on the CPU,
torch.cuda.max_memory_allocated on a GPU) belongs to that size alone. Prints a
markdown table for BENCHMARKS.md; projected preset times are iterations x s/it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(size: int, iters: int, device: str) -> dict:
    import numpy as np
    import torch

    from semantic_analogy.engine.imageio import load_image, load_label_map
    from semantic_analogy.engine.presets import TrainSettings
    from semantic_analogy.engine.trainer import train

    image = load_image(ROOT / "examples/zebra/img.png")
    labels = load_label_map(ROOT / "examples/zebra/label.png")
    stamps: list[float] = []
    warmup = 3
    settings = TrainSettings(preset="preview", size=size, steps=iters + warmup, device=device, preview_every=0)
    model = train(image, labels, settings, progress=lambda p: stamps.append(time.perf_counter()))
    per_iter = float(np.mean(np.diff(stamps[warmup - 1 :])))
    target = load_label_map(ROOT / "examples/zebra/cond/1.png")
    apply_s = {}
    for method in ("gan", "gan+patch"):
        model.apply(target, method)  # warm-up
        t0 = time.perf_counter()
        for _ in range(5):
            model.apply(target, method)
        apply_s[method] = (time.perf_counter() - t0) / 5
    dev = model.device
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "device": str(dev), "s_per_iter": per_iter, "apply_s": apply_s, "peak_mib": peak,
            "work_size": list(model.source.work_size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.iters, args.device)))
        return
    from semantic_analogy.engine.presets import PRESETS

    rows = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--iters", str(args.iters), "--device", args.device],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"measured {size}: {rows[-1]}", file=sys.stderr)
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores; "
          f"command: python scripts/benchmark_engine.py --sizes {' '.join(map(str, args.sizes))} --iters {args.iters} --device {args.device}\n")
    print("| working size (zebra) | device | s / iteration | apply one target, gan | apply one target, gan+patch | peak memory |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} px ({r['work_size'][0]}x{r['work_size'][1]}) | {r['device']} | {r['s_per_iter']:.3f} | "
              f"{r['apply_s']['gan']:.3f} s | {r['apply_s']['gan+patch']:.3f} s | {r['peak_mib']:.0f} MiB |")
    by_size = {r["size"]: r for r in rows}
    print("\n| preset | size | iterations x G steps | projected training time |")
    print("|---|---|---|---|")
    for name, p in PRESETS.items():
        if p.size in by_size:
            # s/iter was measured with 1 G step; extra G steps cost about 40% of an iteration each
            est = by_size[p.size]["s_per_iter"] * p.steps * (1 + 0.4 * (p.g_steps - 1))
            print(f"| {name} | {p.size} | {p.steps} x {p.g_steps} | {est / 60:.1f} min |")


if __name__ == "__main__":
    main()
