"""`semantic-analogy`: the engine's commands (train, apply, run, eval, ...), the daemon's (serve,
keys) and the client's (submit, result, watch, ping, status, models).

Building the parser imports none of torch, numpy or the daemon's server: each command
imports what it computes with when it runs (tests/test_startup.py keeps it so).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    from semantic_analogy.daemon import cli as daemon_cli
    from semantic_analogy.engine import cli as engine_cli
    from semantic_analogy.protocol import commands as client_commands

    parser = argparse.ArgumentParser(
        prog="semantic-analogy",
        description="Semantic image analogy: re-arrange a photo to an edited label layout (P -> P' :: I -> I').",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    engine_cli.add_commands(sub)
    daemon_cli.add_commands(sub)
    client_commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None, *, quick_exit: bool = False) -> int:
    """Run one command; its exit code. `quick_exit` (the console script): once a one-shot engine
    command has returned, leave the process at once instead of tearing torch down (see _leave)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_configures_logging", False):
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(levelname)s: %(message)s" if not args.verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s",
            stream=sys.stderr,
        )
    from semantic_analogy.engine.errors import EngineError

    try:
        code = args.func(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    if quick_exit and getattr(args, "quick_exit", False):
        _leave(code)
    return code


def _leave(code: int) -> None:
    """Exit now, skipping the interpreter's teardown of every loaded module: with torch loaded it
    took ~0.4 s of a 256-px `run`'s 2.7 s (BENCHMARKS.md). Only after the engine's one-shot
    commands: their files are written and closed, no thread or child process is left, and the
    logs and standard streams are flushed here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`): as at a normal exit
            code = code or 120
    os._exit(code)


def entry() -> None:
    """The `semantic-analogy` console script."""
    sys.exit(main(quick_exit=True))
