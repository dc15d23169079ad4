"""Pictures the benchmark scripts write: a contact sheet, one row of images per case."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]], path: Path, cell: int = 160,
                  header: int = 18) -> None:
    """One row per (title, images): the title above, each image fitted into a cell x cell box."""
    columns = max(len(images) for _, images in rows)
    sheet = Image.new("RGB", (cell * columns, (cell + header) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, images) in enumerate(rows):
        y = i * (cell + header)
        draw.text((4, y + 3), title, fill="black")
        for j, arr in enumerate(images):
            im = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
            im.thumbnail((cell, cell))
            sheet.paste(im, (j * cell + (cell - im.width) // 2, y + header + (cell - im.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
