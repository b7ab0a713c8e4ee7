"""Where each teacher's roster row came from (issue 9): ``check`` names the file and line.

Revision ID: 0006
Revises: 0005

* ``teachers.source``: ``teachers.csv:3`` (the file and physical line of the row last
  imported); "" for teachers imported before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teachers") as batch:
        batch.add_column(sa.Column("source", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("teachers") as batch:
        batch.drop_column("source")
