"""The client side of the protocol: what the Krita and GIMP plugins and the CLI use.

    c = Client("tcp://127.0.0.1:5555", timeout=5.0)
    info = c.connect()                       # handshake; DaemonUnavailable / VersionMismatch
    job = c.submit(image, labels, [target], {"preset": "preview"}, cancel_if_silent=30,
                   method="gan+patch")       # "patch": no training, a result in seconds
    images = c.wait(job, on_event=print)     # or: for ev in c.events(job): ...
                                             # or, from a GUI timer: c.poll(job)

Nothing here blocks forever: requests wait at most ``timeout`` seconds for their reply,
and while a job runs the client sends heartbeats (one per ``heartbeat_interval``) whose
replies prove the daemon is alive; if they stop, DaemonUnavailable is raised.

A Client is not meant to be shared by threads (a lock makes misuse safe, not parallel).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import zmq

from .errors import JOB_FAILURE_CODES, DaemonUnavailable, JobFailed, JobTimeout, ProtocolError, VersionMismatch
from .images import RGBAImage
from .schema import TERMINAL_KINDS, check_method
from .security import CurveKeys, is_loopback
from .version import PROTOCOL_VERSION, compatible, parse_version
from .wire import DecodeError, Message, decode, encode, new_msg_id

# Where the daemon listens unless told otherwise (`semantic-analogy serve --bind`).
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
_FINISHED_STATES = ("done", "failed", "cancelled")
_MAX_ASYNC = 256  # outstanding fire-and-forget requests remembered (heartbeats, watches)
_MAX_FINISHED_TRACKS = 64


@dataclass
class Event:
    """Something that happened to a job: queued, progress, preview, result, error or cancelled."""

    kind: str
    data: dict
    images: list[RGBAImage] = field(default_factory=list)
    job_id: str = ""
    seq: int = 0

    @property
    def terminal(self) -> bool:
        """True for the last event of a job (result, error, cancelled)."""
        return self.kind in TERMINAL_KINDS

    @property
    def instant(self) -> bool:
        """True for the instant preview a job sends before training (SPEC.md, Instant result)."""
        return self.kind == "preview" and self.data.get("instant") is True


@dataclass
class _Track:
    """What the client knows about one job it follows."""

    events: deque = field(default_factory=deque)
    last_seq: int = -1
    terminal_seen: bool = False
    hb_sent_at: float | None = None
    hb_unacked_since: float | None = None  # oldest heartbeat still without a reply
    watch_pending: bool = False
    hb_interval: float | None = None  # shorter than the client's when cancel_if_silent asks for it


class Client:
    """A connection to the engine daemon (see the module docstring and SPEC.md)."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        timeout: float = 5.0,
        curve: CurveKeys | None = None,
        *,
        heartbeat_interval: float = 1.0,
        silence_timeout: float | None = None,
        client_name: str = "semantic-analogy-python",
        context: zmq.Context | None = None,
    ) -> None:
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"daemon address must look like tcp://HOST:PORT or ipc:///path, got {address!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        if curve is not None and not isinstance(curve, CurveKeys):
            raise TypeError("curve must be a CurveKeys (see CurveKeys.load) or None")
        self.address = address
        self.timeout = float(timeout)
        self.curve = curve
        self.heartbeat_interval = float(heartbeat_interval)
        # How long a running job may go without any sign of life from the daemon.
        self.silence_timeout = float(silence_timeout or max(2 * self.timeout, 10.0, 3 * heartbeat_interval))
        self.client_name = client_name
        self.info: dict | None = None
        self._ctx = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._lock = threading.RLock()
        self._replies: dict[str, Message] = {}
        self._waiting: set[str] = set()
        self._async: OrderedDict[str, str] = OrderedDict()  # msg_id -> job_id
        self._tracks: dict[str, _Track] = {}
        self._last_rx = time.monotonic()

    # --- connection -------------------------------------------------------------------

    def _open_socket(self) -> zmq.Socket:
        if self._socket is None:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            # Queue messages only on a live connection, so a dead daemon is noticed at once
            # and a stale request is never delivered minutes later to a restarted daemon.
            s.setsockopt(zmq.IMMEDIATE, 1)
            s.setsockopt(zmq.HEARTBEAT_IVL, 1000)
            s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
            s.setsockopt(zmq.RECONNECT_IVL, 100)
            s.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            if self.curve is not None:
                self.curve.apply(s)
            try:
                s.connect(self.address)
            except zmq.ZMQError as e:
                s.close(0)
                raise ProtocolError("BAD_VALUE", f"cannot connect to {self.address!r}: {e}") from None
            self._socket = s
        return self._socket

    def connect(self) -> dict:
        """Handshake with the daemon; returns its protocol_version, engine_version, device and limits."""
        with self._lock:
            self._open_socket()
            reply = self._request("hello", {"protocol_version": PROTOCOL_VERSION, "client": self.client_name})
            version = reply.content["protocol_version"]
            if not compatible(version):
                raise VersionMismatch(
                    f"the daemon at {self.address} speaks protocol {version}, this client {PROTOCOL_VERSION}; "
                    "update the plugin or the daemon"
                )
            self.info = dict(reply.content)
            return dict(self.info)

    def _ensure(self) -> None:
        if self.info is None:
            self.connect()

    def close(self) -> None:
        """Close the socket; jobs go on in the daemon and can be fetched later by id."""
        with self._lock:
            if self._socket is not None:
                self._socket.close(0)
                self._socket = None
            self.info = None
            self._tracks.clear()
            self._async.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- low level ------------------------------------------------------------------

    def _unavailable(self, what: str) -> DaemonUnavailable:
        # A CURVE daemon gives a client with no or wrong keys no answer at all (the handshake
        # fails silently), so "nobody there" and "keys needed" look alike from here.
        if self.curve is not None:
            why = ("start it with `semantic-analogy serve`, or check the CURVE keys: this client's key "
                   "must be in the daemon's authorized_clients, and the server key must be that daemon's")
        elif is_loopback(self.address):
            why = ("start it with `semantic-analogy serve`; or a daemon runs there with --keys and "
                   "needs this client's CURVE keys")
        else:
            why = ("a daemon may run there and need CURVE keys, as every daemon beyond loopback does: "
                   "give this client its key pair and the daemon's public key (made by `semantic-analogy "
                   "keys`); or none runs there yet")
        return DaemonUnavailable(f"no engine daemon answered at {self.address} {what}; {why}")

    def _send(self, type_: str, content: dict, *, wait: float) -> str:
        """Send one message; returns its msg_id. Waits up to ``wait`` s for a connection."""
        s = self._open_socket()
        msg_id = new_msg_id()
        frames = encode(type_, content, msg_id=msg_id)
        if wait > 0 and not s.poll(int(wait * 1000), zmq.POLLOUT):
            raise self._unavailable(f"within {wait:g} s")
        try:
            s.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise self._unavailable("(not connected)") from None
        return msg_id

    def _send_async(self, type_: str, job_id: str) -> bool:
        """Fire-and-forget request about a job; its reply is handled when it arrives."""
        try:
            msg_id = self._send(type_, {"job_id": job_id}, wait=0)
        except DaemonUnavailable:
            return False
        self._async[msg_id] = job_id
        while len(self._async) > _MAX_ASYNC:
            self._async.popitem(last=False)
        return True

    def _receive(self, wait: float) -> bool:
        """Receive and dispatch at most one message, waiting up to ``wait`` s. True if one came."""
        s = self._open_socket()
        if not s.poll(max(0, int(wait * 1000)), zmq.POLLIN):
            return False
        frames = s.recv_multipart()
        self._last_rx = time.monotonic()
        try:
            msg = decode(frames, sender="daemon")
        except DecodeError as e:
            if e.code == "VERSION_MISMATCH":
                raise VersionMismatch(f"the daemon at {self.address} is incompatible: {e.message}") from None
            raise ProtocolError(e.code, f"the daemon sent a message this client cannot read: {e.message}") from None
        self._dispatch(msg)
        return True

    def _dispatch(self, msg: Message) -> None:
        if msg.type == "event":
            c = msg.content
            track = self._tracks.get(c["job_id"])
            if track is None or c["seq"] <= track.last_seq:
                return  # a job we no longer follow, or a repeat after a watch
            track.last_seq = c["seq"]
            ev = Event(c["kind"], c["data"], list(c["images"]), c["job_id"], c["seq"])
            track.events.append(ev)
            track.terminal_seen = track.terminal_seen or ev.terminal
            return
        if msg.reply_to in self._waiting:
            self._replies[msg.reply_to] = msg
            return
        job_id = self._async.pop(msg.reply_to, None) if msg.reply_to else None
        track = self._tracks.get(job_id) if job_id else None
        if track is None:
            return  # a late reply to a request that already timed out
        if msg.type == "watching":  # the daemon follows it with the job's latest/terminal event
            track.hb_unacked_since = None
            track.watch_pending = False
        elif msg.type == "heartbeat_ack":
            track.hb_unacked_since = None
            if msg.content["state"] in _FINISHED_STATES and not track.terminal_seen and not track.watch_pending:
                # The job ended but its last event never reached us (dropped, or we were away).
                track.watch_pending = self._send_async("watch", job_id)
        elif msg.type == "error" and not track.terminal_seen:
            track.hb_unacked_since = None
            c = msg.content
            track.events.append(Event("error", {"code": c["code"], "message": c["message"]}, [], job_id))
            track.terminal_seen = True

    def _request(self, type_: str, content: dict, *, timeout: float | None = None) -> Message:
        """Send a request and wait for its reply; error replies raise."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        msg_id = self._send(type_, content, wait=timeout)
        self._waiting.add(msg_id)
        try:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self._receive(left):
                    if time.monotonic() >= deadline:
                        raise self._unavailable(f"within {timeout:g} s")
            reply = self._replies.pop(msg_id)
        finally:
            self._waiting.discard(msg_id)
            self._replies.pop(msg_id, None)
        if reply.type == "error":
            raise _error_from(reply.content)
        return reply

    # --- requests -------------------------------------------------------------------

    def ping(self) -> float:
        """Round-trip time to the daemon in seconds."""
        with self._lock:
            self._ensure()
            t0 = time.perf_counter()
            self._request("ping", {})
            return time.perf_counter() - t0

    def status(self) -> dict:
        """Device, queue length, running job and its progress, cache use, limits."""
        with self._lock:
            self._ensure()
            return dict(self._request("status", {}).content)

    def submit(
        self,
        image: RGBAImage,
        labels: RGBAImage,
        targets: list[RGBAImage],
        settings: dict,
        *,
        target_names: list[str] | None = None,
        cancel_if_silent: float | None = None,
        method: str | None = None,
    ) -> str:
        """Queue a job; returns its id at once. Events follow through poll/events/wait.

        ``method``: "gan", "patch" (no training: the result in seconds) or "gan+patch";
        None leaves the choice to the daemon (protocol 1.1 daemons: "gan+patch").
        """
        targets = list(targets) if isinstance(targets, (list, tuple)) else targets
        _check_submit(image, labels, targets, settings, target_names, cancel_if_silent)
        if method is not None:
            check_method(method)
        with self._lock:
            self._ensure()
            _check_limits(self.info.get("limits", {}), image, targets)
            if method is not None:
                _check_daemon_knows_methods(self.address, str(self.info.get("protocol_version", "")))
            content = {"image": image, "labels": labels, "targets": targets, "settings": dict(settings)}
            if target_names is not None:
                content["target_names"] = list(target_names)
            if cancel_if_silent is not None:
                content["cancel_if_silent"] = float(cancel_if_silent)
            if method is not None:
                content["method"] = method
            reply = self._request("submit", content)
            job_id = reply.content["job_id"]
            # A few heartbeats fit in the silence the daemon tolerates, so one lost or late is harmless.
            interval = min(self.heartbeat_interval, cancel_if_silent / 3) if cancel_if_silent else None
            self._tracks[job_id] = _Track(hb_sent_at=time.monotonic(), hb_interval=interval)
            self._prune_tracks()
            return job_id

    def _track(self, job_id: str) -> _Track:
        if not isinstance(job_id, str) or not job_id:
            raise TypeError("job_id must be the string submit() returned")
        track = self._tracks.get(job_id)
        if track is None:  # a job from another connection (e.g. before a restart): subscribe
            self._ensure()
            track = self._tracks[job_id] = _Track()
            track.watch_pending = self._send_async("watch", job_id)
            track.hb_sent_at = time.monotonic()
            track.hb_unacked_since = track.hb_sent_at
            self._prune_tracks()
        return track

    def _prune_tracks(self) -> None:
        finished = [j for j, t in self._tracks.items() if t.terminal_seen and not t.events]
        for j in finished[: max(0, len(finished) - _MAX_FINISHED_TRACKS)]:
            del self._tracks[j]

    def _poll(self, job_id: str, wait: float, silence_limit: float) -> list[Event]:
        with self._lock:
            track = self._track(job_id)
            now = time.monotonic()
            due = track.hb_sent_at is None or now - track.hb_sent_at >= self._interval(job_id)
            if not track.terminal_seen and due:
                self._send_async("heartbeat", job_id)  # not sent (no connection) counts as silence too
                track.hb_sent_at = now
                if track.hb_unacked_since is None:
                    track.hb_unacked_since = now
            end = time.monotonic() + wait
            while True:  # take everything already there, then wait for this job's events
                got = self._receive(0 if track.events else max(0.0, end - time.monotonic()))
                if not got and (track.events or time.monotonic() >= end):
                    break
            if (not track.terminal_seen and not track.events and track.hb_unacked_since is not None
                    and time.monotonic() - track.hb_unacked_since > silence_limit):
                raise DaemonUnavailable(
                    f"the daemon at {self.address} stopped answering for {silence_limit:g} s while job "
                    f"{job_id} was pending; it may have crashed (check `semantic-analogy status`)"
                )
            events = list(track.events)
            track.events.clear()
            return events

    def _interval(self, job_id: str) -> float:
        track = self._tracks.get(job_id)
        return (track.hb_interval if track and track.hb_interval else None) or self.heartbeat_interval

    def poll(self, job_id: str, timeout: float = 0.0) -> list[Event]:
        """Events of a job that arrived since the last call (waits up to ``timeout`` s for one).

        Sends heartbeats as needed; raises DaemonUnavailable when the daemon stopped answering.
        Meant for GUI timers: with the default timeout it never waits. With ``cancel_if_silent``
        call it more often than every cancel_if_silent/3 seconds.
        """
        return self._poll(job_id, max(0.0, timeout), self.silence_timeout)

    def events(self, job_id: str, timeout: float = 600.0) -> Iterator[Event]:
        """Yield a job's events up to and including the terminal one.

        Raises DaemonUnavailable when nothing at all arrives for ``timeout`` seconds.
        """
        while True:
            with self._lock:
                track = self._tracks.get(job_id)
                if track is not None and track.terminal_seen and not track.events:
                    return  # its terminal event was already handed out
            step = min(self._interval(job_id), timeout)
            events = self._poll(job_id, step, timeout)
            for ev in events:
                yield ev
                if ev.terminal:
                    return
            if not events and time.monotonic() - self._last_rx > timeout:
                raise DaemonUnavailable(
                    f"nothing arrived from the daemon at {self.address} for {timeout:g} s (job {job_id})"
                )

    def wait(
        self,
        job_id: str,
        on_event: Callable[[Event], None] | None = None,
        timeout: float | None = None,
    ) -> list[RGBAImage]:
        """Wait for a job's result images (in target order), calling ``on_event`` for each event.

        Raises JobFailed on error or cancel, DaemonUnavailable when the daemon went silent,
        JobTimeout after ``timeout`` s (the job itself goes on; cancel it if you want).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            track = self._tracks.get(job_id)
            if track is not None and track.terminal_seen and not track.events:
                return self.result(job_id)  # finished and already reported: fetch it again
        while True:
            step = self._interval(job_id)
            if deadline is not None:
                step = min(step, max(0.0, deadline - time.monotonic()))
            for ev in self._poll(job_id, step, self.silence_timeout):
                if on_event is not None:
                    on_event(ev)
                if ev.kind == "result":
                    return list(ev.images)
                if ev.terminal:
                    raise JobFailed(ev.data.get("code", "INTERNAL"), ev.data.get("message", ""), job_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(f"job {job_id} did not finish within {timeout:g} s", job_id)

    def result(self, job_id: str) -> list[RGBAImage]:
        """A finished job's result images (e.g. after reconnecting). JobFailed if it failed."""
        with self._lock:
            self._ensure()
            try:
                reply = self._request("result", {"job_id": job_id})
            except JobFailed as e:
                e.job_id = job_id
                raise
            return list(reply.content["images"])

    def cancel(self, job_id: str) -> str:
        """Cancel a job; returns its state afterwards ("cancelled", or "running" while it stops)."""
        with self._lock:
            self._ensure()
            return self._request("cancel", {"job_id": job_id}).content["state"]

    def heartbeat(self, job_id: str) -> str:
        """Tell the daemon this client still waits for the job; returns the job's state."""
        with self._lock:
            self._ensure()
            return self._request("heartbeat", {"job_id": job_id}).content["state"]

    def list_models(self) -> list[dict]:
        """The trained models in the daemon's cache (key, size_bytes, created, last_used, ...)."""
        with self._lock:
            self._ensure()
            return list(self._request("list_models", {}).content["models"])

    def delete_model(self, key: str) -> None:
        """Delete a cached model; ProtocolError UNKNOWN_MODEL if there is none with this key."""
        with self._lock:
            self._ensure()
            self._request("delete_model", {"key": key})


def _error_from(content: dict) -> ProtocolError:
    code, message = content["code"], content["message"]
    if code == "VERSION_MISMATCH":
        return VersionMismatch(message)
    if code in JOB_FAILURE_CODES:
        return JobFailed(code, message, content.get("job_id"))
    return ProtocolError(code, message, field=content.get("field"))


def _check_submit(image, labels, targets, settings, target_names, cancel_if_silent) -> None:
    """Catch caller mistakes before anything is sent, with messages naming the argument."""
    for name, v in (("image", image), ("labels", labels)):
        if not isinstance(v, RGBAImage):
            raise ProtocolError("WRONG_TYPE", f"{name} must be an RGBAImage, got {type(v).__name__}", field=name)
    if not isinstance(targets, list) or not targets:
        raise ProtocolError("WRONG_TYPE", "targets must be a non-empty list of RGBAImage", field="targets")
    for i, t in enumerate(targets):
        if not isinstance(t, RGBAImage):
            raise ProtocolError("WRONG_TYPE", f"targets[{i}] must be an RGBAImage, got {type(t).__name__}",
                                field="targets")
    if not isinstance(settings, dict):
        raise ProtocolError("WRONG_TYPE", f"settings must be a dict, got {type(settings).__name__}", field="settings")
    if labels.size != image.size:
        raise ProtocolError("SIZE_MISMATCH", f"labels are {labels.width}x{labels.height} but the image is "
                            f"{image.width}x{image.height}; paint the labels at the image's size", field="labels")
    for i, t in enumerate(targets):
        if t.size != image.size:
            raise ProtocolError("SIZE_MISMATCH", f"target {i} is {t.width}x{t.height} but the image is "
                                f"{image.width}x{image.height}", field="targets")
    if target_names is not None:
        if not isinstance(target_names, (list, tuple)) or not all(isinstance(n, str) for n in target_names):
            raise ProtocolError("WRONG_TYPE", "target_names must be a list of strings", field="target_names")
        if len(target_names) != len(targets):
            raise ProtocolError("BAD_VALUE", f"{len(target_names)} target_names for {len(targets)} targets",
                                field="target_names")
    if cancel_if_silent is not None:
        if isinstance(cancel_if_silent, bool) or not isinstance(cancel_if_silent, (int, float)) or not cancel_if_silent > 0:
            raise ProtocolError("BAD_VALUE", "cancel_if_silent must be a positive number of seconds",
                                field="cancel_if_silent")


def _check_daemon_knows_methods(address: str, daemon_version: str) -> None:
    """A 1.0 daemon ignores ``method`` (unknown fields are ignored): refuse rather than get another method."""
    try:
        too_old = parse_version(daemon_version) < (1, 1)
    except ValueError:
        too_old = True
    if too_old:
        raise VersionMismatch(
            f"the daemon at {address} speaks protocol {daemon_version[:16]}, which cannot choose the method "
            "(gan, patch, gan+patch); update the daemon to the plug-in's version"
        )


def _check_limits(limits: dict, image: RGBAImage, targets: list[RGBAImage]) -> None:
    """Refuse locally what the daemon would refuse: an oversized frame would only drop the connection."""
    max_targets, max_pixels = limits.get("max_targets"), limits.get("max_pixels")
    max_bytes = limits.get("max_message_bytes")
    if max_targets and len(targets) > max_targets:
        raise ProtocolError("TOO_LARGE", f"{len(targets)} targets, but the daemon takes at most {max_targets} per job")
    if max_pixels and image.width * image.height > max_pixels:
        raise ProtocolError("TOO_LARGE", f"the image has {image.width * image.height} pixels, over the daemon's "
                            f"limit of {max_pixels}; scale it down")
    if max_bytes and len(image.data) > max_bytes:
        raise ProtocolError("TOO_LARGE", f"one image is {len(image.data)} bytes, over the daemon's message limit "
                            f"of {max_bytes}")
