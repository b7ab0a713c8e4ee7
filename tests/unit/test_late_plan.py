"""Running late (DESIGN §3): which of a teacher's meetings move, decided for the whole
evening from the last meeting backwards (:func:`ptm_sync.core.booking.late.plan`), and
what one late event does to a meeting.  Pure: no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import pairwise

import pytest

from ptm_sync.core.booking.decide import decide
from ptm_sync.core.booking.events import RunningLate
from ptm_sync.core.booking.late import LateMeeting, moves, plan
from ptm_sync.core.model import Interval, MeetingState
from tests.unit.booking_values import GRID, TZ, WINDOW, context, meeting, sent, slot

TEN = timedelta(minutes=10)
C = MeetingState.CONFIRMED


def later(span: Interval, by: timedelta = TEN) -> Interval:
    return Interval(span.start + by, span.end + by)


def at(clock: str) -> Interval:
    """The grid slot starting at ``clock`` (New York) on the test evening (15:00–17:00)."""
    [found] = [s for s in GRID if f"{s.start.astimezone(TZ):%H:%M}" == clock]
    return found


def evening(*clocks: str, **family: tuple[Interval, ...]) -> list[LateMeeting]:
    """Meetings ``1..n`` at ``clocks``; ``family={"m2": (...)}`` gives meeting 2's family."""
    return [
        LateMeeting(id=i, slot=at(clock), family=family.get(f"m{i}", ()))
        for i, clock in enumerate(clocks, start=1)
    ]


def test_back_to_back_meetings_all_move_because_the_last_one_moves_first() -> None:
    # Each moved time overlaps the next meeting's old time: only deciding from the last
    # one backwards lets them all move.
    planned = plan(evening("15:15", "15:30", "15:45"), minutes=10, gap_minutes=5)

    assert planned == {1: later(at("15:15")), 2: later(at("15:30")), 3: later(at("15:45"))}
    assert moves(planned) == 3
    times = sorted(s for s in planned.values() if s is not None)
    assert all(a.end <= b.start for a, b in pairwise(times))


def test_a_meeting_that_cannot_move_stops_every_earlier_one() -> None:
    # Meeting 3's family sees another teacher at 16:00: moved to 15:40–15:55 it would sit
    # 5 minutes from it, closer than the 10-minute gap.  Meeting 1 (15:00) could move on
    # its own, but then the teacher's meetings would not keep their order: it stays.
    other_teacher = (at("16:00"),)
    meetings = evening("15:00", "15:15", "15:30", "15:45", m3=other_teacher)

    planned = plan(meetings, minutes=10, gap_minutes=10)

    assert planned == {1: None, 2: None, 3: None, 4: later(at("15:45"))}
    assert moves(planned) == 1


def test_the_family_gap_is_kept_exactly() -> None:
    other_teacher = (at("16:00"),)
    meetings = evening("15:30", m1=other_teacher)

    # Moved to 15:40–15:55: 5 minutes before the family's 16:00 meeting.
    assert plan(meetings, minutes=10, gap_minutes=5) == {1: later(at("15:30"))}
    assert plan(meetings, minutes=10, gap_minutes=6) == {1: None}
    # The family's meeting before it is never in the way of a later time.
    before = evening("15:30", m1=(at("15:00"),))
    assert plan(before, minutes=10, gap_minutes=5) == {1: later(at("15:30"))}


def test_a_hold_or_an_unmoved_meeting_of_the_teacher_blocks_the_move() -> None:
    # A proposal (a hold) at 16:00: the 15:45 meeting moved to 15:55–16:10 overlaps it.
    held = plan(evening("15:30", "15:45"), minutes=10, gap_minutes=5, occupied=(at("16:00"),))
    assert held == {1: None, 2: None}
    # The teacher's meetings may touch, never overlap: a hold at 15:50 (off the grid, a
    # meeting moved before) leaves room for 15:35–15:50, not for 15:40–15:55.
    hold = (later(at("15:45"), timedelta(minutes=5)),)
    five = timedelta(minutes=5)
    assert plan(evening("15:30"), minutes=5, gap_minutes=5, occupied=hold) == {
        1: later(at("15:30"), five)
    }
    assert plan(evening("15:30"), minutes=10, gap_minutes=5, occupied=hold) == {1: None}
    # The teacher's other meetings need no family gap.
    close = plan(evening("15:30"), minutes=10, gap_minutes=5, occupied=(at("16:00"),))
    assert close == {1: later(at("15:30"))}


def test_a_late_move_is_off_the_grid_and_may_pass_the_windows_end() -> None:
    last = GRID[-1]
    planned = plan(evening("16:30", "16:45"), minutes=10, gap_minutes=5)

    assert planned == {1: later(at("16:30")), 2: later(last)}
    moved = planned[2]
    assert moved is not None and moved not in GRID and moved.end > WINDOW.end
    # A second run moves again from the new times.
    again = plan(
        [LateMeeting(id=1, slot=later(at("16:30"))), LateMeeting(id=2, slot=moved)],
        minutes=5,
        gap_minutes=5,
    )
    assert again == {
        1: later(at("16:30"), timedelta(minutes=15)),
        2: later(last, timedelta(minutes=15)),
    }


def test_a_meeting_the_parent_organizes_stays_and_so_do_those_before_it() -> None:
    meetings = evening("15:00", "15:15", "15:30")
    meetings[1] = replace(meetings[1], movable=False)

    assert plan(meetings, minutes=10, gap_minutes=5) == {1: None, 2: None, 3: later(at("15:30"))}


@pytest.mark.parametrize("minutes", [0, -5])
def test_running_late_needs_a_positive_number_of_minutes(minutes: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        plan(evening("15:00"), minutes=minutes, gap_minutes=5)


def test_a_moved_meeting_reminded_of_its_old_time_is_not_reminded_again() -> None:
    reminded = replace(meeting(C, sequence=1), reminded=slot(0).start)
    moved = decide(reminded, RunningLate(minutes=10, slot=later(slot(0))), context())

    assert moved.rule == "late" and moved.after is not None
    assert moved.after.reminded == later(slot(0)).start
    never = decide(meeting(C, sequence=1), RunningLate(minutes=10, slot=later(slot(0))), context())
    assert never.after is not None and never.after.reminded is None


def test_a_meeting_that_stays_is_told_by_a_plain_email_and_keeps_its_time() -> None:
    told = decide(meeting(C, sequence=1), RunningLate(minutes=10, slot=None), context())

    assert told.rule == "late-told" and told.after is not None
    assert (told.after.slot, told.after.sequence) == (slot(0), 1)
    [(message, cal)] = sent(told)
    assert cal is None
    body = message.message.get_body(("plain",)).get_content()
    assert "running about 10 minutes late today" in body and "stays booked" in body
