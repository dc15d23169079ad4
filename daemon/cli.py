"""The daemon's commands: serve and keys.

The client commands (submit, result, watch, ping, status, models) live in
protocol/commands.py, beside the client, so that they start without the daemon's or the
engine's imports. The main command line registers both with ``add_commands``; each
handler returns the exit code: 0 success, 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

from .config import DEFAULT_BIND, ConfigError, DaemonConfig, Limits, default_cache_dir, parse_size

log = logging.getLogger("semantic_analogy.daemon")

_CLIENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _err(command: str, message: str) -> None:
    print(f"semantic-analogy {command}: {message}", file=sys.stderr)


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
            backend=args.backend,
            ray_address=args.ray_address or os.environ.get("RAY_ADDRESS") or "auto",
            cpus_per_job=args.cpus_per_job,
            job_retries=args.job_retries,
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
    if args.parent_pid:
        watch_parent(args.parent_pid, daemon.stop_event)
    print(f"semantic-analogy daemon listening on {daemon.endpoint}", flush=True)
    daemon.run()
    return 0


def parent_gone(pid: int, was_parent: bool) -> bool:
    """Whether the process PID has ended. For the daemon's own parent, being re-parented
    says so even when the PID has since been reused."""
    if was_parent and os.getppid() != pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def watch_parent(pid: int, stop_event, interval_s: float = 1.0) -> threading.Thread:
    """Stop the daemon (as SIGTERM would) once the editor that started it has gone, however
    it went: quit, crash or kill, so that no engine is left running behind a closed editor."""
    was_parent = os.getppid() == pid
    detached = threading.Event()

    def on_detach(signum: int, frame: object) -> None:
        log.info("SIGUSR1: this daemon keeps running after the process that started it (PID %d) ends", pid)
        detached.set()

    # The editor sends SIGUSR1 when the painter chooses to keep the engine running after it quits.
    signal.signal(signal.SIGUSR1, on_detach)

    def watch() -> None:
        while not stop_event.wait(interval_s) and not detached.is_set():
            if parent_gone(pid, was_parent):
                log.info("the process that started this daemon (PID %d) has ended: stopping", pid)
                stop_event.set()
                return

    t = threading.Thread(target=watch, name="parent-watch", daemon=True)
    t.start()
    return t


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
        secret, server = directory / "clients" / f"{name}.key_secret", directory / "server.key"
        print(f"client {name!r} (copy these two files to its machine, and there give their paths):\n"
              f"  semantic-analogy ping --address tcp://HOST:5555 --client-key {secret} --server-key {server}")
    return 0


# --- registration --------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register serve and keys on the main command line."""
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
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="local: run jobs on this machine's device, one at a time (default); ray: hand them to "
                        "the worker nodes of a Ray cluster (pip install 'semantic-analogy[cluster]')")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --backend ray: the cluster's head HOST:PORT, auto (the cluster this machine "
                        "joined with `ray start`; the default, or $RAY_ADDRESS) or local (start a "
                        "one-machine cluster here)")
    p.add_argument("--cpus-per-job", type=float, default=DaemonConfig.cpus_per_job, metavar="N",
                   help="with --backend ray: CPUs a job asks for (it also gets a GPU where the cluster has them)")
    p.add_argument("--job-retries", type=int, default=DaemonConfig.job_retries, metavar="N",
                   help="with --backend ray: how often a job whose node died runs again elsewhere, "
                        f"resuming from its checkpoint (default {DaemonConfig.job_retries})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--parent-pid", type=int, metavar="PID",
                   help="stop when process PID ends (an editor that started this daemon passes its own)")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("keys", help="make CURVE key pairs so the daemon can listen beyond this machine")
    p.add_argument("dir", help="folder for the keys (created; keep it private)")
    p.add_argument("--client", action="append", metavar="NAME",
                   help="make a key pair for this client (repeatable; default: one called 'client')")
    p.add_argument("--force", action="store_true", help="replace existing keys")
    p.set_defaults(func=cmd_keys)
