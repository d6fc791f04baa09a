"""Uploads holding a secret belong to their reader: a declared owner, and a mode that gives
the group at most read and others nothing (docs/secret-files.md).

Without a declared owner and mode the provider writes an upload as root, 0644, readable by
every process in the container. Secrets are found by content (tests.stack_harness
`secret_uploads`), so a new upload carrying a password is held to the rule without anyone
remembering to mark it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.stack_harness import (
    ROOT,
    StackRun,
    mock_image_id,
    secret_uploads,
    stack_run,
    unwrap,
)

DOC = ROOT / "docs" / "secret-files.md"
# group: read at most; others: nothing (0400, 0440 and 0600 pass; 0644, 0460, 0604 do not)
OPEN_BITS = 0o037


def violations(run: StackRun) -> list[str]:
    """One message per secret upload without a declared owner or with too open a mode."""
    found = []
    for service, upload in secret_uploads(run):
        where = f"{run.stack}: {service}:{upload['file']}"
        if upload.get("owner") is None:
            found.append(f"{where} holds a secret and declares no owner (its reader's uid)")
        mode = upload.get("permissions")
        if mode is None or int(str(mode), 8) & OPEN_BITS:
            found.append(
                f"{where} holds a secret with mode {mode or '0644 (the default)'}: "
                "allowed 0400, 0440 or 0600 (group read at most, others nothing)"
            )
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_upload_holding_a_secret_declares_its_reader_and_a_closed_mode(stack: str) -> None:
    assert violations(stack_run(stack)) == []


def test_the_search_finds_every_kind_of_secret_upload() -> None:
    """The rule is only as good as the search: passwords, configs embedding them, keys."""
    dev = {(s, u["file"]) for s, u in secret_uploads(stack_run("dev"))}
    prod = {(s, u["file"]) for s, u in secret_uploads(stack_run("prod"))}
    assert {
        ("redis", "/usr/local/etc/redis/redis.conf"),
        ("redis", "/run/secrets/redis-password"),
        ("postgres", "/run/secrets/postgres-password"),
        ("postgres-exporter", "/run/secrets/postgres-password"),
        ("redis-exporter", "/run/secrets/redis-passwords.json"),
        ("grafana", "/run/secrets/grafana-admin-password"),
        ("runtime", "/run/secrets/app_config.json"),
        ("nginx", "/etc/nginx/tls/tls.key"),
    } <= dev
    # prod's secret settings: the webhook URLs in Alertmanager's configuration
    assert ("alertmanager", "/etc/alertmanager/alertmanager.yml") in prod - dev


def _with_upload(run: StackRun, service: str, path: str, **changes: Any) -> StackRun:
    """A copy of `run` with one upload's inputs changed (None removes the input)."""
    broken = copy.deepcopy(run)
    record = broken.containers()[service]
    record.inputs["uploads"] = unwrap(record.inputs["uploads"])
    (upload,) = [u for u in record.inputs["uploads"] if u["file"] == path]
    for key, value in changes.items():
        if value is None:
            upload.pop(key, None)
        else:
            upload[key] = value
    return broken


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"owner": None, "group": None}, "declares no owner"),
        ({"permissions": None}, "mode 0644 (the default)"),
        ({"permissions": "0644"}, "mode 0644: allowed 0400, 0440 or 0600"),
        ({"permissions": "0460"}, "mode 0460"),
    ],
)
def test_a_secret_upload_without_owner_or_with_an_open_mode_is_reported(
    changes: dict[str, Any], expected: str
) -> None:
    path = "/usr/local/etc/redis/redis.conf"
    broken = _with_upload(stack_run("dev"), "redis", path, **changes)
    found = violations(broken)
    assert len(found) == 1 and expected in found[0], found
    assert f"redis:{path}" in found[0]


def _doc_rows() -> dict[tuple[str, str], tuple[str, str]]:
    """(service, file) -> (owner:group, mode) from the table in docs/secret-files.md."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("/"):
            service = cells[0].split()[0]
            owner, mode = cells[4].split()
            rows[(service, cells[1])] = (owner, mode)
    return rows


def test_the_docs_table_gives_each_secret_files_declared_owner_and_mode() -> None:
    """One source: what the table says is what the stack declares, for every secret upload."""
    rows = _doc_rows()
    seen = set()
    for stack in ("dev", "prod"):
        for service, upload in secret_uploads(stack_run(stack)):
            key = (service, upload["file"])
            assert key in rows, f"docs/secret-files.md has no row for {service}:{upload['file']}"
            declared = f"{upload['owner']}:{upload['group']}", upload["permissions"]
            assert rows[key] == declared, key
            seen.add(key)
    assert set(rows) == seen, f"rows for uploads that hold no secret: {set(rows) - seen}"
    assert not re.search(r"\bDESIGN\.md|\bSTYLE\.md", DOC.read_text())


def test_the_table_names_the_pinned_image_of_each_upstream_reader() -> None:
    """A tag bump must revisit the reader's uid: the table names the tag the stack pins."""
    text = DOC.read_text()
    run = stack_run("dev")
    pulled = {
        mock_image_id(r.type, r.name): unwrap(r.inputs)["name"]
        for r in run.of_type("docker:index/remoteImage:RemoteImage")
    }
    for service in ("redis", "postgres-exporter", "redis-exporter", "grafana", "alertmanager"):
        image = pulled[unwrap(run.containers()[service].inputs)["image"]]
        assert f"| {image} |" in text, f"{service}: docs/secret-files.md does not name {image}"
