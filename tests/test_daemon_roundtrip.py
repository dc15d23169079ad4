"""Round trips with the real daemon and the real engine over real sockets (tcp loopback and ipc).

The daemon runs in a background thread of this process (tests/daemon_fixtures.py, running_daemon),
in strict mode: it refuses any field SPEC.md does not list, so the client is checked
against the specification too; the raw-socket tests check the daemon's messages the
same way. Trainings use the engine's "tiny" preset with a few steps.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
import uuid

import msgpack
import numpy as np
import pytest
import zmq

from semantic_analogy.daemon.config import Limits
from daemon_fixtures import GREEN, H, W, label_map, photo, progress_until, running_daemon
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.errors import JobFailed, ProtocolError
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.wire import decode, encode
from semantic_analogy.protocol.version import PROTOCOL_VERSION

TINY = {"preset": "tiny", "steps": 3}


def long_settings() -> dict:
    # A unique seed: never a cache hit, so the job really trains (and can be cancelled).
    return {"preset": "tiny", "steps": 400, "seed": uuid.uuid4().int % 10**6, "checkpoint_every": 1000}


def all_events(c: Client, job: str, timeout: float = 120.0) -> list:
    return list(c.events(job, timeout=timeout))


def first_training_progress(c: Client, job: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in c.poll(job, timeout=0.5):
            if ev.kind == "progress" and ev.data["stage"] == "train":
                return ev
            assert not ev.terminal, ev
    raise AssertionError("no training progress")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with running_daemon(tmp_path_factory.mktemp("cache"), preview_interval_s=0.0, cpu_threads=1) as d:
        yield d


@pytest.fixture
def client(daemon):
    with Client(daemon.endpoint, timeout=5) as c:
        c.connect()
        yield c


# --- submit -> progress -> result, and the cache ------------------------------------------


def test_submit_progress_result(client):
    image, labels = photo(), label_map(20)
    targets = [label_map(30), label_map(10)]
    job = client.submit(image, labels, targets, {**TINY, "preview_every": 1}, target_names=["wide", "narrow"])
    assert len(job) == 32
    events = all_events(client, job)
    kinds = [e.kind for e in events]
    assert kinds[0] == "queued" and events[0].data == {"position": 0}
    assert kinds[-1] == "result" and kinds.count("result") == 1
    train = [e.data for e in events if e.kind == "progress" and e.data["stage"] == "train"]
    assert [d["step"] for d in train] == sorted(d["step"] for d in train) and train[-1]["step"] == 3
    assert all(d["total"] == 3 and d["losses"] for d in train)
    previews = [e for e in events if e.kind == "preview"]
    assert previews and all(len(e.images) == 1 and e.images[0].width <= 64 for e in previews)
    applied = [e.data for e in events if e.kind == "progress" and e.data["stage"] == "apply"]
    assert [d["step"] for d in applied] == [1, 2] and applied[-1]["total"] == 2
    assert [e.seq for e in events] == sorted(e.seq for e in events) and len({e.seq for e in events}) == len(events)
    result = events[-1]
    assert result.data["target_names"] == ["wide", "narrow"] and result.data["cached"] is False
    assert [im.size for im in result.images] == [(W, H), (W, H)]
    assert all(im.data[3::4] == b"\xff" * (W * H) for im in result.images), "results are opaque"
    assert result.images[0] != result.images[1]
    # Fetching it again later gives the same pixels; following it again ends at once.
    assert client.result(job) == result.images
    assert client.wait(job, timeout=10) == result.images
    assert list(client.events(job, timeout=10)) == []


def test_same_source_and_settings_reuse_the_model(client):
    image, labels = photo(), label_map(20)
    first = client.submit(image, labels, [label_map(25)], TINY)
    first_events = all_events(client, first)
    key = first_events[-1].data["model_key"]
    job = client.submit(image, labels, [label_map(36)], TINY)
    events = all_events(client, job)
    assert events[-1].kind == "result" and events[-1].data["cached"] is True
    assert events[-1].data["model_key"] == key
    assert not any(e.kind == "progress" and e.data["stage"] == "train" for e in events), "no training on a hit"
    other = client.submit(image, labels, [label_map(36)], {**TINY, "seed": 1})
    assert all_events(client, other)[-1].data["model_key"] != key, "other settings, other model"
    assert key in {m["key"] for m in client.list_models()}


def test_wait_returns_images_in_target_order(client):
    image, labels = photo(), label_map(20)
    targets = [label_map(s) for s in (12, 28, 40)]
    one_by_one = [client.wait(client.submit(image, labels, [t], TINY))[0] for t in targets]
    together = client.wait(client.submit(image, labels, targets, TINY))
    assert together == one_by_one


# --- methods and the instant result (SPEC.md 1.1) ------------------------------------------------


def test_the_instant_patch_preview_arrives_before_the_first_training_step(client):
    image, labels, target = photo(5), label_map(20), label_map(30, box=(34, 8, 6))
    settings = long_settings()
    job = client.submit(image, labels, [target], settings, method="gan+patch")
    seen = []
    deadline = time.monotonic() + 60
    while not any(e.kind == "progress" and e.data["stage"] == "train" for e in seen):
        assert time.monotonic() < deadline, [e.kind for e in seen]
        seen += client.poll(job, timeout=0.5)
        assert not any(e.terminal for e in seen), seen[-1]
    client.cancel(job)
    first_train = next(i for i, e in enumerate(seen) if e.kind == "progress" and e.data["stage"] == "train")
    instant = [e for e in seen[:first_train] if e.instant]
    assert len(instant) == 1, [e.kind for e in seen]
    d = instant[0].data
    assert (d["kind"], d["stage"], d["step"], d["target"]) == ("patch", "train", 0, 0)
    assert all_events(client, job)[-1].kind == "cancelled"
    # It is the `patch` method's result for the target (small images are sent at their own size).
    patch = client.wait(client.submit(image, labels, [target], {"seed": settings["seed"]}, method="patch"))
    assert instant[0].images[0] == patch[0]


def test_method_patch_trains_nothing_and_caches_no_model(client):
    # A photo whose two classes differ in colour: noisy red left, noisy blue right.
    a = np.frombuffer(photo(6).data, np.uint8).reshape(H, W, 4).copy()
    a[:, :20, 0] |= 0xC0
    a[:, :20, 2] &= 0x3F
    a[:, 20:, 0] &= 0x3F
    a[:, 20:, 2] |= 0xC0
    image, labels, target = RGBAImage(W, H, a.tobytes()), label_map(20), label_map(30, box=(34, 8, 6))
    models_before = {m["key"] for m in client.list_models()}
    job = client.submit(image, labels, [target], {"preset": "best"}, method="patch")  # the preset is moot
    events = all_events(client, job, timeout=60)
    assert not any(e.kind == "progress" and e.data["stage"] == "train" for e in events)
    assert not any(e.instant for e in events), "the result itself is the instant answer"
    result = events[-1]
    assert result.kind == "result"
    assert result.data["method"] == "patch" and result.data["model_key"] == "" and result.data["cached"] is False
    assert {m["key"] for m in client.list_models()} == models_before
    out = np.frombuffer(result.images[0].data, np.uint8).reshape(H, W, 4)
    src = np.frombuffer(image.data, np.uint8).reshape(H, W, 4)
    # Unedited beyond the 3 px margin, and on the red side beyond the 4 px halo band along
    # the red-blue border that moved away (engine/synthesis.py): the source's pixels exactly.
    assert np.array_equal(out[:, :16], src[:, :16]) and np.array_equal(out[:, 43:], src[:, 43:]), "unedited: exact"
    # The edited strip and box, now of the red class, are made of the red class's patches.
    for region in (out[:, 22:28], out[9:13, 35:39]):
        assert (region[..., 0] >= 0xA0).all() and (region[..., 2] <= 0x60).all()
    assert client.result(job) == result.images
    # The same job again gives the same pixels (seeded), and is what a 1.1 client's preview shows.
    assert client.wait(client.submit(image, labels, [target], {}, method="patch"), timeout=60) == result.images


def test_a_cached_model_serves_every_method_and_gan_plus_patch_previews_the_gan(client):
    image, labels, target = photo(7), label_map(20), label_map(30, box=(34, 8, 6))
    gan_events = all_events(client, client.submit(image, labels, [target], TINY, method="gan"))
    assert gan_events[-1].data["method"] == "gan" and gan_events[-1].data["cached"] is False
    key = gan_events[-1].data["model_key"]
    events = all_events(client, client.submit(image, labels, [target], TINY, method="gan+patch"))
    result = events[-1]
    assert result.data["cached"] is True and result.data["model_key"] == key and result.data["method"] == "gan+patch"
    instant = [e for e in events if e.instant]
    assert len(instant) == 1 and instant[0].data["kind"] == "gan" and instant[0].data["stage"] == "apply"
    assert instant[0].images[0] == gan_events[-1].images[0], "the preview is the GAN's result"
    assert events.index(instant[0]) < len(events) - 1
    again = all_events(client, client.submit(image, labels, [target], TINY, method="gan"))
    assert again[-1].data["cached"] is True and not any(e.instant for e in again)
    assert again[-1].images == gan_events[-1].images
    # Both keep the source's pixels where the label did not change (left of column 20, right
    # of 30 but the box): gan all of them, gan+patch those beyond its 3 px margin (4 px on
    # the red side, whose border with blue moved away: the halo band, engine/synthesis.py).
    src = np.frombuffer(image.data, np.uint8).reshape(H, W, 4)
    for im, margin, halo in ((gan_events[-1].images[0], 0, 0), (result.images[0], 3, 4)):
        unedited = np.ones((H, W), bool)
        unedited[:, 20 - max(margin, halo) : 30 + margin] = False
        unedited[max(0, 8 - margin) : 14 + margin, 34 - margin : 40 + margin] = False
        out = np.frombuffer(im.data, np.uint8).reshape(H, W, 4)
        assert np.array_equal(out[unedited], src[unedited])
    assert result.images[0] != gan_events[-1].images[0], "gan+patch remade the edited region"


# --- jobs belong to the daemon, not the connection -------------------------------------------


def test_result_after_reconnect(daemon):
    a = Client(daemon.endpoint)
    job = a.submit(photo(), label_map(20), [label_map(33)], TINY)
    a.close()  # gone before any event
    with Client(daemon.endpoint) as b:
        images = b.wait(job, timeout=120)  # watches the job it did not submit
        assert len(images) == 1 and images[0].size == (W, H)
    with Client(daemon.endpoint) as c:
        assert c.result(job) == images
        events = list(c.events(job, timeout=30))  # watching a finished job replays its last event
        assert [e.kind for e in events] == ["result"] and events[0].images == images


def test_unknown_and_unfinished_jobs(client):
    with pytest.raises(ProtocolError, match="no job") as info:
        client.result(uuid.uuid4().hex)
    assert info.value.code == "UNKNOWN_JOB"
    with pytest.raises(ProtocolError, match="lowercase hex") as info:
        client.cancel("../../etc")
    assert info.value.code == "UNKNOWN_JOB"
    with pytest.raises(JobFailed) as failed:  # following an unknown job ends it at once
        client.wait(uuid.uuid4().hex, timeout=10)
    assert failed.value.code == "UNKNOWN_JOB"
    job = client.submit(photo(), label_map(20), [label_map(30)], long_settings())
    first_training_progress(client, job)
    with pytest.raises(ProtocolError, match="still running") as info:
        client.result(job)
    assert info.value.code == "NOT_FINISHED"
    client.cancel(job)
    assert all_events(client, job)[-1].kind == "cancelled"


# --- cancel ----------------------------------------------------------------------------------


def test_cancel_stops_a_running_job_promptly_and_keeps_a_checkpoint(client, daemon):
    job = client.submit(photo(1), label_map(20), [label_map(30)], long_settings())
    progress = first_training_progress(client, job)
    status = client.status()
    assert status["running_job"] == job and status["running_progress"]["stage"] == "train"
    with Client(daemon.endpoint) as other:  # a full job id grants its result: strangers see a prefix
        assert other.status()["running_job"] == job[:8]
    t0 = time.monotonic()
    assert client.cancel(job) == "running"
    events = all_events(client, job)
    took = time.monotonic() - t0
    assert events[-1].kind == "cancelled" and events[-1].data["code"] == "CANCELLED"
    last_step = max(e.data["step"] for e in events if e.kind == "progress") if len(events) > 1 else progress.data["step"]
    assert last_step < 400
    assert took < 5, f"cancel took {took:.1f} s"  # generous bound on a shared CPU; see BENCHMARKS.md
    with pytest.raises(JobFailed) as info:
        client.result(job)
    assert info.value.code == "CANCELLED"
    assert any((daemon.cache.root / "work").glob("*/checkpoint.pt")), "a resubmission resumes from here"
    assert client.status()["running_job"] is None


def test_cancel_a_queued_job_removes_it(client):
    running = client.submit(photo(2), label_map(20), [label_map(30)], long_settings())
    queued = client.submit(photo(3), label_map(20), [label_map(30)], long_settings())
    first_training_progress(client, running)
    assert client.status()["queue_length"] == 1
    assert client.cancel(queued) == "cancelled"
    events = all_events(client, queued)
    kinds = [e.kind for e in events]
    assert set(kinds[:-1]) == {"queued"} and kinds[-1] == "cancelled"
    # Position 1 while the first job waited too, 0 once it started.
    assert [e.data["position"] for e in events[:-1]][-1] == 0
    assert "before it started" in events[-1].data["message"]
    assert client.cancel(queued) == "cancelled"  # again: nothing changes
    client.cancel(running)
    assert all_events(client, running)[-1].kind == "cancelled"


def test_a_silent_client_gets_its_job_cancelled(daemon):
    c = Client(daemon.endpoint)
    job = c.submit(photo(4), label_map(20), [label_map(30)], long_settings(), cancel_if_silent=1.0)
    c.close()  # like GIMP killing the plug-in: no cancel, no more heartbeats
    time.sleep(2.0)  # asking about the job would count as a sign of life: stay silent
    with Client(daemon.endpoint) as other:
        with pytest.raises(JobFailed, match="stopped sending heartbeats") as info:
            other.wait(job, timeout=30)
        assert info.value.code == "CLIENT_SILENT"


def test_a_client_that_keeps_polling_is_not_cancelled(client):
    job = client.submit(photo(), label_map(20), [label_map(31)], {**TINY, "seed": 3}, cancel_if_silent=0.6)
    deadline = time.monotonic() + 120
    events = []
    while not (events and events[-1].terminal) and time.monotonic() < deadline:
        events += client.poll(job, timeout=0.1)  # a GUI timer: heartbeats go out as needed
    assert events[-1].kind == "result"
    assert client.wait(client.submit(photo(), label_map(20), [label_map(31)], {**TINY, "seed": 4},
                                     cancel_if_silent=0.6), timeout=120)


# --- bad input ----------------------------------------------------------------------------------


def test_bad_labels_fail_the_job_with_the_engines_message(client):
    target = label_map(20, right=GREEN)  # a colour the source labels do not have
    job = client.submit(photo(), label_map(20), [target], TINY)
    with pytest.raises(JobFailed) as info:
        client.wait(job, timeout=60)
    assert info.value.code == "BAD_LABELS" and info.value.message


def test_a_target_with_a_small_unpainted_gap_is_filled_not_refused(client):
    # An erased stroke: a 1-px line of white, 60 px long, across the blue class (0.3% of the
    # map). The engine fills it from the neighbours, as in the CLI and the plug-ins.
    w, h = 160, 120
    a = np.frombuffer(label_map(100, w, h).data, np.uint8).reshape(h, w, 4).copy()
    a[60, 100:160, :3] = 255
    gapped = RGBAImage(w, h, a.tobytes())
    source = photo(0, w, h), label_map(60, w, h)
    events = []
    with_gap = client.wait(client.submit(*source, [gapped], {"seed": 2}, method="patch"), timeout=60,
                           on_event=events.append)
    clean_events = []
    clean = client.wait(client.submit(*source, [label_map(100, w, h)], {"seed": 2}, method="patch"),
                        timeout=60, on_event=clean_events.append)
    assert with_gap == clean  # the gap decoded to the class around it: the very same result
    # The engine's one warning line reaches the client (protocol 1.2), in the progress and the
    # result events, naming the colour and the pixel count; a clean map gets none.
    result = next(e for e in events if e.kind == "result")
    (warning,) = result.data["warnings"]
    assert "#ffffff" in warning and "60 px" in warning and "/" not in warning, warning
    assert any(warning in e.data.get("warnings", []) for e in events if e.kind == "progress")
    assert not any("warnings" in e.data for e in clean_events)


def test_bad_settings_are_refused_at_submit(client):
    with pytest.raises(ProtocolError, match="unknown preset") as info:
        client.submit(photo(), label_map(20), [label_map(30)], {"preset": "enormous"})
    assert info.value.code == "BAD_SETTINGS"
    with pytest.raises(ProtocolError, match="chosen by the daemon"):
        client.submit(photo(), label_map(20), [label_map(30)], {"device": "cuda"})


# --- models -----------------------------------------------------------------------------------------


def test_list_and_delete_models(client):
    client.wait(client.submit(photo(5), label_map(20), [label_map(30)], TINY))
    models = {m["key"]: m for m in client.list_models()}
    assert models and all(m["width"] == W and m["height"] == H and m["size_bytes"] > 0 for m in models.values())
    key = next(iter(models))
    client.delete_model(key)
    assert key not in {m["key"] for m in client.list_models()}
    with pytest.raises(ProtocolError) as info:
        client.delete_model(key)
    assert info.value.code == "UNKNOWN_MODEL"


# --- raw sockets: the daemon's messages against SPEC.md, and broken requests --------------------------


class Raw:
    """A bare DEALER that decodes everything it receives strictly against SPEC.md."""

    def __init__(self, address: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 10.0):
        assert self.sock.poll(int(timeout * 1000)), "the daemon did not answer"
        return decode(self.sock.recv_multipart(), sender="daemon", strict=True)

    def request(self, type_: str, content: dict, **kw):
        frames = encode(type_, content, **kw)
        self.send(frames)
        msg_id = msgpack.unpackb(frames[0])["msg_id"]
        while True:
            msg = self.recv()
            if msg.reply_to == msg_id:
                return msg

    def close(self) -> None:
        self.sock.close(0)


def _raw_request(address: str, type_: str, content: dict):
    raw = Raw(address)
    try:
        return raw.request(type_, content)
    finally:
        raw.close()


def test_every_reply_and_event_conforms_to_the_spec(daemon):
    raw = Raw(daemon.endpoint)
    try:
        assert raw.request("hello", {"protocol_version": "1.0"}).type == "welcome"
        assert raw.request("ping", {}).type == "pong"
        assert raw.request("status", {}).type == "status_reply"
        submitted = raw.request("submit", {"image": photo(), "labels": label_map(20), "targets": [label_map(30)],
                                           "settings": TINY, "target_names": ["t"], "cancel_if_silent": 60})
        assert submitted.type == "submitted"
        job = submitted.content["job_id"]
        assert raw.request("heartbeat", {"job_id": job}).type == "heartbeat_ack"
        assert raw.request("watch", {"job_id": job}).type == "watching"
        kinds = []
        while "result" not in kinds:  # strict decoding of every event on the way
            msg = raw.recv(120)
            if msg.type == "event":
                kinds.append(msg.content["kind"])
        result = raw.request("result", {"job_id": job})
        assert result.type == "result_reply" and result.content["target_names"] == ["t"]
        assert raw.request("cancel", {"job_id": job}).content["state"] == "done"
        models = raw.request("list_models", {})
        assert models.type == "models_reply"
        key = result.content["model_key"]
        assert raw.request("delete_model", {"key": key}).type == "model_deleted"
        err = raw.request("delete_model", {"key": key})
        assert err.type == "error" and err.content["code"] == "UNKNOWN_MODEL"
    finally:
        raw.close()


def _frames(header: dict, *buffers: bytes) -> list[bytes]:
    return [msgpack.packb(header, use_bin_type=True), *buffers]


def _h(type_: str, content: dict, v: str = "1.0") -> dict:
    return {"v": v, "type": type_, "msg_id": uuid.uuid4().hex, "content": content}


def _desc(w: int, h: int, buf: int) -> dict:
    return {"width": w, "height": h, "buffer": buf}


PIX = b"\0" * (4 * 4 * 4)
BROKEN = [
    ("not msgpack", [b"\xc1\xc1"], "MALFORMED", "not a valid msgpack"),
    ("not a map", _frames([1, 2, 3]), "MALFORMED", "must be a msgpack map"),
    ("no type", [msgpack.packb({"v": "1.0", "msg_id": "x", "content": {}})], "MISSING_FIELD", "'type'"),
    ("unknown type", _frames(_h("format_disk", {})), "UNKNOWN_TYPE", "format_disk"),
    ("daemon's type", _frames(_h("result_reply", {})), "UNKNOWN_TYPE", "from a client"),
    ("missing field", _frames(_h("submit", {"image": _desc(4, 4, 0)}), PIX), "MISSING_FIELD", "'labels'"),
    ("wrong type", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(4, 4, 1), "targets": "all",
                                         "settings": {}}), PIX, PIX), "WRONG_TYPE", "'targets' must be a list"),
    ("size vs pixels", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(4, 4, 1),
                                             "targets": [_desc(4, 4, 2)], "settings": {}}), PIX, PIX[:-1], PIX),
     "BAD_IMAGE", "image 'labels' declares 4x4 RGBA \\(64 bytes\\) but its frame has 63"),
    ("labels size", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(2, 8, 1),
                                          "targets": [_desc(4, 4, 2)], "settings": {}}), PIX, PIX, PIX),
     "SIZE_MISMATCH", "labels are 2x8 but the image is 4x4"),
    ("huge declared", _frames(_h("submit", {"image": _desc(10**6, 10**6, 0), "labels": _desc(4, 4, 1),
                                            "targets": [_desc(4, 4, 2)], "settings": {}}), PIX, PIX, PIX),
     "TOO_LARGE", "over the daemon's limit"),
    ("missing frame", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(4, 4, 1),
                                            "targets": [_desc(4, 4, 2)], "settings": {}}), PIX, PIX),
     "MALFORMED", "points at buffer 2"),
    ("bad setting", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(4, 4, 1),
                                          "targets": [_desc(4, 4, 2)], "settings": {"steps": -1}}), PIX, PIX, PIX),
     "BAD_SETTINGS", "'steps' must be between 1"),
    ("no targets", _frames(_h("submit", {"image": _desc(4, 4, 0), "labels": _desc(4, 4, 1), "targets": [],
                                         "settings": {}}), PIX, PIX), "BAD_VALUE", "at least one target"),
    ("new major", _frames(_h("ping", {}, v="2.0")), "VERSION_MISMATCH", "not compatible"),
]


@pytest.mark.parametrize("frames,code,words", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_requests_get_an_error_naming_the_problem(daemon, frames, code, words):
    raw = Raw(daemon.endpoint)
    try:
        raw.send(frames)
        reply = raw.recv()
        assert reply.type == "error" and reply.content["code"] == code
        assert re.search(words, reply.content["message"]), reply.content["message"]
        header = msgpack.unpackb(frames[0]) if frames[0][:1] != b"\xc1" else None
        if isinstance(header, dict) and "msg_id" in header:
            assert reply.reply_to == header["msg_id"]
        assert raw.request("ping", {}).type == "pong", "the daemon goes on serving"
    finally:
        raw.close()


def test_wrong_version_handshake_is_refused_and_logged(daemon, caplog):
    caplog.set_level(logging.WARNING, logger="semantic_analogy.daemon")
    reply = _raw_request(daemon.endpoint, "hello", {"protocol_version": "7.1", "client": "time-traveller"})
    assert reply.type == "error" and reply.content["code"] == "VERSION_MISMATCH"
    assert f"protocol {PROTOCOL_VERSION}, the client 7.1" in reply.content["message"]
    assert any("time-traveller" in r.getMessage() and "7.1" in r.getMessage() for r in caplog.records)


# --- ipc, limits -------------------------------------------------------------------------------------------


def test_round_trip_over_ipc_and_the_queue_limit(tmp_path):
    sock = tmp_path / "sa.sock"
    with running_daemon(tmp_path / "cache", bind=f"ipc://{sock}", limits=Limits(max_queue=1), cpu_threads=1) as d:
        assert d.endpoint == f"ipc://{sock}"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600, "only this user may talk to the daemon"
        with Client(d.endpoint) as c:
            info = c.connect()
            assert info["limits"]["max_queue"] == 1 and info["device"] == "cpu"
            images = c.wait(c.submit(photo(), label_map(20), [label_map(30)], TINY), timeout=120)
            assert images[0].size == (W, H)
            running = c.submit(photo(6), label_map(20), [label_map(30)], long_settings())
            first_training_progress(c, running)
            queued = c.submit(photo(7), label_map(20), [label_map(30)], long_settings())
            with pytest.raises(ProtocolError, match="limit is 1") as info:
                c.submit(photo(8), label_map(20), [label_map(30)], TINY)
            assert info.value.code == "QUEUE_FULL"
            c.cancel(queued)
            c.cancel(running)
            assert all_events(c, running)[-1].kind == "cancelled"


def test_a_stopping_daemon_still_answers_while_the_job_checkpoints(tmp_path, monkeypatch):
    # The checkpoint of a stopped training can take seconds on a big model or a slow disk; a
    # daemon that went quiet meanwhile was taken for crashed by its clients (10 s of silence).
    import semantic_analogy.engine.trainer as trainer

    save = trainer._save_checkpoint
    saving = []

    def slow_save(*args, **kwargs):
        saving.append(time.monotonic())
        time.sleep(3)
        return save(*args, **kwargs)

    monkeypatch.setattr(trainer, "_save_checkpoint", slow_save)
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d, Client(d.endpoint, timeout=5) as c:
        job = c.submit(photo(3), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 5000, "seed": 3})
        progress_until(c, job, 1, timeout=60)
        d.stop_event.set()
        while not saving:
            time.sleep(0.05)
        assert c.status()["running_jobs"], "answers during the checkpoint"
        with pytest.raises(ProtocolError) as info:
            c.submit(photo(4), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 3})
        assert info.value.code == "SHUTDOWN"
        with pytest.raises(JobFailed) as failed:
            c.wait(job, timeout=30)
        assert failed.value.code == "SHUTDOWN"


def test_a_client_that_missed_the_shutdown_event_still_gets_it(tmp_path, monkeypatch):
    # Once in CI a client never received its job's SHUTDOWN event from a daemon that exited
    # at once, and reported a crash after 10 s. Here the event is dropped on purpose: the
    # stopping daemon answers a little longer, the client's heartbeat learns the job ended,
    # and its watch gets the event again.
    from semantic_analogy.daemon.server import Daemon

    send = Daemon._send_event
    dropped = []

    def lossy(self, job, kind, data, images=(), **kw):
        if kind == "cancelled" and data.get("code") == "SHUTDOWN" and not dropped and kw.get("to") is None:
            dropped.append(job.id)
            job.seq += 1
            return job.seq
        return send(self, job, kind, data, images, **kw)

    monkeypatch.setattr(Daemon, "_send_event", lossy)
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d, Client(d.endpoint, timeout=5) as c:
        job = c.submit(photo(5), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 5000, "seed": 5})
        progress_until(c, job, 1, timeout=60)
        d.stop_event.set()
        with pytest.raises(JobFailed) as failed:
            c.wait(job, timeout=30)
    assert dropped == [job], "the first SHUTDOWN event was not sent"
    assert failed.value.code == "SHUTDOWN"
