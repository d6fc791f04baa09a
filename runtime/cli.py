"""`python -m runtime`: one argparse program with a subcommand group per runtime area.

A group is any `runtime/<area>/cli.py` that defines `register(subparsers)`; it adds its
parser and sets `run=<function(args) -> exit code>` on it. Groups are discovered, so adding
one (e.g. `serve`) never edits this file or another group.

Exit codes every group keeps to, so scripts can rely on them:
0 done as asked; 1 the operation failed; 2 bad usage or configuration;
3 done, but not exactly as asked (e.g. restore fell back to an older backup); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence

import runtime

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEGRADED = 3
EXIT_INTERRUPTED = 130


def _group_modules() -> list[str]:
    found = []
    for info in pkgutil.iter_modules(runtime.__path__):
        if info.ispkg and importlib.util.find_spec(f"runtime.{info.name}.cli") is not None:
            found.append(f"runtime.{info.name}.cli")
    return sorted(found)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime", description="The platform runtime's command line."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _group_modules():
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
