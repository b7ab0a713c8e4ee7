"""The version of the teacher's event we know (issue 15: DESIGN §3's 412 rule).

Revision ID: 0009
Revises: 0008

* ``meetings.remote_start`` / ``remote_end``: the time the event in the teacher's calendar
  was at in the version we know (our last write, or the teacher's move we followed), UTC.  A
  teacher's version at another time is a move, at this time an edit.  NULL before: such
  meetings are compared with their own time, as before.
* ``meetings.remote_edited``: the teacher edited the event's text; our writes keep their
  summary and description.  False for every meeting before.
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, never a batch copy of ``meetings`` (see 0008: a copy on SQLite
    # would re-create the table and its guardians' rows would cascade away).
    op.add_column("meetings", sa.Column("remote_start", UtcDateTime(), nullable=True))
    op.add_column("meetings", sa.Column("remote_end", UtcDateTime(), nullable=True))
    op.add_column(
        "meetings",
        sa.Column("remote_edited", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    for column in ("remote_edited", "remote_end", "remote_start"):
        op.drop_column("meetings", column)
