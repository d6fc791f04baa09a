"""What both rule sources (alerts.py, slo.py) share: the runbook link and promtool's files.

Kept below both so neither imports the other: each alert links to `{runbook_url}#{anchor}`,
and each source writes its promtool cases through `promtool_test_files`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml

# The default of the runbookUrl setting (docs/runbooks.md on the project's site).
RUNBOOK_URL = "https://github.com/data-platform/data-platform/blob/main/docs/runbooks.md"


def runbook_link(runbook_url: str, anchor: str) -> str:
    """An alert's `runbook_url` annotation: its section of the runbooks."""
    return f"{runbook_url}#{anchor}"


def promtool_test_files(
    prefix: str, rules_path: str, tests: Mapping[str, Sequence[dict[str, object]]]
) -> dict[str, str]:
    """One promtool test file per evaluation interval: `{prefix}-{interval}.yml`."""
    return {
        f"{prefix}-{interval}.yml": yaml.safe_dump(
            {"rule_files": [rules_path], "evaluation_interval": interval, "tests": list(group)},
            sort_keys=False,
            width=120,
        )
        for interval, group in tests.items()
    }
