"""Hub sessions bound to a Unix account: a token works only from the account it was issued to.

Revision ID: 0006_hub_session_account
Revises: 0005_hub_sessions
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_hub_session_account"
down_revision = "0005_hub_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The uid of the researcher's server account. The environment API, on its Unix socket,
    # compares it with the caller's SO_PEERCRED uid; a token stolen from a kernel is useless
    # from any other account. Null: a token not bound to an account (issued outside the hub).
    with op.batch_alter_table("hub_sessions") as table:
        table.add_column(sa.Column("unix_uid", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_sessions") as table:
        table.drop_column("unix_uid")
