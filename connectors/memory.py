"""An in-memory calendar system that keeps the whole connector contract, for pure tests.

:class:`MemoryConnector` holds its calendars in a :class:`MemoryCalendars` value that a
test shares with it, so the test can play the teacher (move or delete an event, add busy
time) and a server outage.  It behaves as :class:`connectors.base.CalendarConnector` says a
real system does: ETags change on every write, a write on a stale ETag is
:class:`~ptm_sync.core.errors.WrongEtag`, a gone object :class:`~ptm_sync.core.errors.NotFound`, a
create of a UID already there reuses it, a forgotten token is
:class:`~ptm_sync.core.errors.SyncTokenInvalid`.  Its capabilities are chosen when it is made,
so the code above ``connectors/`` can be run down each path a real system takes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from connectors.base import (
    CalendarRef,
    Capability,
    ChangeSet,
    FreeBusy,
    FreeBusyAnswer,
    Horizon,
    MeetingEvent,
    RemoteEvent,
    RemoteRef,
)
from connectors.ical import meeting_matches, meeting_to_ical
from ptm_sync.core.errors import (
    BadCalendarData,
    ConnectorError,
    NotFound,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.model import Busy, Interval

#: What a CalDAV server offers; pass another set to take another system's path.
MIRRORED_SYSTEM = frozenset(
    {Capability.MIRRORED, Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED}
)
#: What Graph, EWS and Google offer (server free/busy, a change feed of our events).
SERVER_SYSTEM = frozenset({Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED})


@dataclass
class _Object:
    etag: str
    event: MeetingEvent
    ics: str
    version: int


@dataclass
class _Calendar:
    objects: dict[str, _Object] = field(default_factory=dict)  # href -> object
    removed: dict[str, int] = field(default_factory=dict)  # href -> version removed at
    #: The owner's calendar-user addresses (a CalDAV principal's calendar-user-address-set).
    owner: frozenset[str] = frozenset()
    #: This calendar's own free/busy error (the others answer as usual).
    failing: ConnectorError | None = None
    #: Spans the server has no free/busy data for.
    no_data: list[Interval] = field(default_factory=list)


@dataclass
class MemoryCalendars:
    """The server side: calendars by name, a version counter, and an outage switch."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    calendars: dict[str, _Calendar] = field(default_factory=dict)
    down: bool = False
    #: Tokens issued before this version are forgotten (a server's expired sync token).
    forgotten_before: int = 0
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_calendar(self, name: str, owner: str = "") -> CalendarRef:
        held = self.calendars.setdefault(name, _Calendar())
        if owner:
            held.owner = frozenset({owner.lower()})
        return CalendarRef("memory", name)

    def add_invitation(
        self, name: str, start: datetime, end: datetime, *, attendee: str, partstat: str
    ) -> str:
        """Someone else's invitation stored in the calendar as a scheduling server keeps it
        (RFC 6638 §3.2: the organizer's event, the owner an ATTENDEE with ``partstat``)."""
        uid = f"invitation-{next(self._versions)}@elsewhere.test"
        href = f"/{name}/{uid}.ics"
        event = MeetingEvent(uid=uid, start=start, end=end, summary="Staff meeting")
        stored = self._store(name, href, event)
        line = f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}\r\n"
        stored.ics = stored.ics.replace(
            "END:VEVENT", f"ORGANIZER:mailto:head@elsewhere.test\r\n{line}END:VEVENT"
        )
        return href

    def add_busy(
        self, name: str, start: datetime, end: datetime, *, tentative: bool = False
    ) -> str:
        """The teacher's own appointment (an event not of ours); its href."""
        uid = f"appointment-{next(self._versions)}@teacher.test"
        href = f"/{name}/{uid}.ics"
        status = "TENTATIVE" if tentative else "CONFIRMED"
        event = MeetingEvent(uid=uid, start=start, end=end, summary="Busy", status=status)
        self._store(name, href, event)
        return href

    def teacher_moves(self, name: str, href: str, start: datetime, end: datetime) -> None:
        """The teacher drags our event: new times, a new ETag."""
        found = self.calendars[name].objects[href]
        self._store(name, href, replace(found.event, start=start, end=end))

    def teacher_edits(self, name: str, href: str, summary: str, description: str = "") -> None:
        """The teacher retitles our event and writes a note in it: a new ETag, same time."""
        found = self.calendars[name].objects[href]
        self._store(name, href, replace(found.event, summary=summary, description=description))

    def teacher_deletes(self, name: str, href: str) -> None:
        self.calendars[name].objects.pop(href)
        self.calendars[name].removed[href] = next(self._versions)

    def _store(self, name: str, href: str, event: MeetingEvent) -> _Object:
        version = next(self._versions)
        ics = meeting_to_ical(event, self.tz, stamp=datetime(2000, 1, 1, tzinfo=UTC)).to_ical()
        stored = _Object(f'"{version}"', event, ics.decode(), version)
        self.calendars[name].objects[href] = stored
        self.calendars[name].removed.pop(href, None)
        return stored

    def _calendar(self, ref: CalendarRef) -> _Calendar:
        if self.down:
            raise Unavailable("memory calendar server is down")
        found = self.calendars.get(ref.calendar)
        if found is None:
            raise NotFound(f"calendar {ref.calendar!r} not found")
        return found


class MemoryConnector:
    """A connector over :class:`MemoryCalendars` (the contract: :mod:`connectors.base`)."""

    kind = "memory"

    def __init__(
        self,
        server: MemoryCalendars,
        horizon: Horizon,
        capabilities: frozenset[Capability] = MIRRORED_SYSTEM,
    ) -> None:
        self.server = server
        self.horizon = horizon
        self.capabilities = capabilities

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each calendar's busy time from its objects (an invitation the owner declined is
        free, as a scheduling server counts it), its own error, or its no-data spans."""
        if self.server.down:
            raise Unavailable("memory calendar server is down")
        found: FreeBusyAnswer = {}
        for ref in calendars:
            held = self.server.calendars.get(ref.calendar)
            if held is None:
                found[ref] = NotFound(f"calendar {ref.calendar!r} not found")
                continue
            if held.failing is not None:
                found[ref] = held.failing
                continue
            spans: list[Busy] = []
            for stored in held.objects.values():
                try:
                    spans += busy_times(stored.ics, start, end, self.server.tz, owner=held.owner)
                except BadCalendarData as exc:
                    found[ref] = ConnectorError(f"calendar {ref.calendar!r}: {exc}")
                    break
            else:
                unknown = [
                    Interval(max(u.start, start), min(u.end, end))
                    for u in held.no_data
                    if u.start < end and u.end > start
                ]
                found[ref] = FreeBusy(tuple(spans), tuple(unknown))
        return found

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        held = self.server._calendar(calendar)
        if held.failing is not None and Capability.MIRRORED in self.capabilities:
            raise held.failing  # reading the calendar itself fails (a mirror has no other)
        now = next(self.server._versions)
        if token is None:
            changed = tuple(
                RemoteEvent(href, o.etag, o.ics) for href, o in sorted(held.objects.items())
            )
            return ChangeSet(str(now), changed, (), full=True, owner_addresses=held.owner)
        since = int(token) if token.isdigit() else -1
        if since < self.server.forgotten_before:
            raise SyncTokenInvalid(f"calendar {calendar.calendar!r}: token {token!r} forgotten")
        changed = tuple(
            RemoteEvent(href, o.etag, o.ics)
            for href, o in sorted(held.objects.items())
            if o.version > since
        )
        removed = tuple(sorted(href for href, at in held.removed.items() if at > since))
        return ChangeSet(str(now), changed, removed)

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        held = self.server._calendar(calendar)
        href = f"/{calendar.calendar}/{event.uid}.ics"
        existing = held.objects.get(href)
        if existing is not None and meeting_matches(existing.ics, event, self.server.tz):
            return RemoteRef(href, existing.etag)
        stored = self.server._store(calendar.calendar, href, event)
        return RemoteRef(href, stored.etag)

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        held = self.server._calendar(calendar)
        existing = held.objects.get(ref.href)
        if existing is None:
            raise NotFound(f"{ref.href}: the event is gone from the calendar")
        if ref.etag is not None and existing.etag != ref.etag:
            if meeting_matches(existing.ics, event, self.server.tz):
                return RemoteRef(ref.href, existing.etag)  # our own write, ETag not recorded
            raise WrongEtag(f"{ref.href}: changed since {ref.etag}")
        stored = self.server._store(calendar.calendar, ref.href, event)
        return RemoteRef(ref.href, stored.etag)

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        held = self.server._calendar(calendar)
        existing = held.objects.get(ref.href)
        if existing is None:
            return
        if ref.etag is not None and existing.etag != ref.etag:
            raise WrongEtag(f"{ref.href}: changed since {ref.etag}")
        self.server.teacher_deletes(calendar.calendar, ref.href)

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        if self.server.down:
            return ["account 'memory': the server is down"]
        return [
            f"calendar {ref.calendar!r}: not found"
            for ref in calendars
            if ref.calendar not in self.server.calendars
        ]

    def close(self) -> None:
        pass
