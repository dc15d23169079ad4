"""The client commands of `semantic-analogy`: submit, result, watch, ping, status, models.

They only talk to a daemon, so they import no torch, no numpy and nothing of the daemon
or the engine at start-up (PIL and tqdm are imported inside the commands that use them):
`semantic-analogy ping` answers in a fraction of a second (BENCHMARKS.md, "Start-up of
the client commands"). The main command line registers them with ``add_commands``;
each handler returns the exit code: 0 success, 1 a failure at run time (no daemon, job
failed), 2 bad arguments, 130 interrupted.

The plug-ins' copies of this folder do not need this module (it is the command line's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

from . import files
from .client import DEFAULT_ADDRESS, Client, Event
from .errors import DaemonUnavailable, JobFailed, ProtocolError
from .images import RGBAImage
from .schema import DEFAULT_METHOD, METHODS
from .security import CurveKeys

ADDRESS_ENV = "SEMANTIC_ANALOGY_ADDRESS"
# What a result can be saved as (the engine's save_image takes the same).
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class CommandError(Exception):
    """A bad argument (a path, an option); the message says what to change. Exit code 2."""


def _err(command: str, message: str) -> None:
    print(f"semantic-analogy {command}: {message}", file=sys.stderr)


# --- options shared by the client commands -----------------------------------------------


def add_client_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--address", default=os.environ.get(ADDRESS_ENV, DEFAULT_ADDRESS),
                   help=f"the daemon's address (default: ${ADDRESS_ENV} or {DEFAULT_ADDRESS})")
    g.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    g.add_argument("--client-key", metavar="FILE",
                   help="this client's CURVE key pair: DIR/clients/NAME.key_secret made by `keys DIR --client NAME`")
    g.add_argument("--server-key", metavar="FILE", help="the daemon's public CURVE key: DIR/server.key made by `keys`")


def _client(args: argparse.Namespace) -> Client:
    curve = None
    if bool(args.client_key) != bool(args.server_key):
        raise CommandError("CURVE needs both --client-key and --server-key")
    if args.client_key:
        try:
            curve = CurveKeys.load(args.client_key, args.server_key)
        except (OSError, ValueError) as e:
            raise CommandError(str(e)) from None
    if args.timeout <= 0:
        raise CommandError("--timeout must be positive")
    try:
        return Client(args.address, timeout=args.timeout, curve=curve, client_name="semantic-analogy-cli")
    except ValueError as e:
        raise CommandError(str(e)) from None


def unavailable_hint(with_keys: bool) -> str:
    """What the command line adds to "no engine daemon answered": its options for CURVE keys."""
    if with_keys:
        return ""
    return ("keys are passed as --client-key DIR/clients/NAME.key_secret --server-key DIR/server.key "
            "(made by `semantic-analogy keys DIR --client NAME`)")


def _run_client_command(name: str, args: argparse.Namespace, body: Callable[[Client], int]) -> int:
    """Common error handling: what went wrong in one line, and the exit code."""
    try:
        with _client(args) as c:
            return body(c)
    except CommandError as e:
        _err(name, str(e))
        return 2
    except DaemonUnavailable as e:
        hint = unavailable_hint(bool(args.client_key)) if "no engine daemon answered" in e.message else ""
        _err(name, e.message + (f"; {hint}" if hint else ""))
        return 1
    except JobFailed as e:
        if e.code == "UNKNOWN_JOB":
            _err(name, f"{e.message} [{e.code}]")
        else:
            _err(name, f"the job failed: {e.message} [{e.code}]")
        return 1
    except ProtocolError as e:
        _err(name, f"{e.message} [{e.code}]")
        return 1


# --- images in and out ----------------------------------------------------------------------


def _probe_image(path: str) -> tuple[int, int]:
    """The size of an image file, read from its header only; CommandError if it cannot be read."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise CommandError(f"{path} does not exist")
    if p.is_dir():
        raise CommandError(f"{path} is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return im.size
    except UnidentifiedImageError:
        raise CommandError(f"{path} is not an image file that can be read; save it as PNG or JPEG") from None
    except Image.DecompressionBombError:
        raise CommandError(f"{path} is too large to open safely; scale it down") from None
    except OSError as e:
        raise CommandError(f"cannot read {path} as an image ({e.strerror or e})") from None


def _load_image(path: str, max_pixels: int | None = None) -> RGBAImage:
    """An image file as RGBA, oriented as its EXIF tag says (as the engine reads it)."""
    import warnings

    from PIL import Image, ImageOps

    w, h = _probe_image(path)
    if max_pixels and w * h > max_pixels:
        raise CommandError(f"{path} is {w}x{h} ({w * h:,} pixels), more than the daemon's limit of "
                           f"{max_pixels:,} pixels (its --max-pixels); scale it down")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im).convert("RGBA")
                return RGBAImage(im.width, im.height, im.tobytes())
    except (OSError, SyntaxError, ValueError) as e:
        raise CommandError(f"cannot read {path} as an image ({e}); the file may be damaged") from None


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """CommandError unless a result can be saved at ``path`` (type, folder creatable and writable):
    checked before anything is sent, so that no job runs for an output that cannot be written."""
    return files.check_output_path(path, CommandError)


def outputs_for(targets: list[str], out: str) -> list[Path]:
    """One target: --out is the file. Several: --out is a folder, one NAME.png per target. Checked."""
    return files.outputs_for(targets, out, CommandError)


def _is_folder_out(out: str) -> bool:
    """For `result`, which learns the number of results only from the daemon: a folder unless a file name."""
    return out.endswith(os.sep) or Path(out).is_dir() or not Path(out).suffix


def _safe_name(name: str, i: int) -> str:
    """A target name from the daemon as a file name: never a path (it comes from another program)."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")[:100]
    return cleaned or f"target-{i + 1}"


def save_result(img: RGBAImage, out: Path) -> Path:
    """Write a result as RGB PNG/JPEG, atomically (temp file + rename) and with the user's umask."""
    from PIL import Image

    fmt = files.SAVE_FORMATS[out.suffix.lower()]
    out.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(out, user_mode=True) as tmp:
        Image.frombytes("RGBA", img.size, img.data).convert("RGB").save(
            tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out


# --- progress --------------------------------------------------------------------------------


class _ProgressBar:
    """A tqdm bar on stderr fed by job events; shown from the first queued or progress event
    (a finished job's result, fetched at once, shows none)."""

    def __init__(self, enabled: bool, desc: str = "submitted") -> None:
        self.enabled, self.desc = enabled, desc
        self._bar = None
        self.stage = None
        self.result_data: dict = {}
        self.warned: list[str] = []  # the engine's warnings (protocol 1.2), each said once

    @property
    def bar(self):
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="step", disable=not self.enabled, file=sys.stderr, desc=self.desc,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}{postfix}]")
        return self._bar

    def __call__(self, ev: Event) -> None:
        for w in ev.data.get("warnings") or ():
            if isinstance(w, str) and w not in self.warned:
                self.warned.append(w)
                # Said even with --quiet: it is about the result, not the progress.
                (self.bar.write if self._bar is not None else print)(f"warning: {w}", file=sys.stderr)
        if ev.instant:
            if self.enabled:
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
        elif ev.kind == "result":
            self.result_data = dict(ev.data)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _check_job_id(job_id: str) -> str:
    job_id = job_id.strip().lower()
    if not _JOB_ID.match(job_id):
        raise CommandError(f"{job_id[:40]!r} is not a job id: 32 hex characters, as `submit` prints them")
    return job_id


# --- submit, result, watch ---------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        if args.cancel_if_silent < 0:
            raise CommandError("--cancel-if-silent must be 0 (never) or a number of seconds")
        outs = outputs_for(args.targets, args.out)  # before anything is read or sent
        for path in (args.image, args.labels, *args.targets):
            _probe_image(path)
    except CommandError as e:
        _err("submit", str(e))
        return 2
    settings: dict = {"preset": args.preset, "seed": args.seed}
    for name in ("size", "steps", "g_steps"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)

    def body(c: Client) -> int:
        info = c.connect()
        max_pixels = info.get("limits", {}).get("max_pixels")
        image, labels = _load_image(args.image, max_pixels), _load_image(args.labels, max_pixels)
        targets = [_load_image(t, max_pixels) for t in args.targets]
        job = c.submit(image, labels, targets, settings, target_names=[Path(t).stem for t in args.targets],
                       cancel_if_silent=args.cancel_if_silent or None, method=args.method)
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
        for img, out in zip(images, outs):
            print(save_result(img, out))
        return 0

    return _run_client_command("submit", args, body)


def cmd_result(args: argparse.Namespace) -> int:
    try:
        job = _check_job_id(args.job_id)
        folder = _is_folder_out(args.out)
        if folder:
            files.check_out_folder(args.out, CommandError)
        else:
            check_output_path(args.out)
    except CommandError as e:
        _err("result", str(e))
        return 2

    def body(c: Client) -> int:
        bar = _ProgressBar(enabled=not args.quiet, desc="waiting")
        try:
            images = c.wait(job, on_event=bar)  # a finished job's result comes at once
        except KeyboardInterrupt:
            bar.close()
            _err("result", f"stopped waiting; job {job} goes on in the daemon (fetch it later with the same command)")
            return 130
        finally:
            bar.close()
        names = bar.result_data.get("target_names") or []
        if folder:
            stems = [_safe_name(names[i] if i < len(names) else "", i) for i in range(len(images))]
            seen: dict[str, int] = {}
            for i, s in enumerate(stems):  # names need not be unique on the wire
                seen[s] = seen.get(s, 0) + 1
                if seen[s] > 1:
                    stems[i] = f"{s}-{i + 1}"
            outs = [check_output_path(Path(args.out) / f"{s}.png") for s in stems]
        elif len(images) == 1:
            outs = [Path(args.out)]
        else:
            raise CommandError(f"job {job} has {len(images)} results; give a folder as --out (one PNG per target)")
        for img, out in zip(images, outs):
            print(save_result(img, out))
        return 0

    return _run_client_command("result", args, body)


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        job = _check_job_id(args.job_id)
    except CommandError as e:
        _err("watch", str(e))
        return 2

    def body(c: Client) -> int:
        bar = _ProgressBar(enabled=not args.quiet, desc="waiting")
        try:
            images = c.wait(job, on_event=bar)
        except KeyboardInterrupt:
            bar.close()
            _err("watch", f"stopped watching; job {job} goes on in the daemon")
            return 130
        finally:
            bar.close()
        print(f"job {job} done: {len(images)} result(s); save them with "
              f"`semantic-analogy result {job} --out FILE`")
        return 0

    return _run_client_command("watch", args, body)


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
    def progress(p: dict | None) -> str:
        return f" ({p['stage']} step {p['step']}/{p['total']}, ETA {_fmt_duration(p['eta_s'])})" if p else ""

    many = st.get("running_jobs")  # protocol 1.3: all of them, with their nodes
    if many:
        running = [f"{r['job_id']}{' on node ' + r['node'][:12] if r.get('node') else ''}{progress(r.get('progress'))}"
                   for r in many]
    elif st["running_job"]:
        running = [f"{st['running_job']}{progress(st.get('running_progress'))}"]
    else:
        running = ["nothing"]
    jobs = st["jobs"]
    lines = [
        ("daemon", address),
        ("device", st["device"]),
        ("version", f"engine {st['engine_version']}, protocol {st['protocol_version']}"),
        *[("running" if i == 0 else "", r) for i, r in enumerate(running)],
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


# --- registration --------------------------------------------------------------------------


def _preset_names() -> list[str]:
    # The engine's presets module is pure Python (no torch, no numpy); imported here, not at
    # the top, because a plug-in's bundled copy of this folder has no engine beside it.
    from ..engine.presets import PRESETS

    return list(PRESETS)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register submit, result, watch, ping, status and models on the main command line."""
    p = subparsers.add_parser("submit", help="send a job to the daemon and save the result",
                              description="IMAGE LABELS TARGET... --out FILE (or a folder for several targets). "
                                          "Prints the job id first; Ctrl-C cancels the job.")
    p.add_argument("image", help="the photo")
    p.add_argument("labels", help="its colour-coded label map, same size")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="edited label map(s), same size")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several: NAME.png each)")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                   help="gan: the GAN's output; patch: patches of the photo guided by the labels alone, no "
                        "training (seconds); gan+patch: the GAN's layout with the photo's own patches for "
                        f"crisp detail (default {DEFAULT_METHOD})")
    g = p.add_argument_group("training")
    g.add_argument("--preset", default="preview", choices=_preset_names(), help="size/steps preset (default: preview)")
    g.add_argument("--size", type=int, help="working size: the longest side in pixels (default: the preset's)")
    g.add_argument("--steps", type=int, help="training iterations (default: the preset's)")
    g.add_argument("--g-steps", type=int, dest="g_steps", help="generator updates per iteration")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--cancel-if-silent", type=float, default=60.0, metavar="S",
                   help="the daemon cancels the job if this command is killed and stays silent S seconds "
                        "(default 60); 0: never, the job goes on and `result JOB_ID` fetches it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_client_options(p)
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("result", help="save a job's result by its id (waits while it runs)",
                              description="Fetch the result of a job by its id, e.g. one a closed plug-in or a "
                                          "killed `submit` left behind; while the job runs, show its progress "
                                          "and wait. Ctrl-C stops waiting, not the job.")
    p.add_argument("job_id", metavar="JOB_ID", help="the job id (32 hex characters)")
    p.add_argument("--out", required=True,
                   help="output file (a job with one target) or folder (one NAME.png per target; a name "
                        "without an extension is a folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_client_options(p)
    p.set_defaults(func=cmd_result)

    p = subparsers.add_parser("watch", help="show a job's progress until it ends (never cancels it)",
                              description="Follow a job by its id until it ends; exit 0 when it succeeded. "
                                          "Ctrl-C stops watching, not the job.")
    p.add_argument("job_id", metavar="JOB_ID", help="the job id (32 hex characters)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_client_options(p)
    p.set_defaults(func=cmd_watch)

    p = subparsers.add_parser("ping", help="check that the daemon answers, and how fast")
    p.add_argument("--count", type=int, default=1, help="pings to send; the best time is shown")
    add_client_options(p)
    p.set_defaults(func=cmd_ping)

    p = subparsers.add_parser("status", help="the daemon's device, queue, running job and cache")
    p.add_argument("--json", action="store_true", help="print the raw status as JSON")
    add_client_options(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("models", help="list or delete the trained models the daemon caches")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="{list,delete}")
    q = msub.add_parser("list", help="list cached models")
    q.add_argument("--json", action="store_true")
    add_client_options(q)
    q.set_defaults(func=cmd_models_list)
    q = msub.add_parser("delete", help="delete a cached model")
    q.add_argument("key", help="the model key (or a unique prefix of it)")
    add_client_options(q)
    q.set_defaults(func=cmd_models_delete)
