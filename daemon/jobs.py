"""Jobs and their queue: state, order, positions, subscribers (pure bookkeeping, no I/O).

The main thread owns every state change except queued -> running, which the worker
(or the Ray backend's dispatcher) makes in take_next(); both go through the table's lock.
The local backend runs one job at a time in arrival order; the Ray backend runs as many
as its cluster has slots for, and picks quick jobs first (``prefer``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

from ..protocol.schema import OMITTED_METHOD

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})


class QueueFull(Exception):
    pass


@dataclass
class Job:
    id: str
    width: int
    height: int
    settings: Any  # the engine's TrainSettings
    settings_dict: dict
    target_names: list[str]
    # Pixel arrays: dropped as soon as the job ends so finished jobs cost no memory.
    image: Any = None
    labels: Any = None
    targets: list = field(default_factory=list)
    cancel_if_silent: float | None = None
    method: str = OMITTED_METHOD  # gan, patch or gan+patch (protocol/schema.py METHODS)
    client: str = ""
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    last_heard: float = field(default_factory=time.monotonic)
    subscribers: set[bytes] = field(default_factory=set)
    seq: int = 0  # last event sequence number sent
    last_progress: tuple[int, dict] | None = None  # (seq, data) of the latest progress event
    terminal: tuple[int, str, dict] | None = None  # (seq, kind, data) of the last event
    model_key: str | None = None
    photo: str = ""  # the photo's pixels and the method, hashed: a newer such job may supersede this one
    node: str = ""  # where it runs (the Ray backend's node id); "" for the local worker
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_code: str | None = None  # why it is being cancelled: CANCELLED, CLIENT_SILENT, SHUTDOWN

    def request_cancel(self, code: str) -> None:
        if self.cancel_code is None:
            self.cancel_code = code
        self.cancel_event.set()

    def release_pixels(self) -> None:
        self.image = self.labels = None
        self.targets = []

    def describe(self) -> str:
        s = self.settings_dict
        preset = s.get("preset", "preview")
        if self.method == "patch":  # no training: the preset does not matter
            return f"{self.width}x{self.height}, {len(self.target_names)} target(s), method patch"
        return (f"{self.width}x{self.height}, {len(self.target_names)} target(s), method {self.method}, "
                f"preset {preset}" + (f", {s['steps']} steps" if s.get("steps") else ""))


def new_job_id() -> str:
    # Unguessable: knowing a job id is what lets a client read its result.
    return uuid.uuid4().hex


class JobTable:
    """All jobs the daemon knows in memory, and the FIFO queue of those waiting."""

    def __init__(self, max_queue: int, max_remembered: int = 1000, max_running: int = 1) -> None:
        self.max_queue = max_queue
        self.max_remembered = max_remembered
        self.max_running = max_running  # the Ray backend raises it to its cluster's slots
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[str] = deque()
        self._running: OrderedDict[str, Job] = OrderedDict()
        self._cond = threading.Condition()

    @property
    def running(self) -> Job | None:
        """The job that started first among those running (the only one, locally)."""
        with self._cond:
            return next(iter(self._running.values()), None)

    def running_jobs(self) -> list[Job]:
        with self._cond:
            return list(self._running.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def add(self, job: Job) -> int:
        """Queue a job; returns its position (0: next to run). QueueFull when at the limit."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} jobs are already waiting (the limit is {self.max_queue}); "
                                "try again when some have finished")
            self._jobs[job.id] = job
            self._queue.append(job.id)
            self._cond.notify_all()
            return len(self._queue) - 1

    def remember(self, job: Job) -> None:
        """Keep a finished job (e.g. one found on disk after a restart)."""
        with self._cond:
            self._jobs[job.id] = job
            self._prune()

    def position(self, job_id: str) -> int | None:
        with self._cond:
            try:
                return self._queue.index(job_id)
            except ValueError:
                return None

    def queued(self) -> list[Job]:
        with self._cond:
            return [self._jobs[j] for j in self._queue]

    def active(self) -> list[Job]:
        """Queued and running jobs."""
        with self._cond:
            return [self._jobs[j] for j in self._queue] + list(self._running.values())

    def take_next(self, timeout: float, prefer: Callable[[Job], bool] | None = None,
                  allow: Callable[[Job], bool] | None = None) -> Job | None:
        """Worker side: wait up to ``timeout`` s for a queued job and a free slot, and mark the
        job running: among the queued jobs that ``allow`` lets start, the first for which
        ``prefer`` is true, else the first in line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:  # a slot frees once the main thread has finished a running job
                ready = [] if len(self._running) >= self.max_running else [
                    j for j in self._queue if allow is None or allow(self._jobs[j])]
                if ready:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            chosen = ready[0]
            if prefer is not None:
                chosen = next((j for j in ready if prefer(self._jobs[j])), chosen)
            self._queue.remove(chosen)
            job = self._jobs[chosen]
            job.state = RUNNING
            job.started = time.time()
            self._running[job.id] = job
            return job

    def set_max_running(self, n: int) -> None:
        with self._cond:
            self.max_running = n
            self._cond.notify_all()

    def superseded_by(self, job: Job) -> list[Job]:
        """Queued jobs that ``job`` makes pointless: the same client's older ones for the same photo."""
        with self._cond:
            return [self._jobs[j] for j in self._queue if j != job.id and job.photo
                    and self._jobs[j].client == job.client and self._jobs[j].photo == job.photo]

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def cancel_queued(self, job: Job, code: str) -> bool:
        """Remove a job that has not started; False when the worker already took it."""
        with self._cond:
            if job.state != QUEUED or job.id not in self._queue:
                return False
            self._queue.remove(job.id)
            job.cancel_code = code
            return True

    def finish(self, job: Job, state: str) -> None:
        with self._cond:
            job.state = state
            job.finished = time.time()
            job.release_pixels()
            self._running.pop(job.id, None)
            self._prune()
            self._cond.notify_all()

    def counts(self) -> dict[str, int]:
        with self._cond:
            out = {s: 0 for s in (QUEUED, RUNNING, DONE, FAILED, CANCELLED)}
            for j in self._jobs.values():
                out[j.state] += 1
            return out

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for j in finished[: max(0, len(finished) - self.max_remembered)]:
            del self._jobs[j.id]
