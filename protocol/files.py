"""Writing results and caches safely: for the engine, the daemon and the command-line client.

Pure Python (no numpy, no torch), so that the client commands share it without paying the
engine's start-up:
  * ``replacing``: a temporary file beside the destination, unique to this writer, renamed
    onto it on success (a reader never sees half a file; two writers never share a name);
  * ``check_output_path`` / ``outputs_for``: where results go, checked before any work, so
    that minutes of training or a daemon's job are not lost to an unwritable ``--out``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Extension -> PIL format of a result file.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}

_umask_lock = threading.Lock()


def umask() -> int:
    """The process's umask."""
    with _umask_lock:  # reading the umask means setting it: not from two threads at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def replacing(path: Path, *, user_mode: bool = False) -> Iterator[Path]:
    """A temporary file beside `path`, unique to this writer, renamed onto `path` when the block
    succeeds and removed when it fails.

    user_mode: give the file the mode the user's umask gives new files (mkstemp makes it 0600),
    for results the user reads; caches and models stay private.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if user_mode:
            os.chmod(tmp, 0o666 & ~umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_path(path: str | os.PathLike[str], error: type[Exception] = ValueError) -> Path:
    """`path` if an image can be saved there (type, folder creatable and writable); else `error`
    with a message saying what to change."""
    p = Path(path)
    if p.suffix.lower() not in SAVE_FORMATS:
        shown = f"'{p.suffix}'" if p.suffix else "no extension"
        raise error(f"cannot save {p}: {shown} is not an image type this saves; use a .png, .jpg or .jpeg file name")
    if p.is_dir():
        raise error(f"cannot save {p}: it is a folder; give a file name such as {p / 'result.png'}")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:  # the nearest existing ancestor decides
        folder = folder.parent
    if not folder.is_dir():
        raise error(f"cannot save {p}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"cannot save {p}: the folder {folder} is not writable; choose another --out")
    if p.exists() and not os.access(p, os.W_OK):
        raise error(f"cannot save {p}: the file exists and is read-only")
    return p


def check_out_folder(out: str, error: type[Exception] = ValueError) -> Path:
    """`--out` for several results: a folder (or none yet), not a file."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise error(f"--out {out} is a file; with several targets give a folder (one PNG per target)")
    return folder


def outputs_for(targets: list[str], out: str, error: type[Exception] = ValueError) -> list[Path]:
    """One target: `out` is the file. Several: `out` is a folder, one NAME.png per target. Checked."""
    if len(targets) == 1 and not out.endswith(os.sep) and not Path(out).is_dir():
        return [check_output_path(out, error)]
    folder = check_out_folder(out, error)
    names = [Path(t).stem for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise error(f"several targets are named {', '.join(dupes)}: their outputs would overwrite each other")
    return [check_output_path(folder / f"{n}.png", error) for n in names]
