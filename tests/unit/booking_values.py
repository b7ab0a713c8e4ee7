"""Values for the tests of the pure booking core: a school, a period, a meeting, a context.

No database: the meetings and contexts are built here as the store would load them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from ptm_sync.core import slots as engine
from ptm_sync.core.booking.notices import Letterhead, Outgoing, compose
from ptm_sync.core.booking.values import (
    Context,
    Decision,
    Fresh,
    MeetingView,
    Origin,
    Party,
    Rules,
    StudentInfo,
    TeacherInfo,
)
from ptm_sync.core.model import Interval, MeetingState, Window

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 22, 14, 0, tzinfo=UTC)
#: 15:00–17:00 New York on 12 April 2027 (EDT, UTC-4): eight 15-minute slots.
WINDOW = Window(datetime(2027, 4, 12, 19, 0, tzinfo=UTC), datetime(2027, 4, 12, 21, 0, tzinfo=UTC))
RULES = Rules(period="spring", title="Spring conferences", windows=(WINDOW,))
GRID = engine.grid(RULES.windows, RULES.slot_minutes, RULES.buffer_minutes)
ORGANIZER = "conferences@lincoln.example.org"
ADA = TeacherInfo(
    id=1,
    email="ada@lincoln.example.org",
    name="Ada Lovelace",
    key="ada",
    room="101",
    booking_address="book+ada@lincoln.example.org",
)
PAT = Party(guardian_id=10, email="pat@example.net", name="Pat Johnson")
KIM = Party(guardian_id=11, email="kim@example.net", name="Kim Johnson")
MIA = StudentInfo(id=100, student_id="S1", name="Mia Johnson")
HEAD = Letterhead(
    school="Lincoln High School",
    contact="office@lincoln.example.org",
    tz=TZ,
    organizer=ORGANIZER,
    public_url="https://conferences.lincoln.example.org",
    period_titles={"spring": "Spring conferences"},
)


def slot(i: int) -> Interval:
    return GRID[i]


def meeting(
    state: MeetingState | None = MeetingState.PROPOSED,
    *,
    at: int = 0,
    sequence: int = 0,
    parties: tuple[Party, ...] = (PAT,),
    origin: Origin = Origin.OFFER,
    hold_until: datetime | None = NOW + timedelta(hours=48),
    reproposals: int = 0,
    uid: str = "a1b2c3-k3xk3xk3xk3xk3xk@lincoln.example.org",
) -> MeetingView:
    return MeetingView(
        id=7 if state is not None else None,
        uid=uid,
        period="spring",
        teacher=ADA,
        parties=parties,
        students=(MIA,),
        start=slot(at).start,
        end=slot(at).end,
        state=state,
        sequence=sequence,
        origin=origin,
        organizer=ORGANIZER if origin is not Origin.BOOKING_ADDRESS else parties[0].email,
        hold_until=hold_until if state is MeetingState.PROPOSED else None,
        video_url="https://meet.lincoln.example.org/ptm-room",
        reproposals=reproposals,
    )


def context(
    *,
    free: tuple[int, ...] | None = None,
    family: tuple[Interval, ...] = (),
    now: datetime = NOW,
    rules: Rules = RULES,
    **kw: object,
) -> Context:
    """A context where the grid slots ``free`` (default: all) are free."""
    frees = tuple(GRID) if free is None else tuple(GRID[i] for i in free)
    fresh = Fresh(uid="next-z9z9z9z9z9z9z9z9@lincoln.example.org", organizer=ORGANIZER)
    return Context(
        rules=rules,
        now=now,
        free=frees,
        family=family,
        fresh=fresh,
        **kw,  # type: ignore[arg-type]
    )


def sent(decision: Decision) -> list[tuple[Outgoing, Calendar | None]]:
    """The emails a decision sends, each with its calendar part parsed (None: plain)."""
    out = []
    for message in compose(decision, HEAD, NOW):
        cal = None
        for part in message.message.walk():
            if part.get_content_type() == "text/calendar":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                cal = Calendar.from_ical(payload)
        out.append((message, cal))
    return out


def event_of(cal: Calendar | None) -> Event:
    assert cal is not None, "a plain email, no calendar"
    return cal.events[0]


def with_answer(view: MeetingView, party: Party, partstat: str, sequence: int = 0) -> MeetingView:
    return view.with_party(
        replace(party, partstat=partstat, reply_sequence=sequence, reply_dtstamp=NOW)
    )
