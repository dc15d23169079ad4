"""`serve --backend ray` against a real Ray cluster on this machine: a head node that runs
no jobs and two worker nodes of one CPU each (ray.cluster_utils.Cluster, loopback only),
and the daemon as a `python -m semantic_analogy.daemon serve` process in front of it.

The test process is a Ray driver too: it reads the nodes, pins a blocker task to a node,
and kills a node. The node-kill test runs last in the module (it replaces the node it
killed, but that costs a node start)."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from daemon_fixtures import label_map, photo, progress_until
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.errors import JobFailed

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[cluster]'); the Ray backend tests need it")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = {"preset": "tiny", "steps": 3}


def long_training(seed: int, steps: int = 400) -> dict:
    return {"preset": "tiny", "steps": steps, "seed": seed, "checkpoint_every": 1}


class Studio:
    """The cluster, the daemon in front of it, and what the tests need to look at both."""

    def __init__(self, root: Path) -> None:
        from ray.cluster_utils import Cluster

        self.root = root
        self.cluster = Cluster(initialize_head=True, connect=True, head_node_args={
            "num_cpus": 0,  # the daemon's node: it places the job hub, runs no jobs
            "include_dashboard": False,
            # Notice a lost node in about a second, not the default fifteen.
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 2,
                               "health_check_initial_delay_ms": 0},
        })
        self.workers = [self.cluster.add_node(num_cpus=1) for _ in range(2)]
        self.cluster.wait_for_nodes()
        self.cache = root / "cache"
        self.log = root / "daemon.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--backend", "ray",
             "--ray-address", self.cluster.address, "--bind", "tcp://127.0.0.1:0", "--cache-dir", str(self.cache),
             "--preview-interval", "0.5"],
            stdout=subprocess.PIPE, stderr=open(self.log, "a"), text=True, env=ENV,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        assert "listening on" in line, f"daemon did not start: {line!r}\n{self.log.read_text()}"
        self.address = line.rsplit(" ", 1)[-1].strip()

    def client(self) -> Client:
        return Client(self.address, timeout=10)

    def log_text(self) -> str:
        return self.log.read_text()

    def count(self, pattern: str, at_least: int = 1, timeout: float = 10) -> int:
        """How often the daemon logged ``pattern``, waiting a little for it (its log line may
        follow the event that a client already has)."""
        deadline = time.monotonic() + timeout
        while True:
            n = len(re.findall(pattern, self.log_text()))
            if n >= at_least or time.monotonic() > deadline:
                return n
            time.sleep(0.1)

    def nodes_of(self, job: str) -> list[str]:
        """The nodes the job ran on, in order, from the daemon's log."""
        return re.findall(rf"job {job[:8]} runs (?:again )?on node (\w+)", self.log_text())

    def worker(self, node_prefix: str):
        return next(n for n in self.workers if n.node_id.startswith(node_prefix))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        ray.shutdown()
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = Studio(tmp_path_factory.mktemp("studio"))
    yield s
    s.close()


def target(i: int):
    return label_map(20 + i, box=(2 + i, 2, 6))


def test_jobs_from_several_clients_spread_over_both_nodes_each_done_once(studio):
    from semantic_analogy.engine.api import make_analogy
    from semantic_analogy.engine.presets import TrainSettings

    done: dict[str, tuple] = {}
    errors: list[BaseException] = []

    def painter(n: int) -> None:
        try:
            with studio.client() as c:  # a connection of its own: another client
                mine = {}
                for method, settings in (("gan", {**TINY, "seed": n}), ("patch", {})):
                    inputs = (photo(10 + n), label_map(24), [target(n)])
                    mine[c.submit(*inputs, settings, method=method)] = (method, inputs)
                for job, what in mine.items():
                    images = c.wait(job, timeout=300)
                    assert c.result(job) == images, "the stored result is the one sent"
                    done[job] = (*what, images)
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=painter, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(400)
    assert not errors, errors
    assert len(done) == 6
    for job, (method, (image, labels, targets), images) in done.items():
        got = np.frombuffer(images[0].data, np.uint8).reshape(image.height, image.width, 4)
        assert got[..., 3].min() == 255
        if method == "patch":  # no training: exactly what the engine makes in this process
            arr = [np.frombuffer(x.data, np.uint8).reshape(x.height, x.width, 4) for x in (image, labels, *targets)]
            want = make_analogy(arr[0], arr[1], arr[2:], TrainSettings(), "patch").results[0]
            np.testing.assert_array_equal(got[..., :3], want)
    ran = {job: studio.nodes_of(job) for job in done}
    assert all(len(nodes) == 1 for nodes in ran.values()), f"each job ran exactly once: {ran}"
    assert len({nodes[0] for nodes in ran.values()}) == 2, f"the jobs used both worker nodes: {ran}"
    for job in done:
        assert studio.count(rf"job {job[:8]} done in") == 1


def test_cancel_reaches_a_job_on_a_remote_worker_within_about_a_second(studio):
    with studio.client() as c:
        job = c.submit(photo(40), label_map(20), [target(1)], long_training(40, steps=5000), method="gan")
        progress_until(c, job, 3)
        st = c.status()
        assert st["backend"] == "ray"
        mine = [r for r in st["running_jobs"] if r["job_id"] == job]
        assert mine and mine[0]["node"] and mine[0]["progress"]["stage"] == "train", st["running_jobs"]
        t0 = time.monotonic()
        c.cancel(job)
        with pytest.raises(JobFailed) as info:
            c.wait(job, timeout=30)
        took = time.monotonic() - t0
    assert info.value.code == "CANCELLED"
    assert took < 2.5, f"the cancel took {took:.2f} s to stop the remote training"


def test_a_model_trained_on_one_node_is_a_cache_hit_on_the_other(studio):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def blocker(path: str) -> None:
        while not os.path.exists(path):
            time.sleep(0.05)

    with studio.client() as c:
        inputs = (photo(50), label_map(22), [target(2)])
        trained = []
        first_result = c.wait(c.submit(*inputs, {**TINY, "seed": 50}, method="gan"), on_event=trained.append,
                              timeout=300)
        first = trained[-1].job_id
        trained_on = studio.nodes_of(first)[0]
        # Keep the training's node busy, so that the next job can only go to the other one.
        release = studio.root / "release"
        node = studio.worker(trained_on).node_id
        held = blocker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(str(release))
        time.sleep(1.0)  # placed and running
        try:
            events = []
            second = c.submit(*inputs, {**TINY, "seed": 50}, method="gan")
            result = c.wait(second, on_event=events.append, timeout=120)
        finally:
            release.touch()
            ray.get(held, timeout=30)
    assert any(e.kind == "preview" and e.data.get("instant") and e.data["kind"] == "patch" for e in trained), \
        "the training sent its instant patch preview, relayed from the worker"
    assert any(e.kind == "progress" and e.data["stage"] == "train" for e in trained)
    assert trained[-1].data["cached"] is False and events[-1].data["cached"] is True
    assert events[-1].data["model_key"] == trained[-1].data["model_key"]
    assert studio.nodes_of(second)[0] != trained_on, "served on the other node"
    assert result == first_result, "the same model gives the same result"


def test_two_painters_asking_for_the_same_model_get_one_training(studio):
    inputs = (photo(90), label_map(21), [target(7)])
    with studio.client() as a, studio.client() as b:
        jobs = [a.submit(*inputs, {**TINY, "seed": 90}, method="gan"),
                b.submit(*inputs, {**TINY, "seed": 90}, method="gan")]
        ends = []
        for c, job in zip((a, b), jobs):
            events = []
            c.wait(job, on_event=events.append, timeout=300)
            ends.append(events[-1].data)
    assert sorted(e["cached"] for e in ends) == [False, True], "one trained, the other waited for its model"
    assert ends[0]["model_key"] == ends[1]["model_key"]


def test_a_silent_client_s_job_on_a_remote_worker_is_cancelled(studio):
    c = studio.client()
    job = c.submit(photo(95), label_map(20), [target(8)], long_training(95, steps=5000), method="gan",
                   cancel_if_silent=1.0)
    progress_until(c, job, 2)
    c.close()  # the plug-in was killed: no more heartbeats
    time.sleep(2.5)  # a watcher's heartbeats would count as the client's: only look once it is over
    with studio.client() as watcher:
        with pytest.raises(JobFailed) as info:
            watcher.wait(job, timeout=60)
    assert info.value.code == "CLIENT_SILENT"


def test_quick_jobs_go_first_and_a_newer_job_for_the_same_photo_supersedes_the_queued_one(studio):
    with studio.client() as a, studio.client() as b:
        # Both slots busy with long trainings.
        busy = [a.submit(photo(60 + i), label_map(20), [target(i)], long_training(60 + i), method="gan") for i in range(2)]
        for job in busy:
            progress_until(a, job, 1)
        training = b.submit(photo(70), label_map(20), [target(3)], {**TINY, "seed": 70}, method="gan")
        older = b.submit(photo(71), label_map(20), [target(4)], {}, method="patch")
        newer = b.submit(photo(71), label_map(20), [target(5)], {}, method="patch")  # same photo: replaces it
        with pytest.raises(JobFailed) as info:
            b.wait(older, timeout=30)
        assert info.value.code == "SUPERSEDED"
        a.cancel(busy[0])  # one slot frees: the patch job takes it, not the training queued before it
        b.wait(newer, timeout=120)
        a.cancel(busy[1])
        b.wait(training, timeout=300)
        for job in busy:
            with pytest.raises(JobFailed):
                a.wait(job, timeout=30)
    log = studio.log_text()
    assert log.index(f"job {newer[:8]} handed") < log.index(f"job {training[:8]} handed")
    assert f"job {older[:8]} handed" not in log, "the superseded job never ran"


def test_where_the_cluster_has_gpus_each_job_takes_one(studio):
    # A node that declares a GPU (Ray's resource; this machine has none, so the engine on it
    # falls back to the CPU): once the daemon sees it, every job asks for one GPU, so jobs
    # run on that node only, one at a time, and CPU-only nodes take none.
    cpu_slots = r"now has 2 job slot\(s\): 2 CPUs"
    before = studio.count(cpu_slots, at_least=0, timeout=0)
    gpu_node = studio.cluster.add_node(num_cpus=2, num_gpus=1)
    studio.cluster.wait_for_nodes()
    try:
        assert studio.count(r"now has 1 job slot\(s\): one per GPU \(1 GPUs\)", timeout=10) == 1
        with studio.client() as c:
            jobs = [c.submit(photo(120 + i), label_map(20), [target(i)], {}, method="patch") for i in range(3)]
            for job in jobs:
                assert len(c.wait(job, timeout=120)) == 1
        ran = [studio.nodes_of(job) for job in jobs]
        assert all(len(n) == 1 and gpu_node.node_id.startswith(n[0]) for n in ran), f"on the GPU node only: {ran}"
    finally:
        studio.cluster.remove_node(gpu_node)
    assert studio.count(cpu_slots, at_least=before + 1) > before  # back to CPU slots for the test after this one


def test_a_job_whose_node_dies_resumes_on_the_other_node_from_its_checkpoint(studio):
    with studio.client() as c:
        job = c.submit(photo(80), label_map(20), [target(6)], long_training(80, steps=40), method="gan")
        reached = progress_until(c, job, 8).data["step"]
        node = studio.nodes_of(job)[0]
        victim = studio.worker(node)
        studio.cluster.remove_node(victim, allow_graceful=False)
        studio.workers.remove(victim)
        after: list = []
        result = c.wait(job, on_event=after.append, timeout=300)
    nodes = studio.nodes_of(job)
    assert len(nodes) == 2 and nodes[1] != node, f"ran again on the other node: {nodes}"
    steps = [e.data["step"] for e in after if e.kind == "progress" and e.data["stage"] == "train"]
    # A fresh start would report step 1 first (the first progress event is never throttled).
    assert steps and min(steps) > 3, f"resumed from its checkpoint (step {reached} was reached): {steps}"
    worker_logs = Path(studio.cluster.head_node.get_session_dir_path()).glob("logs/worker-*.err")
    assert any("resuming training at step" in p.read_text(errors="replace") for p in worker_logs)
    assert after[-1].kind == "result" and len(result) == 1
    assert studio.count(rf"job {job[:8]} done in") == 1, "finished once"
    studio.workers.append(studio.cluster.add_node(num_cpus=1))  # for any test after this one


def test_serve_with_no_cluster_at_the_address_fails_and_says_what_to_do(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run(
        [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--backend", "ray", "--ray-address",
         f"127.0.0.1:{port}", "--bind", "tcp://127.0.0.1:0", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, env=ENV,
    )
    assert run.returncode == 2
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in run.stderr and "ray start --head" in run.stderr
    assert "listening" not in run.stdout


def test_sigterm_stops_the_remote_jobs_with_a_checkpoint_and_the_daemon_exits(studio):
    """Last in the module: it stops the studio's daemon."""
    with studio.client() as c:
        job = c.submit(photo(99), label_map(20), [target(9)], long_training(99, steps=5000), method="gan")
        progress_until(c, job, 3)
        studio.proc.terminate()
        with pytest.raises(JobFailed) as info:
            c.wait(job, timeout=60)
    assert info.value.code == "SHUTDOWN"
    assert studio.proc.wait(60) == 0
    assert list(studio.cache.glob("work/*/checkpoint.pt")), "the training left its checkpoint in the shared cache"
    assert studio.count(r"INFO \S+: stopped") == 1
