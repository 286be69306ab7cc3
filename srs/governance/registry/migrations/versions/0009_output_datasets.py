"""The dataset versions each output was made from (``outputs.datasets_used``).

Revision ID: 0009_output_datasets
Revises: 0008_agreements
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_output_datasets"
down_revision = "0008_agreements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outputs") as batch:
        batch.add_column(sa.Column("datasets_used", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("outputs") as batch:
        batch.drop_column("datasets_used")
