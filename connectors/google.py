"""Google Calendar (API v3) through ``google-api-python-client``: account type ``google``.

Requests per operation, once the access tokens are there (one token request per
impersonated teacher and hour):

* ``free_busy``: one ``freebusy.query`` per 50 calendars (``calendarExpansionMax``: at
  most 50) and per 90 days of range (Google refuses a longer span with "The requested time
  range is too long"), acting as the first teacher of each batch whom Google knows (a
  teacher it does not know is remembered and never tried again: at most one refused token
  request per such teacher for the connector's life).  Each calendar gets its own answer
  (:mod:`connectors.google_freebusy`).
* ``changes(cal, None)``: ``events.list`` over the horizon, filtered to our events
  (``privateExtendedProperty``), one request per page, to ``nextSyncToken``.
* ``changes(cal, token)``: ``events.list`` with ``syncToken`` (one per page); the parameters
  Google forbids with it (timeMin/timeMax, privateExtendedProperty, q, iCalUID, orderBy,
  updatedMin, sharedExtendedProperty) are left out and the filtering is done here.
* writes: one ``events.insert`` / ``patch`` / ``delete``, always ``sendUpdates=none``, the
  change conditional on ``If-Match`` (412 → WrongEtag); plus an ``events.get`` after a 409
  (an event with our id exists) or a 412, and while a Meet link is ``pending``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors import google_wire as wire
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
from connectors.google_freebusy import GoogleFreeBusy
from connectors.google_http import GoogleSessions, UnknownSubject
from connectors.google_wire import GoogleRefused
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.ops.throttle import RetryPolicy

log = logging.getLogger(__name__)

#: events.list page size asked for (Google's default 250, at most 2500).
PAGE_SIZE = 250
#: A change feed longer than this many pages is a server that never ends it.
MAX_PAGES = 1000
#: Waits (seconds) while Google makes a Meet link (createRequest status "pending").
MEET_WAITS = (0.5, 1.0, 2.0, 4.0)


class GoogleConnector:
    """A Google Workspace account; see :class:`connectors.base.CalendarConnector`.

    ``retry`` is the throttling policy (Retry-After, exponential back-off on 403
    rateLimitExceeded, 429 and 503); a test may replace it with one that records its waits.
    """

    kind = "google"
    capabilities = frozenset(
        {Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED, Capability.ONLINE_MEETINGS}
    )
    #: The ``[video] provider`` whose links this system makes (``Capability.ONLINE_MEETINGS``).
    online_meeting_provider = "meet"

    def __init__(self, account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> None:
        self.account = account
        self.tz = tz
        self.horizon = horizon
        self.retry = RetryPolicy()
        self._sessions = GoogleSessions(account, lambda: self.retry)
        self._free_busy = GoogleFreeBusy(self._freebusy_query)

    def _client(self, calendar: CalendarRef | str) -> Any:
        """The API client acting as the calendar's owner: its id is the teacher's address."""
        return self._sessions.client(
            calendar.calendar if isinstance(calendar, CalendarRef) else calendar
        )

    def _run(self, request: Any, what: str) -> dict[str, Any]:
        answer = self._sessions.execute(request, what)
        return answer if isinstance(answer, dict) else {}

    # --- free/busy ------------------------------------------------------------------------

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each calendar's :class:`~connectors.base.FreeBusy` (busy and unknown spans, UTC,
        clipped to the range) or its own error, from ``freebusy.query`` in batches of 50
        calendars and 90-day pieces (:class:`connectors.google_freebusy.GoogleFreeBusy`:
        how each entry of Google's answer is read, and who is impersonated).

        Raises:
            AuthFailed: the key, the delegation or the token was refused.
            Unavailable: Google cannot be reached, or answers 5xx/429 for a whole call
                after the retry policy's waits.
            ConnectorError: a whole call was refused otherwise (a 404 at ``api_url``).
        """
        return self._free_busy.read(calendars, start, end)

    def _freebusy_query(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        """One freebusy.query acting as ``subject`` (ignored for an OAuth user).

        Raises:
            UnknownSubject: Google knows no such user to act as.
            ConnectorError: the call itself was answered 404 (not a calendar's answer).
        """
        request = self._client(subject).freebusy().query(body=body)
        try:
            return self._run(request, f"free/busy of {len(body['items'])} calendar(s)")
        except UnknownSubject:
            raise
        except NotFound as exc:  # the endpoint, not a calendar: never one teacher's error
            raise ConnectorError(f"{exc} (is api_url right?)") from None

    # --- changes --------------------------------------------------------------------------

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """Our events in ``calendar`` (tagged, within the horizon) changed since ``token``.

        A full sync (``token`` None) asks Google for our tagged events over the horizon (the
        sync guide allows restricting the initial request); an incremental one cannot be
        restricted so (the syncToken reference), gets every change of the calendar and keeps
        ours: a tagged event moved out of the horizon, and a cancelled (deleted) event with
        one of our ids, are in ``removed``.  ``showDeleted`` and ``maxResults`` are the same
        in both, as the reference asks; ``singleEvents`` is not asked: our events are single,
        and expanding the teacher's recurring series would only lengthen the feed.

        Raises:
            SyncTokenInvalid: Google answered 410 (``fullSyncRequired``).
            NotFound: the calendar does not exist.
        """
        params: dict[str, Any] = {
            "calendarId": calendar.calendar,
            "showDeleted": True,
            "maxResults": PAGE_SIZE,
        }
        if token is None:
            params["privateExtendedProperty"] = [f"{wire.TAG}=1"]
            params["timeMin"] = wire.rfc3339(self.horizon.start)
            params["timeMax"] = wire.rfc3339(self.horizon.end)
        else:
            params["syncToken"] = token
        changed: dict[str, RemoteEvent] = {}
        removed: dict[str, None] = {}
        items, next_token = self._list(calendar, params)
        for item in items:
            href = str(item.get("id", ""))
            event = self._remote(item)
            if event is not None:
                changed[href] = event
                removed.pop(href, None)
            elif token is not None and (wire.is_our_id(href) or wire.uid_of(item)):
                removed[href] = None
                changed.pop(href, None)
        return ChangeSet(next_token, tuple(changed.values()), tuple(removed), full=token is None)

    def _list(
        self, calendar: CalendarRef, params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every item of an events.list, page after page, and the final ``nextSyncToken``."""
        client = self._client(calendar)
        items: list[dict[str, Any]] = []
        page: str | None = None
        for _ in range(MAX_PAGES):
            request = client.events().list(**params, **({"pageToken": page} if page else {}))
            try:
                answer = self._run(request, f"changes in calendar {calendar.calendar}")
            except GoogleRefused as exc:
                if exc.status == 410:
                    raise SyncTokenInvalid(
                        f"calendar {calendar.calendar}: Google no longer accepts our sync "
                        "token (410); a full sync is needed"
                    ) from None
                raise
            items.extend(answer.get("items", []))
            page = answer.get("nextPageToken")
            if not page:
                token = answer.get("nextSyncToken")
                return items, str(token) if token else None
        raise Unavailable(f"calendar {calendar.calendar}: the change list never ended")

    def _remote(self, item: dict[str, Any]) -> RemoteEvent | None:
        """An event of ours within the horizon as a RemoteEvent; None for anything else."""
        uid = wire.uid_of(item)
        times = wire.span(item)
        if uid is None or times is None or item.get("status") == "cancelled":
            return None
        start, end = times
        if end <= self.horizon.start or start >= self.horizon.end:
            return None
        return RemoteEvent(str(item["id"]), item.get("etag"), wire.to_ical(item, uid, start, end))

    # --- writes ---------------------------------------------------------------------------

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        """``events.insert`` with our id for ``event.uid``, no attendees, ``sendUpdates=none``
        (and a Meet ``createRequest`` with ``conferenceDataVersion=1`` when
        ``event.online_meeting``).  A 409 (the id exists: a retry, or a deleted event of
        ours) reads it back and updates it only if it says something else."""
        event_id = wire.event_id(event.uid)
        body = {**wire.event_body(event), "id": event_id}
        extra: dict[str, Any] = {}
        if event.online_meeting:
            body["conferenceData"] = wire.meet_request(event.uid)
            extra["conferenceDataVersion"] = 1
        what = f"create event {event_id} in {calendar.calendar}"
        request = (
            self._client(calendar)
            .events()
            .insert(calendarId=calendar.calendar, body=body, sendUpdates="none", **extra)
        )
        try:
            stored = self._run(request, what)
        except GoogleRefused as exc:
            if exc.status != 409:
                raise
            existing = self._get(calendar, event_id)
            if existing is None:
                raise WrongEtag(f"{what}: the event keeps changing; try again later") from None
            if wire.says(existing, event):
                return self._ref(calendar, existing)
            current = RemoteRef(event_id, existing.get("etag"), wire.join_url(existing))
            return self._write(calendar, current, event, replace=True)
        return self._ref(calendar, stored)

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        """``events.patch`` with ``If-Match: ref.etag`` and ``sendUpdates=none``; the Meet
        conference is kept (it is not in the patch).

        Raises:
            WrongEtag: 412 and the event says something else now (the teacher's change).
            NotFound: the event is gone (404, or cancelled).
        """
        return self._write(calendar, ref, event, replace=False)

    def _write(
        self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent, *, replace: bool
    ) -> RemoteRef:
        body = wire.event_body(event)
        extra: dict[str, Any] = {}
        if event.online_meeting and not ref.join_url:
            body["conferenceData"] = wire.meet_request(event.uid)
            extra["conferenceDataVersion"] = 1
        events = self._client(calendar).events()
        method = events.update if replace else events.patch
        request = method(
            calendarId=calendar.calendar, eventId=ref.href, body=body, sendUpdates="none", **extra
        )
        if ref.etag:
            request.headers["If-Match"] = ref.etag
        what = f"update event {ref.href} in {calendar.calendar}"
        try:
            stored = self._run(request, what)
        except WrongEtag:
            current = self._get(calendar, ref.href)
            if current is None or current.get("status") == "cancelled":
                raise NotFound(f"{what}: the event is gone from the calendar") from None
            if wire.says(current, event):
                return self._ref(calendar, current)
            raise
        except GoogleRefused as exc:
            if exc.status == 410:
                raise NotFound(f"{what}: the event is gone from the calendar") from None
            raise
        ref_out = self._ref(calendar, stored)
        if not ref_out.join_url and ref.join_url:
            return RemoteRef(ref_out.href, ref_out.etag, ref.join_url)
        return ref_out

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        """``events.delete`` with ``sendUpdates=none`` (and ``If-Match`` when the etag is
        known); 404 and 410 (deleted already) are success.

        Raises:
            WrongEtag: the event changed since ``ref.etag``.
        """
        request = (
            self._client(calendar)
            .events()
            .delete(calendarId=calendar.calendar, eventId=ref.href, sendUpdates="none")
        )
        if ref.etag:
            request.headers["If-Match"] = ref.etag
        what = f"delete event {ref.href} in {calendar.calendar}"
        try:
            self._sessions.execute(request, what)
        except NotFound:
            return
        except GoogleRefused as exc:
            if exc.status != 410:
                raise
        except WrongEtag:
            current = self._get(calendar, ref.href)
            if current is None or current.get("status") == "cancelled":
                return
            raise

    def _get(self, calendar: CalendarRef, event_id: str) -> dict[str, Any] | None:
        """``events.get`` (Google returns cancelled events too); None when there is none."""
        request = (
            self._client(calendar).events().get(calendarId=calendar.calendar, eventId=event_id)
        )
        try:
            return self._run(request, f"read event {event_id} in {calendar.calendar}")
        except NotFound:
            return None
        except GoogleRefused as exc:
            if exc.status == 410:
                return None
            raise

    def _ref(self, calendar: CalendarRef, stored: dict[str, Any]) -> RemoteRef:
        """The RemoteRef of a stored event, waiting a little while its Meet link is made."""
        for wait in MEET_WAITS:
            if wire.conference_status(stored) != "pending":
                break
            self.retry.sleep(wait)
            stored = self._get(calendar, str(stored["id"])) or stored
        status = wire.conference_status(stored)
        if status == "pending":
            raise Unavailable(
                f"event {stored['id']} in {calendar.calendar}: Google is still making the "
                "Meet link; try again later",
                retry_after=30,
            )
        if status == "failure":
            log.warning("Google could not make a Meet link for event %s", stored.get("id"))
        return RemoteRef(str(stored["id"]), stored.get("etag"), wire.join_url(stored))

    # --- health ---------------------------------------------------------------------------

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """One plain line per problem: the key or refresh token refused, domain-wide
        delegation missing, the Calendar API not enabled, Google unreachable, a calendar
        not found.  Each calendar is read with ``calendars.get`` as its teacher; without
        calendars only a token is asked for."""
        name = f"account {self.account.id!r}"
        refs = list(calendars)
        problems: list[str] = []
        if not refs:
            try:
                self._token_only()
            except PtmError as exc:
                return [_line(name, exc)]
            return []
        for ref in refs:
            try:
                request = self._client(ref).calendars().get(calendarId=ref.calendar)
                self._run(request, f"calendar {ref.calendar}")
            except NotFound:
                problems.append(
                    f"{name}: calendar {ref.calendar!r} not found (or the teacher cannot see it)"
                )
            except (AuthFailed, Unavailable) as exc:
                # The key, the delegation, the API switch or the network: the same answer for
                # every further calendar, so it is said once.
                return [*problems, _line(name, exc)]
            except PtmError as exc:
                problems.append(_line(name, exc))
        return problems

    def _token_only(self) -> None:
        """Ask the token endpoint for a token as the account itself (no impersonation)."""
        self._sessions.fetch_token(None)

    def close(self) -> None:
        self._sessions.close()


def _line(name: str, exc: PtmError) -> str:
    text = str(exc)
    return text if text.startswith(name) else f"{name}: {text}"
