"""The daemon's commands: serve, submit, ping, status, keys, models.

The main command line registers them with ``add_commands``; each handler returns the
exit code: 0 success, 1 a failure at run time (no daemon, job failed), 2 bad
arguments or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from ..engine.presets import PRESETS  # light: no torch
from ..protocol.client import Client, Event
from ..protocol.errors import DaemonUnavailable, JobFailed, ProtocolError
from ..protocol.images import RGBAImage
from ..protocol.schema import DEFAULT_METHOD, METHODS
from ..protocol.security import CurveKeys
from .config import DEFAULT_BIND, ConfigError, DaemonConfig, Limits, default_cache_dir, parse_size

log = logging.getLogger("semantic_analogy.daemon")

ADDRESS_ENV = "SEMANTIC_ANALOGY_ADDRESS"
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _err(command: str, message: str) -> None:
    print(f"semantic-analogy {command}: {message}", file=sys.stderr)


# --- options shared by the client commands -----------------------------------------------


def _add_client_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--address", default=os.environ.get(ADDRESS_ENV, DEFAULT_BIND),
                   help=f"the daemon's address (default: ${ADDRESS_ENV} or {DEFAULT_BIND})")
    g.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    g.add_argument("--client-key", metavar="FILE", help="this client's CURVE key (NAME.key_secret from `keys`)")
    g.add_argument("--server-key", metavar="FILE", help="the daemon's public CURVE key (server.key from `keys`)")


def _client(args: argparse.Namespace) -> Client:
    curve = None
    if bool(args.client_key) != bool(args.server_key):
        raise ConfigError("CURVE needs both --client-key and --server-key")
    if args.client_key:
        try:
            curve = CurveKeys.load(args.client_key, args.server_key)
        except (OSError, ValueError) as e:
            raise ConfigError(str(e)) from None
    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    return Client(args.address, timeout=args.timeout, curve=curve, client_name="semantic-analogy-cli")


def _run_client_command(name: str, args: argparse.Namespace, body) -> int:
    """Common error handling: what went wrong in one line, and the exit code."""
    try:
        with _client(args) as c:
            return body(c)
    except ConfigError as e:
        _err(name, str(e))
        return 2
    except DaemonUnavailable as e:
        _err(name, e.message)
        return 1
    except JobFailed as e:
        _err(name, f"the job failed: {e.message} [{e.code}]")
        return 1
    except ProtocolError as e:
        _err(name, f"{e.message} [{e.code}]")
        return 1


# --- serve ---------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .server import Daemon

    try:
        config = DaemonConfig(
            bind=args.bind,
            device=args.device,
            cache_dir=Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir(),
            cache_limit_bytes=parse_size(args.cache_size),
            limits=Limits(max_pixels=args.max_pixels, max_targets=args.max_targets, max_queue=args.max_queue),
            keys_dir=Path(args.keys).expanduser() if args.keys else None,
            preview_interval_s=args.preview_interval,
            instant_preview_px=args.instant_preview_size,
            cpu_threads=args.threads,
        )
        daemon = Daemon(config)
        daemon.start()
    except ConfigError as e:
        _err("serve", str(e))
        return 2

    def on_signal(signum: int, frame: object) -> None:
        if daemon.stop_event.is_set():  # a second Ctrl-C: the user does not want to wait
            log.warning("second %s: exiting now (the cache stays consistent)", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: checkpointing the running job and stopping", signal.Signals(signum).name)
        daemon.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"semantic-analogy daemon listening on {daemon.endpoint}", flush=True)
    daemon.run()
    return 0


# --- submit --------------------------------------------------------------------------------


def _load_image(path: str) -> RGBAImage:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGBA")
            return RGBAImage(im.width, im.height, im.tobytes())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path} as an image ({e})") from None


def outputs_for(targets: list[str], out: str) -> list[Path]:
    """One target: --out is the file. Several: --out is a folder, one NAME.png per target."""
    if len(targets) == 1 and not out.endswith(os.sep) and not Path(out).is_dir():
        return [Path(out)]
    names = [Path(t).stem for t in targets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"several targets are named {', '.join(dupes)}: their outputs would overwrite each other")
    return [Path(out) / f"{n}.png" for n in names]


class _ProgressBar:
    """A tqdm bar on stderr fed by job events."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="step", disable=not enabled, file=sys.stderr, desc="submitted",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
        self.stage = None

    def __call__(self, ev: Event) -> None:
        if ev.instant:
            if not self.bar.disable:
                what = "patch" if ev.data.get("kind") == "patch" else "GAN"
                self.bar.write(f"{what} preview ready ({ev.images[0].width}x{ev.images[0].height})",
                               file=sys.stderr)
        elif ev.kind == "queued":
            self.bar.set_description(f"queued (position {ev.data['position'] + 1})")
        elif ev.kind == "progress":
            d = ev.data
            if d["stage"] != self.stage:
                self.stage = d["stage"]
                self.bar.reset(total=d["total"])
                self.bar.set_description("training" if d["stage"] == "train" else "applying")
            self.bar.n = d["step"]
            if d.get("losses"):
                self.bar.set_postfix_str(" ".join(f"{k}={v:.3g}" for k, v in list(d["losses"].items())[:4]))
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        outs = outputs_for(args.targets, args.out)
        image, labels = _load_image(args.image), _load_image(args.labels)
        targets = [_load_image(t) for t in args.targets]
    except ConfigError as e:
        _err("submit", str(e))
        return 2
    settings: dict = {"preset": args.preset, "seed": args.seed}
    for name in ("size", "steps", "g_steps"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)

    def body(c: Client) -> int:
        c.connect()
        job = c.submit(image, labels, targets, settings, target_names=[Path(t).stem for t in args.targets],
                       cancel_if_silent=args.cancel_if_silent, method=args.method)
        print(f"job {job}", file=sys.stderr)
        bar = _ProgressBar(enabled=not args.quiet)
        try:
            images = c.wait(job, on_event=bar)
        except KeyboardInterrupt:
            bar.close()
            try:
                c.cancel(job)
                _err("submit", f"interrupted: job {job} cancelled")
            except ProtocolError as e:
                _err("submit", f"interrupted; could not cancel job {job}: {e.message}")
            return 130
        finally:
            bar.close()
        from PIL import Image

        for img, out in zip(images, outs):
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.frombytes("RGBA", img.size, img.data).convert("RGB").save(out)
            print(out)
        return 0

    return _run_client_command("submit", args, body)


# --- ping, status, models ---------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> int:
    def body(c: Client) -> int:
        info = c.connect()
        rtt = min(c.ping() for _ in range(max(1, args.count)))
        print(f"pong from {args.address} in {rtt * 1000:.2f} ms (protocol {info['protocol_version']}, "
              f"engine {info['engine_version']}, device {info['device']})")
        return 0

    return _run_client_command("ping", args, body)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _fmt_duration(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_status(address: str, st: dict) -> str:
    """The human-readable status (pure, tested)."""
    if st["running_job"]:
        p = st.get("running_progress")
        detail = f" ({p['stage']} step {p['step']}/{p['total']}, ETA {_fmt_duration(p['eta_s'])})" if p else ""
        running = f"{st['running_job']}{detail}"
    else:
        running = "nothing"
    jobs = st["jobs"]
    lines = [
        ("daemon", address),
        ("device", st["device"]),
        ("version", f"engine {st['engine_version']}, protocol {st['protocol_version']}"),
        ("running", running),
        ("queued", f"{st['queue_length']} job(s)"),
        ("finished", f"{jobs.get('done', 0)} done, {jobs.get('failed', 0)} failed, {jobs.get('cancelled', 0)} cancelled"),
        ("models", f"{st['models_cached']} cached; cache {_fmt_bytes(st['cache_bytes'])} of "
                   f"{_fmt_bytes(st['cache_limit_bytes'])}"),
        ("uptime", _fmt_duration(st["uptime_s"])),
    ]
    return "\n".join(f"{k:<9} {v}" for k, v in lines)


def cmd_status(args: argparse.Namespace) -> int:
    def body(c: Client) -> int:
        st = c.status()
        print(json.dumps(st, indent=2) if args.json else format_status(args.address, st))
        return 0

    return _run_client_command("status", args, body)


def cmd_models_list(args: argparse.Namespace) -> int:
    def body(c: Client) -> int:
        models = c.list_models()
        if args.json:
            print(json.dumps(models, indent=2))
            return 0
        if not models:
            print("no cached models")
            return 0
        print(f"{'key':<32}  {'size':>9}  {'image':>11}  {'preset':<8}  last used")
        for m in sorted(models, key=lambda m: -m["last_used"]):
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(m["last_used"]))
            print(f"{m['key']:<32}  {_fmt_bytes(m['size_bytes']):>9}  {m['width']:>5}x{m['height']:<5}  "
                  f"{str(m['settings'].get('preset', '?')):<8}  {used}")
        return 0

    return _run_client_command("models", args, body)


def cmd_models_delete(args: argparse.Namespace) -> int:
    def body(c: Client) -> int:
        key = args.key
        if len(key) < 32:  # a prefix, as `models list` users copy it
            matches = [m["key"] for m in c.list_models() if m["key"].startswith(key)]
            if len(matches) != 1:
                _err("models", f"{len(matches)} cached models start with {key!r}; give more of the key")
                return 1
            key = matches[0]
        c.delete_model(key)
        print(f"deleted model {key}")
        return 0

    return _run_client_command("models", args, body)


# --- keys ----------------------------------------------------------------------------------


def make_keys(directory: Path, clients: list[str], force: bool = False) -> list[Path]:
    """Create the daemon's key pair (once) and one key pair per client; returns the files written.

    DIR/server.key(_secret): the daemon's; DIR/clients/NAME.key(_secret): give both NAME files
    and server.key to that client; DIR/authorized_clients/NAME.key: the daemon lets these in.
    """
    import zmq.auth

    for name in clients:
        if not _CLIENT_NAME.match(name):
            raise ConfigError(f"client name {name!r} may only use letters, digits, '-' and '_'")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    server_secret = directory / "server.key_secret"
    if not server_secret.exists() or force:
        pub, sec = zmq.auth.create_certificates(directory, "server")
        written += [Path(pub), Path(sec)]
    for sub in ("clients", "authorized_clients"):
        (directory / sub).mkdir(exist_ok=True, mode=0o700)
    for name in clients:
        if (directory / "clients" / f"{name}.key_secret").exists() and not force:
            raise ConfigError(f"client {name!r} already has keys in {directory / 'clients'}; pass --force to replace them")
        pub, sec = zmq.auth.create_certificates(directory / "clients", name)
        shutil.copyfile(pub, directory / "authorized_clients" / f"{name}.key")
        written += [Path(pub), Path(sec), directory / "authorized_clients" / f"{name}.key"]
    for p in directory.rglob("*.key_secret"):
        os.chmod(p, 0o600)  # secrets readable by their owner only
    return written


def cmd_keys(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser()
    clients = args.client or ([] if (directory / "server.key_secret").exists() else ["client"])
    try:
        written = make_keys(directory, clients, force=args.force)
    except ConfigError as e:
        _err("keys", str(e))
        return 2
    for p in written:
        print(f"wrote {p}")
    print(f"\ndaemon:  semantic-analogy serve --bind tcp://0.0.0.0:5555 --keys {directory}")
    for name in clients:
        print(f"client {name!r}: copy {directory / 'clients' / (name + '.key_secret')} and "
              f"{directory / 'server.key'} to it, then\n  semantic-analogy ping --address tcp://HOST:5555 "
              f"--client-key {name}.key_secret --server-key server.key")
    return 0


# --- registration --------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register serve, submit, ping, status, keys and models on the main command line."""
    p = subparsers.add_parser("serve", help="run the engine daemon that the editor plug-ins talk to",
                              description="Run the engine daemon. It listens on loopback unless --bind says "
                                          "otherwise; any other address needs --keys (CURVE encryption).")
    p.add_argument("--bind", default=DEFAULT_BIND, metavar="ADDRESS",
                   help=f"where to listen: tcp://HOST:PORT or ipc:///path (default {DEFAULT_BIND})")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--cache-dir", metavar="DIR", help=f"models and results (default {default_cache_dir()})")
    p.add_argument("--cache-size", default="5G", metavar="SIZE", help="cap on the cache's size, e.g. 500M, 5G (default 5G)")
    p.add_argument("--keys", metavar="DIR", help="CURVE keys made by `semantic-analogy keys DIR`; required "
                                                 "to listen on a non-loopback address")
    p.add_argument("--max-pixels", type=int, default=Limits.max_pixels, help="largest image, in pixels (default 4096x4096)")
    p.add_argument("--max-targets", type=int, default=Limits.max_targets, help="most targets per job (default 16)")
    p.add_argument("--max-queue", type=int, default=Limits.max_queue, help="most jobs waiting (default 32)")
    p.add_argument("--preview-interval", type=float, default=2.0, metavar="S",
                   help="at most one preview image per job every S seconds (default 2)")
    p.add_argument("--instant-preview-size", type=int, default=DaemonConfig.instant_preview_px, metavar="PX",
                   help="longest side of the instant patch preview sent before training "
                        f"(default {DaemonConfig.instant_preview_px}; 0: none)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for training (default: one per core; fewer on a busy shared machine)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("submit", help="send a job to the daemon and save the result",
                              description="IMAGE LABELS TARGET... --out FILE (or a folder for several targets)")
    p.add_argument("image", help="the photo")
    p.add_argument("labels", help="its colour-coded label map, same size")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="edited label map(s), same size")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several: NAME.png each)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                   help="gan: the GAN's output; patch: patches of the photo guided by the labels alone, no "
                        "training (seconds); gan+patch: the GAN's layout with the photo's own patches for "
                        f"crisp detail (default {DEFAULT_METHOD})")
    g = p.add_argument_group("training")
    g.add_argument("--preset", default="preview", choices=list(PRESETS), help="size/steps preset (default: preview)")
    g.add_argument("--size", type=int, help="working size: the longest side in pixels (default: the preset's)")
    g.add_argument("--steps", type=int, help="training iterations (default: the preset's)")
    g.add_argument("--g-steps", type=int, dest="g_steps", help="generator updates per iteration")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--cancel-if-silent", type=float, default=60.0, metavar="S",
                   help="the daemon cancels the job if this command dies and stays silent S seconds (default 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_client_options(p)
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("ping", help="check that the daemon answers, and how fast")
    p.add_argument("--count", type=int, default=1, help="pings to send; the best time is shown")
    _add_client_options(p)
    p.set_defaults(func=cmd_ping)

    p = subparsers.add_parser("status", help="the daemon's device, queue, running job and cache")
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    _add_client_options(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("keys", help="make CURVE key pairs so the daemon can listen beyond this machine")
    p.add_argument("dir", help="folder for the keys (created; keep it private)")
    p.add_argument("--client", action="append", metavar="NAME",
                   help="make a key pair for this client (repeatable; default: one called 'client')")
    p.add_argument("--force", action="store_true", help="replace existing keys")
    p.set_defaults(func=cmd_keys)

    p = subparsers.add_parser("models", help="list or delete the trained models the daemon caches")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="{list,delete}")
    q = msub.add_parser("list", help="list cached models")
    q.add_argument("--json", action="store_true")
    _add_client_options(q)
    q.set_defaults(func=cmd_models_list)
    q = msub.add_parser("delete", help="delete a cached model")
    q.add_argument("key", help="the model key (or a unique prefix of it)")
    _add_client_options(q)
    q.set_defaults(func=cmd_models_delete)
