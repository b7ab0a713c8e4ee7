"""A decision's claim on a slot, and the database's refusal of a slot another meeting holds.

DESIGN §3 "first come, first served": the partial unique index (and on PostgreSQL the
exclusion constraint) makes a double booking impossible, and the first transaction to commit
wins.  The applier (:mod:`ptm_sync.app.booking.apply`) writes a decision that claims a slot
inside a savepoint; :func:`claim` turns the database's refusal into :class:`SlotTaken`, and
the applier then decides the event again, at most :data:`ATTEMPTS` times.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import SlotTaken

#: How often a decision is taken again after the database refused its slot.
ATTEMPTS = 3


def claims_a_slot(decision: Decision) -> bool:
    """Whether writing ``decision`` may meet the database's refusal of a taken slot: it
    creates a meeting, gives one a new time, or has follow-ups (which may create one)."""
    if decision.then or decision.releases is not None:
        return True
    before, after = decision.before, decision.after
    if after is None:
        return False
    return before is None or before.state is None or after.slot != before.slot


def claim(session: Session) -> None:
    """Write the meeting's time; the database refuses a slot another meeting holds.

    The partial unique index (and on PostgreSQL the exclusion constraint) is what makes a
    double booking impossible; its refusal becomes :class:`SlotTaken`.

    Raises:
        SlotTaken: another meeting holds that time.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        raise SlotTaken("another meeting holds that time") from exc


def with_id(decision: Decision, made: int | None) -> Decision:
    """``decision`` with the id of the meeting it created."""
    if made is not None and decision.after is not None and decision.after.id is None:
        return replace(decision, after=replace(decision.after, id=made))
    return decision
