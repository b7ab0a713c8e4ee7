"""Properties of the slot engine, checked against a minute-by-minute reference.

Windows are drawn as local wall-clock times in zones that change their clocks, on dates at
and around the changes; busy events are drawn in real time, of any length from nothing to
years, in any order.  The reference below shares no code with the engine: it counts whole
minutes from the epoch and marks each one busy or free.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ptm_sync.core.model import Busy, Interval, SlotStatus, Window
from ptm_sync.core.slots import free_slots, grid, matrix, teacher_slots

#: Zones that change their clocks, with the days they do so in 2026 and 2027.
CHANGE_DAYS = {
    ZoneInfo("Europe/Berlin"): [
        date(2026, 3, 29),
        date(2026, 10, 25),
        date(2027, 3, 28),
        date(2027, 10, 31),
    ],
    ZoneInfo("America/New_York"): [
        date(2026, 3, 8),
        date(2026, 11, 1),
        date(2027, 3, 14),
        date(2027, 11, 7),
    ],
    ZoneInfo("Australia/Sydney"): [
        date(2026, 4, 5),
        date(2026, 10, 4),
        date(2027, 4, 4),
        date(2027, 10, 3),
    ],
}
ZONES = list(CHANGE_DAYS)

MINUTE = 60
#: Multiples of five minutes: slots, windows and busy events that line up end to end.
FIVES = st.integers(0, 120).map(lambda k: k * 5)
SETTINGS = settings(max_examples=100, deadline=None)

Span = Interval | Busy


@dataclass(frozen=True)
class Scenario:
    windows: list[Window]
    slot_minutes: int
    buffer_minutes: int
    busy: list[Span]
    meetings: list[Span]


def _exists(moment: datetime) -> bool:
    """False for a wall-clock time skipped when the clocks jump forward."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


@st.composite
def windows(draw: st.DrawFn) -> list[Window]:
    """One to three non-overlapping local windows, often across a change of the clocks."""
    tz = draw(st.sampled_from(ZONES))
    if draw(st.booleans()):
        # The change itself, or the evening before it, whose windows may run past midnight.
        day = draw(st.sampled_from(CHANGE_DAYS[tz])) - timedelta(days=draw(st.integers(0, 1)))
    else:
        day = draw(st.dates(date(2026, 1, 1), date(2027, 12, 31)))
    cursor = datetime.combine(day, time(0))
    drawn: list[Window] = []
    for _ in range(draw(st.integers(1, 3))):
        start = cursor + timedelta(minutes=draw(FIVES.map(lambda m: m % 480) | st.integers(0, 480)))
        end = start + timedelta(
            minutes=draw(FIVES.map(lambda m: m % 300 + 5) | st.integers(1, 300))
        )
        first = start.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
        last = end.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
        assume(_exists(first) and _exists(last))
        assume(first.astimezone(UTC) < last.astimezone(UTC))
        if drawn:
            assume(drawn[-1].end.astimezone(UTC) <= first.astimezone(UTC))
        drawn.append(Window(first, last))
        cursor = end
    return drawn


def spans(around: list[Window]) -> st.SearchStrategy[list[Span]]:
    """Busy spans near the windows, to the second, of any length, unsorted."""
    low = int(around[0].start.timestamp()) - 6 * 3600
    high = int(around[-1].end.timestamp()) + 6 * 3600
    length = st.one_of(
        st.just(0),
        FIVES.map(lambda m: m * MINUTE),
        st.integers(1, 2 * 3600),
        st.integers(0, 3 * 86400),
        st.integers(365 * 86400, 5 * 365 * 86400),
    )

    @st.composite
    def span(draw: st.DrawFn) -> Span:
        # Often on a five-minute boundary, so that spans touch slots end to end.
        begin = draw(
            st.integers(low // 300, high // 300).map(lambda k: k * 300) | st.integers(low, high)
        )
        if draw(st.booleans()):
            begin -= draw(length)  # huge spans also start long before the windows
        start = datetime.fromtimestamp(begin, UTC)
        end = start + timedelta(seconds=draw(length))
        zone = draw(st.sampled_from([UTC, *ZONES]))
        start, end = start.astimezone(zone), end.astimezone(zone)
        return Busy(start, end) if draw(st.booleans()) else Interval(start, end)

    return st.lists(span(), max_size=12)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    drawn = draw(windows())
    return Scenario(
        windows=drawn,
        slot_minutes=draw(st.sampled_from([5, 10, 15, 20, 25, 30, 45, 60]) | st.integers(1, 90)),
        buffer_minutes=draw(st.sampled_from([0, 0, 5, 10]) | st.integers(0, 30)),
        busy=draw(spans(drawn)),
        meetings=draw(spans(drawn).map(lambda found: found[:3])),
    )


# --- the reference: every minute of every window, one by one ------------------------------


def minute_is_covered(minute: int, by: list[Span]) -> bool:
    """Does the minute ``[minute, minute + 1)`` (counted from the epoch) share time with a span?"""
    # Timestamps, not datetimes: two datetimes of one zone compare by wall clock in Python.
    begin, finish = minute * MINUTE, (minute + 1) * MINUTE
    return any(
        s.start.timestamp() < min(finish, s.end.timestamp()) and begin < s.end.timestamp()
        for s in by
    )


def reference_grid(scenario: Scenario) -> list[tuple[int, int]]:
    """Grid slots as (first minute, minute after the last), counted from the epoch."""
    slots = []
    for w in scenario.windows:
        first = int(w.start.timestamp()) // MINUTE
        minutes = (int(w.end.timestamp()) - int(w.start.timestamp())) // MINUTE
        stride = scenario.slot_minutes + scenario.buffer_minutes
        for offset in range(0, minutes, stride):
            if offset + scenario.slot_minutes <= minutes:
                slots.append((first + offset, first + offset + scenario.slot_minutes))
    return sorted(slots)


def reference_free(scenario: Scenario, busy: list[Span]) -> list[tuple[int, int]]:
    return [
        (first, after)
        for first, after in reference_grid(scenario)
        if not any(minute_is_covered(m, busy) for m in range(first, after))
    ]


def as_minutes(slots: list[Interval]) -> list[tuple[int, int]]:
    return [(int(s.start.timestamp()) // MINUTE, int(s.end.timestamp()) // MINUTE) for s in slots]


# --- properties --------------------------------------------------------------------------


@SETTINGS
@given(scenarios())
def test_free_slots_equal_the_minute_by_minute_reference(scenario: Scenario) -> None:
    cells = grid(scenario.windows, scenario.slot_minutes, scenario.buffer_minutes)
    assert as_minutes(cells) == reference_grid(scenario)
    assert as_minutes(free_slots(cells, scenario.busy)) == reference_free(scenario, scenario.busy)


@SETTINGS
@given(scenarios())
def test_teacher_slots_equal_the_reference_with_meetings_as_busy_time(scenario: Scenario) -> None:
    slots = teacher_slots(
        scenario.windows,
        scenario.slot_minutes,
        scenario.buffer_minutes,
        scenario.busy,
        scenario.meetings,
    )
    assert as_minutes(slots) == reference_free(scenario, scenario.busy + scenario.meetings)


@SETTINGS
@given(scenarios())
def test_no_slot_overlaps_busy_time_or_a_meeting(scenario: Scenario) -> None:
    slots = teacher_slots(
        scenario.windows,
        scenario.slot_minutes,
        scenario.buffer_minutes,
        scenario.busy,
        scenario.meetings,
    )
    for slot in slots:
        for other in scenario.busy + scenario.meetings:
            if other.end.timestamp() > other.start.timestamp():
                assert not slot.overlaps(other.interval if isinstance(other, Busy) else other)


@SETTINGS
@given(scenarios())
def test_every_slot_is_on_the_grid_inside_a_window_and_sorted(scenario: Scenario) -> None:
    length = timedelta(minutes=scenario.slot_minutes)
    stride = timedelta(minutes=scenario.slot_minutes + scenario.buffer_minutes)
    slots = teacher_slots(
        scenario.windows, scenario.slot_minutes, scenario.buffer_minutes, scenario.busy, []
    )
    for slot in slots:
        assert slot.start.tzinfo is UTC
        assert slot.duration == length
        homes = [w for w in scenario.windows if w.start <= slot.start and slot.end <= w.end]
        assert len(homes) == 1
        assert (slot.start - homes[0].start.astimezone(UTC)) % stride == timedelta(0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(slots))


@SETTINGS
@given(scenarios(), st.data())
def test_matrix_statuses_follow_booked_held_busy_minute_by_minute(
    scenario: Scenario, data: st.DataObject
) -> None:
    held = data.draw(spans(scenario.windows), label="held")
    booked = scenario.meetings
    cells = matrix(
        grid(scenario.windows, scenario.slot_minutes, scenario.buffer_minutes),
        scenario.busy,
        held,
        booked,
    )
    expected = []
    for first, after in reference_grid(scenario):
        minutes = range(first, after)
        if any(minute_is_covered(m, booked) for m in minutes):
            expected.append(SlotStatus.BOOKED)
        elif any(minute_is_covered(m, held) for m in minutes):
            expected.append(SlotStatus.HELD)
        elif any(minute_is_covered(m, scenario.busy) for m in minutes):
            expected.append(SlotStatus.BUSY)
        else:
            expected.append(SlotStatus.AVAILABLE)
    assert as_minutes([slot for slot, _ in cells]) == reference_grid(scenario)
    assert [status for _, status in cells] == expected
