"""The family itinerary planner (PURE).

Given every teacher's free slots and what each family needs — one meeting per (student,
teacher) — it proposes one slot per need so that:

* a slot is proposed to one family only;
* a family's meetings never overlap and keep ``gap`` between them (time to walk between
  rooms or switch video calls), also against the meetings the family already has;
* a family's meetings sit close together (back to back where siblings see several
  teachers), on the same evening where possible;
* families are spread across the evenings rather than all given the first slot: each
  family gets an anchor time, spread evenly over the windows in a deterministic but
  name-independent order, and its first meeting is placed as near that anchor as possible.

Hardest families are placed first (most needs, then teachers with the fewest free slots),
which keeps the greedy placement from stranding them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ptm_sync.core.model import Interval, Window


@dataclass(frozen=True, slots=True)
class Need:
    """One meeting a family needs: a guardian, a teacher, the student(s) it is about.

    ``guardian`` is the primary guardian; ``co_guardians`` are the student's other guardians
    for this teacher, invited to the same meeting.
    """

    family: str
    guardian: str
    teacher: str
    students: tuple[str, ...] = field(default_factory=tuple)
    co_guardians: tuple[str, ...] = field(default_factory=tuple)

    @property
    def guardians(self) -> tuple[str, ...]:
        """Every guardian invited, the primary first."""
        return (self.guardian, *self.co_guardians)


#: Why a need was not placed (:attr:`Plan.unplaced`).
NO_SLOT_LEFT = "no free slot left"
NO_FITTING_SLOT = "no free slot that fits the family's other meetings"
#: The teacher's calendar was never read: their time is unknown, not taken (DESIGN §7).
NOT_SYNCED = "not synced: the teacher's calendar has never been read (run sync, see check)"


@dataclass(frozen=True, slots=True)
class Proposal:
    need: Need
    slot: Interval


@dataclass(frozen=True, slots=True)
class Plan:
    proposals: tuple[Proposal, ...]
    unplaced: tuple[tuple[Need, str], ...]


def _clash(a: Interval, b: Interval, gap: timedelta) -> bool:
    """True when the two meetings overlap or sit closer than ``gap``."""
    return a.start < b.end + gap and b.start < a.end + gap


def _cost(
    slot: Interval, target: datetime, placed: Sequence[Interval], gap: timedelta
) -> tuple[float, float]:
    """Near the family's other meetings first (their nearest edge after the gap), then
    near the family's anchor."""
    to_anchor = abs((slot.start - target).total_seconds())
    if not placed:
        return (to_anchor, 0.0)
    near = min(
        min(
            abs((slot.start - (p.end + gap)).total_seconds()),
            abs(((p.start - gap) - slot.end).total_seconds()),
        )
        for p in placed
    )
    return (near, to_anchor)


def anchors(families: Sequence[str], windows: Sequence[Window]) -> dict[str, datetime]:
    """Spread families evenly over the windows' total time.

    The order along the evening comes from a hash of the family key, so it depends neither
    on names (no alphabetical advantage) nor on the order of the roster file.
    """
    ordered = sorted(families, key=lambda f: hashlib.sha256(f.encode()).hexdigest())
    spans = sorted(windows, key=lambda w: w.start)
    total = sum(((w.end - w.start) for w in spans), timedelta())
    result: dict[str, datetime] = {}
    for i, family in enumerate(ordered):
        offset = total * ((i + 0.5) / len(ordered))
        for w in spans:
            length = w.end - w.start
            if offset <= length:
                result[family] = w.start + offset
                break
            offset -= length
        else:  # pragma: no cover - rounding at the very end
            result[family] = spans[-1].end
    return result


def plan(
    needs: Sequence[Need],
    free: Mapping[str, Sequence[Interval]],
    windows: Sequence[Window],
    *,
    gap: timedelta,
    existing: Mapping[str, Sequence[Interval]] | None = None,
    unsynced: Collection[str] = (),
) -> Plan:
    """Propose a slot for every need that can have one.

    Args:
        needs: what each family needs; needs that already have a meeting are left out by
            the caller.
        free: each teacher's free slots (teacher email → slots), already without busy times,
            held and booked slots.
        windows: the period's windows, over which families are spread.
        gap: the minimum time between two meetings of one family.
        existing: each family's meetings that already exist (family → intervals).
        unsynced: teachers (emails) whose calendar was never read: they have no free slot,
            and a need of theirs is unplaced with :data:`NOT_SYNCED` rather than
            :data:`NO_SLOT_LEFT`.
    """
    by_family: dict[str, list[Need]] = defaultdict(list)
    for need in needs:
        by_family[need.family].append(need)
    if not by_family:
        return Plan((), ())
    anchor = anchors(list(by_family), windows)
    taken: dict[str, set[Interval]] = defaultdict(set)
    proposals: list[Proposal] = []
    unplaced: list[tuple[Need, str]] = []

    def scarcity(need: Need) -> int:
        return len(free.get(need.teacher, ()))

    order = sorted(
        by_family,
        key=lambda f: (-len(by_family[f]), min(scarcity(n) for n in by_family[f]), f),
    )
    for family in order:
        placed: list[Interval] = list((existing or {}).get(family, ()))
        for need in sorted(by_family[family], key=lambda n: (scarcity(n), n.teacher)):
            candidates = [
                slot
                for slot in free.get(need.teacher, ())
                if slot not in taken[need.teacher]
                and not any(_clash(slot, other, gap) for other in placed)
            ]
            if not candidates:
                left = [s for s in free.get(need.teacher, ()) if s not in taken[need.teacher]]
                if need.teacher in unsynced:
                    reason = NOT_SYNCED
                else:
                    reason = NO_SLOT_LEFT if not left else NO_FITTING_SLOT
                unplaced.append((need, reason))
                continue
            target = anchor[family]
            best = min(candidates, key=lambda s: (_cost(s, target, placed, gap), s.start))
            taken[need.teacher].add(best)
            placed.append(best)
            proposals.append(Proposal(need, best))
    proposals.sort(key=lambda p: (p.slot.start, p.need.teacher, p.need.family))
    return Plan(tuple(proposals), tuple(unplaced))
