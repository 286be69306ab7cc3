"""Data-sharing agreements (versioned terms), the agreements projects name, deliveries, and the
lineage, change summary and shredding of dataset versions.

Revision ID: 0008_agreements
Revises: 0007_checker_sessions
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_agreements"
down_revision = "0007_checker_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("reference", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.Column("end_reason", sa.Text, nullable=True),
    )
    op.create_table(
        "agreement_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "agreement_id",
            sa.Integer,
            sa.ForeignKey("agreements.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("terms", sa.JSON, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),
        sa.Column("change_note", sa.Text, nullable=False),
        sa.Column("terms_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("agreement_id", "version"),
    )
    op.create_table(
        "project_agreements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("agreement_id", sa.Integer, sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "agreement_id"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("agreement_id", sa.Integer, sa.ForeignKey("agreements.id"), nullable=False),
        sa.Column("agreement_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("rows_in", sa.Integer, nullable=False),
        sa.Column("rows_accepted", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("quality", sa.JSON, nullable=False),
        sa.Column("dataset_name", sa.String(200), nullable=False),
        sa.Column("dataset_version", sa.Integer, nullable=False),
        sa.Column("received_by", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("deliveries_source", "deliveries", ["source"])
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("purpose_category", sa.String(40), nullable=False, server_default="research")
        )
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("lineage", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("change_summary", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("shredded_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("shredded_reason")
        batch.drop_column("shredded_at")
        batch.drop_column("change_summary")
        batch.drop_column("lineage")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("purpose_category")
    op.drop_index("deliveries_source", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("project_agreements")
    op.drop_table("agreement_versions")
    op.drop_table("agreements")
