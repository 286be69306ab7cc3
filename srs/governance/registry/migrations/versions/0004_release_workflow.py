"""The release workflow: requests, output files, blinded review votes, comments, signed releases.

Revision ID: 0004_release_workflow
Revises: 0003_outputs
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_release_workflow"
down_revision = "0003_outputs"
branch_labels = None
depends_on = None

REQUEST_STATES = (
    "draft",
    "submitted",
    "partially_reviewed",
    "reviewed",
    "approved",
    "changes_requested",
    "rejected",
    "released",
    "withdrawn",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "release_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("review_round", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", REQUEST_STATES), name="request_status"),
    )
    op.create_index("release_requests_project", "release_requests", ["project_id"])
    with op.batch_alter_table("outputs") as batch:
        batch.add_column(
            sa.Column(
                "request_id",
                sa.Integer,
                sa.ForeignKey("release_requests.id", name="outputs_request"),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("exception_justification", sa.Text, nullable=True))
    op.create_table(
        "output_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "output_id", sa.Integer, sa.ForeignKey("outputs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.UniqueConstraint("output_id", "name"),
    )
    op.create_table(
        "review_votes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("release_requests.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "output_id", sa.Integer, sa.ForeignKey("outputs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("review_round", sa.Integer, nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("output_id", "reviewer", "review_round"),
        sa.CheckConstraint(
            _in("decision", ("approve", "reject", "request_changes")), name="vote_decision"
        ),
    )
    op.create_index("review_votes_request", "review_votes", ["request_id"])
    op.create_table(
        "output_comments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("release_requests.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "output_id", sa.Integer, sa.ForeignKey("outputs.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("visibility", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            _in("visibility", ("checkers", "researcher")), name="comment_visibility"
        ),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        # One release per request: a second `release create` cannot publish it twice.
        sa.Column(
            "request_id",
            sa.Integer,
            sa.ForeignKey("release_requests.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column(
            "project_id",
            sa.Integer,
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("bundle_name", sa.String(200), nullable=False, unique=True),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("signing_key_fingerprint", sa.String(64), nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("releases")
    op.drop_table("output_comments")
    op.drop_index("review_votes_request", "review_votes")
    op.drop_table("review_votes")
    op.drop_table("output_files")
    with op.batch_alter_table("outputs") as batch:
        batch.drop_column("exception_justification")
        batch.drop_column("request_id")
    op.drop_index("release_requests_project", "release_requests")
    op.drop_table("release_requests")
