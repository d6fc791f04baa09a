"""Entry point the Pulumi CLI runs (`runpy` on this folder); the pack itself is in pack.py.

Kept to one import so mypy, which checks pack.py, never sees two modules named `__main__`.
"""

import pack  # noqa: F401 - importing it constructs the PolicyPack and serves the engine
