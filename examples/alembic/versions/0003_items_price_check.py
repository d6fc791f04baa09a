"""Check that prices are not negative: added NOT VALID (no scan under the lock), then
validated (a scan that lets reads and writes go on).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE items ADD CONSTRAINT items_price_not_negative "
        "CHECK (price_cents >= 0) NOT VALID"
    )
    op.execute("ALTER TABLE items VALIDATE CONSTRAINT items_price_not_negative")


def downgrade() -> None:
    op.drop_constraint("items_price_not_negative", "items", type_="check")
