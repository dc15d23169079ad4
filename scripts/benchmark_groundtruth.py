"""Every method against analogies with known answers (engine/groundtruth.py).

    .venv/bin/python scripts/benchmark_groundtruth.py [--preset preview] [--size PX] [--steps N]
        [--examples zebra tree face] [--families NAME ...] [--models DIR] [--out out/groundtruth]
        [--json rows.json] [--sheet PNG]

For each example photo: one model (trained now, or loaded from --models DIR/<example> as
scripts/benchmark_quality.py saves them), then every known-answer case: the photo and its
labels mapped by a known transform (whole-image: mirror, shift, scale, rotation, a
combination; local: the photo's object copied elsewhere as it is, enlarged, shrunk,
rotated). Each method gets the transformed label map P' alone and is scored against the
true I' where it is known and the class changed (PSNR, SSIM), next to the trivial outputs
(the source unchanged, the class-mean-colour fill). Prints markdown tables for
BENCHMARKS.md: the means per family, then every case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from figures import contact_sheet

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("gan", "gan+patch", "patch")
TRIVIAL = ("source unchanged", "class mean colour")


def main(argv: list[str] | None = None) -> None:
    from semantic_analogy.engine.groundtruth import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--size", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--examples", nargs="+", default=["zebra", "tree", "face"])
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), help="cases to run (default: all)")
    ap.add_argument("--models", help="folder of trained models to reuse (and to save new ones in)")
    ap.add_argument("--out", default=str(ROOT / "out" / "groundtruth"), help="folder for the result images")
    ap.add_argument("--json", help="write every row to this JSON file")
    ap.add_argument("--sheet", help="write truth | gan | gan+patch | patch for every case to this PNG")
    args = ap.parse_args(argv)

    import torch

    from semantic_analogy.engine.groundtruth import cases, score
    from semantic_analogy.engine.imageio import load_image, load_label_map, save_image
    from semantic_analogy.engine.metrics import mean_colour_baseline
    from semantic_analogy.engine.model import load_model
    from semantic_analogy.engine.presets import TrainSettings
    from semantic_analogy.engine.synthesis import patch_analogy
    from semantic_analogy.engine.trainer import train

    settings = TrainSettings(preset=args.preset, size=args.size, steps=args.steps, device=args.device, preview_every=0)
    out_dir = Path(args.out)
    rows, sheet = [], []
    for name in args.examples:
        folder = ROOT / "examples" / name
        image, labels = load_image(folder / "img.png")[..., :3], load_label_map(folder / "label.png")
        saved = Path(args.models) / name if args.models else None
        if saved is not None and (saved / "model.pt").is_file():
            model = load_model(saved, args.device)
        else:
            model = train(image, labels, settings)
            if saved is not None:
                model.save(saved)
        for case in cases(image, model.source.index, model.palette, args.families):
            outputs, times = {}, {}
            for method in METHODS:
                t0 = time.perf_counter()
                if method == "patch":
                    outputs[method] = patch_analogy(image, labels, case.target, device=str(model.device), seed=settings.seed)
                else:
                    outputs[method] = model.apply(case.target, method=method)
                times[method] = time.perf_counter() - t0
            outputs["source unchanged"] = image
            outputs["class mean colour"] = mean_colour_baseline(image, labels, case.target)
            stem = f"{name}_{case.name.replace(' ', '_').replace('+', '_')}"
            save_image(out_dir / f"{stem}_truth.png", case.image)
            for method in METHODS:
                save_image(out_dir / f"{stem}_{method.replace('+', '_')}.png", outputs[method])
            for method, output in outputs.items():
                rows.append({
                    "example": name, "case": case.name, "family": case.family, "method": method,
                    "changed": score(output, case.image, case.changed), "known": score(output, case.image, case.known),
                    "changed_fraction": round(float(case.changed.mean()), 4), "apply_s": times.get(method),
                })
            print(f"{name}/{case.name}: " + ", ".join(
                f"{r['method']} {r['changed']['psnr']:.2f} dB" for r in rows[-len(outputs):] if r["changed"]),
                file=sys.stderr)
            sheet.append((f"{name} / {case.name}", case.image, [outputs[m] for m in METHODS]))

    print(f"<!-- {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
          f"torch {torch.__version__} · `{' '.join(sys.argv)}` -->\n")
    print(f"preset {args.preset}, working size {settings.working_size}, {settings.total_steps} iterations; "
          "scored where I' is known and the class changed\n")
    outputs_order = [*METHODS, *TRIVIAL]
    for family in ("whole", "local"):
        names = [n for n in dict.fromkeys(r["case"] for r in rows if r["family"] == family)]
        if not names:
            continue
        print(f"| {family}-image case (mean over examples) | " + " | ".join(f"{m} PSNR / SSIM" for m in outputs_order) + " |")
        print("|---" * (len(outputs_order) + 1) + "|")
        for case_name in [*names, "all"]:
            cells = []
            for m in outputs_order:
                sel = [r["changed"] for r in rows if r["method"] == m and r["family"] == family
                       and (case_name == "all" or r["case"] == case_name) and r["changed"]]
                cells.append(f"{np.mean([s['psnr'] for s in sel]):.2f} / {np.mean([s['ssim'] for s in sel]):.3f}" if sel else "–")
            label = f"**all {family}**" if case_name == "all" else case_name
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()
    print("| example | case | changed | " + " | ".join(f"{m} PSNR" for m in outputs_order) + " | gan+patch − patch |")
    print("|---" * (len(outputs_order) + 4) + "|")
    for name in args.examples:
        for case_name in dict.fromkeys(r["case"] for r in rows if r["example"] == name):
            sel = {r["method"]: r for r in rows if r["example"] == name and r["case"] == case_name}
            if not sel["patch"]["changed"]:
                continue
            ps = [sel[m]["changed"]["psnr"] for m in outputs_order]
            print(f"| {name} | {case_name} | {100 * sel['patch']['changed_fraction']:.0f}% | "
                  + " | ".join(f"{p:.2f}" for p in ps) + f" | {ps[1] - ps[2]:+.2f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.sheet:
        contact_sheet([(f"{title}:  truth | " + " | ".join(METHODS), [truth, *results]) for title, truth, results in sheet],
                      Path(args.sheet), cell=150, header=16)
        print(f"\ncontact sheet: {args.sheet}", file=sys.stderr)


if __name__ == "__main__":
    main()
