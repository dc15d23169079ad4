"""`semantic-analogy`: the engine's commands (train, apply, run, eval, ...), the daemon's (serve,
keys) and the client's (submit, result, watch, ping, status, models).

Building the parser imports none of torch, numpy or the daemon's server: each command
imports what it computes with when it runs (tests/test_startup.py keeps it so).
"""

from __future__ import annotations

import argparse
import logging
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


def main(argv: list[str] | None = None) -> int:
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
        return args.func(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
