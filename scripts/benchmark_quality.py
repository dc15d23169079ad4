"""Quality and time of each method on every bundled example target, against two trivial baselines.

    .venv/bin/python scripts/benchmark_quality.py [--preset preview] [--size 128] [--examples zebra tree face]
        [--out out/benchmark] [--sheet docs/contact_sheet.png] [--crop docs/crop_gan_vs_gan_patch.png]
        [--models DIR] [--json rows.json]

Trains one model per example (timed), applies it to every cond/*.png target except
rec.png and mask_*.png with each method (`gan`, `gan+patch`, and `patch`, which uses no
model; each timed), and evaluates every result with `semantic-analogy eval`'s measures,
at the photo's own (full) resolution, next to two trivial outputs: the source unchanged,
and the edited region filled with each class's mean colour. Reconstruction PSNR is
measured on G's raw output for P' = P at the working size. Prints markdown tables for
BENCHMARKS.md, writes a contact sheet (source, labels, target, result of the default
method) of the runs, and a full-resolution crop of one edited region, gan next to gan+patch.
With --models DIR a model trained before is loaded from DIR/<example> (and one trained
now is saved there), so that two versions of the synthesis can be compared on the same
GAN; its training time is then the one recorded when it was trained. --json writes every
row's measures, for comparing runs.
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
from PIL import Image, ImageDraw

from figures import contact_sheet

ROOT = Path(__file__).resolve().parent.parent


def targets_of(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "cond").glob("*.png") if p.stem != "rec" and not p.stem.startswith("mask"))


def fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--size", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--examples", nargs="+", default=["zebra", "tree", "face"])
    ap.add_argument("--out", default=str(ROOT / "out" / "benchmark"))
    ap.add_argument("--sheet", default=str(ROOT / "docs" / "contact_sheet.png"))
    ap.add_argument("--crop", default=str(ROOT / "docs" / "crop_gan_vs_gan_patch.png"),
                    help="gan | gan+patch crop of the first example's first target ('' for none)")
    ap.add_argument("--models", help="folder of trained models to reuse (and to save new ones in)")
    ap.add_argument("--json", help="write every row's measures to this JSON file")
    ap.add_argument("--measure-only", action="store_true",
                    help="re-measure the results an earlier run saved in --out (after a change to the "
                         "measures): no training, no synthesis, no times")
    args = ap.parse_args()

    import torch

    from semantic_analogy.engine.imageio import load_image, load_label_map, save_image
    from semantic_analogy.engine.metrics import evaluate, mean_colour_baseline, psnr
    from semantic_analogy.engine.compose import edited_region
    from semantic_analogy.engine.presets import TrainSettings
    from semantic_analogy.engine.synthesis import DEFAULT_METHOD, patch_analogy
    from semantic_analogy.engine.model import load_model
    from semantic_analogy.engine.trainer import train

    settings = TrainSettings(preset=args.preset, size=args.size, steps=args.steps, device=args.device, preview_every=0)
    out_dir = Path(args.out)
    rows, sheet_rows, train_rows = [], [], []
    crop_done = False
    for name in args.examples:
        folder = ROOT / "examples" / name
        image, labels = load_image(folder / "img.png"), load_label_map(folder / "label.png")
        saved = Path(args.models) / name if args.models else None
        if args.measure_only:
            model = None
        elif saved is not None and (saved / "model.pt").is_file():
            model = load_model(saved, args.device)
            train_s = json.loads((saved / "benchmark.json").read_text())["train_s"] if (saved / "benchmark.json").is_file() else float("nan")
        else:
            t0 = time.perf_counter()
            model = train(image, labels, settings)
            train_s = time.perf_counter() - t0
            if saved is not None:
                model.save(saved)
                (saved / "benchmark.json").write_text(json.dumps({"train_s": train_s}))
        if model is not None:
            rec = model.synthesize(model.source.index)
            rec_psnr = psnr(model.source.work_image(), rec)
            train_rows.append((name, f"{model.source.work_size[0]}x{model.source.work_size[1]}", train_s, rec_psnr, str(model.device)))
            print(f"{name}: trained in {train_s:.0f} s, reconstruction PSNR {rec_psnr:.2f} dB", file=sys.stderr)
        for tpath in targets_of(folder):
            target = load_label_map(tpath)
            outputs, times = {}, {}
            for method in ("gan", "gan+patch", "patch"):
                if args.measure_only:
                    outputs[method] = load_image(out_dir / f"{name}_{tpath.stem}_{method.replace('+', '_')}.png")[..., :3]
                    continue
                t0 = time.perf_counter()
                if method == "patch":  # the instant result: no model at all
                    outputs[method] = patch_analogy(image, labels, target, device=str(model.device), seed=settings.seed)
                else:
                    outputs[method] = model.apply(target, method=method)
                times[method] = time.perf_counter() - t0
                save_image(out_dir / f"{name}_{tpath.stem}_{method.replace('+', '_')}.png", outputs[method])
            outputs["source unchanged"] = image
            outputs["class mean colour"] = mean_colour_baseline(image, labels, target)
            for method, output in outputs.items():
                m = evaluate(image, labels, target, output)
                rows.append({"example": f"{name}/{tpath.stem}", "method": method, "apply_s": times.get(method), **m})
                print(json.dumps(rows[-1]), file=sys.stderr)
            sheet_rows.append((image, labels, target, outputs[DEFAULT_METHOD], f"{name}/{tpath.stem}"))
            if args.crop and not crop_done and model is not None:
                region = edited_region(model.source.index, model.source.decode_target(target))
                crop_figure(image, outputs["gan"], outputs["gan+patch"], region, Path(args.crop))
                crop_done = True
                print(f"crop: {args.crop} ({name}/{tpath.stem})", file=sys.stderr)

    print(f"<!-- {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
          f"torch {torch.__version__} · `{' '.join(sys.argv)}` -->\n")
    print(f"preset {args.preset}, size {settings.working_size}, {settings.total_steps} iterations\n")
    print("| example | working size | device | training time | reconstruction PSNR (G, P' = P) |")
    print("|---|---|---|---|---|")
    for name, ws, s, r, dev in train_rows:
        print(f"| {name} | {ws} | {dev} | {s:.0f} s | {r:.2f} dB |")
    print("\n| target | output | patch dist. edited ↓ | patch dist. all ↓ | align. acc. edited ↑ | mIoU edited ↑ | mIoU all ↑ | texture contrast edited (1 = the photo's) | ghost score (0 = clean) | ghost chance level | outline contrast (1 = no trace) | seam step (1 = as the photo's) | height tone (1 = as the photo's) | PSNR outside ↑ | apply time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ae, aa = r["alignment"]["edited"] or {}, r["alignment"]["all"] or {}
        apply = "" if r["apply_s"] is None else f"{r['apply_s']:.2f} s"
        print(f"| {r['example']} | {r['method']} | {fmt(r['patch_distance']['edited'])} | {fmt(r['patch_distance']['all'])} | "
              f"{fmt(ae.get('pixel_accuracy'))} | {fmt(ae.get('miou'))} | {fmt(aa.get('miou'))} | "
              f"{fmt(r['texture_contrast']['edited'])} | {fmt(r.get('ghost_score'))} | {fmt(r.get('ghost_chance'))} | "
              f"{fmt(r.get('outline_contrast'))} | {fmt(r.get('seam_step'))} | {fmt(r.get('height_tone'))} | {fmt(r['psnr_outside'])} | {apply} |")
    # Means over targets, per method.
    print("\n| output (mean over all targets) | patch dist. edited ↓ | align. acc. edited ↑ | mIoU edited ↑ | "
          "texture contrast edited (median) | ghost score (mean of abs) | ghost beyond chance + 0.02 | "
          "outline contrast (mean) | seam step (mean) | height tone (mean) | PSNR outside ↑ | mean time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for method in ("gan", "gan+patch", "patch", "source unchanged", "class mean colour"):
        sel = [r for r in rows if r["method"] == method]
        pd = np.mean([r["patch_distance"]["edited"] for r in sel if r["patch_distance"]["edited"] is not None])
        acc = np.mean([r["alignment"]["edited"]["pixel_accuracy"] for r in sel if r["alignment"]["edited"]])
        miou = np.mean([r["alignment"]["edited"]["miou"] for r in sel if r["alignment"]["edited"]])
        outside = [r["psnr_outside"] for r in sel if r["psnr_outside"] is not None]
        times = [r["apply_s"] for r in sel if r["apply_s"] is not None]
        # A ratio (1 is ideal), so the median: one class with little texture in the source gives outliers.
        tc = np.median([r["texture_contrast"]["edited"] for r in sel if r["texture_contrast"]["edited"] is not None])
        ghost = [abs(r["ghost_score"]) for r in sel if r.get("ghost_score") is not None]
        # A copy of the old content, not chance: the score above what no copy gets by chance.
        beyond = [r for r in sel if r.get("ghost_score") is not None and r.get("ghost_chance") is not None
                  and r["ghost_score"] > r["ghost_chance"] + 0.02]
        outline = [r["outline_contrast"] for r in sel if r.get("outline_contrast") is not None]
        seam = [r["seam_step"] for r in sel if r.get("seam_step") is not None]
        tone = [r["height_tone"] for r in sel if r.get("height_tone") is not None]
        print(f"| {method} | {pd:.3f} | {acc:.3f} | {miou:.3f} | {tc:.2f} | {fmt(float(np.mean(ghost)) if ghost else None)} | "
              f"{len(beyond)} of {len(ghost)} | {fmt(float(np.mean(outline)) if outline else None)} | "
              f"{fmt(float(np.mean(seam)) if seam else None)} | {fmt(float(np.mean(tone)) if tone else None)} | "
              f"{np.mean(outside):.2f} dB | "
              + (f"{np.mean(times):.2f} s |" if times else "– |"))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.sheet and not args.measure_only:
        contact_sheet([(f"{title}:  source | labels | target | result", [image, labels, target, result])
                       for image, labels, target, result, title in sheet_rows], Path(args.sheet))
        print(f"\ncontact sheet: {args.sheet}", file=sys.stderr)


def crop_figure(image, gan, gan_patch, region, path: Path, window: tuple[int, int] = (192, 128), zoom: int = 3) -> None:
    """Source | gan | gan+patch over a window of the edited region (at most `window` px, around
    the median edited pixel), enlarged `zoom` times with nearest neighbour so the pixels show."""
    ys, xs = np.nonzero(region)
    h, w = region.shape
    cw, ch = min(window[0], w), min(window[1], h)
    cx, cy = int(np.median(xs)), int(np.median(ys))
    x0, y0 = min(max(0, cx - cw // 2), w - cw), min(max(0, cy - ch // 2), h - ch)
    x1, y1 = x0 + cw, y0 + ch
    tiles = [Image.fromarray(np.ascontiguousarray(a[y0:y1, x0:x1])).resize(((x1 - x0) * zoom, (y1 - y0) * zoom),
                                                                           Image.NEAREST)
             for a in (image, gan, gan_patch)]
    header, gap = 18, 6
    tw, th = tiles[0].size
    fig = Image.new("RGB", (3 * tw + 2 * gap, th + header), "white")
    draw = ImageDraw.Draw(fig)
    for i, (tile, title) in enumerate(zip(tiles, ("source", "gan", "gan+patch"))):
        fig.paste(tile, (i * (tw + gap), header))
        draw.text((i * (tw + gap) + 4, 3), f"{title} (x{zoom})", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.save(path)


if __name__ == "__main__":
    main()
