"""The Ray backend (`serve --backend ray`): jobs run on the worker nodes of a Ray cluster.

    main thread (socket, JobTable) --take_next--> RayBackend thread --run_job task--> a node
         ^                                          |    ^                                |
         +------------- emit(event tuples) ---------+    +--- JobHub actor (on this node) +
                                                           progress, previews, node, cancel

The daemon's front (socket, protocol, security) is the same as with the local backend;
only who runs a job changes. The dispatcher thread takes queued jobs as the cluster has
slots for them (one per GPU, else one per ``cpus_per_job`` CPUs) and submits each as a
Ray task: one job per worker process, retried by Ray on another node when its node dies.
A task runs ``execute`` (the same as the local worker) against the cache directory, which
every node must see at the same path: a model trained on one node is a cache hit on all,
and a retried training resumes from the checkpoint its first node left there. The task
reports through a small actor pinned to the daemon's node, which also holds cancel
requests; the task polls it between training steps. The task's return value is the
job's outcome, so a node lost after its last report but before returning is simply run
again, and the job ends once.

Scheduling: a job that needs no training (``patch``, or a model already in the cache)
goes before trainings, which take the slots in arrival order; a painter's newer job for
the same photo cancels their queued older one (SUPERSEDED, in the server).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .cache import DiskCache
from .config import ConfigError, DaemonConfig
from .execute import JobSpec, ModelMemory, execute, model_key_of
from .jobs import FAILED, Job, JobTable

try:
    import ray
except ImportError:  # an optional dependency: only `--backend ray` needs it
    ray = None

log = logging.getLogger(__name__)

RAY_MISSING = ("--backend ray needs Ray, which is not installed here: pip install 'semantic-analogy[cluster]' "
               "(or pip install ray) on this machine and on every node of the cluster")
NAMESPACE = "semantic-analogy"
POLL_S = 0.2  # how often a running task asks whether it was cancelled
SLOTS_REFRESH_S = 2.0  # how often the cluster's size is read again (nodes come and go)


class JobHub:
    """Ray actor on the daemon's node: the tasks' events, collected for the dispatcher, and
    the cancel requests for the tasks. Async, so that ``drain`` can wait for events without
    holding up the tasks' reports."""

    def __init__(self) -> None:
        self._events: list[tuple] = []
        self._cancel: dict[str, str] = {}
        self._arrived = asyncio.Event()

    async def report(self, job_id: str, kind: str, payload: tuple) -> str | None:
        """A task's event; returns the job's cancel code (None: go on)."""
        self._events.append((job_id, kind, payload))
        self._arrived.set()
        return self._cancel.get(job_id)

    async def poll(self, job_id: str) -> str | None:
        return self._cancel.get(job_id)

    async def cancel(self, job_id: str, code: str) -> None:
        self._cancel.setdefault(job_id, code)

    async def forget(self, job_id: str) -> None:
        self._cancel.pop(job_id, None)

    async def drain(self, wait_s: float) -> list[tuple]:
        """The events since the last drain, waiting up to ``wait_s`` for one when there are none."""
        if not self._events and wait_s > 0:
            try:
                await asyncio.wait_for(self._arrived.wait(), wait_s)
            except asyncio.TimeoutError:
                pass
        out, self._events = self._events, []
        self._arrived.clear()
        return out


_MODELS = ModelMemory(1)  # per worker process: Ray reuses processes, so a cache hit may find its model loaded


def _log_to_node() -> None:
    """The engine's log lines (resuming from a checkpoint, warnings) into this worker's log file
    on its node (Ray's logs/worker-*.err); Ray leaves Python logging at warnings only."""
    package = logging.getLogger(__name__.split(".")[0])
    if not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
        package.setLevel(logging.INFO)


def run_job(spec: JobSpec, cache_root: str, cache_limit: int, hub: Any, options: dict) -> tuple:
    """The Ray task: one job on whichever node Ray chose; returns its outcome."""
    state: dict[str, Any] = {"code": None, "polled": time.monotonic()}

    def report(kind: str, *payload: Any) -> None:
        # Waited for: the events arrive in order, and before the task's return value.
        code = ray.get(hub.report.remote(spec.id, kind, payload))
        state["code"] = state["code"] or code
        state["polled"] = time.monotonic()

    def should_stop() -> bool:
        if state["code"] is None and time.monotonic() - state["polled"] >= POLL_S:
            state["code"] = ray.get(hub.poll.remote(spec.id))
            state["polled"] = time.monotonic()
        return state["code"] is not None

    _log_to_node()
    context = ray.get_runtime_context()
    report("started", {"node": context.get_node_id(), "host": socket.gethostname(), "pid": os.getpid()})
    import torch

    torch.set_num_threads(max(1, int(options["cpus"])))  # what Ray gave this task, not the node's cores
    cache = DiskCache(Path(cache_root), cache_limit)  # the shared cache; its lock stays the daemon's
    return execute(spec, cache, _MODELS, report, should_stop, lambda: state["code"],
                   progress_interval=options["progress_interval"], preview_interval=options["preview_interval"],
                   instant_preview_px=options["instant_preview_px"],
                   on_model_key=lambda key: report("model_key", key))


def _reachable(address: str, timeout_s: float = 3.0) -> str | None:
    """None when something listens at HOST:PORT, else why not (a quick check: ray.init waits long)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"{address!r} is not HOST:PORT"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except OSError as e:
        return e.strerror or str(e)


def _auto_address() -> str:
    """The cluster `--ray-address auto` means; ConfigError when this machine knows of none."""
    try:
        from ray._private.services import canonicalize_bootstrap_address  # what ray.init("auto") reads

        found = canonicalize_bootstrap_address("auto")
    except Exception:  # a Ray without that helper: let ray.init look for itself
        return "auto"
    if not found:
        raise ConfigError("no Ray cluster runs on this machine (--ray-address auto found none): start one "
                          "with `ray start --head`, give a head's HOST:PORT with --ray-address, or use "
                          "--ray-address local for a one-machine cluster")
    return found


class RayBackend(threading.Thread):
    """The dispatcher: connects to the cluster, submits jobs as Ray tasks, relays their events."""

    def __init__(self, table: JobTable, cache: DiskCache, emit: Callable[[tuple], None], config: DaemonConfig) -> None:
        super().__init__(name="semantic-analogy-ray", daemon=True)
        self.table, self.cache, self.emit, self.config = table, cache, emit, config
        self.stop_event = threading.Event()
        self.hub: Any = None
        self.gpus = 0.0
        self._connected_here = False
        self._refs: dict[Any, Job] = {}  # running tasks
        self._announced: set[str] = set()  # jobs whose "started" went out
        self._forwarded: set[str] = set()  # jobs whose cancel reached the hub
        self._slots_read = -1e9
        self._keys: dict[str, str | None] = {}  # job id -> the model key it trains or loads

    # --- life cycle ----------------------------------------------------------------------

    def connect(self) -> str:
        """Join the cluster and place the hub; returns the device description for `welcome`."""
        if ray is None:
            raise ConfigError(RAY_MISSING)
        address = self.config.ray_address
        if ray.is_initialized():  # a process that is already a driver (tests, notebooks): use that
            pass
        elif address == "local":  # "local" makes Ray start a new one-machine cluster
            ray.init(address="local", include_dashboard=False, log_to_driver=False, namespace=NAMESPACE, configure_logging=False)
            self._connected_here = True
        else:
            if address == "auto":  # what `ray start` on this machine recorded, or $RAY_ADDRESS
                address = _auto_address()
            if "://" not in address:  # checked first: ray.init waits a long time for a missing cluster
                why = _reachable(address)
                if why is not None:
                    said = "" if address == self.config.ray_address else " (found by --ray-address auto)"
                    raise ConfigError(f"no Ray cluster answers at {address}{said}: {why}; start its head "
                                      "with `ray start --head` on the head machine and give its HOST:PORT "
                                      "with --ray-address, or use --ray-address local for a one-machine cluster")
            try:
                ray.init(address=address, log_to_driver=False, namespace=NAMESPACE, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                hint = ("no Ray cluster runs on this machine: start one with `ray start --head`, give its "
                        "address with --ray-address HOST:PORT, or use --ray-address local"
                        if address == "auto" else "is it a Ray cluster of the same Ray version?")
                raise ConfigError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0][:300]}; "
                                  f"{hint}") from None
            self._connected_here = True
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()
            self.hub = ray.remote(JobHub).options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
            ).remote()
            ray.get(self.hub.poll.remote(""), timeout=60)  # placed and answering
        except Exception as e:
            self.close()
            raise ConfigError(f"the Ray cluster cannot run this daemon's job hub: {e}") from None
        self._read_slots(force=True)
        nodes = [n for n in ray.nodes() if n.get("Alive")  # those that can run jobs: not a CPU-less head
                 and (n.get("Resources", {}).get("CPU", 0) or n.get("Resources", {}).get("GPU", 0))]
        kind = f"{self.gpus:g} GPUs" if self.gpus else "CPU only"
        log.info("Ray cluster: %d worker node(s), %s, %d job slot(s); cache %s (every node must see it at this path)",
                 len(nodes), kind, self.table.max_running, self.cache.root)
        n, slots = len(nodes), self.table.max_running
        return f"ray ({n} worker node{'s' * (n != 1)}, {kind}, {slots} job slot{'s' * (slots != 1)})"

    def close(self) -> None:
        if self._connected_here and ray is not None and ray.is_initialized():
            ray.shutdown()
        self._connected_here = False

    def forget_model(self, key: str) -> None:
        pass  # each worker process checks the shared cache before it serves a model from memory

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            stopping = self.stop_event.is_set()
            if not stopping:
                self._read_slots()
                self._dispatch()
            self._forward_cancels()
            if stopping and not self._refs:
                return
            ready = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)[0] if self._refs else []
            # Events first: a task reported all of them before it returned.
            try:
                events = ray.get(self.hub.drain.remote(0 if ready else 0.05))
            except ray.exceptions.RayError:
                log.exception("cannot reach the job hub")
                events = []
                time.sleep(0.5)
            for job_id, kind, payload in events:
                self._relay(job_id, kind, payload)
            for ref in ready:
                self._finish(ref, self._refs.pop(ref))

    def _read_slots(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._slots_read < SLOTS_REFRESH_S:
            return
        self._slots_read = now
        res = ray.cluster_resources()
        self.gpus = float(res.get("GPU", 0))
        slots = int(self.gpus) if self.gpus >= 1 else int(res.get("CPU", 0) // self.config.cpus_per_job)
        if slots != self.table.max_running:
            if slots == 0:
                log.warning("the Ray cluster has no room for a job (%s CPUs, %s GPUs); jobs wait until a node joins",
                            res.get("CPU", 0), res.get("GPU", 0))
            elif not force:
                log.info("the Ray cluster now has %d job slot(s): %s", slots,
                         f"one per GPU ({self.gpus:g} GPUs)" if self.gpus >= 1 else f"{res.get('CPU', 0):g} CPUs")
            self.table.set_max_running(slots)

    def _dispatch(self) -> None:
        if len(self._refs) >= self.table.max_running:
            return
        queued = self.table.queued()
        live = {j.id for j in queued} | {j.id for j in self._refs.values()}
        self._keys = {i: k for i, k in self._keys.items() if i in live}
        for job in queued:
            if job.id not in self._keys:  # once per job: the photo at working size, hashed
                self._keys[job.id] = model_key_of(JobSpec.of(job))
        # "": patch, no model; None: inputs the job will fail on; else its model's key.
        quick = {j.id for j in queued if self._needs_no_training(self._keys[j.id])}
        training = {k for j in self._refs.values() if not self._needs_no_training(k := self._keys.get(j.id))} - {None}
        while True:
            # A job needing no training (patch, a cached model) goes first. A job whose model
            # another job is training waits for it, and then is a cache hit: the same training
            # never runs twice, on two nodes, into one checkpoint folder.
            job = self.table.take_next(0, prefer=lambda j: j.id in quick,
                                       allow=lambda j: j.id in quick or self._keys.get(j.id) not in training)
            if job is None:
                return
            self._submit(job, quick=job.id in quick)
            if job.id not in quick and self._keys.get(job.id):
                training.add(self._keys[job.id])

    def _needs_no_training(self, key: str | None) -> bool:
        return key == "" or (key is not None and self.cache.model_path(key) is not None)

    def _submit(self, job: Job, quick: bool) -> None:
        options = {"cpus": self.config.cpus_per_job, "progress_interval": self.config.progress_interval_s,
                   "preview_interval": self.config.preview_interval_s,
                   "instant_preview_px": self.config.instant_preview_px}
        task = ray.remote(run_job).options(
            num_cpus=self.config.cpus_per_job, num_gpus=1 if self.gpus >= 1 else 0,
            max_retries=self.config.job_retries, retry_exceptions=False, name=f"semantic-analogy-{job.id[:8]}",
        )
        ref = task.remote(JobSpec.of(job), str(self.cache.root), self.cache.limit_bytes, self.hub, options)
        self._refs[ref] = job
        log.info("job %s handed to the Ray cluster%s", job.id[:8], " (no training needed)" if quick else "")

    def _forward_cancels(self) -> None:
        for job in self._refs.values():
            if job.cancel_event.is_set() and job.id not in self._forwarded:
                self.hub.cancel.remote(job.id, job.cancel_code or "CANCELLED")
                self._forwarded.add(job.id)

    def _relay(self, job_id: str, kind: str, payload: tuple) -> None:
        job = next((j for j in self._refs.values() if j.id == job_id), None)
        if job is None:
            return  # a late event of a job already ended
        if kind == "started":
            info = payload[0]
            if job.id in self._announced:
                log.warning("job %s runs again on node %s (%s): its node was lost; it resumes from its checkpoint",
                            job.id[:8], info["node"][:12], info["host"])
            else:
                log.info("job %s runs on node %s (%s, PID %d)", job.id[:8], info["node"][:12], info["host"], info["pid"])
                self._announced.add(job.id)
                self.emit(("started", job))
            job.node = info["node"]
        elif kind == "model_key":
            job.model_key = payload[0]
        else:  # progress, preview
            self.emit((kind, job, *payload))

    def _finish(self, ref: Any, job: Job) -> None:
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayError as e:
            log.error("job %s: its Ray task failed: %s", job.id[:8], str(e).splitlines()[0] if str(e) else type(e).__name__)
            outcome = (FAILED, "error", {
                "code": "ENGINE_ERROR",
                "message": f"the job's worker was lost {self.config.job_retries + 1} times ({type(e).__name__}); "
                           "submit it again (a training resumes from its checkpoint)",
            }, [])
        if job.id not in self._announced:
            self.emit(("started", job))  # a job that failed before its first report still starts once
        self.hub.forget.remote(job.id)
        self._announced.discard(job.id)
        self._forwarded.discard(job.id)
        self.emit(("finished", job, *outcome))
        self._enforce_cache_limit(job)

    def _enforce_cache_limit(self, job: Job) -> None:
        protected = {("result", job.id)}
        for j in self._refs.values():  # what the running jobs write or read
            key = self._keys.get(j.id)
            if key:
                protected |= {("work", key), ("model", key)}
        try:
            self.cache.enforce_limit(protected)
        except OSError:
            log.exception("could not trim the cache")
