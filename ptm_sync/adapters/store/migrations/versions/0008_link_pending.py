"""The confirmation that waits for the video link (issue 15).

Revision ID: 0008
Revises: 0007

* ``meetings.link_pending``: the parents' confirmation of this meeting waits for its video
  link, made after confirmation by the teacher's calendar system (Teams, Meet) or by the
  outbox (Zoom); the decision on the link sends it (DESIGN §3 "In person or video").  False
  for every meeting before: their confirmations went already.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, never a batch copy of ``meetings``: on SQLite a copy would drop and
    # re-create the table, and the ON DELETE CASCADE of its guardians' rows would empty them.
    op.add_column(
        "meetings",
        sa.Column("link_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("meetings", "link_pending")
