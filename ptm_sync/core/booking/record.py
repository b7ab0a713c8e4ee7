"""The school's record of meetings (DESIGN §1, §7 ``report``): what counts, and how.  PURE.

The rules ``report`` applies, as functions of plain values (the store's rows are read by
:mod:`ptm_sync.app.read.report`, which counts what SQL can count and hands the rest here):

* ``scheduled``: every meeting ever proposed or booked, whatever became of it (superseded,
  declined and expired included);
* ``confirmed``, ``completed``, ``no_show``, ``cancelled``: meetings by their current state
  (:data:`STATE_COLUMNS`);
* ``rescheduled``: meetings whose start changed after they were first proposed or booked —
  a history row whose old start is known and differs from the new one (:func:`moved`): a
  granted counter, the teacher's drag, running late, staff;
* ``households``: the families with a student of the teacher in the roster.  A household is
  a student's guardians (those linked to that student and teacher) together when the
  student meets ``joint``, each guardian alone when ``separate`` (:func:`households`); two
  students with the same guardians are one household;
* ``households_booked``: those households with a confirmed or completed meeting
  (:data:`BOOKED`) with the teacher: a meeting one of whose students is the household's
  and one of whose guardians is the household's (:func:`is_booked`).

The school's row of a period (``teacher`` None) sums the meeting counts and counts each
household once however many teachers it sees: booked when it has such a meeting with any of
them.  ``report --unbooked`` lists the households with no such meeting with a teacher they
need (:func:`unbooked`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ptm_sync.core.model import MeetingState

#: The states in which a household has booked a teacher (uptake).
BOOKED: frozenset[MeetingState] = frozenset({MeetingState.CONFIRMED, MeetingState.COMPLETED})

#: The report's state columns: each counts the meetings now in its state.
STATE_COLUMNS: tuple[tuple[str, MeetingState], ...] = (
    ("confirmed", MeetingState.CONFIRMED),
    ("completed", MeetingState.COMPLETED),
    ("no_show", MeetingState.NO_SHOW),
    ("cancelled", MeetingState.CANCELLED),
)

#: DESIGN §7: the keys of a ``report`` row, in the order of its table and CSV columns.
KEYS: tuple[str, ...] = (
    "period",
    "teacher",
    "scheduled",
    "confirmed",
    "completed",
    "no_show",
    "rescheduled",
    "cancelled",
    "households",
    "households_booked",
)
#: DESIGN §7: the keys of a ``report --unbooked`` row.
UNBOOKED_KEYS: tuple[str, ...] = ("period", "teacher", "students", "guardians")

#: A student's ``meeting_mode``: the guardians meet the teacher together, or each alone.
JOINT, SEPARATE = "joint", "separate"


def moved(old_start: datetime | None, new_start: datetime | None) -> bool:
    """Whether a history row moved its meeting: the old start is known and differs from the
    new one.  A meeting with such a row counts as ``rescheduled`` (once, however often)."""
    return old_start is not None and old_start != new_start


# --- households -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tie:
    """One roster link that is in the roster now: ``guardian`` (email) of ``student`` (the
    roster's student id) sees ``teacher`` (email); ``mode``: the student's ``meeting_mode``
    ("" follows the period)."""

    teacher: str
    student: str
    guardian: str
    mode: str = ""


@dataclass(frozen=True, slots=True)
class Household:
    """A household: its ``guardians`` (emails; what makes it one household) and the
    ``students`` of one teacher it stands for (ids)."""

    guardians: frozenset[str]
    students: frozenset[str]


def households(ties: Iterable[Tie], default_mode: str) -> dict[str, tuple[Household, ...]]:
    """Each teacher's households, from the roster's current links.

    ``default_mode``: the period's ``meeting_mode`` (``joint`` or ``separate``), for
    students without one.  A joint student's household is every guardian linked to the
    student and the teacher; a separate student gives one household per such guardian.
    Households with the same guardians are one, standing for all their students.  The
    households of a teacher come sorted by their guardians.
    """
    together: dict[tuple[str, str], set[str]] = {}
    modes: dict[tuple[str, str], str] = {}
    for tie in ties:
        together.setdefault((tie.teacher, tie.student), set()).add(tie.guardian)
        modes[(tie.teacher, tie.student)] = tie.mode or default_mode
    found: dict[str, dict[frozenset[str], set[str]]] = {}
    for (teacher, student), guardians in together.items():
        groups = (
            [frozenset({g}) for g in guardians]
            if modes[(teacher, student)] == SEPARATE
            else [frozenset(guardians)]
        )
        for group in groups:
            found.setdefault(teacher, {}).setdefault(group, set()).add(student)
    return {
        teacher: tuple(
            Household(group, frozenset(students))
            for group, students in sorted(groups.items(), key=lambda item: sorted(item[0]))
        )
        for teacher, groups in found.items()
    }


@dataclass(frozen=True, slots=True)
class Party:
    """Who a meeting is with: its ``teacher`` (email), ``students`` (ids) and ``guardians``
    (emails)."""

    teacher: str
    students: frozenset[str]
    guardians: frozenset[str]


def is_booked(household: Household, meetings: Iterable[Party]) -> bool:
    """Whether one of ``meetings`` (the teacher's booked ones) is with ``household``: one of
    its students and one of its guardians are the household's."""
    return any(
        m.students & household.students and m.guardians & household.guardians for m in meetings
    )


# --- the report -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """The meeting counts of one report row."""

    scheduled: int = 0
    confirmed: int = 0
    completed: int = 0
    no_show: int = 0
    rescheduled: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, by_state: Mapping[MeetingState, int], rescheduled: int) -> Counts:
        """The counts of meetings ``by_state`` (how many are in each state now) of which
        ``rescheduled`` moved at least once: ``scheduled`` is all of them."""
        columns = {name: by_state.get(state, 0) for name, state in STATE_COLUMNS}
        return cls(scheduled=sum(by_state.values()), rescheduled=rescheduled, **columns)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.scheduled + other.scheduled,
            self.confirmed + other.confirmed,
            self.completed + other.completed,
            self.no_show + other.no_show,
            self.rescheduled + other.rescheduled,
            self.cancelled + other.cancelled,
        )


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One row of ``report``: a teacher's, or the whole school's (``teacher`` None)."""

    period: str
    teacher: str | None
    counts: Counts
    households: int
    households_booked: int

    def as_dict(self) -> dict[str, str | int | None]:
        """The row with DESIGN §7's keys (:data:`KEYS`)."""
        c = self.counts
        return {
            "period": self.period,
            "teacher": self.teacher,
            "scheduled": c.scheduled,
            "confirmed": c.confirmed,
            "completed": c.completed,
            "no_show": c.no_show,
            "rescheduled": c.rescheduled,
            "cancelled": c.cancelled,
            "households": self.households,
            "households_booked": self.households_booked,
        }


def report(
    period: str,
    counts: Mapping[str, Counts],
    teacher_households: Mapping[str, Sequence[Household]],
    booked: Iterable[Party],
) -> list[ReportRow]:
    """The period's rows: one per teacher (by email) who has a meeting in the period or a
    household in the roster, then the school's row (``teacher`` None).

    ``counts``: each teacher's meeting counts in the period; ``teacher_households``: each
    teacher's households (:func:`households`); ``booked``: the period's meetings in a
    :data:`BOOKED` state.
    """
    by_teacher: dict[str, list[Party]] = {}
    for party in booked:
        by_teacher.setdefault(party.teacher, []).append(party)
    rows = []
    school_households: set[frozenset[str]] = set()
    school_booked: set[frozenset[str]] = set()
    for teacher in sorted(counts.keys() | teacher_households.keys()):
        mine = teacher_households.get(teacher, ())
        taken = {h.guardians for h in mine if is_booked(h, by_teacher.get(teacher, ()))}
        school_households |= {h.guardians for h in mine}
        school_booked |= taken
        rows.append(
            ReportRow(period, teacher, counts.get(teacher, Counts()), len(mine), len(taken))
        )
    total = sum((r.counts for r in rows), Counts())
    rows.append(ReportRow(period, None, total, len(school_households), len(school_booked)))
    return rows


@dataclass(frozen=True, slots=True)
class Unbooked:
    """A household with no confirmed or completed meeting with a teacher it needs (DESIGN
    §7 ``report --unbooked``): ``students`` (ids) and ``guardians`` (emails), sorted."""

    period: str
    teacher: str
    students: tuple[str, ...]
    guardians: tuple[str, ...]

    def as_dict(self) -> dict[str, str | list[str]]:
        """The row with DESIGN §7's keys (:data:`UNBOOKED_KEYS`)."""
        return {
            "period": self.period,
            "teacher": self.teacher,
            "students": list(self.students),
            "guardians": list(self.guardians),
        }


def unbooked(
    period: str, teacher_households: Mapping[str, Sequence[Household]], booked: Iterable[Party]
) -> list[Unbooked]:
    """Each (teacher, household) of the roster without a :data:`BOOKED` meeting among
    ``booked`` (the period's), by teacher then guardians."""
    by_teacher: dict[str, list[Party]] = {}
    for party in booked:
        by_teacher.setdefault(party.teacher, []).append(party)
    return [
        Unbooked(period, teacher, tuple(sorted(h.students)), tuple(sorted(h.guardians)))
        for teacher in sorted(teacher_households)
        for h in teacher_households[teacher]
        if not is_booked(h, by_teacher.get(teacher, ()))
    ]
