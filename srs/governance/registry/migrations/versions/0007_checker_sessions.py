"""Checker-UI sessions held by the server: the cookie carries only a random session id.

Revision ID: 0007_checker_sessions
Revises: 0006_hub_session_account
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_checker_sessions"
down_revision = "0006_hub_session_account"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checker_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        # Only the SHA-256 of the session id: a copy of the database signs no one in.
        sa.Column("session_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(200), nullable=True),
    )
    op.create_index("checker_sessions_username", "checker_sessions", ["username"])


def downgrade() -> None:
    op.drop_index("checker_sessions_username", "checker_sessions")
    op.drop_table("checker_sessions")
