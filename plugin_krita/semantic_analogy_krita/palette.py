"""The label palette: clearly distinct flat colours, one per class.

The engine clusters a label layer's colours and snaps soft (anti-aliased) brush
edges to the nearest dominant colour, so the colours only need to be far apart;
these come from Sasha Trubetskoy's "20 simple, distinct colours", minus the ones
that sit close to another (lime, olive, apricot, mint, beige, lavender), plus black and white.
"""

from __future__ import annotations

from typing import Sequence

PALETTE_NAME = "Semantic Analogy labels"
PALETTE_FILE = "semantic_analogy_labels.gpl"

LABEL_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (230, 25, 75)),
    ("green", (60, 180, 75)),
    ("yellow", (255, 225, 25)),
    ("blue", (0, 130, 200)),
    ("orange", (245, 130, 48)),
    ("purple", (145, 30, 180)),
    ("cyan", (70, 240, 240)),
    ("magenta", (240, 50, 230)),
    ("black", (0, 0, 0)),
    ("pink", (250, 190, 212)),
    ("teal", (0, 128, 128)),
    ("grey", (128, 128, 128)),
    ("brown", (170, 110, 40)),
    ("maroon", (128, 0, 0)),
    ("white", (255, 255, 255)),
    ("navy", (0, 0, 128)),
)

ANTIALIAS_HINT = (
    "Paint each region with one flat palette colour. Soft or anti-aliased brush edges are fine: "
    "the engine snaps them to the nearest class colour. A hard-edged brush (Basic-1) gives the "
    "crispest borders; avoid blending modes, opacity below 100% and smudging on label layers."
)


def colour_distance(a: Sequence[int], b: Sequence[int]) -> float:
    return sum((int(x) - int(y)) ** 2 for x, y in zip(a, b)) ** 0.5


def min_pairwise_distance(colours: Sequence[Sequence[int]]) -> float:
    best = float("inf")
    for i in range(len(colours)):
        for j in range(i + 1, len(colours)):
            best = min(best, colour_distance(colours[i], colours[j]))
    return best


def gpl_text(name: str = PALETTE_NAME, colours=LABEL_COLOURS, columns: int = 8) -> str:
    """A GIMP palette (.gpl), which Krita's Palette docker imports and lists."""
    lines = ["GIMP Palette", f"Name: {name}", f"Columns: {columns}", "#"]
    for i, (cname, (r, g, b)) in enumerate(colours, start=1):
        lines.append(f"{r:3d} {g:3d} {b:3d}\tclass {i} ({cname})")
    return "\n".join(lines) + "\n"


def hex_colour(rgb: Sequence[int]) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])

