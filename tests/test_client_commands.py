"""The client commands and the daemon's edges through the real command line and a real daemon.

`semantic-analogy result` and `watch` (a job fetched or followed by id), results written
with the user's umask, bad output paths refused before any job is sent, a second daemon on
the same cache refused, the message for a daemon that needs CURVE keys, and no absolute
path of the daemon's in any message a client gets (issue 13).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon_fixtures import H, W, label_map, photo, running_daemon
from semantic_analogy.daemon.cli import make_keys
from semantic_analogy.daemon.redact import without_paths
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.errors import JobFailed
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.security import CurveKeys

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("SEMANTIC_ANALOGY_ADDRESS", None)
# An absolute path: /x, ~/x or C:\x not glued to a word, a dot, a colon or a slash.
ABSOLUTE = re.compile(r"(?<![\w.:/\\-])(~?/[\w.-]|[A-Za-z]:\\)")


def save_png(img: RGBAImage, path: Path) -> str:
    Image.frombytes("RGBA", img.size, img.data).save(path)
    return str(path)


def cli(*args: str, umask: int | None = None, cwd: Path | None = None, timeout: float = 120):
    cmd = [sys.executable, "-m", "semantic_analogy", *args]
    if umask is not None:
        cmd = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def one_error_line(proc, says: str) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in err and "Warning" not in err, err
    assert len(err.splitlines()) == 1, err
    assert says in err, err
    return err


def rgb(img: RGBAImage) -> np.ndarray:
    return np.asarray(Image.frombytes("RGBA", img.size, img.data).convert("RGB"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with running_daemon(tmp_path_factory.mktemp("cache"), cpu_threads=1, preview_interval_s=0.0) as d:
        yield d


# --- result and watch -----------------------------------------------------------------------------


def test_result_fetches_a_finished_job_with_the_users_umask(daemon, tmp_path):
    with Client(daemon.endpoint) as c:
        job = c.submit(photo(), label_map(20), [label_map(30)], {"preset": "tiny"}, method="patch")
        [image] = c.wait(job, timeout=120)
    out = tmp_path / "deep" / "result.png"
    proc = cli("result", job, "--out", str(out), "--address", daemon.endpoint, umask=0o027)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "Traceback" not in proc.stderr and proc.stderr.strip() == ""  # finished: no progress bar at all
    assert out.stat().st_mode & 0o777 == 0o640
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), rgb(image))
    assert not [p for p in out.parent.iterdir() if p.name != "result.png"], "no temporary file left"


def test_result_of_several_targets_into_a_folder_never_outside_it(daemon, tmp_path):
    with Client(daemon.endpoint) as c:
        job = c.submit(photo(1), label_map(20), [label_map(30), label_map(10)], {"preset": "tiny"},
                       target_names=["left", "../../evil"], method="patch")
        c.wait(job, timeout=120)
    folder = tmp_path / "outs"
    proc = cli("result", job, "--out", str(folder), "--address", daemon.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["evil.png", "left.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outs"]
    proc = cli("result", job, "--out", str(tmp_path / "one.png"), "--address", daemon.endpoint)
    assert proc.returncode == 2
    one_error_line(proc, "has 2 results; give a folder as --out")


def test_result_waits_for_a_running_job_with_progress(daemon, tmp_path):
    with Client(daemon.endpoint) as c:
        job = c.submit(photo(2), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 60, "seed": 2},
                       method="gan")
        assert c.heartbeat(job) in ("queued", "running")
        out = tmp_path / "r.png"
        proc = cli("result", job, "--out", str(out), "--address", daemon.endpoint)
        assert proc.returncode == 0, proc.stderr
        assert "training" in proc.stderr and "Traceback" not in proc.stderr
        with Image.open(out) as im:
            assert np.array_equal(np.asarray(im), rgb(c.result(job)[0]))


def test_watch_follows_a_job_and_stopping_it_does_not_cancel_the_job(daemon, tmp_path):
    with Client(daemon.endpoint) as c:
        job = c.submit(photo(3), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 80, "seed": 3},
                       method="gan")
        log = tmp_path / "watch.err"
        # The watcher gets Ctrl-C at its default, as from a terminal: run from a shell's background
        # job (nohup, some CI runners) this process inherits SIGINT ignored, and Python then never
        # raises KeyboardInterrupt in the watcher. A handler set here resets to the default at exec.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with open(log, "w") as err_file:
                w = subprocess.Popen([sys.executable, "-m", "semantic_analogy", "watch", job, "--address",
                                      daemon.endpoint], stdout=subprocess.PIPE, stderr=err_file, text=True, env=ENV)
        finally:
            signal.signal(signal.SIGINT, previous)
        deadline = time.monotonic() + 60
        # Interrupt only once the watcher shows training progress: a first start in a fresh
        # checkout (compiling its modules) can take longer than the job's first seconds.
        while "training" not in log.read_text() and w.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        w.send_signal(signal.SIGINT)
        w.communicate(timeout=30)
        err = log.read_text()
        assert w.returncode == 130, err
        assert f"stopped watching; job {job} goes on in the daemon" in err and "Traceback" not in err
        assert len(c.wait(job, timeout=120)) == 1, "the job was not cancelled"
    proc = cli("watch", job, "--address", daemon.endpoint)
    assert proc.returncode == 0, proc.stderr
    assert f"job {job} done: 1 result(s)" in proc.stdout


def test_result_and_watch_of_unknown_or_cancelled_jobs_say_so_in_one_line(daemon, tmp_path):
    unknown = "0123456789abcdef" * 2
    proc = cli("result", unknown, "--out", str(tmp_path / "o.png"), "--address", daemon.endpoint)
    assert proc.returncode == 1
    err = one_error_line(proc, f"no job {unknown} here")
    assert "[UNKNOWN_JOB]" in err and "the job failed" not in err
    proc = cli("watch", unknown, "--address", daemon.endpoint)
    assert proc.returncode == 1
    one_error_line(proc, "[UNKNOWN_JOB]")
    proc = cli("result", "nope", "--out", str(tmp_path / "o.png"), "--address", daemon.endpoint)
    assert proc.returncode == 2
    one_error_line(proc, "'nope' is not a job id")
    with Client(daemon.endpoint) as c:
        job = c.submit(photo(4), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 500, "seed": 4},
                       method="gan")
        c.cancel(job)
        with pytest.raises(JobFailed):
            c.wait(job, timeout=60)
    proc = cli("result", job, "--out", str(tmp_path / "o.png"), "--address", daemon.endpoint)
    assert proc.returncode == 1
    one_error_line(proc, "the job failed: the job was cancelled")


# --- submit -----------------------------------------------------------------------------------------


def test_submit_writes_with_the_umask_and_cancel_if_silent_0_is_accepted(daemon, tmp_path):
    files = [save_png(im, tmp_path / f"{n}.png") for n, im in
             (("img", photo(5)), ("labels", label_map(20)), ("t1", label_map(30)))]
    out = tmp_path / "o.png"
    proc = cli("submit", *files, "--out", str(out), "--method", "patch", "--quiet", "--cancel-if-silent", "0",
               "--address", daemon.endpoint, umask=0o027)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and out.stat().st_mode & 0o777 == 0o640


def test_submit_says_the_engines_warnings_once(daemon, tmp_path):
    # A target with an unpainted 1-px line: filled by the engine, which says so (protocol 1.2).
    w, h = 160, 120
    target = np.frombuffer(label_map(100, w, h).data, np.uint8).reshape(h, w, 4).copy()
    target[60, 100:160, :3] = 255
    files = [save_png(im, tmp_path / f"{n}.png") for n, im in
             (("img", photo(5, w, h)), ("labels", label_map(60, w, h)), ("t1", RGBAImage(w, h, target.tobytes())))]
    proc = cli("submit", *files, "--out", str(tmp_path / "o.png"), "--method", "patch", "--quiet",
               "--address", daemon.endpoint)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "60 px match no class (#ffffff)" in lines[0], proc.stderr


@pytest.mark.parametrize("out, says", [
    ("file.png/o.png", "is a file, not a folder"),
    ("o.xyz", "'.xyz' is not an image type"),
    ("o", "no extension is not an image type"),
])
def test_submit_refuses_a_bad_output_before_sending_anything(daemon, tmp_path, out, says):
    files = [save_png(im, tmp_path / f"{n}.png") for n, im in
             (("img", photo(6)), ("labels", label_map(20)), ("t1", label_map(30)))]
    (tmp_path / "file.png").write_bytes(b"x")
    with Client(daemon.endpoint) as c:
        before = c.status()["jobs"]
        proc = cli("submit", *files, "--out", str(tmp_path / out), "--method", "patch", "--address", daemon.endpoint)
        assert proc.returncode == 2
        one_error_line(proc, says)
        assert c.status()["jobs"] == before, "no job was sent"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_submit_refuses_a_folder_without_write_permission(daemon, tmp_path):
    files = [save_png(im, tmp_path / f"{n}.png") for n, im in
             (("img", photo(6)), ("labels", label_map(20)), ("t1", label_map(30)))]
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = cli("submit", *files, "--out", str(locked / "o.png"), "--address", daemon.endpoint)
    assert proc.returncode == 2
    one_error_line(proc, "is not writable")


# --- the cache belongs to one daemon --------------------------------------------------------------------


def test_a_second_daemon_on_the_same_cache_is_refused_naming_the_first(daemon, tmp_path):
    proc = cli("serve", "--cache-dir", str(daemon.cache.root), "--bind", "tcp://127.0.0.1:*", "--threads", "1",
               timeout=60)
    assert proc.returncode == 2
    err = one_error_line(proc, "is in use by another daemon")
    assert f"PID {os.getpid()}" in err and daemon.endpoint in err and "--cache-dir" in err
    with Client(daemon.endpoint) as c:
        assert c.ping() > 0  # the first one is undisturbed
    # Once the first one is gone, the lock is free again.
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d:
        assert (tmp_path / "cache" / "daemon.lock").is_file()
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d:
        assert d.endpoint


# --- CURVE -----------------------------------------------------------------------------------------------


def test_without_keys_the_message_says_a_daemon_may_need_them(tmp_path):
    keys = tmp_path / "keys"
    make_keys(keys, ["laptop"])
    with running_daemon(tmp_path / "cache", keys_dir=keys, cpu_threads=1) as d:
        proc = cli("ping", "--address", d.endpoint, "--timeout", "0.5")
        assert proc.returncode == 1
        err = one_error_line(proc, "no engine daemon answered")
        assert "a daemon runs there with --keys and needs this client's CURVE keys" in err
        assert "--client-key DIR/clients/NAME.key_secret --server-key DIR/server.key" in err
        # The paths `keys` prints are the ones that work.
        proc = cli("ping", "--address", d.endpoint, "--client-key", str(keys / "clients" / "laptop.key_secret"),
                   "--server-key", str(keys / "server.key"))
        assert proc.returncode == 0, proc.stderr
    proc = cli("ping", "--address", "tcp://192.0.2.1:5555", "--timeout", "0.3")  # TEST-NET: nobody there
    assert proc.returncode == 1
    one_error_line(proc, "a daemon may run there and need CURVE keys, as every daemon beyond loopback does")


def test_keys_prints_the_paths_where_it_wrote_the_client_key(tmp_path):
    proc = cli("keys", str(tmp_path / "k"), "--client", "laptop")
    assert proc.returncode == 0, proc.stderr
    assert f"--client-key {tmp_path / 'k' / 'clients' / 'laptop.key_secret'}" in proc.stdout
    assert (tmp_path / "k" / "clients" / "laptop.key_secret").is_file()


def test_a_remote_client_sees_no_absolute_path_of_the_daemon(tmp_path):
    keys = tmp_path / "keys"
    make_keys(keys, ["remote"])
    curve = CurveKeys.load(keys / "clients" / "remote.key_secret", keys / "server.key")
    cache = tmp_path / "cache"
    messages: list[str] = []
    with running_daemon(cache, keys_dir=keys, cpu_threads=1) as d, Client(d.endpoint, curve=curve) as c:
        # An internal error whose exception text names a file of the daemon's.
        def broken_store(job_id, meta, images):
            raise FileNotFoundError(2, "No such file or directory", str(cache / "results" / f"{job_id}.tmp"))

        d.cache.store_result = broken_store
        job = c.submit(photo(7), label_map(20), [label_map(30)], {"preset": "tiny"}, method="patch")
        with pytest.raises(JobFailed) as info:
            c.wait(job, timeout=60)
        assert info.value.code == "INTERNAL" and f"{job}.tmp" in info.value.message
        messages.append(info.value.message)
        with pytest.raises(JobFailed) as info:  # the same text again when asked for the result
            c.result(job)
        messages.append(info.value.message)
        # A request refused with a path in it.
        with pytest.raises(JobFailed) as info:
            c.wait(c.submit(photo(7), label_map(20), [label_map(30)], {"vgg_weights": str(tmp_path / "w.pth")}),
                   timeout=30)
        messages.append(info.value.message)
        # Shutdown: the running training is checkpointed, a queued job cancelled before it started.
        running = c.submit(photo(8), label_map(20), [label_map(30)],
                           {"preset": "tiny", "steps": 2000, "checkpoint_every": 1}, method="gan")
        queued = c.submit(photo(9), label_map(20), [label_map(30)], {"preset": "tiny", "steps": 5}, method="gan")
        deadline = time.monotonic() + 60
        while not any(e.kind == "progress" and e.data["stage"] == "train" for e in c.poll(running, timeout=0.5)):
            assert time.monotonic() < deadline
        d.stop_event.set()
        for job in (running, queued):
            with pytest.raises(JobFailed) as info:
                c.wait(job, timeout=60)
            assert info.value.code == "SHUTDOWN"
            messages.append(info.value.message)
    assert "its checkpoint resumes it" in messages[-2]
    for m in messages:
        assert str(tmp_path) not in m and not ABSOLUTE.search(m), m


def test_without_paths_keeps_what_is_not_a_path():
    assert without_paths("cannot rename '/srv/cache/work/ab/model.pt.tmp' -> '/srv/cache/models/ab'") == \
        "cannot rename 'model.pt.tmp' -> 'ab'"
    assert without_paths("in ~/sa/cache and C:\\Users\\me\\x.png") == "in cache and x.png"
    same = "step 5/600, gan/patch, tcp://127.0.0.1:5555, https://example.org/a/b, ipc:///run/x.sock"
    assert without_paths(same) == same


def test_submit_refuses_an_image_over_the_daemons_pixel_limit_before_decoding_it(tmp_path):
    from semantic_analogy.daemon.config import Limits

    files = [save_png(im, tmp_path / f"{n}.png") for n, im in
             (("img", photo(10)), ("labels", label_map(20)), ("t1", label_map(30)))]
    with running_daemon(tmp_path / "cache", limits=Limits(max_pixels=1000), cpu_threads=1) as d:
        proc = cli("submit", *files, "--out", str(tmp_path / "o.png"), "--address", d.endpoint)
        assert proc.returncode == 2
        one_error_line(proc, f"is {W}x{H} ({W * H:,} pixels), more than the daemon's limit of 1,000 pixels")
        with Client(d.endpoint) as c:
            assert sum(c.status()["jobs"].values()) == 0, "no job was sent"
