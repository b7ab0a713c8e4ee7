"""The slot engine, by example: windows, busy time and meetings → the slots a teacher offers.

Expected slots are written as the local start times of the school, with their UTC offset
where the clocks change, so each row reads like the evening it describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.model import Busy, Interval, SlotStatus, Window
from ptm_sync.core.slots import Blocks, free_slots, grid, matrix, teacher_slots

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def local(tz: ZoneInfo, day: str, clock: str, fold: int = 0) -> datetime:
    """A wall-clock time of the school; ``fold=1`` picks the second of a repeated hour."""
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=tz, fold=fold)


def window(tz: ZoneInfo, day: str, start: str, end: str) -> Window:
    return Window(local(tz, day, start), local(tz, day, end))


def span(tz: ZoneInfo, day: str, start: str, end: str) -> Interval:
    return Interval(local(tz, day, start), local(tz, day, end))


def starts(slots: list[Interval], tz: ZoneInfo) -> list[str]:
    """Local start times as ``HH:MM±hh:mm``."""
    return [slot.start.astimezone(tz).isoformat(timespec="minutes")[11:] for slot in slots]


@dataclass(frozen=True)
class Case:
    name: str
    windows: list[Window]
    expected: list[str]
    slot_minutes: int = 15
    buffer_minutes: int = 0
    busy: list[Interval] = field(default_factory=list)
    meetings: list[Interval] = field(default_factory=list)
    tz: ZoneInfo = NEW_YORK


DAY = "2026-04-10"
HOUR = [window(NEW_YORK, DAY, "15:00", "16:00")]

CASES = [
    Case("plain evening", HOUR, ["15:00-04:00", "15:15-04:00", "15:30-04:00", "15:45-04:00"]),
    Case(
        "buffer between slots",
        HOUR,
        ["15:00-04:00", "15:20-04:00", "15:40-04:00"],
        buffer_minutes=5,
    ),
    Case(
        "busy in the middle blocks both slots it touches inside",
        HOUR,
        ["15:00-04:00", "15:45-04:00"],
        busy=[span(NEW_YORK, DAY, "15:20", "15:35")],
    ),
    Case(
        "busy straddling the window's start",
        HOUR,
        ["15:15-04:00", "15:30-04:00", "15:45-04:00"],
        busy=[span(NEW_YORK, DAY, "14:00", "15:05")],
    ),
    Case(
        "busy straddling the window's end",
        HOUR,
        ["15:00-04:00", "15:15-04:00", "15:30-04:00"],
        busy=[span(NEW_YORK, DAY, "15:59", "18:00")],
    ),
    Case(
        "busy touching a slot's ends leaves it free",
        HOUR,
        ["15:00-04:00", "15:30-04:00", "15:45-04:00"],
        busy=[
            span(NEW_YORK, DAY, "14:00", "15:00"),
            span(NEW_YORK, DAY, "15:15", "15:30"),
            span(NEW_YORK, DAY, "16:00", "17:00"),
        ],
    ),
    Case(
        "zero-length busy blocks nothing",
        HOUR,
        ["15:00-04:00", "15:15-04:00", "15:30-04:00", "15:45-04:00"],
        busy=[span(NEW_YORK, DAY, "15:20", "15:20")],
    ),
    Case(
        "overlapping unsorted busy events, one of them a whole year",
        [*HOUR, window(NEW_YORK, "2026-04-11", "15:00", "16:00")],
        ["15:00-04:00", "15:15-04:00"],
        busy=[
            Interval(datetime(2026, 4, 11, tzinfo=UTC), datetime(2027, 4, 11, tzinfo=UTC)),
            span(NEW_YORK, DAY, "15:40", "15:50"),
            span(NEW_YORK, DAY, "15:30", "15:45"),
        ],
    ),
    Case(
        "busy given in UTC",
        HOUR,
        ["15:00-04:00", "15:15-04:00", "15:45-04:00"],
        busy=[
            Interval(
                datetime(2026, 4, 10, 19, 30, tzinfo=UTC), datetime(2026, 4, 10, 19, 45, tzinfo=UTC)
            )
        ],
    ),
    Case(
        "a meeting blocks its slot",
        HOUR,
        ["15:00-04:00", "15:15-04:00", "15:45-04:00"],
        meetings=[span(NEW_YORK, DAY, "15:30", "15:45")],
    ),
    Case(
        "a meeting off the grid blocks every slot it overlaps",
        HOUR,
        ["15:30-04:00", "15:45-04:00"],
        meetings=[span(NEW_YORK, DAY, "15:10", "15:25")],
    ),
    Case("window shorter than one slot", [window(NEW_YORK, DAY, "15:00", "15:10")], []),
    Case(
        "the last slot must fit inside the window",
        [window(NEW_YORK, DAY, "15:00", "15:40")],
        ["15:00-04:00", "15:15-04:00"],
    ),
    Case(
        "several windows, given out of order, each starting its own run",
        [window(NEW_YORK, "2026-04-11", "08:10", "08:40"), window(NEW_YORK, DAY, "15:00", "15:30")],
        ["15:00-04:00", "15:15-04:00", "08:10-04:00", "08:25-04:00"],
    ),
    # Clocks change: the grid steps in elapsed time, so an hour that does not exist holds no
    # slot and an hour that happens twice holds two.
    Case(
        "New York spring forward: 01:00-04:00 holds two real hours",
        [window(NEW_YORK, "2026-03-08", "01:00", "04:00")],
        ["01:00-05:00", "03:00-04:00"],
        slot_minutes=60,
    ),
    Case(
        "New York fall back: 00:00-03:00 holds four real hours",
        [window(NEW_YORK, "2026-11-01", "00:00", "03:00")],
        ["00:00-04:00", "01:00-04:00", "01:00-05:00", "02:00-05:00"],
        slot_minutes=60,
    ),
    Case(
        "Berlin spring forward: 01:00-04:00 holds two real hours",
        [window(BERLIN, "2026-03-29", "01:00", "04:00")],
        ["01:00+01:00", "03:00+02:00"],
        slot_minutes=60,
        tz=BERLIN,
    ),
    Case(
        "Berlin fall back: 01:00-04:00 holds four real hours",
        [window(BERLIN, "2026-10-25", "01:00", "04:00")],
        ["01:00+02:00", "02:00+02:00", "02:00+01:00", "03:00+01:00"],
        slot_minutes=60,
        tz=BERLIN,
    ),
    Case(
        "Berlin fall back: busy in the second 02:00 hour leaves the first one free",
        [window(BERLIN, "2026-10-25", "01:00", "04:00")],
        ["01:00+02:00", "02:00+02:00", "03:00+01:00"],
        slot_minutes=60,
        busy=[
            Interval(
                local(BERLIN, "2026-10-25", "02:15", fold=1),
                local(BERLIN, "2026-10-25", "02:45", fold=1),
            )
        ],
        tz=BERLIN,
    ),
    Case(
        "New York fall back: a 45-minute grid runs straight through the repeated hour",
        [window(NEW_YORK, "2026-11-01", "00:30", "02:30")],
        ["00:30-04:00", "01:15-04:00", "01:00-05:00", "01:45-05:00"],
        slot_minutes=45,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_teacher_slots(case: Case) -> None:
    slots = teacher_slots(
        case.windows, case.slot_minutes, case.buffer_minutes, case.busy, case.meetings
    )
    assert starts(slots, case.tz) == case.expected
    assert all(slot.duration.total_seconds() == case.slot_minutes * 60 for slot in slots)


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        (NEW_YORK, "2026-03-08", 8),
        (NEW_YORK, "2026-11-01", 16),
        (BERLIN, "2026-03-29", 8),
        (BERLIN, "2026-10-25", 16),
        (BERLIN, "2026-10-26", 12),
    ],
)
def test_grid_counts_real_minutes_on_days_the_clocks_change(
    tz: ZoneInfo, day: str, expected: int
) -> None:
    assert len(grid([window(tz, day, "01:00", "04:00")], 15, 0)) == expected


def test_grid_is_in_utc_and_the_same_whatever_zone_the_windows_are_given_in() -> None:
    in_local = window(BERLIN, "2026-10-25", "01:00", "04:00")
    in_utc = Window(in_local.start.astimezone(UTC), in_local.end.astimezone(UTC))
    slots = grid([in_local], 15, 5)
    assert slots == grid([in_utc], 15, 5)
    assert all(slot.start.tzinfo is UTC and slot.end.tzinfo is UTC for slot in slots)


def test_free_slots_returns_the_grids_own_slots_sorted() -> None:
    cells = grid(HOUR, 15, 0)
    shuffled = [cells[2], cells[0], cells[3], cells[1]]
    assert free_slots(shuffled, []) == cells


def test_busy_values_from_connectors_count_as_busy_tentative_too() -> None:
    tentative = Busy(local(NEW_YORK, DAY, "15:00"), local(NEW_YORK, DAY, "15:30"), tentative=True)
    assert starts(free_slots(grid(HOUR, 15, 0), [tentative]), NEW_YORK) == [
        "15:30-04:00",
        "15:45-04:00",
    ]


def test_blocks_merge_overlapping_and_touching_busy_and_drop_empty_ones() -> None:
    blocks = Blocks(
        [
            span(NEW_YORK, DAY, "16:00", "17:00"),
            span(NEW_YORK, DAY, "15:00", "15:30"),
            span(NEW_YORK, DAY, "15:30", "15:45"),
            span(NEW_YORK, DAY, "15:10", "15:20"),
            span(NEW_YORK, DAY, "18:00", "18:00"),
        ]
    )
    assert len(blocks) == 2
    assert blocks.overlaps(span(NEW_YORK, DAY, "15:44", "15:46"))
    assert not blocks.overlaps(span(NEW_YORK, DAY, "15:45", "16:00"))
    assert not blocks.overlaps(span(NEW_YORK, DAY, "17:59", "18:01"))


MATRIX_DAY = [window(NEW_YORK, DAY, "15:00", "16:15")]


def test_matrix_has_one_cell_per_slot_with_booked_over_held_over_busy() -> None:
    cells = matrix(
        grid(MATRIX_DAY, 15, 0),
        busy=[span(NEW_YORK, DAY, "15:00", "15:30"), span(NEW_YORK, DAY, "16:00", "16:15")],
        held=[span(NEW_YORK, DAY, "15:15", "15:30"), span(NEW_YORK, DAY, "15:45", "16:00")],
        booked=[span(NEW_YORK, DAY, "15:00", "15:15"), span(NEW_YORK, DAY, "15:45", "16:00")],
    )
    statuses = [status for _, status in cells]
    assert starts([slot for slot, _ in cells], NEW_YORK) == starts(
        grid(MATRIX_DAY, 15, 0), NEW_YORK
    )
    assert statuses == [
        SlotStatus.BOOKED,  # 15:00, also busy
        SlotStatus.HELD,  # 15:15, also busy
        SlotStatus.AVAILABLE,  # 15:30, touched on its start by busy and held
        SlotStatus.BOOKED,  # 15:45, also held
        SlotStatus.BUSY,  # 16:00
    ]


def test_matrix_available_cells_are_the_free_slots() -> None:
    cells = grid(MATRIX_DAY, 15, 0)
    busy = [span(NEW_YORK, DAY, "15:20", "15:40")]
    held = [span(NEW_YORK, DAY, "16:00", "16:15")]
    available = [
        slot for slot, status in matrix(cells, busy, held, []) if status == SlotStatus.AVAILABLE
    ]
    assert available == free_slots(cells, busy + held)


@pytest.mark.parametrize(
    ("slot_minutes", "buffer_minutes", "message"),
    [(0, 0, "slot_minutes"), (-15, 0, "slot_minutes"), (15, -1, "buffer_minutes")],
)
def test_grid_refuses_lengths_out_of_range(
    slot_minutes: int, buffer_minutes: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        grid(HOUR, slot_minutes, buffer_minutes)


def test_grid_refuses_overlapping_windows() -> None:
    with pytest.raises(ValueError, match="windows overlap"):
        grid(
            [window(NEW_YORK, DAY, "15:00", "16:00"), window(NEW_YORK, DAY, "15:30", "17:00")],
            15,
            0,
        )


def test_naive_busy_time_is_refused_rather_than_guessed() -> None:
    naive = Busy(datetime(2026, 4, 10, 15, 0), datetime(2026, 4, 10, 16, 0))
    with pytest.raises(ValueError, match="naive"):
        free_slots(grid(HOUR, 15, 0), [naive])


def test_an_interval_across_the_fall_back_hour_in_one_zone_is_measured_in_real_time() -> None:
    # 02:40 summer time, then 02:00 winter time: 20 real minutes later, though earlier on
    # the wall clock.  Python compares datetimes of one tzinfo by wall clock.
    first = local(BERLIN, "2026-10-25", "02:40")
    second = local(BERLIN, "2026-10-25", "02:00", fold=1)
    across = Interval(first, second)
    assert across.duration.total_seconds() == 20 * 60
    assert across.overlaps(Interval(local(BERLIN, "2026-10-25", "02:50"), second))
    assert not across.overlaps(Interval(second, local(BERLIN, "2026-10-25", "02:10", fold=1)))


def test_free_slots_sorts_local_slots_in_real_time_across_the_fall_back_hour() -> None:
    cells = grid([window(BERLIN, "2026-10-25", "01:00", "04:00")], 60, 0)
    in_local = [Interval(c.start.astimezone(BERLIN), c.end.astimezone(BERLIN)) for c in cells]
    assert free_slots(list(reversed(in_local)), []) == in_local


def test_the_grid_of_the_repeated_hour_is_not_taken_for_the_first_one() -> None:
    """The night the clocks go back, 02:00-02:30 happens twice in Europe/Berlin; the two
    windows read alike on the wall clock (fold aside) but are an hour apart."""
    berlin = ZoneInfo("Europe/Berlin")
    first = Window(
        datetime(2027, 10, 31, 2, 0, tzinfo=berlin), datetime(2027, 10, 31, 2, 30, tzinfo=berlin)
    )
    second = Window(
        datetime(2027, 10, 31, 2, 0, fold=1, tzinfo=berlin),
        datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=berlin),
    )
    early = grid([first], 15, 0)
    late = grid([second], 15, 0)
    assert [s.start.astimezone(UTC).hour for s in early] == [0, 0]
    assert [s.start.astimezone(UTC).hour for s in late] == [1, 1]
