"""The daemon's pure parts: config and security rule, job table, disk cache, request checks."""

import os
import threading
import time

import numpy as np
import pytest

from semantic_analogy.daemon.cache import DiskCache, Entry, choose_evictions
from semantic_analogy.daemon.cli import make_keys
from semantic_analogy.protocol.commands import CommandError, format_status, outputs_for
from semantic_analogy.daemon.config import ConfigError, DaemonConfig, Limits, check_bind, parse_size
from semantic_analogy.daemon.jobs import CANCELLED, DONE, QUEUED, RUNNING, Job, JobTable, QueueFull, new_job_id
from semantic_analogy.daemon.validation import parse_submit, to_array, to_rgba_image
from semantic_analogy.daemon.worker import parse_settings
from semantic_analogy.protocol.errors import ProtocolError
from semantic_analogy.protocol.images import RGBAImage

# --- config ------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.0.2:1"])
def test_non_loopback_needs_keys(address, tmp_path):
    with pytest.raises(ConfigError, match="refusing to listen .* without encryption.*semantic-analogy keys"):
        check_bind(address, None)
    check_bind(address, tmp_path)  # with keys it may


def test_loopback_and_ipc_need_no_keys():
    check_bind("tcp://127.0.0.1:5555", None)
    check_bind("ipc:///tmp/x.sock", None)
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        check_bind("http://127.0.0.1:80", None)


def test_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="unknown device"):
        DaemonConfig(device="tpu", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="max_queue must be at least 1"):
        Limits(max_queue=0)
    with pytest.raises(ConfigError, match="instant-preview-size must be 0"):
        DaemonConfig(instant_preview_px=-1, cache_dir=tmp_path)
    assert Limits(max_pixels=10).max_message_bytes == 64 * 1024  # never below one header
    assert Limits(max_pixels=1 << 20).max_message_bytes == 4 << 20


@pytest.mark.parametrize("text,n", [("100", 100), ("2K", 2048), ("1.5M", 1572864), ("5G", 5 << 30), ("3GiB", 3 << 30)])
def test_parse_size(text, n):
    assert parse_size(text) == n


def test_parse_size_refuses_nonsense():
    with pytest.raises(ConfigError, match="500M"):
        parse_size("lots")


# --- job table ----------------------------------------------------------------------------


def job(**kw) -> Job:
    return Job(id=new_job_id(), width=1, height=1, settings=None, settings_dict={}, target_names=["t"], **kw)


def test_fifo_positions_and_queue_limit():
    t = JobTable(max_queue=2)
    a, b, c = job(), job(), job()
    assert t.add(a) == 0 and t.add(b) == 1
    with pytest.raises(QueueFull, match="limit is 2"):
        t.add(c)
    assert t.position(b.id) == 1
    assert t.take_next(0.1) is a and a.state == RUNNING and t.running is a
    assert t.position(b.id) == 0
    assert t.take_next(0.05) is None, "one job at a time"
    t.finish(a, DONE)
    assert a.image is None and t.running is None
    assert t.take_next(0.1) is b


def test_take_next_wakes_when_a_job_arrives():
    t = JobTable(max_queue=5)
    got = []
    th = threading.Thread(target=lambda: got.append(t.take_next(5)))
    th.start()
    time.sleep(0.05)
    j = job()
    t.add(j)
    th.join(2)
    assert got == [j]


def test_cancel_queued_only_before_the_worker_takes_it():
    t = JobTable(max_queue=5)
    a, b = job(), job()
    t.add(a)
    t.add(b)
    assert t.cancel_queued(b, "CANCELLED") and t.position(b.id) is None
    t.finish(b, CANCELLED)
    assert t.take_next(0.1) is a
    assert not t.cancel_queued(a, "CANCELLED")
    a.request_cancel("CLIENT_SILENT")
    a.request_cancel("CANCELLED")
    assert a.cancel_event.is_set() and a.cancel_code == "CLIENT_SILENT"  # the first reason wins


def test_finished_jobs_are_forgotten_beyond_the_limit():
    t = JobTable(max_queue=10, max_remembered=2)
    jobs = [job() for _ in range(4)]
    for j in jobs:
        t.add(j)
    for j in jobs:
        assert t.take_next(0.1) is j
        t.finish(j, DONE)
    assert len(t) == 2 and t.get(jobs[0].id) is None and t.get(jobs[3].id) is jobs[3]
    assert t.counts() == {QUEUED: 0, RUNNING: 0, DONE: 2, "failed": 0, CANCELLED: 0}


# --- cache --------------------------------------------------------------------------------


KEY = "ab" * 16
JOB_ID = "cd" * 16


def fake_training(cache: DiskCache, key: str, nbytes: int = 10) -> None:
    work = cache.work_path(key)
    (work / "model.pt").write_bytes(b"w" * nbytes)  # what the engine leaves after training


def test_models_move_in_complete_and_can_be_listed_and_deleted(tmp_path):
    cache = DiskCache(tmp_path, 10**9)
    assert cache.model_path(KEY) is None
    fake_training(cache, KEY)
    assert cache.model_path(KEY) is None, "a training in progress is no model yet"
    cache.commit_model(KEY, {"width": 5, "height": 4, "settings": {"preset": "tiny"}})
    assert cache.model_path(KEY) == tmp_path / "models" / KEY
    assert not (tmp_path / "work" / KEY).exists()
    [m] = cache.list_models()
    assert (m["key"], m["width"], m["height"], m["settings"]) == (KEY, 5, 4, {"preset": "tiny"})
    assert m["size_bytes"] > 10
    assert cache.delete_model(KEY) and not cache.delete_model(KEY)
    assert cache.list_models() == [] and list((tmp_path / "tmp").iterdir()) == []


def test_results_round_trip(tmp_path):
    cache = DiskCache(tmp_path, 10**9)
    cache.store_result(JOB_ID, {"target_names": ["a", "b"], "model_key": KEY, "width": 1, "height": 1},
                       [b"1234", b"5678"])
    meta, images = cache.load_result(JOB_ID)
    assert images == [b"1234", b"5678"] and meta["target_names"] == ["a", "b"]
    assert cache.load_result("ef" * 16) is None


@pytest.mark.parametrize("name", ["../etc", "AB" * 16, "x", "ab/cd" * 4, ""])
def test_names_can_never_be_paths(tmp_path, name):
    cache = DiskCache(tmp_path, 10**9)
    with pytest.raises(ValueError):
        cache.model_path(name)
    with pytest.raises(ValueError):
        cache.work_path(name)
    with pytest.raises(ValueError):
        cache.store_result(name, {}, [])
    assert cache.result_meta(name) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "results", "tmp", "work"]


def test_recover_removes_only_what_was_left_half_done(tmp_path):
    cache = DiskCache(tmp_path, 10**9)
    fake_training(cache, KEY)
    cache.commit_model(KEY, {"width": 1, "height": 1, "settings": {}})
    cache.store_result(JOB_ID, {"target_names": ["a"], "model_key": KEY, "width": 1, "height": 1}, [b"1234"])
    # What a killed daemon can leave behind:
    (tmp_path / "tmp" / "result-0123456789").mkdir()
    (tmp_path / "models" / ("ef" * 16)).mkdir()  # no weights: never complete
    (tmp_path / "results" / ("01" * 16)).mkdir()  # no meta.json
    (tmp_path / "work" / ("23" * 16)).mkdir()
    (tmp_path / "work" / ("23" * 16) / "checkpoint.pt").write_bytes(b"ok")
    (tmp_path / "work" / ("23" * 16) / "checkpoint.pt.tmp").write_bytes(b"half")
    removed = DiskCache(tmp_path, 10**9).recover()
    assert len(removed) == 4
    assert cache.model_path(KEY) and cache.load_result(JOB_ID)
    assert (tmp_path / "work" / ("23" * 16) / "checkpoint.pt").exists(), "checkpoints are kept for resuming"


def test_choose_evictions_least_recently_used_first_and_never_protected():
    e = [Entry("model", "a", None, 50, 1.0), Entry("result", "b", None, 30, 2.0), Entry("work", "c", None, 40, 3.0)]
    assert choose_evictions(e, 200, set()) == []
    assert [x.name for x in choose_evictions(e, 90, set())] == ["a"]
    assert [x.name for x in choose_evictions(e, 60, {("model", "a")})] == ["b", "c"]
    assert [x.name for x in choose_evictions(e, 0, {("work", "c")})] == ["a", "b"]


def test_enforce_limit_on_disk(tmp_path):
    cache = DiskCache(tmp_path, 1500)
    for i, key in enumerate(["a1" * 16, "b2" * 16, "c3" * 16]):
        fake_training(cache, key, nbytes=600)
        cache.commit_model(key, {"width": 1, "height": 1, "settings": {}})
        t = time.time() - 100 + i
        os.utime(tmp_path / "models" / key / "daemon.json", (t, t))
    evicted = cache.enforce_limit(protected={("model", "a1" * 16)})
    assert [e.name for e in evicted] == ["b2" * 16]
    assert cache.total_bytes() <= 1500


# --- request checks -------------------------------------------------------------------------


def img(w, h, v=0):
    return RGBAImage.filled(w, h, (v, v, v, 255))


def submit_content(**kw):
    c = {"image": img(4, 3), "labels": img(4, 3), "targets": [img(4, 3, 9)], "settings": {"preset": "tiny"}}
    c.update(kw)
    return c


def test_parse_submit_gives_arrays_and_default_names():
    req = parse_submit(submit_content(), Limits())
    assert req.image.shape == (3, 4, 4) and req.targets[0][0, 0, 0] == 9
    assert req.target_names == ["target-1"] and req.cancel_if_silent is None
    assert req.method == "gan+patch", "a 1.0 client sends no method: OMITTED_METHOD, what 1.0 always did"
    assert parse_submit(submit_content(method=None), Limits()).method == "gan+patch"
    assert [parse_submit(submit_content(method=m), Limits()).method for m in ("gan", "patch", "gan+patch")] == [
        "gan", "patch", "gan+patch"]


def test_the_protocols_methods_are_the_engines():
    from semantic_analogy.engine import synthesis
    from semantic_analogy.protocol import schema

    assert schema.METHODS == synthesis.METHODS and schema.DEFAULT_METHOD == synthesis.DEFAULT_METHOD


@pytest.mark.parametrize(
    "kw,limits,code,words",
    [
        (dict(image=img(5, 5), labels=img(5, 5), targets=[img(5, 5)]), Limits(max_pixels=24), "TOO_LARGE", "limit of 24"),
        (dict(targets=[img(4, 3)] * 3), Limits(max_targets=2), "TOO_LARGE", "limit is 2"),
        (dict(targets=[]), Limits(), "BAD_VALUE", "at least one target"),
        (dict(labels=img(3, 4)), Limits(), "SIZE_MISMATCH", "labels are 3x4 but the image is 4x3"),
        (dict(targets=[img(4, 3), img(4, 4)]), Limits(), "SIZE_MISMATCH", "target 2 is 4x4"),
        (dict(target_names=["a", "b"]), Limits(), "BAD_VALUE", "2 target_names for 1"),
        (dict(target_names=[""]), Limits(), "BAD_VALUE", "1 to 200 characters"),
        (dict(cancel_if_silent=0.1), Limits(), "BAD_VALUE", "between 0.5"),
        (dict(cancel_if_silent=float("nan")), Limits(), "BAD_VALUE", "cancel_if_silent"),
        (dict(method="pix2pix"), Limits(), "BAD_VALUE", "unknown method 'pix2pix'; choose one of gan, patch, gan\\+patch"),
        (dict(method="GAN"), Limits(), "BAD_VALUE", "choose one of"),
        (dict(method=""), Limits(), "BAD_VALUE", "unknown method ''"),
    ],
)
def test_parse_submit_refusals(kw, limits, code, words):
    with pytest.raises(ProtocolError, match=words) as info:
        parse_submit(submit_content(**kw), limits)
    assert info.value.code == code


def test_pixel_conversions():
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    im = to_rgba_image(arr)
    back = to_array(im)
    assert im.size == (3, 2) and (back[..., :3] == arr).all() and (back[..., 3] == 255).all()
    with pytest.raises(ValueError):
        to_rgba_image(arr.astype(np.float32))


def test_parse_settings_accepts_the_engines_fields():
    s = parse_settings({"preset": "tiny", "steps": 3, "seed": 7, "lr": 1e-3, "size": None,
                        "weights": {"patch": 2}}, "cpu")
    assert (s.preset, s.total_steps, s.seed, s.device, s.weights.patch) == ("tiny", 3, 7, "cpu", 2.0)


@pytest.mark.parametrize(
    "settings,words",
    [
        ({"device": "cuda"}, "chosen by the daemon's --device"),
        ({"vgg_weights": "/etc/passwd"}, "not per job"),
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"stepz": 3}, "unknown training setting 'stepz'; known settings: preset"),
        ({"steps": "5"}, "'steps' must be int or nil, got str"),
        ({"steps": True}, "'steps' must be int"),
        ({"steps": 0}, "between 1 and"),
        ({"size": 100000}, "between 32 and 4096"),
        ({"lr": float("inf")}, "finite"),
        ({"seed": None}, "cannot be nil"),
        ({"weights": {"patch": -1}}, "cannot be negative"),
        ({"weights": {"style": 1}}, "unknown loss weight 'style'"),
        ({"weights": 3}, "map of loss names"),
    ],
)
def test_parse_settings_refusals_name_the_setting(settings, words):
    with pytest.raises(ProtocolError, match=words) as info:
        parse_settings(settings, "cpu")
    assert info.value.code == "BAD_SETTINGS"


# --- CLI helpers ------------------------------------------------------------------------------


def test_outputs_for(tmp_path):
    assert outputs_for(["a/t1.png"], str(tmp_path / "out.png")) == [tmp_path / "out.png"]
    assert outputs_for(["a/t1.png", "b/t2.png"], str(tmp_path)) == [tmp_path / "t1.png", tmp_path / "t2.png"]
    with pytest.raises(CommandError, match="named t1"):
        outputs_for(["a/t1.png", "b/t1.png"], str(tmp_path))


def test_format_status():
    st = {"device": "cpu", "engine_version": "0.1.0", "protocol_version": "1.0", "queue_length": 2,
          "running_job": "f" * 32, "running_progress": {"stage": "train", "step": 5, "total": 600, "eta_s": 125.0},
          "jobs": {"done": 3, "failed": 1, "cancelled": 0}, "models_cached": 2, "cache_bytes": 12_300_000,
          "cache_limit_bytes": 5_000_000_000, "uptime_s": 3725}
    text = format_status("tcp://127.0.0.1:5555", st)
    assert "train step 5/600, ETA 2 min 05 s" in text
    assert "3 done, 1 failed, 0 cancelled" in text and "12.3 MB of 5.0 GB" in text and "1 h 02 min" in text
    # Protocol 1.3, --backend ray: every running job, each with its node.
    st = {**st, "running_jobs": [
        {"job_id": "a" * 32, "node": "9f" * 28, "progress": {"stage": "train", "step": 7, "total": 40, "eta_s": 3}},
        {"job_id": "b" * 8, "node": "3c" * 28, "progress": None}]}
    lines = format_status("tcp://127.0.0.1:5555", st).splitlines()
    assert lines[3] == f"running   {'a' * 32} on node {'9f' * 6} (train step 7/40, ETA 3 s)"
    assert lines[4] == f"          {'b' * 8} on node {'3c' * 6}"


def test_make_keys(tmp_path):
    d = tmp_path / "keys"
    make_keys(d, ["krita", "gimp"])
    assert (d / "server.key").is_file() and (d / "server.key_secret").stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in (d / "authorized_clients").iterdir()) == ["gimp.key", "krita.key"]
    assert (d / "clients" / "krita.key_secret").is_file()
    before = (d / "server.key_secret").read_bytes()
    make_keys(d, ["laptop"])  # adding a client keeps the daemon's keys
    assert (d / "server.key_secret").read_bytes() == before
    with pytest.raises(ConfigError, match="already has keys"):
        make_keys(d, ["krita"])
    with pytest.raises(ConfigError, match="letters, digits"):
        make_keys(d, ["../evil"])


def test_take_next_prefers_quick_jobs_and_skips_those_not_allowed():
    t = JobTable(max_queue=5, max_running=2)
    train, quick, blocked = job(), job(), job()
    for j in (blocked, train, quick):
        t.add(j)
    got = t.take_next(0, prefer=lambda j: j is quick, allow=lambda j: j is not blocked)
    assert got is quick, "a job needing no training goes first"
    assert t.take_next(0, prefer=lambda j: j is quick, allow=lambda j: j is not blocked) is train
    assert t.take_next(0.05) is None, "two slots, both taken"
    assert [j.id for j in t.running_jobs()] == [quick.id, train.id] and t.running is quick
    t.finish(quick, DONE)
    assert t.take_next(0, allow=lambda j: j is not blocked) is None, "only a job not allowed is left"
    assert t.take_next(0) is blocked


def test_a_newer_job_supersedes_the_same_clients_queued_job_for_the_same_photo():
    t = JobTable(max_queue=5)
    older, other_client, other_photo, newer = (job(client="a", photo="p:gan"), job(client="b", photo="p:gan"),
                                               job(client="a", photo="q:gan"), job(client="a", photo="p:gan"))
    for j in (older, other_client, other_photo, newer):
        t.add(j)
    assert t.superseded_by(newer) == [older]
    assert t.superseded_by(job(client="a")) == [], "no photo fingerprint (the local backend): nothing superseded"
