"""CalDAV calendars (RFC 4791): sync by RFC 6578 sync-collection, busy times expanded locally.

Requests per operation, once the session has authenticated:

* ``changes(cal, None)``: PROPFIND (sync-token, ctag, owner) + calendar-query REPORT over the
  horizon.
* ``changes(cal, "sync:…")``: one sync-collection REPORT; plus one calendar-multiget when the
  server leaves calendar-data out of it (Xandikos) and something changed.
* ``changes(cal, "ctag:…")``: one PROPFIND; a full load when the ctag moved.
* ``free_busy``: one calendar-query REPORT per calendar (or one free-busy-query where the
  feature table trusts the server); with ``freebusy = "auto"`` one OPTIONS per connector to
  detect the server kind (:mod:`connectors.caldav_freebusy`).  Each calendar's answer or
  error is its own.
* the owner's addresses (``ChangeSet.owner_addresses``, and local free/busy), only when a
  listed object holds a declined invitation: at most two PROPFINDs per collection for the
  connector's life (:mod:`connectors.caldav_owner`).
* writes: one PUT/DELETE, conditional on If-None-Match / If-Match (RFC 7232 §3).

Why these requests are written here (:mod:`connectors.dav_xml`) and not left to python-caldav's
own API, which the transport still uses for HTTP, authentication and errors: for the same
work the library takes about twice the requests (``bench/sync_requests.py``,
``caldav_library_over_ours``): ``objects_by_sync_token(load_objects=True)`` fetches every
changed object with a GET of its own where one sync REPORT carrying calendar-data does, and
``save_event(no_overwrite=True)`` searches by UID before its PUT where one PUT with
If-None-Match does.  An idle pass of 500 teachers would stay at 500 requests either way; a
pass after an evening of bookings would not.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from connectors import dav_xml
from connectors.base import (
    CalendarRef,
    Capability,
    ChangeSet,
    FreeBusyAnswer,
    Horizon,
    MeetingEvent,
    RemoteEvent,
    RemoteRef,
)
from connectors.caldav_features import (
    FREEBUSY_AUTO,
    FREEBUSY_SERVER,
    UNKNOWN,
    ServerFeatures,
    detect,
    freebusy_source,
)
from connectors.caldav_freebusy import FreeBusyReader
from connectors.caldav_http import DavTransport, Refused, Reply, raise_for_status
from connectors.caldav_listing import XML, SyncRefused, report_objects, sync
from connectors.caldav_owner import OWNER_PROPS, Owners
from connectors.ical import declines, meeting_matches, meeting_to_ical
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    AccessDenied,
    AuthFailed,
    BadCalendarData,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.core.ical.busy import event_uid

log = logging.getLogger(__name__)

ICAL = "text/calendar; charset=utf-8"

SYNC_PREFIX = "sync:"
CTAG_PREFIX = "ctag:"

_SAFE_NAME = re.compile(r"[A-Za-z0-9._~-]{1,200}")


class CalDAVConnector:
    """A CalDAV account; see :class:`connectors.base.CalendarConnector` for the contract."""

    kind = "caldav"
    capabilities = frozenset(
        {Capability.MIRRORED, Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED}
    )

    def __init__(
        self,
        account: AccountConfig,
        tz: ZoneInfo,
        horizon: Horizon,
        *,
        features: ServerFeatures | None = None,
    ) -> None:
        """``features`` overrides detection from the feature table (tests, odd servers)."""
        self.account = account
        self.tz = tz
        self.horizon = horizon
        self._features = features
        self._no_sync: set[str] = set()  # collections whose server refused sync-collection
        password = account.password.reveal() if account.password is not None else None
        self._http = DavTransport(
            account.url,
            account.username,
            password,
            ca_file=str(account.ca_file) if account.ca_file else None,
            account=account.id,
        )
        self._owners = Owners(self._http)
        self._freebusy = FreeBusyReader(self._http, tz, self._owners)

    # --- addresses ------------------------------------------------------------------------

    def collection_url(self, calendar: CalendarRef) -> str:
        """The calendar's collection URL: a full URL, or a path relative to the account URL."""
        base = self.account.url if self.account.url.endswith("/") else self.account.url + "/"
        url = urljoin(base, calendar.calendar)
        return url if url.endswith("/") else url + "/"

    def _object_url(self, calendar: CalendarRef, href: str) -> str:
        return urljoin(self.collection_url(calendar), href)

    def features(self) -> ServerFeatures:
        """The feature-table entry for this server, detected once from an OPTIONS answer."""
        if self._features is None:
            reply = self._http.request("OPTIONS", self.account.url)
            self._features = detect(reply.headers)
            log.info(
                "account %s: CalDAV server looks like %s",
                self.account.id,
                self._features.description,
            )
        return self._features

    # --- changes --------------------------------------------------------------------------

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """The calendar's objects within the horizon (``token`` None: all, ``full``), or
        what changed since a ``sync:`` (RFC 6578) or ``ctag:`` token; ``owner_addresses``
        when a listed object holds a declined invitation (:mod:`connectors.caldav_owner`).

        Raises:
            SyncTokenInvalid: the server no longer takes the token, or will not do
                sync-collection on this collection (then the ctag is used from now on).
            NotFound: no such collection.  AccessDenied: the account may not read it.
            AuthFailed, Unavailable: as the transport raises them.
        """
        url = self.collection_url(calendar)
        if token is None:
            return self._full_load(url, self._collection_state(url))
        if token.startswith(SYNC_PREFIX) and len(token) > len(SYNC_PREFIX):
            return self._sync(url, token.removeprefix(SYNC_PREFIX))
        if token.startswith(CTAG_PREFIX) and len(token) > len(CTAG_PREFIX):
            state = self._collection_state(url)
            if state.props.get(dav_xml.CTAG) == token.removeprefix(CTAG_PREFIX):
                return ChangeSet(token)
            return self._full_load(url, state)
        raise SyncTokenInvalid(f"{url}: {token!r} is not a token this connector issued")

    def _collection_state(self, url: str) -> dav_xml.DavResource:
        """PROPFIND depth 0 for the sync-token, ctag and resource type of a collection, and
        who owns it (kept for :meth:`_owner_addresses`, RFC 3744 §5.1, RFC 5397 §3)."""
        body = dav_xml.propfind(
            dav_xml.SYNC_TOKEN, dav_xml.CTAG, dav_xml.RESOURCETYPE, *OWNER_PROPS
        )
        reply = self._http.request("PROPFIND", url, body, {**XML, "Depth": "0"})
        raise_for_status(reply, f"calendar {url}", ok=(200, 207))
        resources = reply.multistatus().resources
        if not resources or resources[0].status == 404:
            raise NotFound(f"calendar {url} not found")
        if not resources[0].is_calendar:
            raise NotFound(f"{url} is not a calendar collection")
        self._owners.note(url, resources[0])
        return resources[0]

    def _owner_addresses(self, url: str, events: Sequence[RemoteEvent]) -> frozenset[str]:
        """The owner's addresses when a listed object holds a declined invitation (the only
        time they matter: ``ChangeSet.owner_addresses``), else none and no request."""
        if any(declines(event.ics) for event in events):
            return self._owners.of(url)
        return frozenset()

    def _full_load(self, url: str, state: dav_xml.DavResource) -> ChangeSet:
        sync_token, ctag = state.props.get(dav_xml.SYNC_TOKEN), state.props.get(dav_xml.CTAG)
        use_sync = url not in self._no_sync and (
            self._features is None or self._features.sync_collection
        )
        if sync_token and use_sync:
            token: str | None = SYNC_PREFIX + sync_token
        else:
            token = CTAG_PREFIX + ctag if ctag else None
        body = dav_xml.calendar_query(self.horizon.start, self.horizon.end)
        events = report_objects(self._http, url, body)
        return ChangeSet(
            token,
            changed=tuple(events),
            full=True,
            owner_addresses=self._owner_addresses(url, events),
        )

    def _sync(self, url: str, token: str) -> ChangeSet:
        """RFC 6578 sync-collection from ``token`` (:func:`connectors.caldav_listing.sync`)."""
        try:
            events, removed, token = sync(self._http, url, token)
        except SyncRefused:
            self._no_sync.add(url)  # fall back to ctag for this collection from now on
            raise
        return ChangeSet(
            SYNC_PREFIX + token,
            changed=tuple(events),
            removed=removed,
            owner_addresses=self._owner_addresses(url, events),
        )

    # --- free/busy ------------------------------------------------------------------------

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each calendar's free/busy in ``[start, end)``, or its own error (DESIGN §5; see
        :mod:`connectors.caldav_freebusy` for what is whose).

        Computed locally from the calendar's objects unless the account says ``server`` or,
        with ``auto``, the feature table trusts this server's free-busy-query REPORT.

        Raises:
            AuthFailed: the credentials were refused.
            Unavailable: the server cannot be reached, or throttles us.
        """
        setting = self.account.freebusy
        source = freebusy_source(setting, self.features() if setting == FREEBUSY_AUTO else UNKNOWN)
        collections = {calendar: self.collection_url(calendar) for calendar in calendars}
        return self._freebusy.answer(collections, start, end, server=source == FREEBUSY_SERVER)

    # --- writes ---------------------------------------------------------------------------

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        """PUT ``<collection>/<uid>.ics`` with If-None-Match: * (RFC 7232 §3.2).

        Idempotent by UID: when the object exists already (412, or a no-uid-conflict
        precondition, RFC 4791 §5.3.2.1, naming the href that holds the UID) it is read back
        and updated only if it says something else.
        """
        url = urljoin(self.collection_url(calendar), resource_name(event.uid))
        for _attempt in range(2):
            reply = self._put(url, event, {"If-None-Match": "*"})
            if reply.status in (200, 201, 204):
                return RemoteRef(urlsplit(url).path, reply.etag or self._etag(url))
            existing_url = self._existing(calendar, url, event.uid, reply)
            existing = self._get(existing_url)
            if existing is None:
                continue  # deleted between our PUT and GET: create it after all
            ref = RemoteRef(urlsplit(existing_url).path, existing.etag)
            try:
                if meeting_matches(existing.text, event, self.tz):
                    return ref
            except BadCalendarData as exc:
                log.warning("replacing unreadable %s: %s", existing_url, exc)
            return self.update_event(calendar, ref, event)
        raise WrongEtag(f"{url}: the event keeps changing on the server; try again later")

    def _existing(self, calendar: CalendarRef, url: str, uid: str, reply: Reply) -> str:
        """Where the UID lives after a refused create, or raise for any other refusal."""
        conflict = reply.preconditions().get(dav_xml.NO_UID_CONFLICT)
        if conflict:
            return urljoin(url, conflict[0])
        if conflict is not None:
            found = self._find_uid(calendar, uid)
            return urljoin(url, found) if found else url
        if reply.status == 412:
            return url
        if reply.status == 409:  # RFC 4918 §9.7.1: the parent collection does not exist
            raise NotFound(f"calendar {self.collection_url(calendar)} not found (HTTP 409)")
        raise_for_status(reply, f"create {uid} in {self.collection_url(calendar)}")
        return url

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        """PUT with If-Match (RFC 7232 §3.1): a changed event is WrongEtag, a gone one NotFound.

        When the precondition fails but the stored event already says what ``event`` says,
        the write is done: it is our own earlier PUT whose new ETag was never recorded (the
        process died between the PUT and the commit), not the teacher's change.
        """
        url = self._object_url(calendar, ref.href)
        etag = ref.etag or self._etag(url, required=True)
        reply = self._put(url, event, {"If-Match": etag or "*"})
        if reply.status == 412:
            stored = self._get(url)
            if stored is None:
                raise NotFound(f"{url}: the event is gone from the calendar")
            if self._says(stored, event):
                return RemoteRef(ref.href, stored.etag or self._etag(url))
        raise_for_status(reply, f"update {event.uid} at {url}", ok=(200, 201, 204))
        return RemoteRef(ref.href, reply.etag or self._etag(url))

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        """DELETE, with If-Match when the etag is known; an absent event is success."""
        url = self._object_url(calendar, ref.href)
        headers = {"If-Match": ref.etag} if ref.etag else {}
        reply = self._http.request("DELETE", url, "", headers)
        if reply.status in (404, 410):
            return
        if reply.status == 412 and self._get(url) is None:
            return
        raise_for_status(reply, f"delete {url}", ok=(200, 202, 204))

    def _says(self, stored: Reply, event: MeetingEvent) -> bool:
        """Whether the stored object already says what ``event`` says (unreadable: no)."""
        try:
            return meeting_matches(stored.text, event, self.tz)
        except BadCalendarData:
            return False

    def _put(self, url: str, event: MeetingEvent, condition: dict[str, str]) -> Reply:
        body = meeting_to_ical(event, self.tz, stamp=datetime.now(UTC)).to_ical()
        return self._http.request("PUT", url, body, {"Content-Type": ICAL, **condition})

    def _get(self, url: str) -> Reply | None:
        """The object at ``url``, or None when there is none."""
        reply = self._http.request("GET", url, "", {"Accept": "text/calendar"})
        if reply.status in (404, 410):
            return None
        return raise_for_status(reply, f"read {url}", ok=(200,))

    def _etag(self, url: str, *, required: bool = False) -> str | None:
        """The current etag of an object (HEAD), for servers that do not send it on PUT."""
        reply = self._http.request("HEAD", url, "", {})
        if reply.status in (404, 410) and required:
            raise NotFound(f"{url}: the event is gone from the calendar")
        return reply.etag if reply.status == 200 else None

    def _find_uid(self, calendar: CalendarRef, uid: str) -> str | None:
        url = self.collection_url(calendar)
        reply = self._http.request("REPORT", url, dav_xml.uid_query(uid), {**XML, "Depth": "1"})
        raise_for_status(reply, f"find {uid} in {url}", ok=(207,))
        for resource in reply.multistatus().resources:
            try:
                if resource.calendar_data and event_uid(resource.calendar_data) == uid:
                    return resource.href  # text-match is a substring match; insist on equality
            except BadCalendarData:
                continue
        return None

    # --- health ---------------------------------------------------------------------------

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """Problems with this account (and the given calendars), in plain words."""
        name = f"account {self.account.id!r} ({self.account.url})"
        body = dav_xml.propfind(dav_xml.RESOURCETYPE)
        try:
            reply = self._http.request("PROPFIND", self.account.url, body, {**XML, "Depth": "0"})
            raise_for_status(reply, name, ok=(200, 207))
            found = reply.multistatus().resources
            if found and found[0].status == 404:
                raise NotFound(name)
        except PtmError as exc:
            return [f"{name}: {_plain(exc)}"]
        problems = []
        for calendar in calendars:
            try:
                self._collection_state(self.collection_url(calendar))
            except PtmError as exc:
                problems.append(f"{name}: calendar {calendar.calendar!r}: {_plain(exc)}")
        return problems

    def close(self) -> None:
        self._http.close()


def resource_name(uid: str) -> str:
    """``<uid>.ics`` when the UID is URL-safe, else a name derived from its hash (stable)."""
    if _SAFE_NAME.fullmatch(uid):
        return f"{uid}.ics"
    return f"{hashlib.sha256(uid.encode('utf-8')).hexdigest()[:40]}.ics"


def _plain(exc: PtmError) -> str:
    """``exc`` as the end of a ``check`` line that already names the account."""
    if isinstance(exc, Refused):
        return exc.sentence
    if isinstance(exc, AuthFailed):
        return "the server refused the user name or password"
    if isinstance(exc, Unavailable):
        return f"cannot connect: {exc}"
    if isinstance(exc, NotFound):
        return "not found on the server"
    if isinstance(exc, AccessDenied):
        return "the account may not read it (HTTP 403)"
    return str(exc)
