"""The daemon: a ZeroMQ ROUTER socket serving many clients, and a backend running the jobs.

The main thread does all socket I/O: it decodes requests, answers them, keeps the job
table, and sends the events the backend reports (through a queue and a wake-up pipe,
since ZeroMQ sockets must stay in one thread). The backend is the local worker thread
owning this machine's device (daemon/worker.py), or a dispatcher handing jobs to a Ray
cluster (daemon/ray_backend.py). See protocol/SPEC.md for the messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq

from .. import __version__
from ..protocol.errors import ProtocolError
from ..protocol.version import PROTOCOL_VERSION, compatible
from ..protocol.wire import DecodeError, Message, decode, encode
from .cache import CacheError, DiskCache
from .config import ConfigError, DaemonConfig
from .jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, Job, JobTable, QueueFull, new_job_id
from .redact import without_paths
from .validation import check_id, parse_submit
from .execute import CANCEL_MESSAGES
from .worker import Worker, parse_settings, resolve_device

log = logging.getLogger(__name__)

_OK, _BUSY, _GONE = "ok", "busy", "gone"
# Seconds a stopping daemon still answers after its interrupted jobs' last events: a client's
# heartbeat (one a second) in that time learns the job ended and fetches the event it missed.
SHUTDOWN_GRACE_S = 1.5

class _Throttled:
    """Log at most one line per ``interval`` s (a fuzzing client must not flood the log)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval, self.last, self.suppressed = interval, -1e9, 0

    def warning(self, fmt: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        extra = f" ({self.suppressed} similar messages suppressed)" if self.suppressed else ""
        log.warning(fmt + extra, *args)
        self.last, self.suppressed = now, 0


def load_server_keys(keys_dir: Path) -> tuple[bytes, bytes, Path]:
    """(public, secret, authorized_clients dir) from a folder made by `semantic-analogy keys`."""
    import zmq.auth

    secret_file = keys_dir / "server.key_secret"
    clients = keys_dir / "authorized_clients"
    if not secret_file.is_file():
        raise ConfigError(f"{secret_file} is missing; create the keys with `semantic-analogy keys {keys_dir}`")
    if not clients.is_dir() or not any(clients.glob("*.key")):
        raise ConfigError(f"{clients} holds no client public keys (*.key), so no client could connect; "
                          f"add one with `semantic-analogy keys {keys_dir} --client NAME`")
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ConfigError(f"{secret_file} holds no secret key")
    return public, secret, clients


class Daemon:
    """Start with start(), serve with run() until stop_event is set (then it shuts down)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.table = JobTable(config.limits.max_queue, config.max_jobs_remembered)
        self.cache = DiskCache(config.cache_dir, config.cache_limit_bytes)
        self.stop_event = threading.Event()
        self._stopping = False  # set once shutdown began: new jobs are refused
        self.ready = threading.Event()
        self.device = ""
        self.endpoint = ""
        self.strict_protocol = False  # tests: refuse fields SPEC.md does not list
        self._ctx: zmq.Context | None = None
        self._router: zmq.Socket | None = None
        self._auth = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.worker: Any = None  # the backend: a Worker, or a RayBackend
        self._ray: Any = None  # the RayBackend, connected before the socket is bound
        self._started_at = time.monotonic()
        self._bad_log = _Throttled()
        self._handlers: dict[str, Callable[[bytes, Message], None]] = {
            "hello": self._on_hello,
            "ping": self._on_ping,
            "status": self._on_status,
            "submit": self._on_submit,
            "watch": self._on_watch,
            "heartbeat": self._on_heartbeat,
            "cancel": self._on_cancel,
            "result": self._on_result,
            "list_models": self._on_list_models,
            "delete_model": self._on_delete_model,
        }

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Check the device, clean the cache, bind the socket, start the worker."""
        try:  # before anything touches the cache: a second daemon would clean up the first one's files
            self.cache.acquire_daemon_lock(self.config.bind)
        except CacheError as e:
            raise ConfigError(str(e)) from None
        try:
            self._start()
        except BaseException:
            if self._ray is not None:
                self._ray.close()
            self.cache.release_daemon_lock()
            raise

    def _start(self) -> None:
        from ..engine.errors import EngineError

        if self.config.backend == "ray":
            from .ray_backend import RayBackend

            # Before the socket: no client must reach a daemon that has no cluster behind it.
            self._ray = RayBackend(self.table, self.cache, self._emit, self.config)
            self.device = self._ray.connect()
        else:
            try:
                self.device = resolve_device(self.config.device)
            except EngineError as e:
                raise ConfigError(str(e)) from None
        for p in self.cache.recover():
            log.info("cache: removed %s, left over by an interrupted daemon", p)
        self._ctx = zmq.Context()
        s = self._ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a vanished client raises instead of vanishing
        s.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
        s.setsockopt(zmq.RCVHWM, 100)
        s.setsockopt(zmq.SNDHWM, 1000)
        s.setsockopt(zmq.LINGER, 1000)
        s.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
        if self.config.keys_dir is not None:
            from zmq.auth.thread import ThreadAuthenticator

            public, secret, clients = load_server_keys(Path(self.config.keys_dir))
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(clients))
            s.curve_server = True
            s.curve_publickey, s.curve_secretkey = public, secret
        try:
            s.bind(self.config.bind)
        except zmq.ZMQError as e:
            s.close(0)
            self._close_context()
            raise ConfigError(f"cannot listen on {self.config.bind}: {e.strerror}; is another daemon already "
                              "running there? Pick another address with --bind") from None
        self._router = s
        self.endpoint = s.getsockopt_string(zmq.LAST_ENDPOINT)
        self.cache.set_lock_address(self.endpoint)
        if self.endpoint.startswith("ipc://"):
            try:  # only this user may talk to an ipc socket
                os.chmod(self.endpoint[len("ipc://"):], 0o600)
            except OSError:
                pass
        self.worker = self._ray or Worker(
            self.table, self.cache, self._emit, device=self.config.device,
            progress_interval=self.config.progress_interval_s,
            preview_interval=self.config.preview_interval_s,
            models_in_memory=self.config.models_in_memory,
            cpu_threads=self.config.cpu_threads,
            instant_preview_px=self.config.instant_preview_px,
        )
        self.worker.start()
        log.info("listening on %s (device %s, cache %s, %s)", self.endpoint, self.device, self.cache.root,
                 "CURVE encryption" if self._auth else "no encryption: loopback only")
        self.ready.set()

    def run(self) -> None:
        """Serve until stop_event is set, then shut down cleanly."""
        assert self._router is not None, "call start() first"
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self.stop_event.is_set():
                events = dict(poller.poll(250))
                if self._router in events:
                    self._drain_router()
                self._drain_outbox()
                self._check_silence()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        log.info("shutting down")
        self._stopping = True
        interrupted = [j for j in [*self.table.queued(), *self.table.running_jobs()] if j.subscribers]
        for job in self.table.queued():
            self._cancel(job, "SHUTDOWN")
        for running in self.table.running_jobs():
            running.request_cancel("SHUTDOWN")
        if self.worker is not None:
            self.worker.stop_event.set()
            self.table.wake()
            deadline = time.monotonic() + self.config.shutdown_timeout_s
            while self.worker.is_alive() and time.monotonic() < deadline:
                # Still answering (heartbeats above all) while the job checkpoints: a client
                # that hears nothing for 10 s takes the daemon for crashed.
                if self._router is not None and self._router.poll(100):
                    self._drain_router()
                else:
                    self.worker.join(0.01)
                self._drain_outbox()  # the cancelled job's last event still goes out
            self._drain_outbox()
            if interrupted:
                self._linger_for_clients()
            if self.worker.is_alive():
                log.warning("the running job did not stop within %.0f s; exiting without it",
                            self.config.shutdown_timeout_s)
            self.worker.close()
        if self._router is not None:
            self._router.close(linger=1000)
            self._router = None
        self._close_context()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.cache.release_daemon_lock()
        log.info("stopped")

    def _linger_for_clients(self) -> None:
        """Serve requests for SHUTDOWN_GRACE_S more after the interrupted jobs' last events.

        A client that missed its job's SHUTDOWN event (seen once in CI, cause not found: the
        event was sent and the daemon exited at once) asks again within a second: its next
        heartbeat's answer says the job ended, and its `watch` gets the event resent. Gone
        at once, the daemon would leave it to wait 10 s and report a crash instead."""
        end = time.monotonic() + SHUTDOWN_GRACE_S
        while self._router is not None and time.monotonic() < end:
            if self._router.poll(50):
                self._drain_router()

    def _close_context(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # --- worker -> main thread ----------------------------------------------------------

    def _emit(self, item: tuple) -> None:
        """Called by the worker thread."""
        self._outbox.put(item)
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full of wake-ups already, or closed at shutdown

    def _drain_outbox(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            kind, job = item[0], item[1]
            if kind == "started":
                log.info("job %s started: %s", job.id[:8], job.describe())
                self._broadcast_positions()
            elif kind == "progress":
                _, _, data, preview = item
                seq = self._send_event(job, "progress", data)
                job.last_progress = (seq, data)
                log.debug("job %s %s step %d/%d", job.id[:8], data["stage"], data["step"], data["total"])
                if preview is not None:  # the generator's output for the first target, while training
                    self._send_event(job, "preview", {**{k: data[k] for k in ("stage", "step", "total")},
                                                      "kind": "gan", "instant": False, "target": 0}, [preview])
            elif kind == "preview":  # the instant preview (SPEC.md, Instant result)
                _, _, data, image = item
                self._send_event(job, "preview", data, [image])
                log.info("job %s: instant %s preview sent", job.id[:8], data["kind"])
            elif kind == "finished":
                _, _, state, ev_kind, data, images = item
                self._finish(job, state, ev_kind, data, images)

    def _finish(self, job: Job, state: str, kind: str, data: dict, images: list) -> None:
        self.table.finish(job, state)
        logged = data
        if "message" in data:  # kept as job.terminal: resent by watch and result, to any client
            data = {**data, "message": without_paths(data["message"])}
        seq = self._send_event(job, kind, data, images)
        job.terminal = (seq, kind, data)
        took = f" in {job.finished - job.started:.1f} s" if job.started and job.finished else ""
        if kind == "result" and not data["model_key"]:
            log.info("job %s done%s (method %s, no model)", job.id[:8], took, data.get("method"))
        elif kind == "result":
            log.info("job %s done%s (method %s, %s model %s)", job.id[:8], took, data.get("method"),
                     "cached" if data["cached"] else "trained", data["model_key"][:12])
        else:
            log.info("job %s %s%s: %s [%s]", job.id[:8], state, took, logged["message"], logged["code"])

    # --- sending ----------------------------------------------------------------------

    def _send_frames(self, identity: bytes, frames: list[bytes]) -> str:
        try:
            self._router.send_multipart([identity, *frames], flags=zmq.NOBLOCK, copy=False)
            return _OK
        except zmq.Again:  # this client does not read: drop (it can catch up with watch/result)
            log.debug("client %s is not reading; a message to it was dropped", identity.hex()[:8])
            return _BUSY
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                return _GONE
            raise

    def _reply(self, identity: bytes, request: Message | str | None, type_: str, content: dict) -> None:
        reply_to = request.msg_id if isinstance(request, Message) else request
        self._send_frames(identity, encode(type_, content, reply_to=reply_to))

    def _reply_error(self, identity: bytes, reply_to: str | None, code: str, message: str, *,
                     field: str | None = None, job_id: str | None = None) -> None:
        sent = without_paths(message)
        if sent != message:
            log.info("error to client %s, sent without paths: %s [%s]", identity.hex()[:8], message, code)
        content: dict = {"code": code, "message": sent}
        if field is not None:
            content["field"] = field
        if job_id is not None:
            content["job_id"] = job_id
        self._reply(identity, reply_to, "error", content)

    def _send_event(self, job: Job, kind: str, data: dict, images: list | tuple = (), *,
                    seq: int | None = None, to: bytes | None = None) -> int:
        if seq is None:
            job.seq += 1
            seq = job.seq
        frames = encode("event", {"job_id": job.id, "seq": seq, "kind": kind, "data": data, "images": list(images)})
        for identity in [to] if to is not None else list(job.subscribers):
            if self._send_frames(identity, frames) == _GONE:
                job.subscribers.discard(identity)
        return seq

    def _broadcast_positions(self) -> None:
        for pos, job in enumerate(self.table.queued()):
            self._send_event(job, "queued", {"position": pos})

    # --- receiving --------------------------------------------------------------------

    def _drain_router(self, max_messages: int = 500) -> None:
        for _ in range(max_messages):  # then let the outbox and silence checks have a turn
            try:
                frames = self._router.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle(frames[0], frames[1:])

    def _handle(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            msg = decode(frames, sender="client", max_pixels=self.limits.max_pixels, strict=self.strict_protocol)
        except DecodeError as e:
            if e.code == "VERSION_MISMATCH":
                log.warning("refused client %s: %s", identity.hex()[:8], e.message)
            else:
                self._bad_log.warning("bad message from client %s: %s [%s]", identity.hex()[:8], e.message, e.code)
            self._reply_error(identity, e.msg_id, e.code, e.message, field=e.field)
            return
        try:
            self._handlers[msg.type](identity, msg)
        except ProtocolError as e:
            job_id = msg.content.get("job_id") if isinstance(msg.content.get("job_id"), str) else None
            self._reply_error(identity, msg.msg_id, e.code, e.message, field=e.field,
                              job_id=job_id if job_id and len(job_id) <= 64 else None)
        except Exception as e:  # a bug must not take the daemon down for everyone
            log.exception("internal error handling a %s message", msg.type)
            self._reply_error(identity, msg.msg_id, "INTERNAL",
                              f"internal error in the daemon ({type(e).__name__}); the daemon log has details")

    # --- handlers -----------------------------------------------------------------------

    def _on_hello(self, identity: bytes, msg: Message) -> None:
        theirs = msg.content["protocol_version"]
        client = str(msg.content.get("client", "?"))[:80]
        if not compatible(theirs):
            log.warning("refused client %r: it speaks protocol %s, this daemon %s", client, theirs, PROTOCOL_VERSION)
            raise ProtocolError("VERSION_MISMATCH", f"this daemon speaks protocol {PROTOCOL_VERSION}, the client "
                                f"{theirs[:16]}; update the plug-in or the daemon")
        log.info("client %r connected (protocol %s)", client, theirs)
        self._reply(identity, msg, "welcome", {
            "protocol_version": PROTOCOL_VERSION,
            "engine_version": __version__,
            "device": self.device,
            "limits": self.limits.as_dict(),
        })

    def _on_ping(self, identity: bytes, msg: Message) -> None:
        self._reply(identity, msg, "pong", {"time": time.time()})

    def _on_status(self, identity: bytes, msg: Message) -> None:
        running = self.table.running

        def shown(job: Job) -> str:  # job ids grant access to results: only its followers see all of it
            return job.id if identity in job.subscribers else job.id[:8]

        self._reply(identity, msg, "status_reply", {
            "protocol_version": PROTOCOL_VERSION,
            "engine_version": __version__,
            "device": self.device,
            "queue_length": len(self.table.queued()),
            "running_job": None if running is None else shown(running),
            "running_progress": dict(running.last_progress[1]) if running and running.last_progress else None,
            "jobs": self.table.counts(),
            "models_cached": self.cache.count_models(),
            "cache_bytes": self.cache.total_bytes(),
            "cache_limit_bytes": self.cache.limit_bytes,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "limits": self.limits.as_dict(),
            "backend": self.config.backend,
            "running_jobs": [{"job_id": shown(j), "node": j.node,
                              "progress": dict(j.last_progress[1]) if j.last_progress else None}
                             for j in self.table.running_jobs()],
        })

    def _on_submit(self, identity: bytes, msg: Message) -> None:
        if self._stopping:
            raise ProtocolError("SHUTDOWN", "the daemon is shutting down; submit the job again once it is back")
        req = parse_submit(msg.content, self.limits)
        settings = parse_settings(req.settings, self.config.device)
        job = Job(
            id=new_job_id(), width=req.width, height=req.height, settings=settings,
            settings_dict=req.settings, target_names=req.target_names,
            image=req.image, labels=req.labels, targets=req.targets,
            cancel_if_silent=req.cancel_if_silent, method=req.method, client=identity.hex(),
        )
        if self._ray is not None:  # a painter's newer job for a photo supersedes their queued older one
            pixels = hashlib.blake2b(memoryview(np.ascontiguousarray(req.image)), digest_size=16).hexdigest()
            job.photo = f"{pixels}:{job.method}"  # a patch look and a GAN training of one photo are two requests
        job.subscribers.add(identity)
        try:
            position = self.table.add(job)
        except QueueFull as e:
            raise ProtocolError("QUEUE_FULL", str(e)) from None
        self._reply(identity, msg, "submitted", {"job_id": job.id, "position": position})
        self._send_event(job, "queued", {"position": position})
        log.info("job %s queued at position %d: %s", job.id[:8], position, job.describe())
        for older in self.table.superseded_by(job) if job.photo else []:
            log.info("job %s superseded by job %s (same client, same photo)", older.id[:8], job.id[:8])
            self._cancel(older, "SUPERSEDED")

    def _find(self, job_id: str) -> Job:
        check_id(job_id, "job id", "job_id")
        job = self.table.get(job_id)
        if job is not None:
            return job
        meta = self.cache.result_meta(job_id)
        if meta is not None:  # finished before a restart, or forgotten from memory: rebuild it
            data = {"target_names": list(meta["target_names"]), "model_key": meta["model_key"],
                    "cached": bool(meta.get("cached", False))}
            if isinstance(meta.get("method"), str):  # results stored before protocol 1.1 have none
                data["method"] = meta["method"]
            job = Job(id=job_id, width=meta["width"], height=meta["height"], settings=None,
                      settings_dict={}, target_names=data["target_names"], state=DONE,
                      model_key=meta["model_key"], seq=1, terminal=(1, "result", data))
            self.table.remember(job)
            return job
        raise ProtocolError("UNKNOWN_JOB", f"no job {job_id} here: it never existed, its result was removed "
                            "from the cache, or the daemon was restarted before it finished (submit it again; "
                            "an interrupted training resumes)", field="job_id")

    def _on_watch(self, identity: bytes, msg: Message) -> None:
        job = self._find(msg.content["job_id"])
        job.subscribers.add(identity)
        job.last_heard = time.monotonic()
        position = self.table.position(job.id)
        self._reply(identity, msg, "watching", {"job_id": job.id, "state": job.state, "position": position})
        if job.terminal is not None:
            self._resend_terminal(job, identity)
        elif job.state == RUNNING and job.last_progress is not None:
            seq, data = job.last_progress
            self._send_event(job, "progress", data, seq=seq, to=identity)
        elif position is not None:
            self._send_event(job, "queued", {"position": position}, to=identity)

    def _resend_terminal(self, job: Job, identity: bytes) -> None:
        seq, kind, data = job.terminal
        images = []
        if kind == "result":
            loaded = self.cache.load_result(job.id)
            if loaded is None:
                self._send_event(job, "error", {"code": "UNKNOWN_JOB", "message": _evicted(job.id)}, seq=seq, to=identity)
                return
            images = _images(loaded)
        self._send_event(job, kind, data, images, seq=seq, to=identity)

    def _on_heartbeat(self, identity: bytes, msg: Message) -> None:
        job = self._find(msg.content["job_id"])
        job.last_heard = time.monotonic()
        job.subscribers.add(identity)  # a client that reconnected gets the events again
        self._reply(identity, msg, "heartbeat_ack", {"job_id": job.id, "state": job.state})

    def _on_cancel(self, identity: bytes, msg: Message) -> None:
        job = self._find(msg.content["job_id"])
        if job.state in (QUEUED, RUNNING):
            log.info("job %s: cancel requested by client %s", job.id[:8], identity.hex()[:8])
            self._cancel(job, "CANCELLED")
        self._reply(identity, msg, "cancel_reply", {"job_id": job.id, "state": job.state})

    def _cancel(self, job: Job, code: str) -> None:
        if self.table.cancel_queued(job, code):
            self._finish(job, CANCELLED, "cancelled",
                         {"code": code, "message": f"{CANCEL_MESSAGES[code]} (before it started)"}, [])
            self._broadcast_positions()
        elif job.state == RUNNING:
            job.request_cancel(code)  # the worker stops at its next step and reports

    def _on_result(self, identity: bytes, msg: Message) -> None:
        job = self._find(msg.content["job_id"])
        job.last_heard = time.monotonic()
        if job.state in (QUEUED, RUNNING):
            where = ""
            if job.last_progress is not None:
                d = job.last_progress[1]
                where = f" ({d['stage']} step {d['step']}/{d['total']})"
            raise ProtocolError("NOT_FINISHED", f"job {job.id} is still {job.state}{where}; wait for its "
                                "result event", field="job_id")
        if job.state in (FAILED, CANCELLED):
            _, _, data = job.terminal
            raise ProtocolError(data["code"], data["message"], field="job_id")
        loaded = self.cache.load_result(job.id)
        if loaded is None:
            raise ProtocolError("UNKNOWN_JOB", _evicted(job.id), field="job_id")
        meta, _ = loaded
        content = {"job_id": job.id, "target_names": list(meta["target_names"]),
                   "model_key": meta["model_key"], "images": _images(loaded)}
        if isinstance(meta.get("method"), str):
            content["method"] = meta["method"]
        self._reply(identity, msg, "result_reply", content)

    def _on_list_models(self, identity: bytes, msg: Message) -> None:
        self._reply(identity, msg, "models_reply", {"models": self.cache.list_models()})

    def _on_delete_model(self, identity: bytes, msg: Message) -> None:
        key = check_id(msg.content["key"], "model key", "key")
        if not self.cache.delete_model(key):
            raise ProtocolError("UNKNOWN_MODEL", f"no cached model {key}; list them with `semantic-analogy "
                                "models list`", field="key")
        if self.worker is not None:
            self.worker.forget_model(key)
        log.info("model %s deleted on request", key[:12])
        self._reply(identity, msg, "model_deleted", {"key": key})

    # --- periodic -------------------------------------------------------------------------

    def _check_silence(self) -> None:
        now = time.monotonic()
        for job in self.table.active():
            if job.cancel_if_silent and job.cancel_code is None and now - job.last_heard > job.cancel_if_silent:
                log.info("job %s: its client sent no heartbeat for %.1f s; cancelling", job.id[:8],
                         now - job.last_heard)
                self._cancel(job, "CLIENT_SILENT")


def _evicted(job_id: str) -> str:
    return (f"the result of job {job_id} was removed from the cache to stay under its size cap; "
            "submit the job again (its model may still be cached)")


def _images(loaded: tuple[dict, list[bytes]]) -> list:
    from ..protocol.images import RGBAImage

    meta, datas = loaded
    return [RGBAImage(meta["width"], meta["height"], d) for d in datas]
