"""The rules of the school's record (DESIGN §7 ``report``): what a household is, when it has
booked, what counts as rescheduled, and the school's row (households once, not summed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ptm_sync.core.booking.record import (
    KEYS,
    Counts,
    Household,
    Party,
    Tie,
    households,
    is_booked,
    moved,
    report,
    unbooked,
)
from ptm_sync.core.model import MeetingState

T0 = datetime(2027, 4, 12, 19, 0, tzinfo=UTC)
ADA, ALAN = "ada@s.org", "alan@s.org"


def h(guardians: set[str], students: set[str]) -> Household:
    return Household(frozenset(guardians), frozenset(students))


def party(teacher: str, students: set[str], guardians: set[str]) -> Party:
    return Party(teacher, frozenset(students), frozenset(guardians))


# --- rescheduled ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "counts"),
    [
        (None, T0, False),  # created: no time before
        (T0, T0, False),  # a change that kept the time (an answer, a link)
        (T0, T0 + timedelta(minutes=15), True),  # counter, drag, late, staff
        (T0, None, True),  # a time known before, none after: moved all the same
    ],
)
def test_a_history_row_moves_its_meeting_when_the_old_start_is_known_and_differs(
    old: datetime | None, new: datetime | None, counts: bool
) -> None:
    assert moved(old, new) is counts


# --- households -----------------------------------------------------------------------------


def test_a_joint_students_guardians_are_one_household_and_siblings_share_it() -> None:
    ties = [
        Tie(ADA, "S1", "pat@x"),
        Tie(ADA, "S1", "kim@x"),
        Tie(ADA, "S2", "pat@x"),  # Pat alone for the sibling: another household
        Tie(ADA, "S3", "kim@x"),
        Tie(ADA, "S3", "pat@x"),  # the same two for S3: S1's household
        Tie(ALAN, "S2", "pat@x"),
    ]
    found = households(ties, "joint")
    assert found[ADA] == (
        h({"kim@x", "pat@x"}, {"S1", "S3"}),
        h({"pat@x"}, {"S2"}),
    )
    assert found[ALAN] == (h({"pat@x"}, {"S2"}),)


def test_a_separate_student_gives_each_guardian_a_household_of_their_own() -> None:
    ties = [
        Tie(ADA, "S1", "pat@x", "separate"),
        Tie(ADA, "S1", "kim@x", "separate"),
        Tie(ADA, "S2", "pat@x", ""),  # the period's mode
    ]
    # Kim alone for S1; Pat alone for S1, and Pat for S2: the same household.
    assert households(ties, "joint")[ADA] == (h({"kim@x"}, {"S1"}), h({"pat@x"}, {"S1", "S2"}))
    # The period's mode decides for S2 alone (one guardian): nothing changes.
    assert households(ties, "separate")[ADA] == households(ties, "joint")[ADA]
    # Without S1's own mode, the joint period makes Pat and Kim one household for S1.
    joint = [Tie(t.teacher, t.student, t.guardian) for t in ties]
    assert households(joint, "joint")[ADA] == (h({"kim@x", "pat@x"}, {"S1"}), h({"pat@x"}, {"S2"}))
    assert households(joint, "separate")[ADA] == (h({"kim@x"}, {"S1"}), h({"pat@x"}, {"S1", "S2"}))


def test_a_household_has_booked_when_a_meeting_has_one_of_its_students_and_guardians() -> None:
    family = h({"pat@x", "kim@x"}, {"S1", "S3"})
    assert is_booked(family, [party(ADA, {"S3"}, {"kim@x"})])
    assert not is_booked(family, [party(ADA, {"S2"}, {"pat@x"})])  # another child's meeting
    assert not is_booked(family, [party(ADA, {"S1"}, {"sam@x"})])  # another family's
    assert not is_booked(family, [])


# --- the report -----------------------------------------------------------------------------


def test_counts_take_scheduled_as_every_meeting_and_the_columns_by_current_state() -> None:
    counts = Counts.of(
        {
            MeetingState.PROPOSED: 1,
            MeetingState.CONFIRMED: 2,
            MeetingState.COMPLETED: 3,
            MeetingState.NO_SHOW: 1,
            MeetingState.CANCELLED: 1,
            MeetingState.SUPERSEDED: 4,
            MeetingState.DECLINED: 1,
            MeetingState.EXPIRED: 1,
        },
        rescheduled=2,
    )
    assert counts == Counts(
        scheduled=14, confirmed=2, completed=3, no_show=1, rescheduled=2, cancelled=1
    )


def test_the_school_row_sums_meetings_and_counts_each_household_once() -> None:
    pat, sam = h({"pat@x"}, {"S1"}), h({"sam@x"}, {"S3"})
    rows = report(
        "spring",
        {ADA: Counts(scheduled=3, confirmed=1), ALAN: Counts(scheduled=2, rescheduled=1)},
        {ADA: (pat, sam), ALAN: (pat,), "grace@s.org": (h({"pat@x"}, {"S2"}),)},
        [party(ADA, {"S1"}, {"pat@x"})],
    )
    got = [r.as_dict() for r in rows]
    assert [tuple(r) for r in got] == [KEYS] * 4
    assert [
        (r["teacher"], r["scheduled"], r["households"], r["households_booked"]) for r in got
    ] == [
        (ADA, 3, 2, 1),
        (ALAN, 2, 1, 0),  # Pat booked Ada, not Alan
        ("grace@s.org", 0, 1, 0),  # no meeting at all: still a row, with its households
        (None, 5, 2, 1),  # Pat and Sam, once each; Pat booked (with Ada)
    ]
    assert got[-1]["rescheduled"] == 1 and got[-1]["confirmed"] == 1


def test_a_teacher_with_meetings_but_no_household_left_still_has_a_row() -> None:
    rows = report("spring", {ADA: Counts(scheduled=1, cancelled=1)}, {}, [])
    assert [(r.teacher, r.counts.scheduled, r.households) for r in rows] == [
        (ADA, 1, 0),
        (None, 1, 0),
    ]


def test_unbooked_lists_each_teacher_a_household_still_needs() -> None:
    pat, sam = h({"pat@x"}, {"S1"}), h({"sam@x", "kim@x"}, {"S3"})
    found = unbooked("spring", {ALAN: (pat,), ADA: (pat, sam)}, [party(ADA, {"S1"}, {"pat@x"})])
    assert [u.as_dict() for u in found] == [
        {"period": "spring", "teacher": ADA, "students": ["S3"], "guardians": ["kim@x", "sam@x"]},
        {"period": "spring", "teacher": ALAN, "students": ["S1"], "guardians": ["pat@x"]},
    ]
