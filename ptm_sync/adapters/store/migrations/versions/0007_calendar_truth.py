"""Calendar truth (issue 14): spans without data, each calendar's own problem, the owner.

Revision ID: 0007
Revises: 0006

* ``busy_times.unknown``: the span is one the calendar system had no free/busy data for
  (EWS NoData, Graph ``unknown``, Google without ``busy``): it offers no slot and the
  matrix shows it ``not_synced`` (DESIGN §5, §7).  False for every row before.
* ``calendars.problem``: the kind of the last read's problem (``not_found``,
  ``access_denied``, ``no_data``, ``auth``, ``unavailable``, ``failed``), counted per
  account by /healthz and /metrics; NULL when the last read was whole.
* ``calendars.owner_addresses``: the calendar owner's calendar-user addresses as the
  server gave them (RFC 6638 §2.4.1), space-separated, to know the teacher among an
  invitation's attendees; NULL until a server names them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("busy_times") as batch:
        batch.add_column(
            sa.Column("unknown", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("calendars") as batch:
        batch.add_column(sa.Column("problem", sa.String(32), nullable=True))
        batch.add_column(sa.Column("owner_addresses", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendars") as batch:
        batch.drop_column("owner_addresses")
        batch.drop_column("problem")
    with op.batch_alter_table("busy_times") as batch:
        batch.drop_column("unknown")
