"""customer_search_grams: no foreign key to customers

The table's key is (gram, customer_id), with no index on customer_id alone. Its foreign key cost 18 checks for
each customer written, and its ON DELETE CASCADE looked for a deleted customer's rows through the whole table:
1.3 s for each deletion at a million customers on PostgreSQL. customers.search_index removes a customer's
rows by their whole key instead (the grams come from customers.search_text). On SQLite the table is empty
(the grams live in FTS5 since 0012).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "fk_customer_search_grams_customer_id_customers"


def upgrade() -> None:
    with op.batch_alter_table("customer_search_grams") as batch_op:
        batch_op.drop_constraint(NAME, type_="foreignkey")


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM customer_search_grams WHERE customer_id NOT IN (SELECT id FROM customers)")
    )
    with op.batch_alter_table("customer_search_grams") as batch_op:
        batch_op.create_foreign_key(NAME, "customers", ["customer_id"], ["id"], ondelete="CASCADE")
