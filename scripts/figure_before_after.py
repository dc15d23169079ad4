"""A before/after figure of one edited region from two runs of scripts/benchmark_quality.py.

    .venv/bin/python scripts/figure_before_after.py --before out/benchmark_before --after out/benchmark_after \\
        --case tree_3 --methods patch gan_patch --box 60 20 250 200 --zoom 2 --out docs/removal_before_after.png

Each run's --out folder holds <example>_<target>_<method>.png; the figure shows the
source, then each method before and after, cropped to --box (x0 y0 x1 y1, full-resolution
pixels) and enlarged --zoom times, with a caption over each tile.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--case", required=True, help="<example>_<target>, e.g. tree_3")
    ap.add_argument("--methods", nargs="+", default=["patch", "gan_patch"])
    ap.add_argument("--box", nargs=4, type=int, metavar=("X0", "Y0", "X1", "Y1"))
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    example = args.case.split("_")[0]
    tiles = [("source", Image.open(ROOT / "examples" / example / "img.png").convert("RGB"))]
    for method in args.methods:
        for when, folder in (("before", args.before), ("after", args.after)):
            tiles.append((f"{method.replace('_', '+')}, {when}", Image.open(Path(folder) / f"{args.case}_{method}.png").convert("RGB")))
    box = tuple(args.box) if args.box else (0, 0, *tiles[0][1].size)
    header, gap = 18, 6
    crops = [(t, im.crop(box).resize(((box[2] - box[0]) * args.zoom, (box[3] - box[1]) * args.zoom), Image.LANCZOS))
             for t, im in tiles]
    tw, th = crops[0][1].size
    fig = Image.new("RGB", (len(crops) * tw + (len(crops) - 1) * gap, th + header), "white")
    draw = ImageDraw.Draw(fig)
    for i, (title, tile) in enumerate(crops):
        fig.paste(tile, (i * (tw + gap), header))
        draw.text((i * (tw + gap) + 4, 3), title, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
