"""School feeds whose busy times block every teacher (issue 8: ``blocks = "everyone"``).

Revision ID: 0005
Revises: 0004

* ``school_feeds``: one row per ICS account with ``blocks = "everyone"``, with its sync
  state (the feed's ETag / Last-Modified as the token, when it was read, the last error).
* ``school_busy``: the feed's busy intervals in the synced window (UTC), read with every
  teacher's own busy times.
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "school_feeds",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sync_token", sa.Text(), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "school_busy",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account",
            sa.String(64),
            sa.ForeignKey("school_feeds.account", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("end", UtcDateTime(), nullable=False),
        sa.Column("tentative", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_school_busy_start", "school_busy", ["start"])
    op.create_index("ix_school_busy_account", "school_busy", ["account"])


def downgrade() -> None:
    op.drop_table("school_busy")
    op.drop_table("school_feeds")
