"""merges

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kokyaku.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On SQLite, batch mode copies the customers table to add the foreign key (an inline REFERENCES added
    # by ALTER TABLE loses its ON DELETE when reflected); migrations run with foreign keys off, so the copy
    # and the DROP of the old table touch no child rows.
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_customers_merged_into_id"), ["merged_into_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_customers_merged_into_id_customers"), "customers",
            ["merged_into_id"], ["id"], ondelete="CASCADE",
        )  # fmt: skip

    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("merged_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("undone_at", kokyaku.db.UTCDateTime(), nullable=True),
        sa.Column("undone_by_label", sa.String(length=254), nullable=True),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("identity_ids", sa.JSON(), nullable=False),
        sa.Column("interests", sa.JSON(), nullable=False),
        sa.Column("contact_ids", sa.JSON(), nullable=False),
        sa.Column("filled", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_customer_merges_actor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merged_id"],
            ["customers.id"],
            name=op.f("fk_customer_merges_merged_id_customers"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["survivor_id"],
            ["customers.id"],
            name=op.f("fk_customer_merges_survivor_id_customers"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_merges")),
    )
    op.create_index(op.f("ix_customer_merges_merged_id"), "customer_merges", ["merged_id"], unique=False)
    op.create_index(op.f("ix_customer_merges_survivor_id"), "customer_merges", ["survivor_id"], unique=False)

    op.create_table(
        "duplicate_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_a_id", sa.Integer(), nullable=False),
        sa.Column("customer_b_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("found_at", kokyaku.db.UTCDateTime(), nullable=False),
        sa.Column("dismissed_at", kokyaku.db.UTCDateTime(), nullable=True),
        sa.Column("dismissed_by_label", sa.String(length=254), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_a_id"],
            ["customers.id"],
            name=op.f("fk_duplicate_candidates_customer_a_id_customers"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["customer_b_id"],
            ["customers.id"],
            name=op.f("fk_duplicate_candidates_customer_b_id_customers"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_candidates")),
        sa.UniqueConstraint("customer_a_id", "customer_b_id", name="uq_duplicate_candidates_pair"),
    )
    op.create_index(
        op.f("ix_duplicate_candidates_customer_b_id"), "duplicate_candidates", ["customer_b_id"], unique=False
    )
    op.create_index(
        "ix_duplicate_candidates_status_score_id",
        "duplicate_candidates",
        ["status", "score", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_duplicate_candidates_status_score_id", table_name="duplicate_candidates")
    op.drop_index(op.f("ix_duplicate_candidates_customer_b_id"), table_name="duplicate_candidates")
    op.drop_table("duplicate_candidates")
    op.drop_index(op.f("ix_customer_merges_survivor_id"), table_name="customer_merges")
    op.drop_index(op.f("ix_customer_merges_merged_id"), table_name="customer_merges")
    op.drop_table("customer_merges")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_customers_merged_into_id_customers"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_customers_merged_into_id"))
        batch_op.drop_column("merged_into_id")
