"""The engine's commands: train, apply, run, eval, download-weights."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import EngineError, LabelError
from .presets import PRESETS, TrainSettings
from .synthesis import DEFAULT_METHOD, METHODS

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


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                   help="gan: the GAN's output; patch: label-guided patch synthesis alone (no training); "
                        "gan+patch: the GAN's output guides patch synthesis from the full-resolution photo "
                        f"(default: {DEFAULT_METHOD})")
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

    def __init__(self, json_mode: bool, desc: str) -> None:
        self.json_mode, self.desc, self.bar = json_mode, desc, None

    def __call__(self, p) -> None:
        if self.json_mode:
            print(json.dumps({"event": "progress", **p.as_dict()}), flush=True)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, initial=p.step - 1, desc=self.desc, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(p.step - self.bar.n)
        shown = {k: f"{v:.3f}" for k, v in p.losses.items() if k in ("G", "D", "patch", "rec")}
        self.bar.set_postfix(shown, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

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
def _load_targets(paths: list[str], size: tuple[int, int], resize: bool) -> list[np.ndarray]:
    from PIL import Image

    from .imageio import load_label_map

    targets = []
    for path in paths:
        t = load_label_map(path)
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
    if len(targets) == 1 and not out.endswith(os.sep) and not Path(out).is_dir():
        return [Path(out)]
    folder = Path(out)
    names = [Path(t).stem for t in targets]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise EngineError(f"several targets are named {', '.join(sorted(dupes))}: their outputs would overwrite each other")
    return [folder / f"{n}.png" for n in names]


def _apply_and_save(apply, size: tuple[int, int], target_paths: list[str], out: str, resize: bool, reporter: Reporter) -> list[Path]:
    """apply(target) -> result for each target file, saved to its output path."""
    from .imageio import save_image

    outputs = _outputs_for(target_paths, out)
    targets = _load_targets(target_paths, size, resize)
    for path, target, dest in zip(target_paths, targets, outputs):
        t0 = time.perf_counter()
        save_image(dest, apply(target))
        log.info("applied %s in %.2f s", path, time.perf_counter() - t0)
        reporter.event(event="output", target=str(path), path=str(dest))
        print(f"wrote {dest}", file=sys.stderr if reporter.json_mode else sys.stdout)
    return outputs


# -- commands ------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .imageio import load_image, load_label_map
    from .trainer import train

    image, labels = load_image(args.image), load_label_map(args.labels)
    reporter = Reporter(args.json_progress, "training")
    with interruptible() as should_stop:
        try:
            train(image, labels, _settings(args), progress=reporter, should_stop=should_stop, workdir=args.model)
        finally:
            reporter.close()
    reporter.event(event="done", model=str(args.model))
    print(f"saved model to {args.model}", file=sys.stderr if args.json_progress else sys.stdout)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from .model import load_model

    model = load_model(args.model, args.device)
    _apply_and_save(lambda t: model.apply(t, args.method), model.size, args.targets, args.out, args.resize_targets,
                    Reporter(args.json_progress, "applying"))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .imageio import load_image, load_label_map
    from .model import WEIGHTS, load_model
    from .trainer import model_key, train

    image, labels = load_image(args.image), load_label_map(args.labels)
    settings = _settings(args)
    size = (image.shape[1], image.shape[0])
    reporter = Reporter(args.json_progress, "training")
    if args.method == "patch":  # texture by numbers: nothing to train
        from .device import resolve_device
        from .synthesis import patch_analogy

        device = str(resolve_device(args.device))
        _apply_and_save(lambda t: patch_analogy(image, labels, t, device=device, seed=args.seed), size,
                        args.targets, args.out, args.resize_targets, reporter)
        return 0
    # Check the targets before minutes of training.
    _load_targets(args.targets, size, args.resize_targets)
    model_dir = Path(args.model) if args.model else cache_dir() / "models" / model_key(image, labels, settings)
    if (model_dir / WEIGHTS).is_file() and not args.retrain:
        log.info("using the trained model in %s (--retrain to train again)", model_dir)
        model = load_model(model_dir, args.device)
    else:
        with interruptible() as should_stop:
            try:
                model = train(image, labels, settings, progress=reporter, should_stop=should_stop, workdir=model_dir)
            finally:
                reporter.close()
    _apply_and_save(lambda t: model.apply(t, args.method), size, args.targets, args.out, args.resize_targets, reporter)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .imageio import load_image, load_label_map
    from .metrics import evaluate

    result = evaluate(load_image(args.image), load_label_map(args.labels), load_label_map(args.target), load_image(args.output))
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("apply", help="apply a trained model to target label maps")
    p.add_argument("--model", required=True, help="a folder made by `train`")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="target label map(s), same size as the image")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several: one PNG per target)")
    _add_device(p)
    _add_output_options(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("run", help="train (or reuse a trained model) and apply: IMAGE LABELS TARGET... --out")
    p.add_argument("image")
    p.add_argument("labels")
    p.add_argument("targets", nargs="+", metavar="TARGET")
    p.add_argument("--out", required=True, help="output file (one target) or folder (several)")
    p.add_argument("--model", help="folder for the model (default: a cache keyed by the inputs and settings)")
    p.add_argument("--retrain", action="store_true", help="train even if a cached model exists")
    _add_training_options(p)
    _add_output_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("eval", help="quality measures of a result, as JSON")
    p.add_argument("image")
    p.add_argument("labels")
    p.add_argument("target")
    p.add_argument("output")
    p.add_argument("--out", help="also write the JSON to this file")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("download-weights", help="download torchvision's ImageNet VGG19 weights (needs internet)")
    p.set_defaults(func=cmd_download_weights)
