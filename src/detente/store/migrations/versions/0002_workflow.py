"""workflow: tracked messages, case events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("counterparty", sa.String(length=32), nullable=False),
        sa.Column("agreement", sa.String(length=80), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("refers", sa.String(length=36), nullable=True),
        sa.Column("severity", sa.Integer(), nullable=True),
        sa.Column("urgency", sa.String(length=10), nullable=True),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.Column("ack_due", sa.BigInteger(), nullable=True),
        sa.Column("acked_at", sa.BigInteger(), nullable=True),
        sa.Column("ack_message", sa.String(length=36), nullable=True),
        sa.Column("ack_officer", sa.String(length=200), nullable=True),
        sa.Column("answer_due", sa.BigInteger(), nullable=True),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
        sa.Column("answer_message", sa.String(length=36), nullable=True),
        sa.Column("answer_status", sa.String(length=24), nullable=True),
        sa.Column("preserved_until", sa.BigInteger(), nullable=True),
        sa.Column("missed_at", sa.BigInteger(), nullable=True),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("next_check", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    with op.batch_alter_table("tracked", schema=None) as batch_op:
        batch_op.create_index("ix_tracked_next_check", ["next_check"], unique=False)
        batch_op.create_index(
            "ix_tracked_counterparty", ["counterparty", "type", "sent_at"], unique=False
        )
        batch_op.create_index("ix_tracked_case", ["case_id"], unique=False)
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index("ix_case_events_case", ["case_id", "id"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_case", ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_case")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_case")
    op.drop_table("case_events")
    with op.batch_alter_table("tracked", schema=None) as batch_op:
        batch_op.drop_index("ix_tracked_case")
        batch_op.drop_index("ix_tracked_counterparty")
        batch_op.drop_index("ix_tracked_next_check")
    op.drop_table("tracked")
