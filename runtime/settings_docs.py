"""The environment-variable tables in `docs/`, generated from the settings' declarations.

`python -m runtime.settings_docs` rewrites every block between `<!-- env-table PREFIXES -->`
and `<!-- /env-table -->` in the files of `DOC_TABLES`; tests/test_settings_contract.py fails
when one is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from runtime.settings import declared


def _shown(default: Any) -> str:
    if default is None or default == {} or default == ():
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{default:g}`"
    if isinstance(default, tuple):
        return ", ".join(f"`{d}`" for d in default)
    return f"`{default}`"


def env_table(prefix: str) -> str:
    """The markdown table of the fields whose app_config path starts with one of `prefixes`
    (comma-separated, e.g. `pool.,cache.`): variable, app_config key, default, allowed, doc."""
    rows = [
        "| variable | app_config key | default | allowed | what it is |",
        "|---|---|---|---|---|",
    ]
    for _, _, key, default in declared():
        if not key.path or not any(key.path.startswith(p) for p in prefix.split(",")):
            continue
        variable = f"`{key.env}`" if key.env else "—"
        path = f"`{key.path}`" + "".join(f" (or `{a}`)" for a in key.also)
        allowed = key.rule.allowed.replace("|", "\\|")
        rows.append(f"| {variable} | {path} | {_shown(default)} | {allowed} | {key.doc} |")
    return "\n".join(rows) + "\n"


# The tables docs/ holds, between `<!-- env-table PREFIX -->` and `<!-- /env-table -->`.
DOC_TABLES = {
    "docs/runtime-pool-cache.md": "database.,redis.,pool.,cache.",
    "docs/runtime-backups.md": "backup.",
    "docs/runtime-monitoring.md": "monitoring.,alerting.",
    "docs/runtime-pitr.md": "pitr.",
    "docs/logs-traces.md": "telemetry.",
    "docs/migrations.md": "migrate.",
}


def render_docs(text: str) -> str:
    """`text` with every env-table block regenerated."""

    def fill(match: re.Match[str]) -> str:
        return f"{match.group(1)}\n{env_table(match.group(2))}{match.group(3)}"

    return re.sub(
        r"(<!-- env-table ([\w.,]+) -->)\n.*?(<!-- /env-table -->)", fill, text, flags=re.S
    )


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    for doc in DOC_TABLES:
        path = root / doc
        path.write_text(render_docs(path.read_text()))
        print(f"updated {doc}", file=sys.stderr)
