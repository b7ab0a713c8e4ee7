"""The words of the notice a family gets when a teacher's whole day is cancelled (DESIGN §3
"Bulk disruption").  PURE.

One plain email per guardian, beside the per-meeting CANCELs and the invitations for the
replacement times that calendars need one by one: what was cancelled (all of that
guardian's meetings with the teacher that day), why, and what happens next for each (a
replacement time reserved on another evening, or the teacher's waiting list).  Times are in
the school's zone, the zone named in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ptm_sync.core.booking.aftercare_text import at, zone_words
from ptm_sync.core.booking.messages import Text, _text


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelledMeeting:
    """One cancelled meeting as the notice names it: its time (aware), the students' first
    names, and the replacement time reserved instead (``instead``, aware) or None when the
    family is on the teacher's waiting list — or, ``ended``, nothing follows (the guardian,
    the student or the teacher left the roster)."""

    start: datetime
    end: datetime
    students: tuple[str, ...] = ()
    instead: tuple[datetime, datetime] | None = None
    ended: bool = False

    @property
    def waiting(self) -> bool:
        """The family is on the teacher's waiting list for it."""
        return self.instead is None and not self.ended

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "students": list(self.students),
            "instead": [t.isoformat() for t in self.instead] if self.instead else None,
            "ended": self.ended,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CancelledMeeting:
        """The value :meth:`as_json` wrote.

        Raises:
            KeyError, ValueError: ``data`` is not such a value.
        """
        instead = data.get("instead")
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            students=tuple(data.get("students", ())),
            ended=bool(data.get("ended", False)),
            instead=(
                (datetime.fromisoformat(instead[0]), datetime.fromisoformat(instead[1]))
                if instead
                else None
            ),
        )


def _about(students: Sequence[str]) -> str:
    return " and ".join(students) or "your child"


def day_cancelled(
    *,
    school: str,
    period_title: str,
    teacher_name: str,
    guardian_name: str,
    cancelled: Sequence[CancelledMeeting],
    tz: ZoneInfo,
    contact: str,
    reason: str = "",
    how: str = "",
) -> Text:
    """The notice of a teacher's cancelled day: each of the guardian's meetings with the
    teacher that day, the reason, and what happens next for each (``how``: how else to
    book, said when a meeting went to the waiting list); nothing is said to follow a
    meeting that ``ended`` (who left the roster: the office's contact closes the notice)."""
    first = min(cancelled, key=lambda c: c.start)
    day = f"{first.start.astimezone(tz):%A %d %B %Y}"
    one = len(cancelled) == 1
    times = "\n".join(
        f"- {c.start.astimezone(tz):%H:%M}–{c.end.astimezone(tz):%H:%M} ({zone_words(tz)}), "
        f"about {_about(c.students)}"
        for c in sorted(cancelled, key=lambda c: c.start)
    )
    steps = []
    for c in sorted(cancelled, key=lambda c: c.start):
        if c.ended:
            continue  # left the roster: no other time, no waiting list
        if c.instead is not None:
            steps.append(
                f"- About {_about(c.students)}: we have reserved {at(*c.instead, tz)} instead. "
                "Its invitation comes in a separate email: press Accept to book it, Decline "
                "to free it, or Propose new time."
            )
        else:
            steps.append(
                f"- About {_about(c.students)}: no other time with {teacher_name} is free for "
                f"you now, so you are on {teacher_name}'s waiting list. When a time becomes "
                "free, we reserve it for you and send you an invitation."
            )
    waiting = any(c.waiting for c in cancelled)
    return _text(
        f"Cancelled: {period_title} with {teacher_name} on {day}",
        [
            f"Dear {guardian_name},",
            f"{teacher_name} cannot meet families on {day}"
            + (f" ({reason})" if reason else "")
            + ". We are sorry: "
            + (
                "your meeting that day is cancelled:"
                if one
                else "your meetings that day are cancelled:"
            )
            + f"\n{times}",
            "What happens next:\n" + "\n".join(steps) if steps else "",
            "Your calendar receives a cancellation for "
            + ("the meeting." if one else "each meeting."),
            how if waiting else "",
            f"Questions: {contact}",
            school,
        ],
    )
