"""Add items.price: a nullable column with a default, which PostgreSQL 11+ adds without
rewriting the table (a brief ACCESS EXCLUSIVE lock, bounded by lock_timeout).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("items", sa.Column("price_cents", sa.Integer, server_default="0"))


def downgrade() -> None:
    op.drop_column("items", "price_cents")
