"""Exit codes and the one-line error output every `python -m runtime` command keeps to.

One floor below the command line (`runtime/cli.py`), so the verb modules of each area
(`runtime/backup/commands.py`, `runtime/pitr/commands.py`) return codes without importing it:
0 done as asked; 1 the operation failed; 2 bad usage or configuration (every `ConfigError`);
3 done, but not exactly as asked (e.g. restore fell back to an older backup); 130 interrupted.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DEGRADED = 3
EXIT_INTERRUPTED = 130


def error(message: str) -> None:
    """One line on stderr, whatever the message held (every command's error output)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
