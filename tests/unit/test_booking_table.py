"""The transition table against DESIGN §3: every row is an edge of the life cycle, every
edge has a row, and ``decide`` has an answer for every state and every kind of event."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from icalendar.enums import PARTSTAT

from ptm_sync.core.booking import table
from ptm_sync.core.booking.decide import decide
from ptm_sync.core.booking.events import (
    Answer,
    AskFeedback,
    Completed,
    Counter,
    Event,
    HoldExpired,
    MarkAttended,
    MarkNoShow,
    Offer,
    OrganizerCancel,
    Refresh,
    Remind,
    Request,
    Retire,
    RunningLate,
    StaffBook,
    StaffCancel,
    StaffReschedule,
    Supersede,
    TeacherMoved,
    TeacherRemoved,
)
from ptm_sync.core.booking.table import NEW, SAME, TABLE, room_for
from ptm_sync.core.booking.values import Origin, RoomAction
from ptm_sync.core.model import ACTIVE_STATES, MeetingState
from tests.unit.booking_values import NOW, PAT, context, meeting, slot

S = MeetingState
#: DESIGN §3, "Meeting states": proposed → confirmed → completed | no_show; from proposed:
#: declined, expired, superseded; from proposed or confirmed: cancelled.  New meetings are
#: proposed (an offer) or confirmed at once (a booking by request or by staff).  Staff may
#: correct completed ↔ no_show.
LIFE_CYCLE = {
    (NEW, S.PROPOSED),
    (NEW, S.CONFIRMED),
    (S.PROPOSED, S.CONFIRMED),
    (S.CONFIRMED, S.COMPLETED),
    (S.CONFIRMED, S.NO_SHOW),
    (S.COMPLETED, S.NO_SHOW),
    (S.NO_SHOW, S.COMPLETED),
    (S.PROPOSED, S.DECLINED),
    (S.PROPOSED, S.EXPIRED),
    (S.PROPOSED, S.SUPERSEDED),
    (S.PROPOSED, S.CANCELLED),
    (S.CONFIRMED, S.CANCELLED),
}


def edges() -> set[tuple[MeetingState | None, MeetingState]]:
    found = set()
    for row in TABLE:
        if row.to is None or row.to == SAME:
            continue
        for state in row.source:
            if state != row.to:
                found.add((state, MeetingState(row.to)))
    return found


def test_every_row_is_an_edge_of_the_life_cycle() -> None:
    assert edges() - LIFE_CYCLE == set()


def test_every_edge_of_the_life_cycle_has_a_row() -> None:
    assert LIFE_CYCLE - edges() == set()


def test_rows_that_leave_an_active_state_release_the_slot() -> None:
    for row in TABLE:
        if row.to in (None, SAME):
            continue
        target = MeetingState(row.to)
        if target in (S.COMPLETED, S.NO_SHOW):
            continue  # the meeting's time is over: nothing left to release
        for state in row.source:
            if state in ACTIVE_STATES and target not in ACTIVE_STATES:
                assert row.releases, f"{row.name} from {state} keeps a slot it no longer uses"


def test_significant_changes_of_our_meetings_raise_the_sequence() -> None:
    """RFC 5546 §2.1.4: a new state or time of a meeting we organize is a new version."""
    parents = {"request-moved", "request-move-refused", "organizer-cancel",
               "staff-cancel-booked", "teacher-removed-booked"}  # fmt: skip
    quiet = {"complete", "no-show", "attended"}  # the record only: the families' calendars keep it
    for row in TABLE:
        if row.name in parents | quiet or row.to in (None, SAME) or NEW in row.source:
            continue
        assert row.bump, f"{row.name} changes a meeting without a new SEQUENCE"


def test_the_table_is_unambiguous_and_every_rule_is_reachable_by_name() -> None:
    names = {row.name for row in TABLE}
    for name in names:
        sources = [s for row in TABLE if row.name == name for s in row.source]
        assert len(sources) == len(set(sources))
        for state in sources:
            assert table.row_for(state, name).name == name


STATES: list[MeetingState | None] = [None, *MeetingState]
LATER = NOW + timedelta(minutes=5)
EVENTS: list[Event] = [
    Answer(guardian_id=PAT.guardian_id, partstat=PARTSTAT.ACCEPTED, dtstamp=LATER),
    Answer(guardian_id=PAT.guardian_id, partstat=PARTSTAT.DECLINED, dtstamp=LATER),
    Answer(guardian_id=PAT.guardian_id, partstat=PARTSTAT.TENTATIVE, dtstamp=LATER),
    Answer(guardian_id=PAT.guardian_id, partstat="DELEGATED", dtstamp=LATER),
    Counter(guardian_id=PAT.guardian_id, proposed=slot(3), dtstamp=LATER),
    Refresh(guardian_id=PAT.guardian_id),
    Request(
        guardian_id=PAT.guardian_id,
        uid="x@example.net",
        organizer=PAT.email,
        slot=slot(3),
        sequence=1,
        dtstamp=LATER,
    ),
    OrganizerCancel(guardian_id=PAT.guardian_id, sequence=1),
    Offer(slot=slot(3)),
    StaffBook(slot=slot(3)),
    StaffReschedule(slot=slot(3)),
    StaffCancel(reason="ill"),
    MarkNoShow(),
    MarkNoShow(reason="entered by mistake"),
    MarkAttended(reason="came late"),
    Completed(),
    Remind(),
    AskFeedback(token="t0k3n"),
    RunningLate(minutes=10, slot=slot(3)),
    RunningLate(minutes=10),
    Retire(),
    HoldExpired(),
    Supersede(reason="booked elsewhere"),
    TeacherMoved(slot=slot(3)),
    TeacherRemoved(),
]


@pytest.mark.parametrize("origin", [Origin.OFFER, Origin.BOOKING_ADDRESS])
@pytest.mark.parametrize("state", STATES, ids=lambda s: str(s))
def test_every_state_has_an_answer_to_every_event(
    state: MeetingState | None, origin: Origin
) -> None:
    view = replace(meeting(state, hold_until=NOW), origin=origin)
    for event in EVENTS:
        decision = decide(view, event, context())
        assert decision.outcome in ("applied", "stale", "duplicate", "refused", "quarantined")
        if decision.outcome == "applied" and decision.rule in {r.name for r in TABLE}:
            row = table.row_for(state, decision.rule)
            expected = state if row.to == SAME else row.to
            assert decision.state == expected, (event, decision.rule)


def test_the_room_column_makes_a_room_for_a_confirmed_meeting_and_frees_it_when_unheld() -> None:
    made = {s for s in MeetingState if room_for(s) is RoomAction.CREATE}
    freed = {s for s in MeetingState if room_for(s) is RoomAction.REMOVE}
    assert made == {MeetingState.CONFIRMED}
    assert freed == {
        MeetingState.CANCELLED,
        MeetingState.DECLINED,
        MeetingState.EXPIRED,
        MeetingState.SUPERSEDED,
    }
    # The record keeps the link of a meeting that happened (or was missed).
    assert room_for(MeetingState.COMPLETED) is room_for(MeetingState.NO_SHOW) is RoomAction.NONE
