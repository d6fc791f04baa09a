"""Alembic's environment for a project migrated by `python -m runtime migrate -- alembic ...`.

The runner gives the command the primary's connection as libpq variables (PGHOST, PGPORT,
PGDATABASE, PGUSER, PGPASSWORD...) and the session bounds in PGOPTIONS (lock_timeout,
statement_timeout). An empty `postgresql+psycopg://` URL makes SQLAlchemy call psycopg with
no arguments, and libpq reads all of those: the address, the password and the bounds.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = None  # a project with SQLAlchemy models sets its MetaData here


def run_migrations_online() -> None:
    engine = create_engine("postgresql+psycopg://", poolclass=pool.NullPool)
    with engine.connect() as connection:
        # PostgreSQL's DDL is transactional: one transaction for the whole run, so a failed
        # revision leaves none of this run's revisions applied.
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not used here: migrate runs against the primary")
run_migrations_online()
