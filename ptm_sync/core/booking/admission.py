"""The admission rule: may this party have this time?  One pure function, every channel.

DESIGN §3: a party may have a time when it is exactly one grid slot of the period, free for
the teacher, clear of the party's other meetings by ``gap_minutes``, before
``booking_closes`` (and within ``booking_window_days`` of now for booking addresses), within
the caps (``max_meetings_per_family``, ``max_meetings_per_teacher``), and the party is a
guardian of one of the teacher's students.  Staff acting for a guardian pass the same rule,
except that staff may override the deadline and the caps; the override is returned so that
the history records it.

Refusals carry a short stable ``code`` (for logs and the inbound record), a sentence for the
parent and up to three free alternatives nearest to the time asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from ptm_sync.core import slots as engine
from ptm_sync.core.booking.values import Context
from ptm_sync.core.ical import itip
from ptm_sync.core.model import Interval

#: How many free times a refusal offers (DESIGN §3: "up to three").
ALTERNATIVES = 3

#: Reasons that concern the time asked for; only these come with alternatives.
_ABOUT_THE_TIME = frozenset(
    {"past", "too-far-ahead", "outside", "off-grid", "too-long", "busy", "family-clash", "taken"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask:
    """A request for a time.

    ``slot``: the time asked for (aware datetimes).  ``staff``: staff act for the guardian
    and may ``override`` the deadline and the caps.  ``booking_address``: the request came
    to a teacher's booking address (``booking_window_days`` and
    ``maximum_duration_minutes`` apply).  ``current``: the time the meeting has now (a
    counter, a reschedule), which a refusal never offers back.  ``recurring`` /
    ``all_day``: the request is a series or an all-day event, which a conference never is.
    """

    slot: Interval
    current: Interval | None = None  # the meeting's own time now: never an alternative
    staff: bool = False
    override: bool = False
    booking_address: bool = False
    recurring: bool = False
    all_day: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The answer: ``granted``, or a refusal with ``code``, ``reason`` and alternatives.

    ``overrides`` names the rules staff set aside for a granted ask (``deadline``,
    ``family cap``, ``teacher cap``).
    """

    granted: bool
    code: str = ""
    reason: str = ""
    alternatives: tuple[Interval, ...] = ()
    overrides: tuple[str, ...] = ()

    @property
    def request_status(self) -> str:
        """The REQUEST-STATUS a refusal carries (RFC 5546 §3.6, DESIGN §4's table); "" when
        granted."""
        return "" if self.granted else REQUEST_STATUS.get(self.code, CONFLICT)


# RFC 5546 §3.6 status codes, "statcode;statdesc[;exdata]"; 3.1 and 3.14 name the property.
CONFLICT = itip.REQUEST_STATUS_CONFLICT
_INVALID_USER = itip.REQUEST_STATUS_INVALID_USER
_NO_AUTHORITY = itip.REQUEST_STATUS_NO_AUTHORITY
_BAD_START = f"{itip.REQUEST_STATUS_INVALID_PROPERTY};DTSTART"
_BAD_END = f"{itip.REQUEST_STATUS_INVALID_PROPERTY};DTEND"
_UNSUPPORTED = f"{itip.REQUEST_STATUS_UNSUPPORTED};RRULE"

#: Refusal code → REQUEST-STATUS (DESIGN §4): a sender who is no guardian in the roster
#: 3.7; a guardian with no student of that teacher, a deadline passed or a cap reached 3.8;
#: a time off the grid, of the wrong length or outside the period 3.1 with the property; a
#: taken or busy time or a family clash 4.0; a recurring request 3.14.
REQUEST_STATUS: dict[str, str] = {
    "stranger": _INVALID_USER,
    "not-their-teacher": _NO_AUTHORITY,
    "closed": _NO_AUTHORITY,
    "family-cap": _NO_AUTHORITY,
    "teacher-cap": _NO_AUTHORITY,
    "recurring": _UNSUPPORTED,
    "all-day": _BAD_START,
    "too-long": _BAD_END,
    "past": _BAD_START,
    "too-far-ahead": _BAD_START,
    "outside": _BAD_START,
    "off-grid": _BAD_START,
    "already-booked": CONFLICT,
    "busy": CONFLICT,
    "family-clash": CONFLICT,
    "taken": CONFLICT,
}


def clashes(slot: Interval, others: Sequence[Interval], gap: timedelta) -> bool:
    """Whether ``slot`` overlaps one of ``others`` or sits closer to it than ``gap``."""
    s = slot.utc()
    return any(s.start < o.end + gap and o.start < s.end + gap for o in (x.utc() for x in others))


def admit(ask: Ask, ctx: Context) -> Admission:
    """Decide whether the asker may have ``ask.slot``; see the module docstring.

    The checks run from the most to the least fundamental, so the reason a parent reads is
    the one that matters (a stranger is told so, not that the time is busy).
    """
    rules, now = ctx.rules, ctx.now
    slot = ask.slot.utc()
    overrides: list[str] = []

    def refuse(code: str, reason: str) -> Admission:
        alternatives = alternatives_for(slot, ctx, ask) if code in _ABOUT_THE_TIME else ()
        return Admission(granted=False, code=code, reason=reason, alternatives=alternatives)

    if not ctx.is_guardian:
        code = "not-their-teacher" if ctx.in_roster else "stranger"
        return refuse(code, "only the families of this teacher's students can book here")
    if ask.recurring:
        return refuse("recurring", "a conference is one meeting, not a series")
    if ask.all_day:
        return refuse("all-day", "a conference has a start and an end time, not a whole day")
    longest = rules.slot_minutes
    if ask.booking_address and rules.maximum_duration_minutes:
        longest = min(longest, rules.maximum_duration_minutes)
    if slot.duration > timedelta(minutes=longest):
        return refuse("too-long", f"meetings are {rules.slot_minutes} minutes long")
    if slot.start < now:
        return refuse("past", "that time has passed")
    if rules.closed(now):
        if not (ask.staff and ask.override):
            return refuse("closed", "booking has closed")
        overrides.append("deadline")
    if ask.booking_address and slot.start > now + timedelta(days=rules.booking_window_days):
        return refuse(
            "too-far-ahead", f"bookings are taken up to {rules.booking_window_days} days ahead"
        )
    if ctx.booked:
        return refuse(
            "already-booked",
            "the family already has a meeting with this teacher; move or cancel that one instead",
        )
    if not any(w.start <= slot.start and slot.end <= w.end for w in rules.windows):
        return refuse("outside", "that time is not during the conferences")
    if slot not in _grid(ctx):
        return refuse(
            "off-grid",
            f"meetings are {rules.slot_minutes} minutes long and start at the listed times",
        )
    if slot not in ctx.free:
        return refuse("busy", "the teacher is not free then")
    if clashes(slot, ctx.family, rules.gap):
        return refuse("family-clash", "it is too close to your other meetings that evening")
    caps = (
        ("family cap", rules.max_meetings_per_family, ctx.family_count),
        ("teacher cap", rules.max_meetings_per_teacher, ctx.teacher_count),
    )
    for name, cap, count in caps:
        if cap and count >= cap:
            if not (ask.staff and ask.override):
                who = "your family" if name == "family cap" else "this teacher"
                return refuse(
                    name.replace(" ", "-"),
                    f"{who} already has the most meetings allowed in this period ({cap})",
                )
            overrides.append(name)
    return Admission(granted=True, overrides=tuple(overrides))


def alternatives_for(slot: Interval, ctx: Context, ask: Ask | None = None) -> tuple[Interval, ...]:
    """Up to :data:`ALTERNATIVES` free times nearest to ``slot``, in time order.

    Each is free for the teacher, still ahead, clear of the family's meetings and (for a
    booking address) inside the booking window; the time asked for itself is never one.
    """
    rules, now = ctx.rules, ctx.now
    limit = now + timedelta(days=rules.booking_window_days) if ask and ask.booking_address else None
    current = ask.current.utc() if ask and ask.current else None
    choices = [
        s
        for s in ctx.free
        if s != slot
        and s != current
        and s.start >= now
        and (limit is None or s.start <= limit)
        and not clashes(s, ctx.family, rules.gap)
    ]
    choices.sort(key=lambda s: (abs((s.start - slot.start).total_seconds()), s.start))
    return tuple(sorted(choices[:ALTERNATIVES]))


def next_best(after: Interval, ctx: Context) -> Interval | None:
    """The time to propose after ``after`` was declined: free, ahead, clear of the family,
    never one already offered (``ctx.tried``), nearest to the declined time."""
    rules = ctx.rules
    tried = {t.utc() for t in ctx.tried} | {after.utc()}
    if rules.closed(ctx.now):
        return None
    choices = [
        s
        for s in ctx.free
        if s not in tried and s.start >= ctx.now and not clashes(s, ctx.family, rules.gap)
    ]
    if not choices:
        return None
    return min(choices, key=lambda s: (abs((s.start - after.start).total_seconds()), s.start))


def _grid(ctx: Context) -> list[Interval]:
    rules = ctx.rules
    return engine.grid(rules.windows, rules.slot_minutes, rules.buffer_minutes)
