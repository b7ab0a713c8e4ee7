"""The protocol every calendar system implements, its value types and the registry.

Modeled on vdirsyncer's storages: every write takes the etag it last saw, and a mismatch is
its own exception (:class:`~ptm_sync.core.errors.WrongEtag`).  Errors are translated where they
arise; nothing above ``connectors/`` sees an HTTP or SDK exception.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

# The event we write is built by the booking core (the teacher's copy of a meeting).
from ptm_sync.core.booking.teacher_copy import Attendee as Attendee
from ptm_sync.core.booking.teacher_copy import MeetingEvent as MeetingEvent
from ptm_sync.core.errors import ConnectorError, Unsupported, UserError
from ptm_sync.core.model import Busy, Interval, as_utc

if TYPE_CHECKING:
    from ptm_sync.config.settings import AccountConfig


@dataclass(frozen=True, slots=True, order=True)
class CalendarRef:
    """One teacher's calendar: an account id and the calendar within it."""

    account: str
    calendar: str  # CalDAV collection URL or path, mailbox, Google calendar id


@dataclass(frozen=True, slots=True)
class RemoteRef:
    """Where an event lives on the server and the version we last saw.

    ``join_url`` is the online meeting's joining URL when the calendar system made one
    (Teams on Graph, Meet on Google: :attr:`MeetingEvent.online_meeting`), else "".
    """

    href: str
    etag: str | None = None
    join_url: str = ""


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

    ``owner_addresses``: for a :attr:`Capability.MIRRORED` calendar, the addresses the
    server gives the calendar's owner (RFC 6638 §2.4.1 ``calendar-user-address-set`` of
    the collection's ``DAV:owner``), as lower-case email addresses without ``mailto:``.
    Given whenever a listed object is an invitation in which an attendee declined (the
    only time they matter; looked up once per connector and calendar, so a pass without
    such objects costs no request for them); empty otherwise, and the caller keeps the
    last set it was given.  With the roster email they tell which ATTENDEE of an
    invitation is the teacher (DESIGN §5: an occurrence the teacher declined is free).
    """

    token: str | None
    changed: tuple[RemoteEvent, ...] = ()
    removed: tuple[str, ...] = ()
    full: bool = False
    owner_addresses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FreeBusy:
    """One calendar's answer to :meth:`CalendarConnector.free_busy` (DESIGN §5).

    ``busy``: spans the teacher cannot meet (busy, tentative with ``Busy.tentative``, out
    of office), clipped to the range asked, UTC, in no particular order.  ``unknown``:
    spans for which the system had no data (EWS ``NoData`` and ``None`` views, Graph
    ``unknown``, Google without ``busy``); they offer no slot and the matrix shows them
    ``not_synced``.  "No data" is never "free": a shape the connector cannot read is an
    error of that calendar, never an empty answer.
    """

    busy: tuple[Busy, ...] = ()
    unknown: tuple[Interval, ...] = ()

    @classmethod
    def no_data(cls, start: datetime, end: datetime) -> FreeBusy:
        """The answer for a calendar the system said nothing usable about in the range."""
        return cls((), (Interval(as_utc(start), as_utc(end)),))


#: :meth:`CalendarConnector.free_busy`'s answer: each calendar asked, with its own result.
FreeBusyAnswer = dict[CalendarRef, FreeBusy | ConnectorError]


class Capability(StrEnum):
    """What a calendar system can do beyond the common protocol (DESIGN §5).

    Code above ``connectors/`` asks a connector for a capability, never for its type.
    """

    #: :meth:`CalendarConnector.changes` lists the calendar's objects themselves
    #: (iCalendar text, recurrences expanded by us): the service keeps a local mirror and
    #: can follow what the teacher does to our events (CalDAV, ICS feeds).
    MIRRORED = "mirrored"
    #: :meth:`CalendarConnector.free_busy` asks the server (Graph getSchedule, EWS
    #: GetUserAvailability, Google freebusy.query, CalDAV free-busy-query).
    SERVER_FREE_BUSY = "server-free-busy"
    #: :meth:`CalendarConnector.changes` is incremental from a token (RFC 6578
    #: sync-collection, Graph delta, EWS SyncFolderItems, Google syncToken).
    CHANGE_FEED = "change-feed"
    #: Creating an event can make its online-meeting link (Teams, Meet).
    ONLINE_MEETINGS = "online-meetings"
    #: The account's busy times block every teacher of the school (an ICS feed with
    #: ``blocks = "everyone"``: the school events calendar).
    BLOCKS_EVERYONE = "blocks-everyone"
    #: The account is read only: it has no writes (ICS feeds).
    READ_ONLY = "read-only"


@runtime_checkable
class CalendarConnector(Protocol):
    """One account of a calendar system: every method a connector implements.

    Instances are built by :func:`open_connector` from an ``[[accounts]]`` entry and are
    used from one thread at a time.  Every method translates its system's failures into
    the ptm-sync exceptions named below (:mod:`ptm_sync.core.errors`); none lets an HTTP, SOAP
    or SDK exception through.  All datetimes are timezone-aware; times given back are UTC
    or carry their zone.  Common to every method:

    * :class:`~ptm_sync.core.errors.Unavailable` (retryable): the server cannot be reached now
      (connection refused or cut, a timeout, HTTP 5xx, 429 after its Retry-After).
    * :class:`~ptm_sync.core.errors.AuthFailed`: the account's credentials were refused (after
      one renewal of an expired token).
    """

    #: The account type this connector serves (``[[accounts]] type``).
    kind: ClassVar[str]
    #: What this system can do (see :class:`Capability`).
    capabilities: frozenset[Capability]

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each calendar's :class:`FreeBusy` between ``start`` and ``end`` (aware; UTC
        instants back), or that calendar's own error (DESIGN §5).

        Every calendar asked about has a key.  A calendar's own failure is its value and
        never touches another's result: :class:`~ptm_sync.core.errors.NotFound` (unknown
        calendar), :class:`~ptm_sync.core.errors.AccessDenied` (shares no free/busy),
        :class:`~ptm_sync.core.errors.Unavailable` (retryable, with ``retry_after``: a mailbox
        behind a failing proxy, Google ``internalError``), or another
        :class:`~ptm_sync.core.errors.ConnectorError` (an answer that cannot be read).  The
        connector batches as its API allows; a whole batch that fails for a reason of the
        account (not of one calendar) raises.

        Raises:
            AuthFailed: the account's credentials were refused.
            Unavailable: the server cannot be reached or answers 5xx/429 for the whole
                call (after a short Retry-After was waited out).
        """
        ...

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """What changed in ``calendar`` since ``token`` (None: everything, ``full``).

        With :attr:`Capability.MIRRORED` the objects are the calendar's events, within the
        connector's :class:`Horizon`.  Without it (Graph, EWS, Google) they are only the
        events ptm-sync wrote (the teacher's own events reach us as free/busy), each as a
        VCALENDAR with one VEVENT whose UID is the :attr:`MeetingEvent.uid` it was created
        with, DTSTART/DTEND in UTC and STATUS; ``href`` and ``etag`` are what
        :meth:`create_event` returned for it (system id; ETag or change key).  A deleted or
        cancelled event of ours is in ``removed``.  Calls happen only for calendars that
        hold events of ours, so an idle pass of a server system costs its free/busy calls.

        Raises:
            SyncTokenInvalid: the server no longer accepts ``token`` (RFC 6578 §3.8
                valid-sync-token, Graph/Google 410): the caller asks again with None and
                replaces what it holds.
            NotFound: the calendar does not exist.
        """
        ...

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        """Write ``event`` as a new object; where it lives and its first ETag.

        Idempotent on ``event.uid``: when an object with that UID exists already (a retry
        after a crash), it is reused — left alone when it says the same, updated otherwise.

        Raises:
            NotFound: the calendar does not exist.
            WrongEtag: the object keeps changing under us (retry later).
        """
        ...

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        """Replace the object at ``ref`` with ``event``, only if it is still the version
        ``ref.etag`` names; the new reference.

        An object that already says what ``event`` says (our own earlier write whose new
        ETag was not recorded) is the write done.

        Raises:
            WrongEtag: the object changed since (someone else's write: the teacher's).
            NotFound: the object is gone.
        """
        ...

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        """Delete the object at ``ref`` (if-match its ETag when known); an absent object is
        success.

        Raises:
            WrongEtag: the object changed since ``ref.etag``.
        """
        ...

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """Problems with the account and with ``calendars``, one plain line each (no
        secrets); empty when it is reachable, its credentials work and each calendar can
        be read.  Never raises for an unreachable server: that is a line too."""
        ...

    def close(self) -> None:
        """Release connections; the connector is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class Horizon:
    """The span of time the service cares about: every period's windows, padded by a day."""

    start: datetime
    end: datetime


_REGISTRY: dict[str, str] = {
    "caldav": "connectors.caldav:CalDAVConnector",
    "ews": "connectors.ews:EWSConnector",
    "google": "connectors.google:GoogleConnector",
    "graph": "connectors.graph:GraphConnector",
    "ics": "connectors.ics_feed:IcsFeedConnector",
}

#: The optional install (``pip install 'ptm-sync[EXTRA]'``) each account type needs beyond
#: the core, and the top-level modules that extra brings (pyproject.toml).  A CalDAV or ICS
#: school installs none of them.
EXTRAS: dict[str, tuple[str, frozenset[str]]] = {
    "google": (
        "google",
        frozenset({"googleapiclient", "google", "google_auth_httplib2", "httplib2"}),
    ),
    "graph": ("microsoft", frozenset({"msal", "cryptography"})),
    "ews": ("microsoft", frozenset({"exchangelib", "oauthlib", "requests_oauthlib"})),
}


class MissingExtra(UserError):
    """Raised when an account's type needs an optional install that is not there, e.g.
    ``account 'm365' is of type graph: install ptm-sync[microsoft]``."""


def register(kind: str, target: str) -> None:
    """Register ``"module:Class"`` as the connector for account type ``kind``."""
    _REGISTRY[kind] = target


def _connector_class(kind: str, target: str, account_id: str | None) -> type:
    """The class ``target`` names, imported now (connector modules import their SDKs at the
    top, so only the account types a school uses ever load theirs).

    Raises:
        MissingExtra: the module needs a library of an extra that is not installed.
    """
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra, modules = EXTRAS.get(kind, ("", frozenset()))
        if not extra or (exc.name or "").partition(".")[0] not in modules:
            raise  # not an optional library: a broken install, shown as the bug it is
        who = f"account {account_id!r} is of type {kind}" if account_id else f"type {kind}"
        raise MissingExtra(f"{who}: install ptm-sync[{extra}]") from None
    cls: type = getattr(module, class_name)
    return cls


def declared_capabilities(kind: str, account_id: str | None = None) -> frozenset[Capability]:
    """What the connector of account type ``kind`` declares it can do always (its class's
    ``capabilities``; an instance may add more, e.g. an ICS feed that blocks everyone).
    Empty for an unknown type.

    Raises:
        MissingExtra: the type's optional install is missing (``account_id`` names the
            account in the message).
    """
    target = _REGISTRY.get(kind)
    if target is None:
        return frozenset()
    declared = getattr(_connector_class(kind, target, account_id), "capabilities", None)
    return declared if isinstance(declared, frozenset) else frozenset()


def online_meeting_provider(kind: str) -> str:
    """The video provider whose links the connector of account type ``kind`` makes with its
    events (``"teams"`` for Graph, ``"meet"`` for Google), "" when it makes none or its
    optional install is missing (opening the account says so)."""
    target = _REGISTRY.get(kind)
    if target is None:
        return ""
    try:
        cls = _connector_class(kind, target, None)
    except MissingExtra:
        return ""
    if Capability.ONLINE_MEETINGS not in getattr(cls, "capabilities", frozenset()):
        return ""
    return str(getattr(cls, "online_meeting_provider", ""))


def open_connector(account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> CalendarConnector:
    """Build the connector for one ``[[accounts]]`` entry.

    Raises:
        Unsupported: no connector serves the account's type.
        MissingExtra: the type's optional install is missing
            (``account 'm365' is of type graph: install ptm-sync[microsoft]``).
    """
    target = _REGISTRY.get(account.type)
    if target is None:
        raise Unsupported(f"account {account.id!r}: type {account.type!r} is not available yet")
    cls = _connector_class(account.type, target, account.id)
    connector: CalendarConnector = cls(account, tz, horizon)
    return connector
