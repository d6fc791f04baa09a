"""docs/runbooks.md: the alerts' runbooks, then the SLO burn-rate alerts'.

`.venv/bin/python -m components.monitoring.runbooks > docs/runbooks.md`; a test keeps the
file in step with the rules. It sits above both rule sources, which know nothing of it.
"""

from __future__ import annotations

from components.monitoring import alerts, slo


def runbooks_markdown() -> str:
    """The whole of docs/runbooks.md."""
    return alerts.runbooks_markdown() + slo.runbooks_markdown()


if __name__ == "__main__":
    print(runbooks_markdown(), end="")
