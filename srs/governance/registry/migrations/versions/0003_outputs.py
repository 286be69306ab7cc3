"""Outputs: what researchers want to take out, with evidence; a DP result names its budget spend.

Revision ID: 0003_outputs
Revises: 0002_budget_ledger
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_outputs"
down_revision = "0002_budget_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("differentially_private", sa.Boolean, nullable=False),
        # One spend pays for at most one DP result, and every DP result names its spend.
        sa.Column("budget_spend_id", sa.Integer, sa.ForeignKey("budget_spends.id"), unique=True),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("controls", sa.Text, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('table', 'model', 'figure', 'dp_result', 'custom')", name="output_kind"
        ),
        sa.CheckConstraint(
            "(kind = 'dp_result') = (budget_spend_id IS NOT NULL)", name="dp_result_has_spend"
        ),
    )
    op.create_index("outputs_project", "outputs", ["project_id"])


def downgrade() -> None:
    op.drop_index("outputs_project", "outputs")
    op.drop_table("outputs")
