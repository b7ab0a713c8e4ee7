"""Running late (DESIGN §3): which of a teacher's meetings move, decided for the whole
evening from the last meeting backwards (:func:`ptm_sync.core.booking.late.plan`), and
what one late event does to a meeting.  Pure: no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from ptm_sync.core.booking.decide import decide
from ptm_sync.core.booking.events import RunningLate
from ptm_sync.core.booking.late import MAX_MINUTES, LateMeeting, moves, plan
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.model import Interval, MeetingState
from tests.unit.booking_values import GRID, TZ, WINDOW, context, meeting, sent, slot

TEN = timedelta(minutes=10)
C = MeetingState.CONFIRMED
#: The end of the test evening's local day (12 April 2027, New York).
MIDNIGHT = datetime(2027, 4, 13, 0, 0, tzinfo=TZ)


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
    planned = plan(evening("15:15", "15:30", "15:45"), minutes=10, gap_minutes=5, day_end=MIDNIGHT)

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

    planned = plan(meetings, minutes=10, gap_minutes=10, day_end=MIDNIGHT)

    assert planned == {1: None, 2: None, 3: None, 4: later(at("15:45"))}
    assert moves(planned) == 1


def test_the_family_gap_is_kept_exactly() -> None:
    other_teacher = (at("16:00"),)
    meetings = evening("15:30", m1=other_teacher)

    # Moved to 15:40–15:55: 5 minutes before the family's 16:00 meeting.
    assert plan(meetings, minutes=10, gap_minutes=5, day_end=MIDNIGHT) == {1: later(at("15:30"))}
    assert plan(meetings, minutes=10, gap_minutes=6, day_end=MIDNIGHT) == {1: None}
    # The family's meeting before it is never in the way of a later time.
    before = evening("15:30", m1=(at("15:00"),))
    assert plan(before, minutes=10, gap_minutes=5, day_end=MIDNIGHT) == {1: later(at("15:30"))}


def test_a_hold_or_an_unmoved_meeting_of_the_teacher_blocks_the_move() -> None:
    # A proposal (a hold) at 16:00: the 15:45 meeting moved to 15:55–16:10 overlaps it.
    held = plan(
        evening("15:30", "15:45"),
        minutes=10,
        gap_minutes=5,
        day_end=MIDNIGHT,
        occupied=(at("16:00"),),
    )
    assert held == {1: None, 2: None}
    # The teacher's meetings may touch, never overlap: a hold at 15:50 (off the grid, a
    # meeting moved before) leaves room for 15:35–15:50, not for 15:40–15:55.
    hold = (later(at("15:45"), timedelta(minutes=5)),)
    five = timedelta(minutes=5)
    assert plan(evening("15:30"), minutes=5, gap_minutes=5, day_end=MIDNIGHT, occupied=hold) == {
        1: later(at("15:30"), five)
    }
    assert plan(evening("15:30"), minutes=10, gap_minutes=5, day_end=MIDNIGHT, occupied=hold) == {
        1: None
    }
    # The teacher's other meetings need no family gap.
    close = plan(
        evening("15:30"), minutes=10, gap_minutes=5, day_end=MIDNIGHT, occupied=(at("16:00"),)
    )
    assert close == {1: later(at("15:30"))}


def test_a_late_move_is_off_the_grid_and_may_pass_the_windows_end() -> None:
    last = GRID[-1]
    planned = plan(evening("16:30", "16:45"), minutes=10, gap_minutes=5, day_end=MIDNIGHT)

    assert planned == {1: later(at("16:30")), 2: later(last)}
    moved = planned[2]
    assert moved is not None and moved not in GRID and moved.end > WINDOW.end
    # A second run moves again from the new times.
    again = plan(
        [LateMeeting(id=1, slot=later(at("16:30"))), LateMeeting(id=2, slot=moved)],
        minutes=5,
        gap_minutes=5,
        day_end=MIDNIGHT,
    )
    assert again == {
        1: later(at("16:30"), timedelta(minutes=15)),
        2: later(last, timedelta(minutes=15)),
    }


def test_a_meeting_the_parent_organizes_stays_and_so_do_those_before_it() -> None:
    meetings = evening("15:00", "15:15", "15:30")
    meetings[1] = replace(meetings[1], movable=False)

    assert plan(meetings, minutes=10, gap_minutes=5, day_end=MIDNIGHT) == {
        1: None,
        2: None,
        3: later(at("15:30")),
    }


@pytest.mark.parametrize("minutes", [0, -5])
def test_running_late_needs_a_positive_number_of_minutes(minutes: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        plan(evening("15:00"), minutes=minutes, gap_minutes=5, day_end=MIDNIGHT)


def test_a_teacher_runs_at_most_four_hours_late() -> None:
    four_hours = plan(evening("16:45"), minutes=MAX_MINUTES, gap_minutes=5, day_end=MIDNIGHT)
    assert MAX_MINUTES == 240 and four_hours == {1: later(at("16:45"), timedelta(hours=4))}
    with pytest.raises(ValueError, match="at most 240"):
        plan(evening("16:45"), minutes=MAX_MINUTES + 1, gap_minutes=5, day_end=MIDNIGHT)
    with pytest.raises(ValueError, match="aware"):
        plan(evening("16:45"), minutes=10, gap_minutes=5, day_end=MIDNIGHT.replace(tzinfo=None))


def late_evening(*clocks: str) -> list[LateMeeting]:
    """Meetings ``1..n`` of 15 minutes at ``clocks`` (New York) late on the test day."""
    day = MIDNIGHT - timedelta(days=1)
    meetings = []
    for i, clock in enumerate(clocks, start=1):
        hour, minute = map(int, clock.split(":"))
        start = day.replace(hour=hour, minute=minute)
        meetings.append(LateMeeting(id=i, slot=Interval(start, start + timedelta(minutes=15))))
    return meetings


def test_a_move_never_leaves_the_meetings_day() -> None:
    meetings = late_evening("22:30", "23:15", "23:30")
    # 15 minutes: the last one ends at midnight, still that day.
    fifteen = plan(meetings, minutes=15, gap_minutes=5, day_end=MIDNIGHT)
    assert moves(fifteen) == 3 and fifteen[3] is not None and fifteen[3].end == MIDNIGHT
    # 16 minutes: it would end past midnight, so it stays (its family is told), and so
    # does every meeting before it.
    assert plan(meetings, minutes=16, gap_minutes=5, day_end=MIDNIGHT) == {
        1: None,
        2: None,
        3: None,
    }
    # The day's end is a moment: in another zone's words, the same.
    utc = MIDNIGHT.astimezone(UTC)
    assert plan(meetings, minutes=16, gap_minutes=5, day_end=utc) == {1: None, 2: None, 3: None}
    # The 100 000 minutes of a typo never reach another day, whatever the evening.
    assert moves(plan(evening("15:00"), minutes=240, gap_minutes=5, day_end=MIDNIGHT)) == 1
    assert moves(plan(late_evening("21:00"), minutes=240, gap_minutes=5, day_end=MIDNIGHT)) == 0


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
    assert "Ada Lovelace is running about 10 minutes late. " in body and "today" not in body
    assert "stays booked for Monday 12 April 2027, 15:00–15:15 (Eastern Time)" in body
    assert "it may start up to about 10 minutes later than planned" in body


def _body(decision: Decision) -> str:
    [(message, _)] = sent(decision)
    plain = message.message.get_body(("plain",))
    assert plain is not None
    return str(plain.get_content())


def test_the_late_letters_name_the_day_never_today_and_how_late() -> None:
    # The letter may be read on another day than the meeting's: its day is in words.
    moved = _body(
        decide(meeting(C, sequence=1), RunningLate(minutes=10, slot=later(slot(0))), context())
    )
    assert "Ada Lovelace is running about 10 minutes late. Your meeting about" in moved
    assert "Monday 12 April 2027, 15:10–15:25 (Eastern Time)" in moved
    assert "today" not in moved
    # A family whose meeting stays reads how much later it may start.
    told = _body(decide(meeting(C, sequence=1), RunningLate(minutes=45, slot=None), context()))
    assert "running about 45 minutes late." in told
    assert "it may start up to about 45 minutes later than planned" in told
    assert "a little later" not in told and "today" not in told
