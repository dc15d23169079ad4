"""The daemon's cache directory: trained models, interrupted trainings and job results.

    CACHE/models/<key>/   a trained model (engine files + daemon.json), complete or absent
    CACHE/work/<key>/     a training in progress or interrupted (the engine's checkpoint)
    CACHE/results/<job>/  a finished job's images (raw RGBA) + meta.json, complete or absent
    CACHE/tmp/            scratch; emptied at start
    CACHE/daemon.lock     held (flock) by the one daemon using this cache; its PID and address

One daemon per cache directory: ``acquire_daemon_lock`` refuses a second one, naming the first. Every
write still uses a temporary name of its own (never a fixed ``NAME.tmp``) and one rename,
so that even two writers could not move each other's half-written files into place.
Nothing half-written ever sits under models/ or results/: both are built elsewhere and
moved in with one rename, so a daemon killed at any moment leaves a cache the next one
can use (``recover`` clears the scratch left behind). The total size is capped: the least
recently used entries go first, never those of the job being run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..protocol.files import replacing

log = logging.getLogger(__name__)

MODELS, WORK, RESULTS, TMP = "models", "work", "results", "tmp"
LOCK_FILE = "daemon.lock"
DAEMON_META = "daemon.json"
RESULT_META = "meta.json"
ENGINE_WEIGHTS = "model.pt"  # written last by TrainedModel.save: its presence means complete

_NAME_RE = re.compile(r"^[0-9a-f]{8,64}$")


def _check_name(name: str) -> str:
    # Keys and job ids become folder names: never let one be a path.
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"not a valid key or job id: {name!r}")
    return name


@dataclass(frozen=True)
class Entry:
    kind: str  # "model", "result" or "work"
    name: str
    path: Path
    size: int
    last_used: float


def choose_evictions(entries: list[Entry], limit: int, protected: set[tuple[str, str]]) -> list[Entry]:
    """Least recently used entries to delete so that the total fits ``limit`` (pure)."""
    total = sum(e.size for e in entries)
    evict = []
    for e in sorted(entries, key=lambda e: e.last_used):
        if total <= limit:
            break
        if (e.kind, e.name) in protected:
            continue
        evict.append(e)
        total -= e.size
    return evict


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


class CacheError(Exception):
    """The cache directory cannot be used; the message says why."""


class CacheInUse(CacheError):
    """Another daemon holds the cache directory's lock; the message names it."""


def _write_json(path: Path, data: dict) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


class DiskCache:
    def __init__(self, root: Path, limit_bytes: int) -> None:
        self.root = Path(root)
        self.limit_bytes = limit_bytes
        # The worker writes and evicts while the main thread lists and deletes.
        self.lock = threading.RLock()
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)  # users' photos and results: private
        for sub in (MODELS, WORK, RESULTS, TMP):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    # --- one daemon per cache -------------------------------------------------------

    def acquire_daemon_lock(self, address: str) -> None:
        """Take the cache's lock for this process's life; CacheInUse naming the holder if taken.

        The lock is an flock on CACHE/daemon.lock, so the kernel releases it when the daemon
        dies, however it dies; the file's text (PID, address) is only for the message.
        """
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise CacheError(f"cannot use the cache directory {self.root}: {e.strerror}; give another "
                             "--cache-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                # A filesystem without locks (some network mounts): go on unguarded, since
                # every write has a name of its own anyway, but say so.
                log.warning("cannot lock %s (%s): nothing stops a second daemon from using this cache",
                            path, e.strerror)
                self._lock_fd = fd
                self.set_lock_address(address)
                return
            os.close(fd)
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                holder = {}
            pid, where = holder.get("pid", "?"), holder.get("address", "an unknown address")
            raise CacheInUse(f"the cache directory {self.root} is in use by another daemon (PID {pid}, listening "
                             f"on {where}); stop that one, or give this one another --cache-dir") from None
        self._lock_fd = fd
        self.set_lock_address(address)

    def set_lock_address(self, address: str) -> None:
        """Record where this daemon listens (known once it is bound) for a second one's message."""
        if self._lock_fd is None:
            return
        text = json.dumps({"pid": os.getpid(), "address": address}).encode()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, text, 0)

    def release_daemon_lock(self) -> None:
        if self._lock_fd is not None:
            try:  # emptied first: a later reader must not name a daemon that has gone
                os.ftruncate(self._lock_fd, 0)
            except OSError:
                pass
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # --- start-up -----------------------------------------------------------------

    def recover(self) -> list[str]:
        """Remove what an interrupted daemon left half-done; returns what was removed."""
        removed = []
        with self.lock:
            for p in (self.root / TMP).iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(str(p))
            for p in (self.root / MODELS).iterdir():
                if not (p / ENGINE_WEIGHTS).is_file() or not (p / DAEMON_META).is_file() or not _NAME_RE.match(p.name):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(str(p))
            for p in (self.root / RESULTS).iterdir():
                if not (p / RESULT_META).is_file() or not _NAME_RE.match(p.name):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(str(p))
            for p in (self.root / WORK).glob("*/*.tmp"):  # a checkpoint killed while being written
                p.unlink(missing_ok=True)
                removed.append(str(p))
        return removed

    # --- models -------------------------------------------------------------------

    def model_path(self, key: str) -> Path | None:
        p = self.root / MODELS / _check_name(key)
        return p if (p / ENGINE_WEIGHTS).is_file() and (p / DAEMON_META).is_file() else None

    def work_path(self, key: str) -> Path:
        p = self.root / WORK / _check_name(key)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def commit_model(self, key: str, meta: dict) -> Path:
        """Move a finished training (work/<key>, saved there by the engine) into models/."""
        with self.lock:
            work = self.root / WORK / _check_name(key)
            final = self.root / MODELS / key
            _write_json(work / DAEMON_META, {**meta, "key": key, "created": time.time()})
            if final.exists():  # trained twice (e.g. after a delete raced a job): keep one
                shutil.rmtree(work, ignore_errors=True)
                return final
            try:
                os.rename(work, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(work, ignore_errors=True)  # another writer moved the same model in first
            return final

    def touch_model(self, key: str) -> None:
        p = self.root / MODELS / _check_name(key) / DAEMON_META
        try:
            os.utime(p)
        except FileNotFoundError:
            pass

    def list_models(self) -> list[dict]:
        out = []
        with self.lock:
            for p in sorted((self.root / MODELS).iterdir()):
                try:
                    meta = json.loads((p / DAEMON_META).read_text())
                    last_used = (p / DAEMON_META).stat().st_mtime
                except (OSError, ValueError):
                    continue
                out.append({
                    "key": p.name,
                    "size_bytes": _dir_size(p),
                    "created": float(meta.get("created", last_used)),
                    "last_used": last_used,
                    "width": int(meta.get("width", 0)),
                    "height": int(meta.get("height", 0)),
                    "settings": dict(meta.get("settings", {})),
                })
        return out

    def delete_model(self, key: str) -> bool:
        with self.lock:
            p = self.root / MODELS / _check_name(key)
            if not p.is_dir():
                return False
            # Rename first so a concurrent reader never sees a half-deleted model.
            doomed = self.root / TMP / f"del-{key}-{uuid.uuid4().hex[:8]}"
            os.rename(p, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            return True

    def count_models(self) -> int:
        return sum(1 for p in (self.root / MODELS).iterdir() if p.is_dir())

    # --- results ------------------------------------------------------------------

    def store_result(self, job_id: str, meta: dict, images: list[bytes]) -> None:
        with self.lock:
            tmp = Path(tempfile.mkdtemp(prefix=f"result-{_check_name(job_id)}-", dir=self.root / TMP))
            files = []
            for i, data in enumerate(images):
                (tmp / f"{i}.rgba").write_bytes(data)
                files.append(f"{i}.rgba")
            _write_json(tmp / RESULT_META, {**meta, "job_id": job_id, "files": files, "created": time.time()})
            try:
                os.rename(tmp, self.root / RESULTS / job_id)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Stored already: a job re-run after its node was lost just before it returned.
                shutil.rmtree(tmp, ignore_errors=True)

    def result_meta(self, job_id: str) -> dict | None:
        try:
            return json.loads((self.root / RESULTS / _check_name(job_id) / RESULT_META).read_text())
        except (OSError, ValueError):
            return None

    def load_result(self, job_id: str) -> tuple[dict, list[bytes]] | None:
        with self.lock:
            meta = self.result_meta(job_id)
            if meta is None:
                return None
            d = self.root / RESULTS / job_id
            try:
                images = [(d / f).read_bytes() for f in meta["files"]]
                os.utime(d / RESULT_META)  # fetched: recently used
            except (OSError, KeyError):
                return None
            return meta, images

    # --- size cap -----------------------------------------------------------------

    def entries(self) -> list[Entry]:
        out = []
        for kind, sub, marker in (("model", MODELS, DAEMON_META), ("result", RESULTS, RESULT_META), ("work", WORK, None)):
            for p in (self.root / sub).iterdir():
                if not p.is_dir():
                    continue
                try:
                    used = (p / marker).stat().st_mtime if marker else p.stat().st_mtime
                except FileNotFoundError:
                    used = 0.0
                out.append(Entry(kind, p.name, p, _dir_size(p), used))
        return out

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def enforce_limit(self, protected: set[tuple[str, str]]) -> list[Entry]:
        """Delete least recently used entries until the cache fits its cap."""
        with self.lock:
            evicted = choose_evictions(self.entries(), self.limit_bytes, protected)
            for e in evicted:
                shutil.rmtree(e.path, ignore_errors=True)
                log.info("cache: removed %s %s (%.1f MB) to stay under the %.1f MB cap",
                         e.kind, e.name[:12], e.size / 1e6, self.limit_bytes / 1e6)
            return evicted
