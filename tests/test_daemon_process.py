"""The daemon as a process: signals, kill -9, killed and hung peers, CURVE, the command line.

Daemons under test run as `python -m semantic_analogy.daemon serve` subprocesses (or in
a thread where no signal is involved), with the real engine and real sockets.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image

from semantic_analogy.daemon.__main__ import main
from daemon_fixtures import H, W, label_map, photo, progress_until, running_daemon
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.errors import DaemonUnavailable, JobFailed
from semantic_analogy.protocol.images import RGBAImage
from semantic_analogy.protocol.security import CurveKeys
from semantic_analogy.protocol.version import PROTOCOL_VERSION

TINY = {"preset": "tiny", "steps": 3}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def resumable(seed: int) -> dict:
    # Checkpoint every step so that an interruption at any point can be resumed.
    return {"preset": "tiny", "steps": 12, "seed": seed, "checkpoint_every": 1}


class DaemonProcess:
    def __init__(self, cache: Path, address: str, log: Path, *extra: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--bind", address, "--cache-dir", str(cache),
             "--threads", "1", *extra],
            stdout=subprocess.PIPE, stderr=open(log, "a"), text=True, env=ENV,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        assert "listening on" in line, f"daemon did not start: {line!r}\n{log.read_text()}"
        self.address = line.rsplit(" ", 1)[-1].strip()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def processes():
    started: list[DaemonProcess] = []
    yield started
    for p in started:  # never leave a daemon behind, whatever failed
        p.kill()


def first_train_step(events) -> int:
    return next(e.data["step"] for e in events if e.kind == "progress" and e.data["stage"] == "train")


def leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.endswith(".tmp")] + list((cache / "tmp").iterdir())


# --- signals and kill -9 ---------------------------------------------------------------------------


def test_sigterm_checkpoints_and_the_next_daemon_resumes(tmp_path, processes):
    cache, log = tmp_path / "cache", tmp_path / "daemon.log"
    address = f"ipc://{tmp_path}/d.sock"
    a = DaemonProcess(cache, address, log)
    processes.append(a)
    with Client(a.address) as c:
        quick = c.submit(photo(), label_map(20), [label_map(30)], TINY)
        first_result = c.wait(quick, timeout=120)
        job = c.submit(photo(1), label_map(20), [label_map(30)], resumable(7))
        progress_until(c, job, 3)
        a.signal(signal.SIGTERM)
        with pytest.raises(JobFailed, match="submit it again") as info:
            c.wait(job, timeout=60)
        assert info.value.code == "SHUTDOWN"
    assert a.wait() == 0
    text = log.read_text()
    assert "SIGTERM received" in text and "stopped" in text
    assert list(cache.glob("work/*/checkpoint.pt")) and leftovers(cache) == []

    b = DaemonProcess(cache, address, log)
    processes.append(b)
    with Client(b.address) as c:
        assert c.result(quick) == first_result, "results outlive the daemon"
        events = []
        c.wait(c.submit(photo(1), label_map(20), [label_map(30)], resumable(7)), on_event=events.append, timeout=120)
        assert events[-1].kind == "result"
        assert first_train_step(events) > 3, "training resumed from the checkpoint"
    assert "resuming training at step" in log.read_text()
    b.signal(signal.SIGINT)
    assert b.wait() == 0


def test_kill_9_leaves_a_cache_the_next_daemon_starts_from(tmp_path, processes):
    cache, log = tmp_path / "cache", tmp_path / "daemon.log"
    address = f"ipc://{tmp_path}/d.sock"
    a = DaemonProcess(cache, address, log)
    processes.append(a)
    with Client(a.address, silence_timeout=2.0) as c:
        job = c.submit(photo(2), label_map(20), [label_map(30)], resumable(8))
        progress_until(c, job, 3)
        a.signal(signal.SIGSTOP)  # hung: no answer at all
        t0 = time.monotonic()
        with pytest.raises(DaemonUnavailable, match="stopped answering"):
            c.wait(job, timeout=60)
        assert time.monotonic() - t0 < 10
        a.signal(signal.SIGKILL)
        a.wait()
    # What a kill during a write can leave: scratch files and a half-written checkpoint copy.
    (cache / "tmp" / f"result-{uuid.uuid4().hex}").mkdir()
    [ckpt] = cache.glob("work/*/checkpoint.pt")
    ckpt.with_name("checkpoint.pt.tmp").write_bytes(b"half a checkpoint")

    b = DaemonProcess(cache, address, log)
    processes.append(b)
    assert leftovers(cache) == []
    assert "left over by an interrupted daemon" in log.read_text()
    with Client(b.address) as c:
        assert c.status()["queue_length"] == 0
        with pytest.raises(JobFailed) as info:  # the killed daemon's job is gone ...
            c.wait(job, timeout=30)
        assert info.value.code == "UNKNOWN_JOB"
        events = []  # ... but submitting it again resumes its training
        images = c.wait(c.submit(photo(2), label_map(20), [label_map(30)], resumable(8)), on_event=events.append,
                        timeout=120)
        assert len(images) == 1 and first_train_step(events) > 3
    b.signal(signal.SIGTERM)
    assert b.wait() == 0


# --- killed clients ------------------------------------------------------------------------------------

CLIENT_SCRIPT = """
import sys, numpy as np
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.images import RGBAImage
a = np.random.default_rng(3).integers(0, 256, (40, 48, 4), dtype=np.uint8); a[..., 3] = 255
l = np.zeros((40, 48, 4), np.uint8); l[..., 3] = 255; l[:, :20, 0] = 255; l[:, 20:, 2] = 255
t = l.copy(); t[:, 20:30] = (255, 0, 0, 255)
c = Client(sys.argv[1])
silent = float(sys.argv[3]) if sys.argv[3] != "none" else None
job = c.submit(RGBAImage(48, 40, a.tobytes()), RGBAImage(48, 40, l.tobytes()), [RGBAImage(48, 40, t.tobytes())],
               {"preset": "tiny", "steps": int(sys.argv[2]), "seed": int(sys.argv[4])}, cancel_if_silent=silent)
print(job, flush=True)
c.wait(job)
"""


def run_client_and_kill_it(address: str, steps: int, silent: str, seed: int) -> str:
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, address, str(steps), silent, str(seed)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        job = proc.stdout.readline().strip() if ready else ""
        assert len(job) == 32, job
        with Client(address) as watcher:
            progress_until(watcher, job, 1)
        proc.kill()  # SIGKILL mid-job: no goodbye, no cancel
        proc.wait(10)
        return job
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_killed_client_does_not_disturb_the_daemon(tmp_path):
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d:
        silent_job = run_client_and_kill_it(d.endpoint, 400, "1.0", 11)
        kept_job = run_client_and_kill_it(d.endpoint, 6, "none", 12)
        with Client(d.endpoint) as c:
            # With cancel_if_silent the daemon notices the silence and stops the job ...
            with pytest.raises(JobFailed) as info:
                c.wait(silent_job, timeout=60)
            assert info.value.code == "CLIENT_SILENT"
            # ... without it, the job belongs to the daemon and finishes for whoever asks.
            assert len(c.wait(kept_job, timeout=120)) == 1
            assert len(c.result(kept_job)) == 1
            assert len(c.wait(c.submit(photo(), label_map(20), [label_map(30)], TINY), timeout=120)) == 1
            assert c.status()["running_job"] is None


# --- CURVE ---------------------------------------------------------------------------------------------------


def test_curve_lets_listed_clients_in_and_no_one_else(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "--client", "krita"]) == 0
    assert "--keys" in capsys.readouterr().out
    assert main(["keys", str(tmp_path / "other"), "--client", "stranger"]) == 0
    good = CurveKeys.load(keys / "clients" / "krita.key_secret", keys / "server.key")
    stranger = CurveKeys.load(tmp_path / "other" / "clients" / "stranger.key_secret", keys / "server.key")
    # With keys the daemon may listen on every interface; CURVE guards it.
    with running_daemon(tmp_path / "cache", bind="tcp://0.0.0.0:*", keys_dir=keys, cpu_threads=1) as d:
        port = d.endpoint.rsplit(":", 1)[1]
        address = f"tcp://127.0.0.1:{port}"
        with Client(address, curve=good) as c:
            assert c.connect()["protocol_version"] == PROTOCOL_VERSION
            assert len(c.wait(c.submit(photo(), label_map(20), [label_map(30)], TINY), timeout=120)) == 1
        for curve in (None, stranger):
            with Client(address, timeout=1.0, curve=curve) as c, pytest.raises(DaemonUnavailable):
                c.ping()


def test_serve_refuses_a_public_address_without_keys(tmp_path, capsys):
    assert main(["serve", "--bind", "tcp://0.0.0.0:5599", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on tcp://0.0.0.0:5599 without encryption" in err and "--keys" in err


def test_serve_says_when_the_address_is_taken(tmp_path, capsys):
    with running_daemon(tmp_path / "a", cpu_threads=1) as d:
        assert main(["serve", "--bind", d.endpoint, "--cache-dir", str(tmp_path / "b")]) == 2
    assert "another daemon already running" in capsys.readouterr().err


# --- the command line --------------------------------------------------------------------------------------


def save_png(img: RGBAImage, path: Path) -> str:
    Image.frombytes("RGBA", img.size, img.data).save(path)
    return str(path)


def test_cli_ping_status_submit_models(tmp_path, capsys):
    with running_daemon(tmp_path / "cache", cpu_threads=1) as d:
        addr = ["--address", d.endpoint]
        assert main(["ping", *addr, "--count", "3"]) == 0
        assert "pong from" in capsys.readouterr().out
        image = save_png(photo(), tmp_path / "img.png")
        labels = save_png(label_map(20), tmp_path / "labels.png")
        t1, t2 = save_png(label_map(30), tmp_path / "t1.png"), save_png(label_map(10), tmp_path / "t2.png")
        out = tmp_path / "out.png"
        assert main(["submit", image, labels, t1, "--out", str(out), "--method", "gan+patch", "--preset", "tiny", "--steps", "3", *addr]) == 0
        captured = capsys.readouterr()
        assert captured.out.strip() == str(out) and "job " in captured.err
        with Image.open(out) as im:
            assert im.size == (W, H) and im.mode == "RGB"
        outdir = tmp_path / "many"
        assert main(["submit", image, labels, t1, t2, "--out", str(outdir), "--method", "gan+patch", "--preset", "tiny", "--steps", "3",
                     "--quiet", *addr]) == 0
        assert sorted(p.name for p in outdir.iterdir()) == ["t1.png", "t2.png"]
        capsys.readouterr()
        assert main(["status", *addr, "--json"]) == 0
        st = json.loads(capsys.readouterr().out)
        assert st["jobs"]["done"] == 2 and st["models_cached"] == 1
        assert main(["status", *addr]) == 0
        assert "2 done, 0 failed" in capsys.readouterr().out
        assert main(["models", "list", *addr, "--json"]) == 0
        [model] = json.loads(capsys.readouterr().out)
        assert main(["models", "list", *addr]) == 0
        assert model["key"] in capsys.readouterr().out
        assert main(["models", "delete", model["key"][:8], *addr]) == 0
        assert main(["models", "delete", model["key"], *addr]) == 1
        assert "UNKNOWN_MODEL" in capsys.readouterr().err
        bad = save_png(RGBAImage.filled(10, 10, (255, 0, 0, 255)), tmp_path / "small.png")
        assert main(["submit", image, bad, t1, "--out", str(out), "--quiet", *addr]) == 1
        assert "SIZE_MISMATCH" in capsys.readouterr().err
    assert main(["ping", "--address", d.endpoint, "--timeout", "0.3"]) == 1
    assert "no engine daemon answered" in capsys.readouterr().err
    assert main(["submit", str(tmp_path / "nope.png"), labels, t1, "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_backend_ray_without_ray_installed_says_how_to_install_it(tmp_path):
    # As on a machine without Ray: its import fails.
    code = ("import sys; sys.modules['ray'] = None; from semantic_analogy.cli import main; "
            f"sys.exit(main(['serve', '--backend', 'ray', '--cache-dir', {str(tmp_path / 'cache')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert run.returncode == 2, run.stderr
    assert "pip install 'semantic-analogy[cluster]'" in run.stderr and "every node" in run.stderr
