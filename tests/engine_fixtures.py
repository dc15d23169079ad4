"""Small real inputs for engine tests: the bundled tree example, downscaled."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def small_example(name: str = "tree", target: str = "1", size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image RGB, labels RGBA, target RGBA) of an example at `size` px wide."""
    folder = EXAMPLES / name
    img = Image.open(folder / "img.png").convert("RGB")
    h = round(img.height * size / img.width)
    image = np.asarray(img.resize((size, h), Image.LANCZOS))
    labels = np.asarray(Image.open(folder / "label.png").convert("RGBA").resize((size, h), Image.NEAREST))
    tgt = np.asarray(Image.open(folder / "cond" / f"{target}.png").convert("RGBA").resize((size, h), Image.NEAREST))
    return image, labels, tgt


def write_small_example(folder: Path, name: str = "tree", target: str = "1", size: int = 64) -> tuple[Path, Path, Path]:
    image, labels, tgt = small_example(name, target, size)
    paths = folder / "img.png", folder / "label.png", folder / "target.png"
    for p, a in zip(paths, (image, labels, tgt)):
        Image.fromarray(a).save(p)
    return paths


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Pin torch to one thread for a module (import it there to use it), then give the setting back.

    Small patch-synthesis levels are dominated by per-op overhead, which extra threads only
    add to on a busy machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
