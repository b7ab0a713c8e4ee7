"""The family itinerary planner: no overlaps, gaps kept, siblings together, families spread."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ptm_sync.core.model import Interval, Window
from ptm_sync.core.planner import NOT_SYNCED, Need, Plan, plan

START = datetime(2027, 4, 10, 19, 0, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=4))
GAP = timedelta(minutes=5)


def grid(n: int = 16, minutes: int = 15, start: datetime = START) -> list[Interval]:
    return [
        Interval(
            start + i * timedelta(minutes=minutes), start + (i + 1) * timedelta(minutes=minutes)
        )
        for i in range(n)
    ]


def check_invariants(result: Plan, free: dict[str, list[Interval]], gap: timedelta) -> None:
    used = [(p.need.teacher, p.slot) for p in result.proposals]
    assert len(used) == len(set(used)), "a slot was proposed twice"
    for p in result.proposals:
        assert p.slot in free[p.need.teacher], "proposed a slot that is not free"
    by_family: dict[str, list[Interval]] = {}
    for p in result.proposals:
        by_family.setdefault(p.need.family, []).append(p.slot)
    for slots in by_family.values():
        slots.sort()
        for a, b in itertools.pairwise(slots):
            assert a.end + gap <= b.start, f"family meetings {a} and {b} closer than the gap"


def test_siblings_seeing_several_teachers_are_placed_back_to_back() -> None:
    free = {t: grid() for t in ("t1", "t2", "t3")}
    needs = [
        Need("fam", "g@x", "t1", ("s1",)),
        Need("fam", "g@x", "t2", ("s1",)),
        Need("fam", "g@x", "t3", ("s2",)),
    ]
    result = plan(needs, free, [WINDOW], gap=GAP)
    assert not result.unplaced
    check_invariants(result, free, GAP)
    starts = sorted(p.slot.start for p in result.proposals)
    # 15-minute slots on a 15-minute grid, 5 minutes gap: every second slot, nothing wider.
    assert starts[-1] - starts[0] == timedelta(minutes=60)


def test_gap_zero_allows_truly_back_to_back() -> None:
    free = {t: grid() for t in ("t1", "t2")}
    needs = [Need("fam", "g", "t1"), Need("fam", "g", "t2")]
    result = plan(needs, free, [WINDOW], gap=timedelta(0))
    a, b = sorted(p.slot for p in result.proposals)
    assert a.end == b.start


def test_families_are_spread_rather_than_all_given_the_first_slot() -> None:
    teachers = [f"t{i}" for i in range(10)]
    free = {t: grid() for t in teachers}
    needs = [Need(f"fam{i}", f"g{i}", teachers[i]) for i in range(10)]
    result = plan(needs, free, [WINDOW], gap=GAP)
    starts = [p.slot.start for p in result.proposals]
    assert len(starts) == 10
    assert starts.count(START) <= 1
    assert max(starts) - min(starts) >= timedelta(hours=3)


def test_spread_covers_every_window() -> None:
    second = Window(START + timedelta(days=1), START + timedelta(days=1, hours=4))
    teachers = [f"t{i}" for i in range(8)]
    free = {t: grid() + grid(start=second.start) for t in teachers}
    needs = [Need(f"fam{i}", f"g{i}", teachers[i]) for i in range(8)]
    result = plan(needs, free, [WINDOW, second], gap=GAP)
    days = {p.slot.start.date() for p in result.proposals}
    assert len(days) == 2


def test_existing_meetings_of_the_family_are_respected() -> None:
    free = {"t1": grid(4)}
    existing = {"fam": [Interval(START, START + timedelta(minutes=30))]}
    result = plan([Need("fam", "g", "t1")], free, [WINDOW], gap=GAP, existing=existing)
    (p,) = result.proposals
    assert p.slot.start >= START + timedelta(minutes=35)


def test_unplaceable_need_is_reported_with_a_reason() -> None:
    # t1 and t2 are free at the same single time; t3 is never free.
    free = {"t1": grid(1), "t2": grid(1)}
    needs = [Need("fam", "g", "t1"), Need("fam", "g", "t2"), Need("other", "h", "t3")]
    result = plan(needs, free, [WINDOW], gap=GAP)
    assert len(result.proposals) == 1
    reasons = {n.teacher: r for n, r in result.unplaced}
    clashing = "t2" if result.proposals[0].need.teacher == "t1" else "t1"
    assert reasons == {
        "t3": "no free slot left",
        clashing: "no free slot that fits the family's other meetings",
    }


def test_a_teacher_never_synced_is_not_synced_rather_than_fully_booked() -> None:
    """DESIGN §7: nothing is known of such a teacher's time; the reason says so."""
    free = {"t1": grid(2), "t2": []}
    needs = [Need("fam", "g", "t1"), Need("fam", "g", "t2"), Need("other", "h", "t3")]
    result = plan(needs, free, [WINDOW], gap=GAP, unsynced={"t2"})
    assert [p.need.teacher for p in result.proposals] == ["t1"]
    assert dict((n.teacher, r) for n, r in result.unplaced) == {
        "t2": NOT_SYNCED,
        "t3": "no free slot left",
    }
    assert NOT_SYNCED.startswith("not synced")


def test_hardest_family_is_placed_first() -> None:
    # t_rare has one free slot; the family that needs it together with others must get it.
    free = {"t_rare": grid(1), "t1": grid(), "t2": grid()}
    needs = [
        Need("busy-family", "g1", "t_rare"),
        Need("busy-family", "g1", "t1"),
        Need("busy-family", "g1", "t2"),
        Need("small-family", "g2", "t_rare"),
    ]
    result = plan(needs, free, [WINDOW], gap=GAP)
    winner = next(p.need.family for p in result.proposals if p.need.teacher == "t_rare")
    assert winner == "busy-family"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 4)), min_size=1, max_size=40, unique=True),
    st.integers(0, 20),
    st.lists(st.integers(0, 15), max_size=10),
)
def test_plans_never_double_book_or_squeeze_a_family(
    links: list[tuple[int, int]], gap_minutes: int, removed: list[int]
) -> None:
    free = {f"t{t}": [s for i, s in enumerate(grid()) if i not in removed] for t in range(5)}
    needs = [Need(f"fam{f}", f"g{f}", f"t{t}") for f, t in links]
    gap = timedelta(minutes=gap_minutes)
    result = plan(needs, free, [WINDOW], gap=gap)
    check_invariants(result, free, gap)
    assert len(result.proposals) + len(result.unplaced) == len(needs)
