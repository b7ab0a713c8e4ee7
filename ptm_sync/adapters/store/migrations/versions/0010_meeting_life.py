"""The rest of a meeting's life (issue 16): reminders, feedback, notes, retirement, purge, jobs.

Revision ID: 0010
Revises: 0009

* ``meetings.reminded_start``: the start time (UTC) the family was last reminded of; a
  meeting moved since is reminded of its new time (DESIGN §3, once per meeting and time).
* ``meetings.feedback_token``: the per-meeting token of the feedback request (NULL: not
  asked yet); unique, a reply's plus-address carries it.
* ``meetings.purged_at``: when the meeting's personal data was purged (``purge``).
* ``teachers`` / ``students`` / ``guardians.retired_at``: missing from a ``roster import
  --replace`` (DESIGN §7); NULL for everybody before.
* ``job_runs``: the scheduled jobs' last run and result (``ptm-sync jobs``), and the lease a
  replica takes while it runs one.
* ``meeting_notes``: staff-only notes (DESIGN §3 "Staff notes").
* ``feedback``: the families' feedback replies, recorded against the meeting.
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, never a batch copy of ``meetings`` (see 0008).
    op.add_column("meetings", sa.Column("reminded_start", UtcDateTime(), nullable=True))
    op.add_column("meetings", sa.Column("feedback_token", sa.String(64), nullable=True))
    op.add_column("meetings", sa.Column("purged_at", UtcDateTime(), nullable=True))
    op.create_index("uq_meetings_feedback_token", "meetings", ["feedback_token"], unique=True)
    for table in ("teachers", "students", "guardians"):
        op.add_column(table, sa.Column("retired_at", UtcDateTime(), nullable=True))
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last_run", UtcDateTime(), nullable=True),
        sa.Column("last_result", sa.Text(), nullable=False, server_default=""),
        sa.Column("running_until", UtcDateTime(), nullable=True),
        sa.Column("running_by", sa.String(255), nullable=True),
    )
    op.create_table(
        "meeting_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("author", sa.String(320), nullable=False, server_default=""),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "guardian_id",
            sa.Integer(),
            sa.ForeignKey("guardians.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "inbound_id",
            sa.Integer(),
            sa.ForeignKey("inbound.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("meeting_notes")
    op.drop_table("job_runs")
    for table in ("guardians", "students", "teachers"):
        op.drop_column(table, "retired_at")
    op.drop_index("uq_meetings_feedback_token", table_name="meetings")
    for column in ("purged_at", "feedback_token", "reminded_start"):
        op.drop_column("meetings", column)
