"""Initial schema: roster, calendars mirror, meetings, history, outbox, inbound.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from ptm_sync.adapters.store.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE_SQL = "state IN ('proposed', 'confirmed')"


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "periods",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
    )
    op.create_table(
        "teachers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key", sa.String(100), nullable=False, unique=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("calendar", sa.Text(), nullable=False),
        sa.Column("room", sa.String(100), nullable=False),
        sa.Column("booking_address", sa.String(320), nullable=False),
    )
    op.create_table(
        "students",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("student_id", sa.String(100), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "guardians",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("language", sa.String(35), nullable=False),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "guardian_id",
            sa.Integer(),
            sa.ForeignKey("guardians.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "student_id",
            sa.Integer(),
            sa.ForeignKey("students.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "teacher_id",
            sa.Integer(),
            sa.ForeignKey("teachers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.UniqueConstraint("guardian_id", "student_id", "teacher_id"),
    )
    op.create_table(
        "calendars",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "teacher_id",
            sa.Integer(),
            sa.ForeignKey("teachers.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sync_token", sa.Text(), nullable=True),
        sa.Column("ctag", sa.Text(), nullable=True),
        sa.Column("window_start", UtcDateTime(), nullable=True),
        sa.Column("window_end", UtcDateTime(), nullable=True),
        sa.Column("synced_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_table(
        "calendar_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "calendar_id",
            sa.Integer(),
            sa.ForeignKey("calendars.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("href", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("uid", sa.Text(), nullable=False),
        sa.Column("ics", sa.Text(), nullable=False),
        sa.UniqueConstraint("calendar_id", "href"),
    )
    op.create_table(
        "busy_times",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "event_id",
            sa.Integer(),
            sa.ForeignKey("calendar_events.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "teacher_id",
            sa.Integer(),
            sa.ForeignKey("teachers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("end", UtcDateTime(), nullable=False),
        sa.Column("tentative", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_busy_times_teacher_start", "busy_times", ["teacher_id", "start"])
    op.create_table(
        "inbound",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
    )
    op.create_table(
        "meetings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(255), nullable=False, unique=True),
        sa.Column("period_id", sa.String(64), sa.ForeignKey("periods.id"), nullable=False),
        sa.Column("teacher_id", sa.Integer(), sa.ForeignKey("teachers.id"), nullable=False),
        sa.Column("guardian_id", sa.Integer(), sa.ForeignKey("guardians.id"), nullable=False),
        sa.Column("start", UtcDateTime(), nullable=False),
        sa.Column("end", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("organizer", sa.String(320), nullable=False),
        sa.Column("partstat", sa.String(20), nullable=False),
        sa.Column("video_url", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("hold_until", UtcDateTime(), nullable=True),
        sa.Column("reply_sequence", sa.Integer(), nullable=True),
        sa.Column("reply_dtstamp", UtcDateTime(), nullable=True),
        sa.Column("reproposals", sa.Integer(), nullable=False),
        sa.Column("remote_href", sa.Text(), nullable=True),
        sa.Column("remote_etag", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint('"end" > start', name="ck_meetings_positive"),
    )
    # The database, not the application, makes a double booking impossible (DESIGN §3).
    op.create_index(
        "uq_meetings_active_slot",
        "meetings",
        ["teacher_id", "start"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    )
    op.create_index("ix_meetings_guardian", "meetings", ["guardian_id"])
    op.create_index("ix_meetings_state", "meetings", ["state"])
    if op.get_context().dialect.name == "postgresql":
        # Overlapping active meetings of one teacher are refused even off the grid.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE meetings ADD CONSTRAINT ex_meetings_no_overlap EXCLUDE USING gist "
            '(teacher_id WITH =, tstzrange(start, "end") WITH &&) '
            f"WHERE ({ACTIVE_SQL})"
        )
    with op.batch_alter_table("inbound") as batch:
        batch.create_foreign_key(
            "fk_inbound_meeting", "meetings", ["meeting_id"], ["id"], ondelete="SET NULL"
        )
    op.create_table(
        "meeting_students",
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("student_id", sa.Integer(), sa.ForeignKey("students.id"), primary_key=True),
    )
    op.create_table(
        "meeting_history",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(20), nullable=False),
        sa.Column("from_state", sa.String(20), nullable=True),
        sa.Column("to_state", sa.String(20), nullable=False),
        sa.Column("old_start", UtcDateTime(), nullable=True),
        sa.Column("new_start", UtcDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), sa.ForeignKey("inbound.id"), nullable=True),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "meeting_id",
            sa.Integer(),
            sa.ForeignKey("meetings.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    for table in (
        "outbox",
        "meeting_history",
        "meeting_students",
        "meetings",
        "inbound",
        "busy_times",
        "calendar_events",
        "calendars",
        "links",
        "guardians",
        "students",
        "teachers",
        "periods",
        "settings",
    ):
        op.drop_table(table)
