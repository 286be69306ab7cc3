"""The privacy-budget ledger: every differential-privacy spend of a project, debited before release.

Revision ID: 0002_budget_ledger
Revises: 0001_registry
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_budget_ledger"
down_revision = "0001_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_spends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("researcher", sa.String(64), nullable=False),
        # Whole nano-rho: exact sums, so a spend equal to the remainder is never refused by
        # floating-point rounding (OpenDP issue 2789 shows the failure this avoids).
        sa.Column("nano_rho", sa.BigInteger, nullable=False),
        # Whole femto-delta spent releasing group keys that are not public (by DP threshold).
        sa.Column("femto_delta", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("nano_rho > 0", name="spend_positive"),
        sa.CheckConstraint("femto_delta >= 0", name="delta_not_negative"),
    )
    op.create_index("budget_spends_project", "budget_spends", ["project_id"])


def downgrade() -> None:
    op.drop_index("budget_spends_project", "budget_spends")
    op.drop_table("budget_spends")
