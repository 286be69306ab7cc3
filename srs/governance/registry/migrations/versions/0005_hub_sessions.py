"""Hub sessions: the per-session tokens a researcher's Jupyter server uses with the environment API.

Revision ID: 0005_hub_sessions
Revises: 0004_release_workflow
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_hub_sessions"
down_revision = "0004_release_workflow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        # Only the SHA-256 of the token: a copy of the database does not open anyone's session.
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("project_code", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("expires_at > created_at", name="hub_session_lifetime"),
    )
    op.create_index("hub_sessions_user_project", "hub_sessions", ["username", "project_code"])


def downgrade() -> None:
    op.drop_index("hub_sessions_user_project", "hub_sessions")
    op.drop_table("hub_sessions")
