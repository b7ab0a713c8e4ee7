"""Outbox leases name their owner (issue 7): a restart takes over a dead process's rows.

Revision ID: 0004
Revises: 0003

* ``outbox.claimed_by``: the process holding the lease (``host/pid/start``), so that a
  restarted ``outbox flush`` or daemon on the same host resumes the rows of a process that
  is known dead instead of waiting for the lease to run out.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
