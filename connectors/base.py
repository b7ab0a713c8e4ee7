"""The protocol every calendar system implements, its value types and the registry.

Modeled on vdirsyncer's storages: every write takes the etag it last saw, and a mismatch is
its own exception (:class:`~ptm_sync.errors.WrongEtag`).  Errors are translated where they
arise; nothing above ``connectors/`` sees an HTTP or SDK exception.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from ptm_sync.errors import Unsupported
from ptm_sync.model import Busy

if TYPE_CHECKING:
    from ptm_sync.config import AccountConfig


@dataclass(frozen=True, slots=True, order=True)
class CalendarRef:
    """One teacher's calendar: an account id and the calendar within it."""

    account: str
    calendar: str  # CalDAV collection URL or path, mailbox, Google calendar id


@dataclass(frozen=True, slots=True)
class RemoteRef:
    """Where an event lives on the server and the version we last saw."""

    href: str
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """One calendar object as the server holds it (iCalendar text)."""

    href: str
    etag: str | None
    ics: str


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What changed in a calendar since a sync token.

    ``full`` means ``changed`` lists every relevant object: anything the caller holds that is
    not listed is gone.  ``token`` is what to pass next time.
    """

    token: str | None
    changed: tuple[RemoteEvent, ...] = ()
    removed: tuple[str, ...] = ()
    full: bool = False


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class MeetingEvent:
    """The event we write into a teacher's calendar for a meeting.

    It never triggers server-side scheduling (DESIGN §4): CalDAV attendees carry
    ``SCHEDULE-AGENT=CLIENT``; Graph, EWS and Google get no attendees at all.
    """

    uid: str
    start: datetime
    end: datetime
    summary: str
    description: str = ""
    location: str = ""
    video_url: str = ""
    sequence: int = 0
    status: str = "CONFIRMED"
    private: bool = True
    organizer: str = ""
    attendees: tuple[Attendee, ...] = field(default_factory=tuple)


@runtime_checkable
class CalendarConnector(Protocol):
    kind: ClassVar[str]

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> dict[CalendarRef, list[Busy]]: ...

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet: ...

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef: ...

    def update_event(
        self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent
    ) -> RemoteRef: ...

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None: ...

    def check(self) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Horizon:
    """The span of time the service cares about: every period's windows, padded by a day."""

    start: datetime
    end: datetime


_REGISTRY: dict[str, str] = {
    "caldav": "connectors.caldav:CalDAVConnector",
}


def register(kind: str, target: str) -> None:
    """Register ``"module:Class"`` as the connector for account type ``kind``."""
    _REGISTRY[kind] = target


def open_connector(account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> CalendarConnector:
    """Build the connector for one ``[[accounts]]`` entry."""
    target = _REGISTRY.get(account.type)
    if target is None:
        raise Unsupported(f"account {account.id!r}: type {account.type!r} is not available yet")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    connector: CalendarConnector = cls(account, tz, horizon)
    return connector
