"""a spent refresh token keeps its successor, encrypted, for the retry window

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("successor_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("successor_until", sa.Float(), nullable=True))
        batch_op.create_index(
            "ix_refresh_tokens_successor_until", ["successor_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_tokens_successor_until")
        batch_op.drop_column("successor_until")
        batch_op.drop_column("successor_enc")
        batch_op.drop_column("parent_hash")
