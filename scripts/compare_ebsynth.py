"""`patch` against Ebsynth (a C++ texture-by-numbers implementation) on every bundled example target.

    .venv/bin/python scripts/compare_ebsynth.py --ebsynth /path/to/ebsynth/bin/ebsynth \
        [--examples zebra tree face] [--out out/ebsynth] [--sheet out/ebsynth_sheet.png]

Ebsynth is public (github.com/jamriska/ebsynth; `build-linux-cpu_only.sh` builds it) and is a
reference to beat, not a dependency: build it yourself and pass its path. Both run as whole
processes, start-up included, on the example at its own size (about 256 px): Ebsynth as
`-style img.png -guide label.png TARGET -output OUT`, ours as `semantic-analogy run ...
--method patch`. Every output is scored with `semantic-analogy eval`'s measures; prints
markdown tables for BENCHMARKS.md and writes a sheet (target | Ebsynth | patch) to look at.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "semantic_analogy"]


def targets_of(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "cond").glob("*.png") if p.stem != "rec" and not p.stem.startswith("mask"))


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def rgb_target(path: Path, out: Path) -> Path:
    """Ebsynth reads guides as RGB: flatten any alpha onto white, as a painter's export would."""
    im = Image.open(path).convert("RGBA")
    flat = Image.new("RGB", im.size, (255, 255, 255))
    flat.paste(im, mask=im.getchannel("A"))
    flat.save(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ebsynth", required=True, help="the ebsynth binary you built")
    ap.add_argument("--examples", nargs="+", default=["zebra", "tree", "face"])
    ap.add_argument("--out", default=str(ROOT / "out" / "ebsynth"))
    ap.add_argument("--sheet", default=str(ROOT / "out" / "ebsynth_sheet.png"))
    args = ap.parse_args()
    if not os.access(args.ebsynth, os.X_OK):
        raise SystemExit(f"{args.ebsynth} is not an executable; build Ebsynth and give its bin/ebsynth")

    from semantic_analogy.engine.imageio import load_image, load_label_map
    from semantic_analogy.engine.metrics import evaluate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, strips = [], []
    for name in args.examples:
        folder = ROOT / "examples" / name
        image, labels = load_image(folder / "img.png"), load_label_map(folder / "label.png")
        for tpath in targets_of(folder):
            case = f"{name}_{tpath.stem}"
            guide_src = rgb_target(folder / "label.png", out / f"{name}_label_rgb.png")
            guide_tgt = rgb_target(tpath, out / f"{case}_target_rgb.png")
            eb_out, pa_out = out / f"{case}_ebsynth.png", out / f"{case}_patch.png"
            t_eb = timed([args.ebsynth, "-style", str(folder / "img.png"), "-guide", str(guide_src), str(guide_tgt),
                          "-output", str(eb_out)])
            t_pa = timed([*CLI, "run", str(folder / "img.png"), str(folder / "label.png"), str(tpath),
                          "--out", str(pa_out), "--method", "patch"])
            target = load_label_map(tpath)
            for method, path, secs in (("ebsynth", eb_out, t_eb), ("patch", pa_out, t_pa)):
                m = evaluate(image, labels, target, load_image(path))
                rows.append({"example": name, "target": tpath.stem, "method": method, "time_s": secs, **m})
            strips.append(np.concatenate([np.asarray(Image.open(tpath).convert("RGB")),
                                          load_image(eb_out), load_image(pa_out)], axis=1))
            print(f"{case}: ebsynth {t_eb:.2f} s, patch {t_pa:.2f} s", file=sys.stderr)

    width = max(s.shape[1] for s in strips)
    sheet = np.concatenate([np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips])
    Image.fromarray(sheet).save(args.sheet)

    def get(r: dict, *keys: str):
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    cols = [("time (s)", ("time_s",)), ("mIoU edited", ("alignment", "edited", "miou")),
            ("patch distance edited", ("patch_distance", "edited")),
            ("texture contrast edited", ("texture_contrast", "edited")), ("ghost", ("ghost_score",)),
            ("ghost chance", ("ghost_chance",)),
            ("outline", ("outline_contrast",)), ("seam step", ("seam_step",)),
            ("height tone", ("height_tone",)), ("PSNR outside (dB)", ("psnr_outside",))]

    def fmt(v) -> str:
        return "–" if v is None else f"{v:.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3f}"

    print(f"<!-- {time.strftime('%Y-%m-%d')} · {platform.machine()} · {os.cpu_count()} CPUs · "
          f"`scripts/compare_ebsynth.py --ebsynth {args.ebsynth}` -->\n")
    print("| example | target | method | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['example']} | {r['target']} | {r['method']} | " + " | ".join(fmt(get(r, *k)) for _, k in cols) + " |")
    print("\n| method (mean over every target) | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for method in ("ebsynth", "patch"):
        sel = [r for r in rows if r["method"] == method]
        means = []
        for _, k in cols:
            vals = [get(r, *k) for r in sel if get(r, *k) is not None and np.isfinite(get(r, *k))]
            means.append(float(np.mean(vals)) if vals else None)
        print(f"| {method} | " + " | ".join(fmt(v) for v in means) + " |")
    wins = sum(1 for a, b in zip(rows[0::2], rows[1::2])
               if get(b, "patch_distance", "edited") is not None and get(a, "patch_distance", "edited") is not None
               and get(b, "patch_distance", "edited") < get(a, "patch_distance", "edited"))
    print(f"\n`patch` has the smaller patch distance in the edited region on {wins} of {len(rows) // 2} targets.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
