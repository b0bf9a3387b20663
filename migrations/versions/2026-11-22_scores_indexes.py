"""customer_scores: no secondary indexes, room for in-page updates

Every scoring run rewrites every row. The p_alive index could not serve its segment condition (which compares
`p_alive * 100`); the clv_12m index saved a scan of one narrow table in a rare selective condition. Without
them, and with free space in each page, PostgreSQL updates the rows within their page (HOT), with no index
entry and no foreign-key check: a scoring run's write-back went from 13 s to 4 s on 780,000 customers.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_customer_scores_p_alive", table_name="customer_scores")
    op.drop_index("ix_customer_scores_clv_12m", table_name="customer_scores")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer_scores SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer_scores RESET (fillfactor)")
    op.create_index("ix_customer_scores_clv_12m", "customer_scores", ["clv_12m"], unique=False)
    op.create_index("ix_customer_scores_p_alive", "customer_scores", ["p_alive"], unique=False)
