"""analytics

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kokyaku.db  # noqa: F401

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_scores",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("p_alive", sa.Float(), nullable=False),
        sa.Column("expected_90d", sa.Float(), nullable=False),
        sa.Column("expected_365d", sa.Float(), nullable=False),
        sa.Column("clv_12m", sa.BigInteger(), nullable=False),
        sa.Column("churn_band", sa.String(length=6), nullable=False),
        sa.Column("model", sa.String(length=12), nullable=False),
        sa.Column("scored_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_scores_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_scores")),
    )
    with op.batch_alter_table("customer_scores", schema=None) as batch_op:
        batch_op.create_index("ix_customer_scores_clv_12m", ["clv_12m"], unique=False)
        batch_op.create_index("ix_customer_scores_p_alive", ["p_alive"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_scores_p_alive")
        batch_op.drop_index("ix_customer_scores_clv_12m")
    op.drop_table("customer_scores")
