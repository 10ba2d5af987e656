"""operator console: audit events table, operators, client last use, list indexes

Revision ID: 0005
Revises: 0004 (0004_refresh_successor)
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("client_id", sa.String(length=2048), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("jti", sa.String(length=255), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("method", sa.String(length=255), nullable=True),
        sa.Column("audience", sa.String(length=2048), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=True),
        sa.Column("request_id", sa.String(length=255), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_timestamp", ["timestamp"], unique=False)
        batch_op.create_index("ix_audit_events_subject", ["subject", "id"], unique=False)
        batch_op.create_index("ix_audit_events_client_id", ["client_id", "id"], unique=False)
        batch_op.create_index("ix_audit_events_jti", ["jti"], unique=False)
        batch_op.create_index("ix_audit_events_tool", ["tool", "id"], unique=False)
        batch_op.create_index("ix_audit_events_outcome", ["outcome", "timestamp"], unique=False)
        batch_op.create_index("ix_audit_events_event", ["event", "timestamp"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operator_since", sa.Float(), nullable=True))

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))
        batch_op.create_index("ix_clients_created_at", ["created_at", "client_id"], unique=False)
    # Clients used before this column existed: their newest grant says when, so that
    # `clients prune` does not take them for never used.
    op.execute(
        "UPDATE clients SET last_used_at = (SELECT max(token_families.created_at) "
        "FROM token_families WHERE token_families.client_id = clients.client_id)"
    )

    # Lists per user and per client, newest first, a page at a time.
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_index("ix_token_families_subject")
        batch_op.drop_index("ix_token_families_client_id")
        batch_op.create_index("ix_token_families_subject", ["subject", "created_at"], unique=False)
        batch_op.create_index(
            "ix_token_families_client_id", ["client_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_token_families_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_index("ix_token_families_created_at")
        batch_op.drop_index("ix_token_families_client_id")
        batch_op.drop_index("ix_token_families_subject")
        batch_op.create_index("ix_token_families_client_id", ["client_id"], unique=False)
        batch_op.create_index("ix_token_families_subject", ["subject"], unique=False)

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_created_at")
        batch_op.drop_column("last_used_at")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("operator_since")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_event")
        batch_op.drop_index("ix_audit_events_outcome")
        batch_op.drop_index("ix_audit_events_tool")
        batch_op.drop_index("ix_audit_events_jti")
        batch_op.drop_index("ix_audit_events_client_id")
        batch_op.drop_index("ix_audit_events_subject")
        batch_op.drop_index("ix_audit_events_timestamp")

    op.drop_table("audit_events")
