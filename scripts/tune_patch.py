"""Patch synthesis with other settings on every bundled target: the means of eval's measures.

    .venv/bin/python scripts/tune_patch.py ['{"fine_passes": 3}'] [--seed 1] [--out DIR] [--only tree/4,face/7] [--models DIR]

Runs `patch` (engine.patch_synthesis.synthesize on the product's synthesis mask, at the photo's
own size) with PatchSettings(**SETTINGS) on each example's cond/<n>.png, prints one row per
target (patch distance and texture contrast in the edited region, ghost score, outline
contrast, mIoU edited, height tone) and their means with the synthesis time (in-process, without start-up).
Means over the 17 targets move by about 0.1 in patch distance (CIELAB Delta E) from one seed to
another: compare settings over several seeds. With --models DIR (models saved by
scripts/benchmark_quality.py --models DIR) each target is guided by DIR/<example>'s GAN output,
as `gan+patch` is: the guide's settings can be tuned the same way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semantic_analogy.engine.metrics import evaluate
from semantic_analogy.engine.model import load_model
from semantic_analogy.engine.patch_synthesis import PatchSettings, synthesize
from semantic_analogy.engine.source import Source
from semantic_analogy.engine.synthesis import synthesis_mask

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("settings", nargs="?", default="{}", help="PatchSettings fields as a JSON object")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch-size", type=int, default=None, help="default_patch_size unless given")
    ap.add_argument("--examples", nargs="+", default=["zebra", "tree", "face"])
    ap.add_argument("--only", default="", help="comma-separated example/target names, e.g. tree/4,face/7")
    ap.add_argument("--out", type=Path, help="folder for the results (<example>_<target>.png)")
    ap.add_argument("--models", type=Path, help="folder of trained models (<example>/): guide each target by its GAN output")
    args = ap.parse_args()
    settings = PatchSettings(**json.loads(args.settings))
    only = set(filter(None, args.only.split(",")))
    rows, total = [], 0.0
    for ex in args.examples:
        folder = ROOT / "examples" / ex
        img = np.asarray(Image.open(folder / "img.png").convert("RGB"))
        lab = np.asarray(Image.open(folder / "label.png").convert("RGB"))
        source = Source.prepare(img, lab, max(img.shape[:2]))
        model = load_model(args.models / ex, "cpu") if args.models else None
        for path in sorted(folder.glob("cond/[0-9]*.png")):
            name = f"{ex}/{path.stem}"
            if only and name not in only:
                continue
            target = np.asarray(Image.open(path).convert("RGB"))
            index = source.decode_target(target)
            guide = model.synthesize(model.source.decode_target(target)) if model else None
            t0 = time.perf_counter()
            out = synthesize(source.image, source.index, index, guide=guide, mask=synthesis_mask(source.index, index),
                             seed=args.seed, settings=settings, patch_size=args.patch_size)
            total += time.perf_counter() - t0
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                Image.fromarray(out).save(args.out / f"{ex}_{path.stem}.png")
            m = evaluate(img, lab, target, out)
            rows.append((name, m["patch_distance"]["edited"], m["texture_contrast"]["edited"], m["ghost_score"],
                         m["outline_contrast"], (m["alignment"]["edited"] or {}).get("miou"), m["height_tone"]))
    print("target | patch distance edited | texture contrast edited | ghost | outline | mIoU edited | height tone")
    for r in rows:
        print(" | ".join("–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in r))

    def mean(i: int) -> float:
        vals = [r[i] for r in rows if r[i] is not None]
        return float(np.mean(vals)) if vals else float("nan")

    tc = [r[2] for r in rows if r[2] is not None]
    ghosts = [abs(r[3]) for r in rows if r[3] is not None]
    print(f"{args.settings} seed {args.seed}: patch distance {mean(1):.4f}, texture contrast (median) "
          f"{np.median(tc):.3f}, |ghost| {np.mean(ghosts):.3f}, outline {mean(4):.3f}, mIoU {mean(5):.3f}, "
          f"height tone {mean(6):.2f}, "
          f"synthesis {total:.1f} s")


if __name__ == "__main__":
    main()
