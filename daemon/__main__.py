"""`python -m semantic_analogy.daemon COMMAND`: the daemon's commands without the main CLI."""

import argparse
import sys

from ..protocol import commands as client_commands
from .cli import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m semantic_analogy.daemon",
                                     description="The engine daemon and its client commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub)
    client_commands.add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
