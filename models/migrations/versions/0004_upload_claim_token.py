"""upload claim token

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 22:39:51.658921
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gemini_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gemini_files", schema=None) as batch_op:
        batch_op.drop_column("claim")
