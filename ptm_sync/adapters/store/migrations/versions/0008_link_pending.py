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
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(
            sa.Column("link_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("link_pending")
