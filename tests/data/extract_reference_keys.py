"""How tests/data/*-keys.txt were made from the projects' own references (run once, by hand,
against git snapshots of grafana/loki v3.7.6, grafana/tempo v2.10.8, grafana/alloy v1.18.1):

    extract_reference_keys.py loki configuration.md > loki-3.7.6-keys.txt
    extract_reference_keys.py tempo manifest.md > tempo-2.10.8-keys.txt
    extract_reference_keys.py alloy COMPONENT.md ... > alloy-1.18.1-keys.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml


def loki(text: str) -> set[str]:
    """Every key name in docs/sources/shared/configuration.md's YAML blocks."""
    return set(re.findall(r"^\s*\[?([a-z0-9_]+):", text, flags=re.M))


def tempo(text: str) -> set[str]:
    """Every dotted path of the default config in docs/sources/tempo/configuration/manifest.md."""
    block = text.split("```yaml", 1)[1].split("```", 1)[0]
    found: set[str] = set()

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                found.add(prefix + str(k))
                walk(v, prefix + str(k) + ".")

    walk(yaml.safe_load(block), "")
    return found


def alloy(paths: list[str]) -> set[str]:
    """component: name, for every first-column name in a component doc's tables."""
    found = set()
    for p in paths:
        component = Path(p).stem
        for name in re.findall(r"^\|\s*\[?`([a-z0-9_.]+)`", Path(p).read_text(), flags=re.M):
            found.add(f"{component}: {name}")
    return found


if __name__ == "__main__":
    kind, *files = sys.argv[1:]
    keys = (
        alloy(files)
        if kind == "alloy"
        else (loki if kind == "loki" else tempo)(Path(files[0]).read_text())
    )
    print("\n".join(sorted(keys)))
