"""interop: STIX objects for the TAXII server, TAXII status resources, per-user TLP grants

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stix_objects",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=250), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("version_us", sa.BigInteger(), nullable=False),
        sa.Column("date_added", sa.BigInteger(), nullable=False),
        sa.Column("is_last", sa.Boolean(), nullable=False),
        sa.Column("tlp", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("object", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("scope", "stix_id", "version_us", name="uq_stix_objects_version"),
    )
    with op.batch_alter_table("stix_objects", schema=None) as batch_op:
        batch_op.create_index("ix_stix_objects_scope_seq", ["scope", "seq"], unique=False)
        batch_op.create_index("ix_stix_objects_scope_type", ["scope", "type", "seq"], unique=False)
        batch_op.create_index("ix_stix_objects_scope_added", ["scope", "date_added"], unique=False)
    op.create_table(
        "taxii_status",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("success_count", sa.Integer(), nullable=False),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("pending_count", sa.Integer(), nullable=False),
        sa.Column("details", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "taxii_grants",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("max_tlp", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("taxii_grants")
    op.drop_table("taxii_status")
    with op.batch_alter_table("stix_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_stix_objects_scope_added")
        batch_op.drop_index("ix_stix_objects_scope_type")
        batch_op.drop_index("ix_stix_objects_scope_seq")
    op.drop_table("stix_objects")
