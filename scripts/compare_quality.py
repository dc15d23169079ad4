"""Two runs of scripts/benchmark_quality.py (their --json rows) side by side, per target and method.

    .venv/bin/python scripts/compare_quality.py out/quality_before.json out/quality_after.json \\
        [--methods gan+patch patch] [--measures ghost_score outline_contrast texture_contrast patch_distance]

Prints a markdown table: for each target and output, each measure before → after (edited
region where the measure has one), then the means of each output over the targets.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

LABELS = {
    "ghost_score": "ghost score (0 = clean)",
    "ghost_chance": "ghost chance level",
    "outline_contrast": "outline contrast (1 = no trace)",
    "texture_contrast": "texture contrast edited (1 = the photo's)",
    "patch_distance": "patch dist. edited ↓",
    "height_tone": "height tone (1 = as the photo's)",
}


def value(row: dict, measure: str) -> float | None:
    v = row.get(measure)
    return v.get("edited") if isinstance(v, dict) else v


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--methods", nargs="+", default=["gan+patch", "patch", "source unchanged", "class mean colour"])
    ap.add_argument("--measures", nargs="+", default=list(LABELS), choices=list(LABELS))
    args = ap.parse_args()
    before = {(r["example"], r["method"]): r for r in json.load(open(args.before))}
    after = {(r["example"], r["method"]): r for r in json.load(open(args.after))}
    keys = [k for k in after if k in before and k[1] in args.methods]
    print("| target | output | " + " | ".join(f"{LABELS[m]}: before → after" for m in args.measures) + " |")
    print("|---|---|" + "---|" * len(args.measures))
    for k in keys:
        cells = [f"{fmt(value(before[k], m))} → {fmt(value(after[k], m))}" for m in args.measures]
        print(f"| {k[0]} | {k[1]} | " + " | ".join(cells) + " |")
    print("\n| output (mean over targets; ghost: mean of abs) | " + " | ".join(f"{LABELS[m]}: before → after" for m in args.measures) + " |")
    print("|---|" + "---|" * len(args.measures))
    for method in args.methods:
        cells = []
        for m in args.measures:
            pairs = [(value(before[k], m), value(after[k], m)) for k in keys if k[1] == method]
            pairs = [(b, a) for b, a in pairs if b is not None and a is not None]
            f = abs if m == "ghost_score" else (lambda x: x)
            cells.append(f"{np.mean([f(b) for b, _ in pairs]):.3f} → {np.mean([f(a) for _, a in pairs]):.3f}" if pairs else "–")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
