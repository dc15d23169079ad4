"""Load: 8 concurrent clients, several tiny jobs each, one daemon.

Every job must complete exactly once, each client must see events of its own jobs only,
and every result must be exactly the image its own target gives (no result lost or
crossed between clients). Throughput is measured by scripts/benchmark_daemon.py.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

import numpy as np

from daemon_fixtures import running_daemon
from semantic_analogy.protocol.client import Client
from semantic_analogy.protocol.images import RGBAImage

N_CLIENTS, JOBS_EACH = 8, 3
W, H = 48, 40
SETTINGS = {"preset": "tiny", "steps": 2}


def scene(source: int) -> tuple[RGBAImage, RGBAImage]:
    a = np.random.default_rng(source).integers(0, 256, (H, W, 4), dtype=np.uint8)
    a[..., 3] = 255
    labels = np.zeros((H, W, 4), np.uint8)
    labels[..., 3] = 255
    labels[:, :20, 0] = 255
    labels[:, 20:, 2] = 255
    return RGBAImage(W, H, a.tobytes()), RGBAImage(W, H, labels.tobytes())


def target(client: int, job: int) -> np.ndarray:
    """A target unique to (client, job): a red square moved across the blue class."""
    t = np.zeros((H, W, 4), np.uint8)
    t[..., 3] = 255
    t[:, :20, 0] = 255
    t[:, 20:, 2] = 255
    x, y = 22 + 3 * client, 4 + 10 * job
    t[y:y + 8, x:x + 6] = (255, 0, 0, 255)
    return t


class RecordingClient(Client):
    """A Client that also notes the job of every event reaching its socket."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.seen_jobs: set[str] = set()

    def _dispatch(self, msg) -> None:
        if msg.type == "event":
            self.seen_jobs.add(msg.content["job_id"])
        super()._dispatch(msg)


def test_eight_clients_get_their_own_results_exactly_once(tmp_path):
    from semantic_analogy.engine.api import load_model

    results: dict[str, dict] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    with running_daemon(tmp_path / "cache", cpu_threads=1) as d:

        def run_client(i: int) -> None:
            try:
                image, labels = scene(i % 2)  # two sources: two models, the rest are cache hits
                with RecordingClient(d.endpoint, timeout=10) as c:
                    mine = {}
                    for j in range(JOBS_EACH):
                        t = target(i, j)
                        name = f"client{i}-job{j}"
                        job = c.submit(image, labels, [RGBAImage(W, H, t.tobytes())], SETTINGS, target_names=[name])
                        mine[job] = (name, t, i % 2)
                    for job, (name, t, source) in mine.items():
                        terminal = Counter()
                        images = c.wait(job, on_event=lambda ev: terminal.update([ev.kind] if ev.terminal else []),
                                        timeout=300)
                        with lock:
                            results[job] = {"client": i, "name": name, "target": t, "source": source,
                                            "images": images, "terminal": terminal,
                                            "result": c.result(job)}
                    with lock:
                        results.setdefault("_seen", {})[i] = (c.seen_jobs, set(mine))
            except BaseException as e:  # reported by the main thread
                with lock:
                    errors.append(e)

        threads = [threading.Thread(target=run_client, args=(i,)) for i in range(N_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not errors, errors
        seen = results.pop("_seen")
        status = Client(d.endpoint).status()
        models = {m["key"] for m in Client(d.endpoint).list_models()}

    assert len(results) == N_CLIENTS * JOBS_EACH
    assert status["jobs"]["done"] == N_CLIENTS * JOBS_EACH and status["jobs"]["failed"] == 0
    for i, (seen_jobs, own) in seen.items():
        assert seen_jobs == own, f"client {i} received events of other clients' jobs"
    assert len(models) == 2
    # Recompute every result from the cached models: each must be its own target's image.
    loaded = {key: load_model(tmp_path / "cache" / "models" / key, device="cpu") for key in models}
    by_source = defaultdict(set)
    for r in results.values():
        assert r["terminal"] == Counter({"result": 1}), "exactly one terminal event per job"
        [image] = r["images"]
        assert r["result"] == r["images"], "the stored result is the one that was sent"
        expected = [m.apply(r["target"]) for m in loaded.values()]
        rgb = np.frombuffer(image.data, np.uint8).reshape(H, W, 4)[..., :3]
        matches = [k for k, e in zip(loaded, expected) if np.array_equal(e, rgb)]
        assert len(matches) == 1, f"{r['name']}: result does not match its own target"
        by_source[r["source"]].add(matches[0])
    assert all(len(keys) == 1 for keys in by_source.values()) and len(set.union(*by_source.values())) == 2
    distinct = {r["images"][0].data for r in results.values()}
    assert len(distinct) == N_CLIENTS * JOBS_EACH, "every target gives a different image"
