"""Reading and writing images and label maps as numpy uint8 arrays (PIL).

Everything the engine receives from disk comes through here, so that odd files
(palette PNGs, 16-bit greys, CMYK JPEGs, phone photos with an EXIF rotation) reach
the engine as plain (H, W, 3) RGB or (H, W, 4) RGBA uint8 arrays, and a bad path is
an EngineError that tells the user what to do instead of a PIL traceback.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..protocol.files import SAVE_FORMATS, replacing
from .errors import EngineError
from .presets import MAX_PIXELS

# Extension -> PIL format for save_image.
_JPEG_QUALITY = 95


def _open(path: str | os.PathLike[str], what: str, max_pixels: int | None = MAX_PIXELS) -> Image.Image:
    """Open, fully decode and EXIF-orient an image; EngineError on any failure.

    `max_pixels` (None: no limit) is checked from the header, before decoding.
    """
    p = Path(path)
    if not p.exists():
        raise EngineError(f"{what} {p}: file not found; check the path")
    if p.is_dir():
        raise EngineError(f"{what} {p} is a folder, not an image file; give the path of a PNG or JPEG file")
    try:
        # Our own limit replaces PIL's decompression-bomb warning (no library warning
        # reaches the user); PIL's hard error stays for absurd sizes when unlimited.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise EngineError(
                    f"{what} {p} is {w}x{h} ({w * h / 1e6:.1f} megapixels), more than the limit of "
                    f"{max_pixels / 1e6:.1f} megapixels; scale it down, or raise the limit with --max-pixels"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()  # decode now, so truncated files fail here and not later
            # Phones store portrait photos sideways plus an EXIF rotation tag: the
            # painter sees (and paints over) the rotated picture.
            return ImageOps.exif_transpose(im)
    except UnidentifiedImageError as exc:
        raise EngineError(f"{what} {p} is not an image file that can be read; save it as PNG or JPEG") from exc
    except Image.DecompressionBombError as exc:
        raise EngineError(f"{what} {p} is too large to open safely ({exc}); scale it down first") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise EngineError(f"{what} {p} could not be read ({exc}); the file may be damaged, save it again") from exc


def _to_8bit(im: Image.Image) -> Image.Image:
    """16/32-bit integer and float greys -> 8-bit 'L'; PIL's own convert would clip
    values above 255 instead of scaling them."""
    if im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return im
    a = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
    else:
        top = 65535.0 if a.size and a.max() > 255 else 255.0
    a = np.nan_to_num(a, nan=0.0)
    return Image.fromarray(np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")


def load_image(path: str | os.PathLike[str], max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB: any PIL-readable mode, EXIF orientation
    applied, alpha dropped (the engine ignores a photo's transparency)."""
    im = _to_8bit(_open(path, "image", max_pixels))
    if im.mode != "RGB":
        # RGBA -> RGB drops alpha; P, L, LA, CMYK, YCbCr are converted by PIL.
        im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "PA") else im.convert("RGB")
    return np.array(im, dtype=np.uint8)


def load_label_map(path: str | os.PathLike[str], max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """A label map as (H, W, 4) uint8 RGBA: alpha kept (0 = unlabelled), 255 for
    files without alpha; EXIF orientation applied like load_image."""
    im = _to_8bit(_open(path, "label map", max_pixels))
    if im.mode != "RGBA":
        im = im.convert("RGBA")  # palette transparency and LA alpha are kept
    return np.array(im, dtype=np.uint8)


def _check_uint8_image(array: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise EngineError(f"{what}: expected a numpy array, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise EngineError(f"{what}: expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise EngineError(f"{what}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise EngineError(f"{what}: the image is empty ({array.shape[1]}x{array.shape[0]} px)")
    return np.ascontiguousarray(array)


def save_image(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write (H,W), (H,W,3) or (H,W,4) uint8 as PNG or JPEG (chosen by the
    extension), creating parent folders.  Atomic: a reader (an editor watching
    the file) never sees a half-written image.  Returns the path written."""
    p = Path(path)
    fmt = SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise EngineError(f"cannot save {p}: use a .png, .jpg or .jpeg file name")
    array = _check_uint8_image(array, f"image for {p}")
    if fmt == "JPEG" and array.ndim == 3 and array.shape[2] == 4:
        raise EngineError(f"cannot save transparency as JPEG ({p}); use a .png file name")
    p.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": _JPEG_QUALITY} if fmt == "JPEG" else {}
    with replacing(p, user_mode=True) as tmp:  # a result is an ordinary file, as the user's umask says
        Image.fromarray(array).save(tmp, format=fmt, **options)
    return p


def resize_rgb(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """High-quality resize (Lanczos) of an (H,W,3|4) or (H,W) uint8 image to
    size = (width, height).  Not for label maps: use labels.resize_labels."""
    array = _check_uint8_image(array, "image to resize")
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise EngineError(f"cannot resize an image to {w}x{h}: both sides must be positive")
    if (h, w) == array.shape[:2]:
        return array.copy()
    return np.array(Image.fromarray(array).resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
