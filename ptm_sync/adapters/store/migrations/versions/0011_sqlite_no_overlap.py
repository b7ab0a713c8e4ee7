"""SQLite refuses two active meetings of a teacher that overlap, as PostgreSQL does.

Revision ID: 0011
Revises: 0010

DESIGN §3: the database, not the application, makes a double booking impossible.  While
every meeting sat on the period's grid, the partial unique index on ``(teacher_id, start)``
over the active states was enough on SQLite: two grid slots overlap only when they start
together.  A teacher running late moves meetings off the grid (15:05-15:20), so a teacher's
drag onto the 15:15 slot, which no admission rule checks (the teacher decides their own
calendar), overlapped it with nothing to refuse it (found by
tests/property/test_report_vs_history.py).  PostgreSQL's exclusion constraint
``ex_meetings_no_overlap`` (0001) refuses it; these triggers give SQLite the same rule, with
the same name in the error, so the applier's savepoint turns it into ``SlotTaken`` alike.

Like the constraint, the check is per statement: the writer must never hold two
overlapping active meetings even for a moment inside a transaction (running late moves the
last meeting first).  A later migration must not copy ``meetings`` with a batch operation on
SQLite without creating these triggers again (a table copy drops them).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: Must match tables.ACTIVE_SQL (and model.ACTIVE_STATES).
_ACTIVE = "('proposed', 'confirmed')"
_CHECK = f"""
BEGIN
    SELECT RAISE(ABORT, 'ex_meetings_no_overlap: another active meeting of the teacher overlaps')
    WHERE EXISTS (
        SELECT 1 FROM meetings AS other
        WHERE other.teacher_id = NEW.teacher_id
          AND other.id IS NOT NEW.id
          AND other.state IN {_ACTIVE}
          AND other.start < NEW."end"
          AND NEW.start < other."end"
    );
END
"""
TRIGGERS = {
    "tr_meetings_no_overlap_insert": "BEFORE INSERT ON meetings",
    "tr_meetings_no_overlap_update": 'BEFORE UPDATE OF teacher_id, start, "end", state ON meetings',
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL has ex_meetings_no_overlap (0001)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} WHEN NEW.state IN {_ACTIVE} {_CHECK}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
