"""Documentation generated from the settings table (tests keep Pulumi.yaml and the README's
reference in sync with it; `python -m components.config [--markdown]` prints them)."""

from __future__ import annotations

import json
from typing import Any

from components.config.settings import SETTINGS


def pulumi_yaml_config() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml: every key typed, described and defaulted."""
    block: dict[str, dict[str, Any]] = {}
    for s in SETTINGS:
        entry: dict[str, Any] = {"type": s.kind, "description": s.description, "default": s.default}
        if s.kind == "array":
            entry["items"] = {"type": "string"}
        block[s.key] = entry
    return block


def markdown_reference() -> str:
    """The README's configuration reference table."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = json.dumps(s.default) if s.kind == "array" else f"`{s.default}`"
        if s.default == "":
            default = "(unset)"
        secret = " **Secret.**" if s.secret else ""
        rows.append(f"| `{s.key}` | {s.kind} | {default} | {s.description}{secret} |")
    return "\n".join(rows)
