"""Time and peak memory of label-guided patch synthesis (the `patch` and `gan+patch` methods).

    .venv/bin/python scripts/benchmark_patch.py [--size 256] [--full 4000x3000] [--threads N]
                                                [--device cpu] [--examples zebra tree face] [--out DIR]

Two parts, each case in a fresh subprocess so that its peak memory is its own:

* working size: every bundled example scaled to `--size` (longest side), every edited
  target in its cond/ folder, both as the product runs it (only the edited region and its margin, the
  rest exactly the source) and as whole-image texture by numbers (no mask);
* full resolution: the zebra example upscaled to `--full` with target cond/1 (its edited
  region is about a fifth of the image), `patch` (labels alone) and `gan+patch` with a
  stand-in guide: the working-size patch result, upscaled as a GAN output would be.

Peak memory is the growth of the process's peak RSS during the call (Linux VmHWM,
reset just before it) on the CPU, torch.cuda.max_memory_allocated on a GPU.
Prints markdown tables for BENCHMARKS.md and writes the results as PNGs to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_example(name: str, target: str, size: tuple[int, int] | None):
    """(image, source index, target index) of an example, resized to (w, h) when given."""
    import numpy as np
    from PIL import Image

    from semantic_analogy.engine.labels import decode_labels, extract_palette

    folder = ROOT / "examples" / name
    image = Image.open(folder / "img.png").convert("RGB")
    painted = np.asarray(Image.open(folder / "label.png"))
    palette = extract_palette(painted)
    src = decode_labels(painted, palette, what="source label map")
    tgt = decode_labels(np.asarray(Image.open(folder / "cond" / f"{target}.png")), palette)
    if size is not None:
        image = image.resize(size, Image.BICUBIC)
        # Class maps scale by nearest neighbour: no new classes appear on edges.
        src = np.asarray(Image.fromarray(src.astype(np.int32)).resize(size, Image.NEAREST)).astype(np.int64)
        tgt = np.asarray(Image.fromarray(tgt.astype(np.int32)).resize(size, Image.NEAREST)).astype(np.int64)
    return np.asarray(image), src, tgt


def working_size(name: str, longest: int) -> tuple[int, int]:
    from PIL import Image

    w, h = Image.open(ROOT / "examples" / name / "img.png").size
    s = longest / max(w, h)
    return round(w * s), round(h * s)


def peak_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) * 1024


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def measure(case: dict) -> dict:
    """Run one case in this process; returns its timings."""
    import torch
    from PIL import Image

    from semantic_analogy.engine.patch_synthesis import synthesize
    from semantic_analogy.engine.synthesis import synthesis_mask

    if case["threads"]:
        torch.set_num_threads(case["threads"])
    device = case["device"]
    name, target = case["example"], case["target"]
    if case["kind"] == "work":
        size = working_size(name, case["size"])
    else:
        size = tuple(case["full"])
    image, src, tgt = load_example(name, target, size)
    # As the product runs it: the edited region, its margin and halos (engine/synthesis.py).
    mask = synthesis_mask(src, tgt) if case["masked"] else None
    guide = None
    if case.get("guide"):
        # Stand-in for the GAN's working-size output: the working-size patch result.
        wimg, wsrc, wtgt = load_example(name, target, working_size(name, case["size"]))
        guide = synthesize(wimg, wsrc, wtgt, mask=wsrc != wtgt, device=device)
    events = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    reset_peak()
    before = peak_bytes()
    t0 = time.perf_counter()
    out = synthesize(image, src, tgt, guide=guide, mask=mask, device=device, seed=0, progress=events.append)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = peak_bytes() - before
    if mask is not None:
        assert (out[~mask] == image[~mask]).all(), "pixels outside the edited region and its margin changed"
    out_dir = Path(case["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{case['kind']}_{name}_{target}_{'mask' if mask is not None else 'whole'}{'_guided' if guide is not None else ''}"
    Image.fromarray(out).save(out_dir / f"{stem}.png")
    return {
        **case,
        "w": size[0],
        "h": size[1],
        "edited": float((src != tgt).mean()),
        "seconds": seconds,
        "peak_mib": peak / 2**20,
        "levels": len(events),
        "patch_distance": events[-1].losses["patch_distance"] if events else float("nan"),
        "file": str(out_dir / f"{stem}.png"),
    }


def run_case(case: dict) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def targets(name: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "examples" / name / "cond").glob("*.png") if p.stem.isdigit())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="working size: longest side in pixels")
    ap.add_argument("--full", default="4000x3000", help="full-resolution WxH, or 'none' to skip")
    ap.add_argument("--examples", nargs="*", default=["zebra", "tree", "face"], help="working-size examples (none: skip)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="/tmp/benchmark_patch", help="folder for the result PNGs")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one case, as JSON, in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return

    import torch

    base = {"threads": args.threads, "device": args.device, "size": args.size, "out": args.out}
    threads = args.threads or torch.get_num_threads()
    print(f"<!-- {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} CPUs · torch {torch.__version__} · {threads} thread(s) · device {args.device} · "
          f"load average {os.getloadavg()[0]:.1f} · `{' '.join(sys.argv)}` -->\n")

    print(f"Working size (longest side {args.size} px), seed 0:\n")
    print("| example | target | size | edited | edited region + margin (s) | whole image (s) | peak MiB (region / whole) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.examples:
        for target in targets(name):
            rows = [run_case({**base, "kind": "work", "example": name, "target": target, "masked": m}) for m in (True, False)]
            r, whole = rows
            print(f"| {name} | {target} | {r['w']}x{r['h']} | {r['edited']:.0%} | {r['seconds']:.2f} | "
                  f"{whole['seconds']:.2f} | {r['peak_mib']:.0f} / {whole['peak_mib']:.0f} |", flush=True)

    if args.full.lower() != "none":
        w, h = (int(v) for v in args.full.lower().split("x"))
        print(f"\nFull resolution ({w}x{h}, zebra upscaled, target cond/1, only the edited region and its margin):\n")
        print("| method | edited | time (s) | peak MiB | levels |")
        print("|---|---|---|---|---|")
        for method, guided in (("patch", False), ("gan+patch (stand-in guide)", True)):
            r = run_case({**base, "kind": "full", "full": [w, h], "example": "zebra", "target": "1",
                          "masked": True, "guide": guided})
            print(f"| {method} | {r['edited']:.0%} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {r['levels']} |", flush=True)
    print(f"\nResults: {args.out}")


if __name__ == "__main__":
    main()
