"""The booking core of issue 6: re-proposals, the waiting list, separated parents.

Revision ID: 0003
Revises: 0002

* ``meetings.replaces_id``: the meeting a re-proposal follows (its declined time is never
  offered again to that family);
* ``students.meeting_mode``: ``joint`` | ``separate`` from the roster ("" follows the
  period's default);
* ``waitlist``: families waiting for a teacher, served first come, first served.
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("meetings", sa.Column("replaces_id", sa.Integer(), nullable=True))
    # The core looks a family's meetings up by teacher and by student (admission, supersede).
    op.create_index("ix_meetings_teacher_period", "meetings", ["teacher_id", "period_id"])
    op.create_index("ix_meeting_students_student", "meeting_students", ["student_id"])
    op.add_column(
        "students", sa.Column("meeting_mode", sa.String(10), nullable=False, server_default="")
    )
    op.create_table(
        "waitlist",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("period_id", sa.String(64), sa.ForeignKey("periods.id"), nullable=False),
        sa.Column(
            "teacher_id",
            sa.Integer(),
            sa.ForeignKey("teachers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "guardian_id",
            sa.Integer(),
            sa.ForeignKey("guardians.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("guardians", sa.Text(), nullable=False),
        sa.Column("students", sa.Text(), nullable=False),
    )
    op.create_index("ix_waitlist_teacher", "waitlist", ["period_id", "teacher_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_waitlist_teacher", table_name="waitlist")
    op.drop_table("waitlist")
    op.drop_column("students", "meeting_mode")
    op.drop_index("ix_meeting_students_student", table_name="meeting_students")
    op.drop_index("ix_meetings_teacher_period", table_name="meetings")
    op.drop_column("meetings", "replaces_id")
