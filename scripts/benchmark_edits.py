"""Edits of the kinds painters make, generated at random: `patch` (and Ebsynth) on each.

    .venv/bin/python scripts/benchmark_edits.py [--ebsynth /path/to/ebsynth/bin/ebsynth] \
        [--seeds 0 1] [--settings '{"border_blend": 0}'] [--patch-size 7] [--out out/edits]

Our hand-made targets (examples/*/cond) are 17 edits, most of them removals and moves; held-out
checks found `patch` ~1 CIELAB unit farther than Ebsynth from the photo's own patches where ours
did not. This makes other cases: on each bundled example at 256 px, one class (a zebra, a tree,
a face's hair or brow) is removed, shrunk, enlarged, moved or rotated about its centre, or a
blob of it is painted where another class was, twice each with random amounts (36 cases, the
same every run for a given --cases-seed). The vacated pixels take their nearest neighbours'
classes, as a painter's fill would. Each result is scored with `semantic-analogy eval`'s patch
distance (edited region, ΔE), ghost score and height tone (where a sky fills: the patch distance
cannot see a sky of the wrong height's tone); prints one row per kind and method, and how many
cases `patch` is farther than Ebsynth. Outputs and targets are written to --out to look at.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semantic_analogy.engine.imageio import resize_rgb
from semantic_analogy.engine.labels import encode_labels, fill_holes, resize_labels
from semantic_analogy.engine.metrics import ghost_score, height_tone, patch_distance
from semantic_analogy.engine.patch_synthesis import PatchSettings, synthesize
from semantic_analogy.engine.source import Source, working_shape
from semantic_analogy.engine.synthesis import synthesis_mask

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("remove", "shrink", "enlarge", "move", "rotate", "paint")
SIZE = 256


def transformed(mask: np.ndarray, matrix: np.ndarray, centre: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`mask` mapped by `matrix` about `centre`, then moved by `shift` (nearest pixel, inverse mapping)."""
    h, w = mask.shape
    yx = np.stack(np.mgrid[0:h, 0:w], -1).reshape(-1, 2).astype(float) - centre - shift
    src = np.rint(yx @ np.linalg.inv(matrix).T + centre).astype(int)
    ok = (src[:, 0] >= 0) & (src[:, 0] < h) & (src[:, 1] >= 0) & (src[:, 1] < w)
    out = np.zeros(h * w, bool)
    out[ok] = mask[src[ok, 0], src[ok, 1]]
    return out.reshape(h, w)


def edit(index: np.ndarray, cls: int, kind: str, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A target class map: class `cls` edited by `kind` with random amounts."""
    h, w = index.shape
    obj = index == cls
    centre = np.argwhere(obj).mean(0)
    target = index.copy()
    if kind == "paint":  # an ellipse of the class where another one was, near the object
        radii = rng.uniform(0.06, 0.15, 2) * (h, w)
        at = np.clip(centre + rng.uniform(-0.3, 0.3, 2) * (h, w), radii, np.array([h, w]) - radii)
        yy, xx = np.mgrid[0:h, 0:w]
        target[((yy - at[0]) / radii[0]) ** 2 + ((xx - at[1]) / radii[1]) ** 2 < 1] = cls
        return target
    target[obj] = -1
    fill_holes(target, obj, num_classes)  # the vacated pixels take their neighbours' classes
    if kind == "remove":
        return target
    matrix, shift = np.eye(2), np.zeros(2)
    if kind in ("shrink", "enlarge"):
        matrix *= rng.uniform(0.5, 0.7) if kind == "shrink" else rng.uniform(1.25, 1.5)
    elif kind == "move":
        shift = rng.uniform(-0.25, 0.25, 2) * (h, w)
    else:
        a = math.radians(rng.uniform(20, 45) * rng.choice([-1, 1]))
        matrix = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    target[transformed(obj, matrix, centre, shift)] = cls
    return target


def cases(cases_seed: int) -> list[dict]:
    """Every example at SIZE px with 2 edits of each kind (the class edited drawn per case)."""
    rng = np.random.default_rng(cases_seed)
    out = []
    for name in ("zebra", "tree", "face"):
        folder = ROOT / "examples" / name
        img = np.asarray(Image.open(folder / "img.png").convert("RGB"))
        lab = np.asarray(Image.open(folder / "label.png").convert("RGB"))
        full = Source.prepare(img, lab, SIZE)
        size = working_shape(img.shape[1], img.shape[0], SIZE)
        image, index = resize_rgb(img, size), resize_labels(full.index, size)
        n = full.palette.num_classes
        share = np.bincount(index.ravel(), minlength=n) / index.size
        # Objects, not the background: between 0.5% and 45% of the picture.
        editable = [c for c in range(n) if 0.005 < share[c] < 0.45]
        labels = encode_labels(index, full.palette)
        for i, kind in enumerate(KINDS * 2):
            cls = int(rng.choice(editable))
            target = edit(index, cls, kind, n, rng)
            out.append({"case": f"{name}_{kind}{i // len(KINDS)}", "kind": kind, "image": image, "labels": labels,
                        "index": index, "target_index": target, "target": encode_labels(target, full.palette)})
    return out


def ebsynth(binary: str, case: dict, work: Path) -> np.ndarray:
    paths = {}
    for key in ("image", "labels", "target"):  # Ebsynth reads RGB guides
        paths[key] = work / f"{key}.png"
        Image.fromarray(np.ascontiguousarray(case[key][..., :3])).save(paths[key])
    out = work / "out.png"
    subprocess.run([binary, "-style", str(paths["image"]), "-guide", str(paths["labels"]), str(paths["target"]),
                    "-output", str(out)], check=True, capture_output=True)
    return np.asarray(Image.open(out).convert("RGB"))


def score(case: dict, output: np.ndarray) -> tuple[float | None, float | None, float | None]:
    edited = case["index"] != case["target_index"]
    return (patch_distance(case["image"], case["index"], output, case["target_index"], edited),
            ghost_score(case["image"], output, edited, classes=case["target_index"]),
            height_tone(case["image"], case["index"], output, case["target_index"], edited))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ebsynth", help="an Ebsynth binary to compare with (github.com/jamriska/ebsynth)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of `patch` (results are averaged)")
    ap.add_argument("--cases-seed", type=int, default=7)
    ap.add_argument("--settings", default="{}", help="PatchSettings fields as a JSON object")
    ap.add_argument("--patch-size", type=int, default=None, help="the engine's default unless given")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "edits")
    args = ap.parse_args()
    if args.ebsynth and not os.access(args.ebsynth, os.X_OK):
        raise SystemExit(f"{args.ebsynth} is not an executable; build Ebsynth and give its bin/ebsynth")
    settings = PatchSettings(**json.loads(args.settings))
    extra = {} if args.patch_size is None else {"patch_size": args.patch_size}
    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, list]] = {}  # method -> case -> (distance, ghost)
    seconds = {"patch": 0.0, "ebsynth": 0.0}
    edits = cases(args.cases_seed)
    kind_of = {case["case"]: case["kind"] for case in edits}
    with tempfile.TemporaryDirectory() as tmp:
        for case in edits:
            Image.fromarray(case["target"]).save(args.out / f"{case['case']}_target.png")
            mask = synthesis_mask(case["index"], case["target_index"])
            for seed in args.seeds:
                t0 = time.perf_counter()
                out = synthesize(case["image"], case["index"], case["target_index"], mask=mask, seed=seed,
                                 settings=settings, **extra)
                seconds["patch"] += time.perf_counter() - t0
                Image.fromarray(out).save(args.out / f"{case['case']}_patch_s{seed}.png")
                rows.setdefault("patch", {}).setdefault(case["case"], []).append(score(case, out))
            if args.ebsynth:
                t0 = time.perf_counter()
                out = ebsynth(args.ebsynth, case, Path(tmp))
                seconds["ebsynth"] += time.perf_counter() - t0
                Image.fromarray(out).save(args.out / f"{case['case']}_ebsynth.png")
                rows.setdefault("ebsynth", {})[case["case"]] = [score(case, out)]
            d = {m: np.mean([s[0] for s in r[case["case"]]]) for m, r in rows.items()}
            print(case["case"], "  ".join(f"{m} {v:.3f}" for m, v in d.items()), flush=True)

    def mean(method: str, kind: str | None, part: int) -> float:
        vals = [v[part] for c, r in rows[method].items() if kind in (None, kind_of[c])
                for v in r if v[part] is not None]
        return float(np.mean(np.abs(vals))) if vals else float("nan")

    print(f"\nsettings {args.settings}, patch size {args.patch_size or 'default'}, seeds {args.seeds}, "
          f"cases seed {args.cases_seed}")
    toned = sum(r[0][2] is not None for r in next(iter(rows.values())).values())
    print("| method | " + " | ".join(KINDS) + f" | all | mean abs ghost | height tone ({toned} cases) | seconds |")
    print("|---" * (len(KINDS) + 5) + "|")
    for m in rows:
        print(f"| {m} | " + " | ".join(f"{mean(m, k, 0):.2f}" for k in KINDS)
              + f" | {mean(m, None, 0):.3f} | {mean(m, None, 1):.3f} | {mean(m, None, 2):.2f} | {seconds[m]:.1f} |")
    if "ebsynth" in rows:
        farther = sum(np.mean([v[0] for v in rows["patch"][c]]) > rows["ebsynth"][c][0][0] for c in rows["ebsynth"])
        print(f"\npatch farther than Ebsynth on {farther} of {len(rows['ebsynth'])} cases")


if __name__ == "__main__":
    main()
