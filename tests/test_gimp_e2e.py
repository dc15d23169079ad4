"""End to end: the plug-in inside real GIMP 3.0.4 (Debian 13 chroot) against a real daemon.

    sudo plugin_gimp/prepare_gimp_chroot.sh          # once: minutes, cached outside the repository
    .venv/bin/python -m pytest -m gimp tests/test_gimp_e2e.py

The daemon runs as a subprocess of the venv's Python on a free loopback port; GIMP
runs headless in the chroot with a throw-away profile into which install.py puts
the plug-in; plugin_gimp/gimp_e2e_driver.py drives the procedure through the PDB
(once with method patch, which trains nothing), and the test kills the plug-in
during a last, long job the way GIMP does when the user cancels its progress, then
checks that the daemon stops that job by itself.
Without a prepared chroot (or without root) the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugin_gimp"))
import gimp_chroot  # noqa: E402

pytestmark = pytest.mark.gimp

EXAMPLE = REPO / "examples" / "tree"  # 250x250: small enough for a quick tiny-preset run
FOLIAGE = (0, 249, 0)  # tree/label.png's classes: sky (0,253,255), foliage, ground (255,147,0)
SKY = (0, 253, 255)
EDIT = (slice(60, 120), slice(20, 70))  # a block of sky painted as foliage: "grow a tree here"
NO_CLASS = (255, 0, 255)  # magenta: matches no class of the source labels
STEPS = 8
SILENT_S = 3  # cancel_if_silent for this test's jobs (the plug-in's default is 30 s)


# Put on the PYTHONPATH of GIMP's plug-ins: hides pyzmq from the Semantic Analogy plug-in
# while the flag file exists, as on a machine whose GIMP Python lacks it.
HIDE_ZMQ = """
import os, sys

class _HideZmq:
    def find_spec(self, name, path=None, target=None):
        if (name.split(".")[0] == "zmq" and os.path.exists({flag!r})
                and sys.argv and sys.argv[0].endswith("semantic_analogy_gimp.py")):
            raise ModuleNotFoundError("No module named %r (hidden by the test)" % name, name=name)
        return None

sys.meta_path.insert(0, _HideZmq())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gimp_ready():
    reason = gimp_chroot.not_ready_reason()
    if reason:
        pytest.skip(f"GIMP end-to-end test needs the prepared chroot: {reason}")


@pytest.fixture(scope="module")
def daemon(gimp_ready, tmp_path_factory):
    """A real daemon subprocess on a free loopback port; yields (address, log path)."""
    from semantic_analogy.protocol.client import Client
    from semantic_analogy.protocol.errors import DaemonUnavailable

    work = tmp_path_factory.mktemp("daemon")
    address = f"tcp://127.0.0.1:{free_port()}"
    log_path = work / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "semantic_analogy.daemon", "serve", "--bind", address, "--device", "cpu",
             "--cache-dir", str(work / "cache")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90  # importing torch takes a while on a busy 2-core machine
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the daemon exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with Client(address, timeout=2.0) as client:
                    client.connect()
                break
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    pytest.fail(f"the daemon did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
        yield address, log_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def write_inputs(folder: Path) -> dict[str, np.ndarray]:
    """The example as files GIMP loads: photo, labels, an edited target, a bad target, a second target."""
    folder.mkdir()
    labels = np.asarray(Image.open(EXAMPLE / "label.png").convert("RGBA")).copy()
    assert (np.abs(labels[EDIT][..., :3].astype(int) - SKY).sum(-1) < 10).all(), "the edit must start as sky"
    target = labels.copy()
    target[EDIT + (slice(0, 3),)] = FOLIAGE
    bad = labels.copy()
    bad[EDIT + (slice(0, 3),)] = NO_CLASS
    photo = np.asarray(Image.open(EXAMPLE / "img.png").convert("RGBA"))
    gap = target.copy()
    gap[20, 100:160, :3] = NO_CLASS  # an unpainted 1-px stroke, 60 px long, in the sky
    for name, array in (("photo", photo), ("labels", labels), ("target", target), ("bad", bad), ("gap", gap)):
        Image.fromarray(array).save(folder / f"{name}.png")
    Image.open(EXAMPLE / "cond" / "1.png").save(folder / "second.png")
    return {"photo": photo, "labels": labels, "target": target}


def check_layout(result_bytes: bytes, photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """A result follows the target layout: the photo outside the edit (beyond the engine's
    soft seam), something else inside it. Returns the mask of the edit's core."""
    result = np.frombuffer(result_bytes, np.uint8).reshape(height, width, 4)
    edited = np.zeros((height, width), bool)
    edited[EDIT] = True
    mask = Image.fromarray(edited.astype(np.uint8) * 255)
    near = np.asarray(mask.filter(ImageFilter.MaxFilter(33))) > 0  # 16 px around the edit
    core = np.asarray(mask.filter(ImageFilter.MinFilter(9))) > 0  # 4 px inside it
    assert (result[..., 3] == 255).all()
    diff = np.abs(result[..., :3].astype(int) - photo[..., :3].astype(int))
    assert diff[~near].max() <= 1, f"outside the edit the result must be the photo, max diff {diff[~near].max()}"
    assert diff[core].mean() > 10, f"inside the edit the result must differ from the photo, mean {diff[core].mean():.1f}"
    return core


def abandon_running_job(gimp: subprocess.Popen, sandbox, out: Path, address: str) -> dict:
    """Kill the plug-in while its last job trains, as GIMP does when the user cancels the progress.

    Returns what the daemon did: the job must stop by itself once heartbeats stop.
    """
    from semantic_analogy.protocol.client import Client

    plug_in = sandbox.inside(sandbox.profile / "plug-ins" / "semantic_analogy_gimp")
    deadline = time.monotonic() + 180
    with Client(address, timeout=5.0) as client:
        while True:
            if gimp.poll() is not None:
                return {"error": "GIMP ended before the long job started"}
            if time.monotonic() > deadline:
                return {"error": "the long job did not start within 180 s"}
            if (out / "abandon.started").exists():
                status = client.status()
                if status["running_job"]:
                    break
            time.sleep(0.2)
        models = len(client.list_models())  # before the long job can leave a checkpoint
        job, cancelled = status["running_job"], status["jobs"]["cancelled"]
        pids = gimp_chroot.plug_in_pids(plug_in)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < SILENT_S + 60:
            status = client.status()
            if status["running_job"] != job and status["jobs"]["cancelled"] > cancelled:
                return {"models_after_two_runs": models, "killed": pids,
                        "stopped_after_s": time.monotonic() - killed_at}
            time.sleep(0.2)
        return {"models_after_two_runs": models, "killed": pids, "error": "the daemon did not stop the job"}


def test_procedure_in_real_gimp(daemon, tmp_path):
    address, daemon_log = daemon
    with gimp_chroot.GimpSandbox(prefix="sa-gimp-e2e-") as sandbox:
        inputs = write_inputs(sandbox.path / "data")
        out = sandbox.path / "out"
        out.mkdir()
        sandbox.install_plugin()
        data = sandbox.path / "data"
        config = {
            "photo": sandbox.inside(data / "photo.png"),
            "labels": sandbox.inside(data / "labels.png"),
            "target": sandbox.inside(data / "target.png"),
            "bad_target": sandbox.inside(data / "bad.png"),
            "second_target": sandbox.inside(data / "second.png"),
            "gap_target": sandbox.inside(data / "gap.png"),
            "out_dir": sandbox.inside(out),
            "report": sandbox.inside(out / "report.json"),
            "steps": STEPS,
            "address": address,
            "dead_address": f"tcp://127.0.0.1:{free_port()}",  # nothing listens there
            "precision": "float-linear",
            "abandon_steps": 100_000,
            "engine": True,
        }
        hide = sandbox.path / "hide"
        hide.mkdir()
        flag = hide / "zmq-hidden"
        flag.touch()
        (hide / "sitecustomize.py").write_text(HIDE_ZMQ.format(flag=sandbox.inside(flag)))
        config["hide_flag"] = sandbox.inside(flag)
        (sandbox.path / "config.json").write_text(json.dumps(config))
        code = f"CONFIG_PATH = {sandbox.inside(sandbox.path / 'config.json')!r}\n"
        code += (REPO / "plugin_gimp" / "gimp_e2e_driver.py").read_text()
        env = {"SEMANTIC_ANALOGY_CANCEL_IF_SILENT": str(SILENT_S), "PYTHONPATH": sandbox.inside(hide),
               "SEMANTIC_ANALOGY_GIMP_HOME": sandbox.inside(sandbox.path / "gimpdata")}
        gimp = sandbox.start_batch(code, env=env)
        try:
            abandoned = abandon_running_job(gimp, sandbox, out, address)
            done = sandbox.finish(gimp, timeout=120)
        finally:
            gimp_chroot.kill_group(gimp)
        context = f"GIMP exit {done.returncode}; stderr:\n{done.stderr[-4000:]}\ndaemon log:\n{daemon_log.read_text()[-2000:]}"
        assert (out / "report.json").exists(), context
        report = json.loads((out / "report.json").read_text())
        assert report["error"] is None, report["error"] + context
        runs = report["runs"]
        results = {name: (out / f"{name}.rgba").read_bytes() for name in runs if (out / f"{name}.rgba").exists()}

    width, height = report["image_size"]
    assert report["precision"] == "float-linear" and report["labels_offsets"] == [-10, -7]

    # 0. Without pyzmq the plug-in still registers, and says what is missing and how to get it.
    assert "not ready" in report["blurb_without_deps"] and "needs pyzmq" in report["blurb_without_deps"]
    missing = runs["missing_deps"]
    assert missing["status"] == "execution-error", missing
    assert "needs pyzmq in GIMP's Python" in missing["message"]
    assert "apt install python3-zmq python3-msgpack" in missing["message"], missing["message"]

    # 1. Label layers found by name inside a group; a new layer of the image's size appears.
    first = runs["analogy"]
    assert first["status"] == "success", f"{first}\n{context}"
    assert first["layer"]["name"] == "target labels → analogy"  # named as in Krita (plugin_core/naming.py)
    assert (first["layer"]["width"], first["layer"]["height"], first["layer"]["offsets"]) == (width, height, [0, 0])
    names = [layer["name"] for layer in report["layers"]]
    # Results go on top of the stack, a later one above an earlier one (the patch run's in
    # between, named " (2)" by the shared rule since the name is taken, as Krita does).
    assert names[:3] == ["moved → analogy", "target labels → analogy (2)", "target labels → analogy"], names

    # ... whose pixels follow the target layout.
    check_layout(results["analogy"], inputs["photo"], width, height)

    # 2. A target colour that matches no class: EXECUTION_ERROR with the engine's message.
    bad = runs["bad_target"]
    assert bad["status"] == "execution-error", bad
    assert bad["message"].startswith("The engine could not make the analogy:") and "[BAD_LABELS]" in bad["message"]

    # 3. No daemon at the address: EXECUTION_ERROR that says how to start one.
    dead = runs["no_daemon"]
    assert dead["status"] == "execution-error", dead
    assert dead["message"].startswith("No answer from the Semantic Analogy engine"), dead["message"]
    assert "“.venv/bin/semantic-analogy serve --bind " in dead["message"], dead["message"]
    assert "Run Filters › Semantic Analogy Engine... with Install" in dead["message"], dead["message"]

    # 3b. The local engine's procedure: nothing installed in the clean data folder, and
    # Install, with no Python that can make an environment in this Debian, says what to add.
    status = runs["engine_status"]
    assert status == {"status": "success", "message": "No local engine installed; not running"}, status
    install = runs["engine_install"]
    assert install["status"] == "execution-error", install
    assert install["message"].startswith("The local engine needs Python 3.10 to 3.13 with its venv module"), install
    assert "has no venv module" in install["message"] and "apt install python3-venv" in install["message"], install

    # 4. Method patch: no training, no model; a new layer of the image's size that follows
    # the target layout, the edit filled with the photo's own foliage.
    patch = runs["patch"]
    assert patch["status"] == "success", f"{patch}\n{context}"
    assert patch["layer"]["name"] == "target labels → analogy (2)"
    assert (patch["layer"]["width"], patch["layer"]["height"], patch["layer"]["offsets"]) == (width, height, [0, 0])
    core = check_layout(results["patch"], inputs["photo"], width, height)
    result = np.frombuffer(results["patch"], np.uint8).reshape(height, width, 4)[..., :3].astype(float)
    photo, labels = inputs["photo"][..., :3].astype(float), inputs["labels"][..., :3].astype(int)
    foliage = photo[np.abs(labels - FOLIAGE).sum(-1) < 10].mean(0)
    sky = photo[np.abs(labels - SKY).sum(-1) < 10].mean(0)
    inside = result[core].mean(0)
    assert np.linalg.norm(inside - foliage) < np.linalg.norm(inside - sky), (inside, foliage, sky)
    # The plug-in's method reached the daemon: it made this result without a model, the first with one.
    log = daemon_log.read_text()
    assert log.count("(method patch, no model)") == 2, log[-3000:]  # this run and the gap run (5b)
    assert "(method gan+patch, " in log, log[-3000:]

    # 5. The visible image as source and another target: a second layer, same trained model.
    second = runs["visible_second"]
    assert second["status"] == "success", f"{second}\n{context}"
    assert second["layer"]["name"] == "moved → analogy"
    assert (second["layer"]["width"], second["layer"]["height"]) == (width, height)
    # (the patch run in between trained and cached nothing)
    assert abandoned.get("models_after_two_runs") == 1, f"the second run should reuse the first run's model: {abandoned}"

    # 5b. A target with a thin unpainted stroke: the engine fills it, and its one warning
    # line reaches GIMP (printed once by the plug-in, and in GIMP's message at the end).
    gap = runs["gap"]
    assert gap["status"] == "success", f"{gap}\n{context}"
    stderr = done.stderr
    assert stderr.count("Engine warning: target label map: ") == 1, stderr[-3000:]
    assert "px match no class (#ff00ff" in stderr, stderr[-3000:]
    assert "the engine warned" in stderr, stderr[-3000:]

    # 6. GIMP killed the plug-in during a long job (a cancelled progress bar): the daemon
    # cancelled the job itself once the heartbeats stopped.
    assert "error" not in abandoned and abandoned["killed"], f"{abandoned}\n{context}"
    assert abandoned["stopped_after_s"] < SILENT_S + 30, abandoned
    assert runs["abandoned"]["status"] != "success", runs["abandoned"]

    # The source layers are untouched.
    assert report["unchanged"] == {"photo": True, "labels": True, "target labels": True, "odd colours": True}
