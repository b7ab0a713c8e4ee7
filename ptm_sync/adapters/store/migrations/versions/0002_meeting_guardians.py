"""Every guardian of a meeting's student is a party of the meeting, with their own answer.

Revision ID: 0002
Revises: 0001

Creates ``meeting_guardians`` and gives each existing meeting one row for its guardian
(``meetings.guardian_id``, which stays as the primary guardian), carrying the meeting's
answer so far: PARTSTAT and the SEQUENCE / DTSTAMP of the last reply applied, which the
ordering rule now reads per attendee (DESIGN §4).
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_guardians",
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("guardian_id", sa.Integer(), sa.ForeignKey("guardians.id"), primary_key=True),
        sa.Column("partstat", sa.String(20), nullable=False, server_default="NEEDS-ACTION"),
        sa.Column("reply_sequence", sa.Integer(), nullable=True),
        sa.Column("reply_dtstamp", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_meeting_guardians_guardian", "meeting_guardians", ["guardian_id"])
    # The values are copied as stored: both columns of reply_dtstamp have the same type.
    op.execute(
        "INSERT INTO meeting_guardians "
        "(meeting_id, guardian_id, partstat, reply_sequence, reply_dtstamp) "
        "SELECT id, guardian_id, partstat, reply_sequence, reply_dtstamp FROM meetings"
    )


def downgrade() -> None:
    op.drop_index("ix_meeting_guardians_guardian", table_name="meeting_guardians")
    op.drop_table("meeting_guardians")
