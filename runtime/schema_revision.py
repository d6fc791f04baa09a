"""The schema revision a release's code expects, read from its Alembic script directory.

The cache puts this revision into every key (docs/cache-generations.md). It must be the head
of the migrations *shipped with the code*, not the database's current revision: after a
migration, a process still running the previous release would otherwise write old shapes
under the new namespace. Alembic is not imported: its revision files are read with `ast`
(module-level `revision` and `down_revision` assignments, as Alembic's templates write
them), so the cache's import path stays as small as it was.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from runtime.errors import ConfigError
from runtime.settings import SCHEMA_REVISION, SCHEMA_REVISION_RULE, CacheSettings


def _literal(node: ast.expr | None) -> object:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _UNREADABLE


_UNREADABLE = object()


def _revision_of(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """(revision, down revisions) declared by one revision file, None if it declares none."""
    found: dict[str, object] = {}
    for stmt in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        value: ast.expr | None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = _literal(value)
    revision, down = found.get("revision"), found.get("down_revision")
    if revision is None:
        return None
    if not isinstance(revision, str) or not re.fullmatch(SCHEMA_REVISION, revision):
        raise ConfigError(f"{path}: revision", revision, SCHEMA_REVISION_RULE)
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    raise ConfigError(f"{path}: down_revision", down, "None, a revision or a tuple of them")


def alembic_head(script_dir: Path) -> str:
    """The head revision of an Alembic script directory (the one holding `env.py` and
    `versions/`, or `versions/` itself). Several heads (an unmerged branch) are joined with
    '+' in sorted order, so every process of one release still agrees on the value."""
    versions = script_dir / "versions" if (script_dir / "versions").is_dir() else script_dir
    if not versions.is_dir():
        raise ConfigError("cache.alembic_script_dir", str(script_dir), "an existing directory")
    revisions: dict[str, tuple[str, ...]] = {}
    for path in sorted(versions.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__init__.py":
            continue
        declared = _revision_of(path)
        if declared is not None:
            revisions[declared[0]] = declared[1]
    if not revisions:
        raise ConfigError(
            "cache.alembic_script_dir", str(script_dir), "a directory with Alembic revisions"
        )
    referenced = {down for downs in revisions.values() for down in downs}
    head = "+".join(sorted(set(revisions) - referenced))
    if not re.fullmatch(SCHEMA_REVISION, head):
        raise ConfigError("cache.alembic_script_dir (its heads)", head, SCHEMA_REVISION_RULE)
    return head


def expected_revision(cache: CacheSettings) -> str | None:
    """`cache.schema_revision`, else the head of `cache.alembic_script_dir`, else None (the
    cache's keys then carry no revision, as before)."""
    if cache.schema_revision is not None:
        return cache.schema_revision
    if cache.alembic_script_dir is not None:
        return alembic_head(cache.alembic_script_dir)
    return None
