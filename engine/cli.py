"""The engine's commands: train, apply, run, eval, download-weights."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..protocol.schema import DEFAULT_METHOD, METHODS, TRAINED_DEFAULT_METHOD
from .errors import EngineError, LabelError
from .presets import MAX_PIXELS, PRESETS, TrainSettings

if TYPE_CHECKING:  # numpy, PIL and torch load only in the commands that compute
    import numpy as np

log = logging.getLogger("semantic_analogy")


def cache_dir() -> Path:
    """$SEMANTIC_ANALOGY_CACHE, else $XDG_CACHE_HOME/semantic-analogy, else ~/.cache/semantic-analogy."""
    if os.environ.get("SEMANTIC_ANALOGY_CACHE"):
        return Path(os.environ["SEMANTIC_ANALOGY_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "semantic-analogy"


# -- argument groups -----------------------------------------------------------
def _add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--preset", default="preview", choices=list(PRESETS), help="size/steps preset (default: preview)")
    g.add_argument("--size", type=int, help="working size: the longest side in pixels (default: the preset's)")
    g.add_argument("--steps", type=int, help="training iterations (default: the preset's)")
    g.add_argument("--g-steps", type=int, help="generator updates per iteration (default: the preset's)")
    g.add_argument("--seed", type=int, default=0, help="random seed (runs on the CPU are deterministic for a seed)")
    g.add_argument("--vgg-weights", help="path to torchvision's VGG19 weights (vgg19-dcbb9e9d.pth)")
    _add_device(p)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-pixels", type=_pixels, default=MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than N pixels (default {MAX_PIXELS:,}, as the daemon; 0: no limit)")


def _pixels(text: str) -> int | None:
    try:
        n = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of pixels: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("the pixel limit cannot be negative")
    return n or None


def _add_output_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--method", default=default, choices=METHODS,
                   help="patch: label-guided patch synthesis from the full-resolution photo, no training; "
                        "gan+patch: a GAN trained on the photo guides the patch synthesis; gan: the GAN's "
                        f"output alone (default: {default}; see README, Methods)")
    p.add_argument("--json-progress", action="store_true", help="print one JSON object per progress event on stdout")
    p.add_argument("--resize-targets", action="store_true", help="resize targets of another size to the image's size")


def _settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        preset=args.preset, size=args.size, steps=args.steps, g_steps=args.g_steps,
        seed=args.seed, device=args.device, vgg_weights=args.vgg_weights,
    )


# -- progress and cancellation ---------------------------------------------------
class Reporter:
    """A tqdm bar on stderr, or JSON lines on stdout with --json-progress."""

    STAGES = {"train": ("training", "step"), "apply": ("applying", "target")}

    def __init__(self, json_mode: bool) -> None:
        self.json_mode, self.bar, self.stage = json_mode, None, None

    def __call__(self, p) -> None:
        if self.json_mode:
            print(json.dumps({"event": "progress", **p.as_dict()}), flush=True)
            return
        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
        if self.bar is None:
            from tqdm import tqdm

            desc, unit = self.STAGES.get(p.stage, (p.stage, "step"))
            self.bar = tqdm(total=p.total, initial=p.step - 1, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(p.step - self.bar.n)
        shown = {k: f"{v:.3f}" for k, v in p.losses.items() if k in ("G", "D", "patch", "rec")}
        self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def event(self, **fields) -> None:
        if self.json_mode:
            print(json.dumps(fields), flush=True)


@contextmanager
def interruptible():
    """First Ctrl-C asks training to stop at the next step (with a checkpoint); a second one aborts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop.is_set
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


# -- helpers -----------------------------------------------------------------------
def _load_targets(paths: list[str], size: tuple[int, int], resize: bool, max_pixels: int | None) -> list[np.ndarray]:
    import numpy as np
    from PIL import Image

    from .imageio import load_label_map

    targets = []
    for path in paths:
        t = load_label_map(path, max_pixels)
        if (t.shape[1], t.shape[0]) != size:
            if not resize:
                raise LabelError(
                    f"{path} is {t.shape[1]}x{t.shape[0]} but the image is {size[0]}x{size[1]}; "
                    "paint the target at the image's size or pass --resize-targets"
                )
            t = np.asarray(Image.fromarray(t).resize(size, Image.NEAREST))
        targets.append(t)
    return targets


def _outputs_for(targets: list[str], out: str) -> list[Path]:
    """The output path of each target, checked (type, folder writable) before any work."""
    from ..protocol.files import outputs_for

    return outputs_for(targets, out, EngineError)


def _check_model_folder(path: str | None) -> None:
    """A model folder must be a folder (or not exist yet): checked before the photo is even read."""
    if path is None:
        return
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise EngineError(f"--model {path}: {q} is a file, not a folder; choose a folder for the model")
            if q != p and not os.access(q, os.W_OK | os.X_OK):
                raise EngineError(f"--model {path}: the folder {q} is not writable; choose another --model")
            return


def _analogy(args: argparse.Namespace, outputs: list[Path], image: np.ndarray | None, labels: np.ndarray | None,
             settings: TrainSettings | None = None, model=None, store=None) -> int:
    """Load the targets and make the analogy, saving each result to its (checked) output as it comes."""
    from .analogy import make_analogy
    from .imageio import save_image

    size = model.size if model is not None else (image.shape[1], image.shape[0])
    targets = _load_targets(args.targets, size, args.resize_targets, args.max_pixels)
    reporter = Reporter(args.json_progress)

    def save(i: int, result: np.ndarray) -> None:
        save_image(outputs[i], result)
        reporter.event(event="output", target=str(args.targets[i]), path=str(outputs[i]))
        print(f"wrote {outputs[i]}", file=sys.stderr if reporter.json_mode else sys.stdout)

    with interruptible() as should_stop:
        try:
            make_analogy(image, labels, targets, settings, args.method,
                         model=model, store=store, progress=reporter, should_stop=should_stop, on_result=save)
        finally:
            reporter.close()
    return 0


# -- commands ------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    _check_model_folder(args.model)
    settings = _settings(args)  # bad settings fail before the photo is read
    from .imageio import load_image, load_label_map
    from .trainer import train

    image, labels = load_image(args.image, args.max_pixels), load_label_map(args.labels, args.max_pixels)
    reporter = Reporter(args.json_progress)
    with interruptible() as should_stop:
        try:
            train(image, labels, settings, progress=reporter, should_stop=should_stop, workdir=args.model)
        finally:
            reporter.close()
    reporter.event(event="done", model=str(args.model))
    print(f"saved model to {args.model}", file=sys.stderr if args.json_progress else sys.stdout)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    outputs = _outputs_for(args.targets, args.out)
    from .model import load_model

    return _analogy(args, outputs, None, None, model=load_model(args.model, args.device))


def cmd_run(args: argparse.Namespace) -> int:
    outputs = _outputs_for(args.targets, args.out)
    _check_model_folder(args.model)
    settings = _settings(args)  # bad settings fail before the photo is read
    from .imageio import load_image, load_label_map

    image, labels = load_image(args.image, args.max_pixels), load_label_map(args.labels, args.max_pixels)
    from .analogy import FolderStore  # torch: only once the inputs are known to be readable

    store = FolderStore(root=cache_dir() / "models", folder=Path(args.model) if args.model else None,
                        retrain=args.retrain)
    return _analogy(args, outputs, image, labels, settings, store=store)


def cmd_eval(args: argparse.Namespace) -> int:
    from .imageio import load_image, load_label_map
    from .metrics import evaluate

    mp = args.max_pixels
    result = evaluate(load_image(args.image, mp), load_label_map(args.labels, mp), load_label_map(args.target, mp),
                      load_image(args.output, mp))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def cmd_download_weights(args: argparse.Namespace) -> int:
    from .features import download_vgg_weights

    print(f"VGG19 weights are in {download_vgg_weights()}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on an image and its label map")
    p.add_argument("image", help="the photo (PNG, JPEG, ...)")
    p.add_argument("labels", help="its colour-coded label map, same size")
    p.add_argument("--model", required=True, help="folder to save the model in (an interrupted training resumes from it)")
    _add_training_options(p)
    p.add_argument("--json-progress", action="store_true", help="print one JSON object per progress event on stdout")
    _add_max_pixels(p)
    p.set_defaults(func=cmd_train, quick_exit=True)

    p = sub.add_parser("apply", help="apply a trained model to target label maps")
    p.add_argument("--model", required=True, help="a folder made by `train`")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="target label map(s), same size as the image")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several: one PNG per target)")
    _add_device(p)
    _add_output_options(p, TRAINED_DEFAULT_METHOD)
    _add_max_pixels(p)
    p.set_defaults(func=cmd_apply, quick_exit=True)

    p = sub.add_parser("run", help="make the analogy: IMAGE LABELS TARGET... --out (the gan methods train, or reuse a trained model)")
    p.add_argument("image")
    p.add_argument("labels")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several)")
    p.add_argument("--model", help="folder for the model (default: a cache keyed by the inputs and settings)")
    p.add_argument("--retrain", action="store_true", help="train even if a cached model exists")
    _add_training_options(p)
    _add_output_options(p, DEFAULT_METHOD)
    _add_max_pixels(p)
    p.set_defaults(func=cmd_run, quick_exit=True)

    p = sub.add_parser("eval", help="quality measures of a result, as JSON")
    p.add_argument("image")
    p.add_argument("labels")
    p.add_argument("target")
    p.add_argument("output")
    p.add_argument("--out", help="also write the JSON to this file")
    _add_max_pixels(p)
    p.set_defaults(func=cmd_eval, quick_exit=True)

    p = sub.add_parser("download-weights", help="download torchvision's ImageNet VGG19 weights (needs internet)")
    p.set_defaults(func=cmd_download_weights)
