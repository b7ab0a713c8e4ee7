"""Microsoft 365 calendars through Microsoft Graph v1.0 (app-only, msal client credentials).

A teacher's ``calendar`` is their mailbox (SMTP address); the app reads and writes every
mailbox with the application permission Calendars.ReadWrite (admin consent in Entra ID).

Requests per operation (one token request per hour or so besides, :mod:`graph_auth`):

* ``free_busy(cals, start, end)``: one ``POST /users/{first}/calendar/getSchedule`` per 20
  mailboxes and per 61 days of range (calendar-getschedule: ≤ 20 schedules, < 62 days).
  Up to four calls run at once (threads; :attr:`GraphConnector.workers`), each naming
  the first mailbox of its batch in the URL: 500 teachers over the horizon = 25 calls.
* ``changes(cal, None)``: ``GET /users/{m}/calendarView/delta`` over the horizon, one request
  per page to the ``@odata.deltaLink``; ``changes(cal, link)``: the delta link (one request
  when nothing changed).  Only called for calendars holding events of ours, so an idle
  pass of N teachers costs its ⌈N/20⌉ getSchedule calls plus one delta call per such
  calendar.
* ``create_event``: ``GET /users/{m}/events?$filter=<our UID property>`` then one ``POST``
  (or a ``PATCH`` when a crashed earlier try left the event there).
* ``update_event`` / ``delete_event``: one ``PATCH`` / ``DELETE`` with ``If-Match``.

Limits (Microsoft Graph throttling guidance; "Outlook service limits"): at most four
requests in flight per mailbox (:class:`~connectors.throttle.InFlight`); 429 and 503 with
``Retry-After`` waited out by :attr:`GraphConnector.retry` when short, else
:class:`~ptm_sync.errors.Unavailable` carrying the delay; a token Graph refuses
(401 ``InvalidAuthenticationToken``) renewed once, then :class:`~ptm_sync.errors.AuthFailed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests

from connectors import graph_wire as wire
from connectors.base import (
    CalendarRef,
    Capability,
    ChangeSet,
    Horizon,
    MeetingEvent,
    RemoteEvent,
    RemoteRef,
)
from connectors.graph_auth import (
    NEEDED_ROLE,
    TIMEOUT,
    TlsSession,
    TokenSource,
    roles,
    unreachable,
)
from connectors.throttle import InFlight, RetryPolicy, parse_retry_after
from ptm_sync.config import AccountConfig
from ptm_sync.errors import (
    AuthFailed,
    BadCalendarData,
    ConnectorError,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.model import Busy

log = logging.getLogger(__name__)

#: A delta round longer than this many pages is a server bug, not a calendar.
MAX_PAGES = 1000
#: Error codes of a delta link the server no longer knows (delta-query-overview,
#: "Synchronization reset", "Token duration").
_SYNC_RESET = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
_DENIED = frozenset({"erroraccessdenied", "authorization_requestdenied", "accessdenied"})


class _Throttled(Unavailable):
    """429 / 503 / 5xx: worth waiting for within the call (Retry-After)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    payload: Any

    @property
    def code(self) -> str:
        return wire.error_code(self.payload)[0]


class GraphConnector:
    """A Microsoft 365 account via Graph; see :class:`connectors.base.CalendarConnector`."""

    kind = "graph"
    capabilities = frozenset(
        {Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED, Capability.ONLINE_MEETINGS}
    )
    #: The ``[video] provider`` whose links this system makes (``Capability.ONLINE_MEETINGS``).
    online_meeting_provider = "teams"

    def __init__(self, account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> None:
        self.account = account
        self.tz = tz
        self.horizon = horizon
        self.base = account.graph_url.rstrip("/")
        ca_file = str(account.ca_file) if account.ca_file else None
        self._session = TlsSession(ca_file)
        self.tokens = TokenSource(account, TlsSession(ca_file))
        #: How long a call waits out 429/503 by itself (tests replace it).
        self.retry = RetryPolicy()
        self.in_flight = InFlight(4)
        #: getSchedule calls in flight at once (threads), each for another URL mailbox.
        self.workers = 4
        #: Graph requests sent (token requests to Entra ID aside).
        self.sent = 0

    # --- HTTP -----------------------------------------------------------------------------

    def _users(self, mailbox: str) -> str:
        return f"{self.base}/users/{quote(mailbox, safe='@')}"

    def _request(
        self,
        method: str,
        url: str,
        mailbox: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> _Answer:
        """One Graph call, throttling waited out as :attr:`retry` allows."""
        attempt = 1
        while True:
            try:
                return self._once(method, url, mailbox, body, params, headers or {})
            except _Throttled as exc:
                wait = self.retry.delay(attempt, exc.retry_after)
                if wait is None:
                    raise Unavailable(str(exc), exc.retry_after) from None
                log.info("Graph throttled %s %s: waiting %.1f s", method, mailbox, wait)
                self.retry.sleep(wait)
                attempt += 1

    def _once(
        self,
        method: str,
        url: str,
        mailbox: str,
        body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> _Answer:
        renewed = False
        while True:
            token = self.tokens.token()
            sent = {"Authorization": f"Bearer {token}", "Accept": "application/json", **headers}
            with self.in_flight.slot(mailbox):
                try:
                    reply = self._session.request(
                        method, url, params=params, json=body, headers=sent, timeout=TIMEOUT
                    )
                except requests.RequestException as exc:
                    raise Unavailable(unreachable(f"Graph at {self.base}", exc)) from exc
                finally:
                    self.sent += 1
            answer = _Answer(reply.status_code, _json(reply))
            if reply.status_code == 401:
                if not renewed:
                    # InvalidAuthenticationToken: expired or revoked before msal thought so.
                    self.tokens.renew(token)
                    renewed = True
                    continue
                raise AuthFailed(
                    f"Graph refused the access token of account {self.account.id!r} "
                    f"({answer.code or 'HTTP 401'}) after renewing it"
                )
            if reply.status_code in (429, 503) or reply.status_code >= 500:
                raise _Throttled(
                    f"Graph answered HTTP {reply.status_code} for mailbox {mailbox!r}",
                    parse_retry_after(reply.headers.get("Retry-After")),
                )
            return answer

    def _fail(self, answer: _Answer, what: str) -> PtmError:
        """The exception for an unexpected answer to ``what``."""
        code = answer.code
        if answer.status == 403 or code.lower() in _DENIED:
            return AuthFailed(f"{what}: {self._permission_line()}")
        if answer.status == 404:
            return NotFound(f"{what}: not found ({code or 'HTTP 404'})")
        if answer.status == 412:
            return WrongEtag(f"{what}: changed since we last saw it")
        return ConnectorError(f"{what}: Graph answered HTTP {answer.status} {code}".rstrip())

    def _permission_line(self) -> str:
        return (
            f"Graph account {self.account.id!r}: the app lacks the {NEEDED_ROLE} application "
            "permission (grant admin consent in Entra ID)"
        )

    # --- free/busy ------------------------------------------------------------------------

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> dict[CalendarRef, list[Busy]]:
        """Busy spans per mailbox from ``calendar/getSchedule`` (see the module docstring).

        Raises:
            NotFound: a mailbox is unknown or unreadable (its schedule came with an
                ``error``, or the mailbox in the URL is not found); the message names it.
        """
        found: dict[CalendarRef, list[Busy]] = {ref: [] for ref in calendars}
        by_mailbox: dict[str, list[CalendarRef]] = {}
        for ref in calendars:
            by_mailbox.setdefault(ref.calendar.lower(), []).append(ref)
        mailboxes = [refs[0].calendar for refs in by_mailbox.values()]
        calls = [
            (batch, first, last)
            for first, last in wire.spans(start, end)
            for batch in wire.batches(mailboxes)
        ]
        for (_batch, first, last), schedules in zip(calls, self._schedules(calls), strict=True):
            for info in schedules:
                self._read_schedule(info, first, last, by_mailbox, found)
        return found

    def _schedules(
        self, calls: Sequence[tuple[list[str], datetime, datetime]]
    ) -> list[list[Mapping[str, Any]]]:
        """The scheduleInformation lists of the getSchedule ``calls``, in their order; up to
        :attr:`workers` calls at once (each names another mailbox in its URL)."""
        if self.workers <= 1 or len(calls) <= 1:
            return [self._get_schedule(*call) for call in calls]
        pool = ThreadPoolExecutor(min(self.workers, len(calls)), thread_name_prefix="graph")
        try:
            futures = [pool.submit(self._get_schedule, *call) for call in calls]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _get_schedule(
        self, batch: list[str], start: datetime, end: datetime
    ) -> list[Mapping[str, Any]]:
        answer = self._request(
            "POST",
            f"{self._users(batch[0])}/calendar/getSchedule",
            batch[0],
            body=wire.schedule_request(batch, start, end),
            headers={"Prefer": wire.PREFER_UTC},
        )
        if answer.status != 200:
            raise self._fail(answer, f"mailbox {batch[0]!r} (getSchedule)")
        return list((answer.payload or {}).get("value") or [])

    def _read_schedule(
        self,
        info: Mapping[str, Any],
        start: datetime,
        end: datetime,
        by_mailbox: Mapping[str, list[CalendarRef]],
        found: dict[CalendarRef, list[Busy]],
    ) -> None:
        mailbox = str(info.get("scheduleId") or "")
        error = info.get("error")
        if error:
            code = str(error.get("responseCode") or "") if isinstance(error, Mapping) else ""
            raise NotFound(
                f"Graph account {self.account.id!r}: mailbox {mailbox!r} not found or not "
                f"readable ({code or 'error'})"
            )
        try:
            busy = wire.schedule_busy(info, start, end, fallback=self.tz)
        except BadCalendarData as exc:
            raise ConnectorError(f"mailbox {mailbox!r}: unreadable schedule ({exc})") from exc
        for ref in by_mailbox.get(mailbox.lower(), []):
            found[ref].extend(busy)

    # --- changes --------------------------------------------------------------------------

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """Our events in the horizon from a calendar-view delta round (event-delta).

        ``token`` is the ``@odata.deltaLink`` of the previous round.  Events without our
        transactionId are the teacher's own and are left out; ``@removed`` entries and
        cancelled events go to ``removed``.  An ``@removed`` entry carries only the id, so
        ``removed`` may name an event of the teacher's (or one moved out of the horizon):
        the caller drops the hrefs it holds and ignores the others.

        Raises:
            SyncTokenInvalid: 410 Gone or ``syncStateNotFound`` (or a link that is not
                Graph's): ask again with None.
            NotFound: the mailbox does not exist.
        """
        mailbox = calendar.calendar
        url = f"{self._users(mailbox)}/calendarView/delta"
        params: dict[str, str] | None = {
            "startDateTime": wire.utc_text(self.horizon.start) + "Z",
            "endDateTime": wire.utc_text(self.horizon.end) + "Z",
        }
        if token is not None:
            if not token.startswith(self.base + "/"):
                raise SyncTokenInvalid(f"mailbox {mailbox!r}: {token[:40]!r}… is no delta link")
            url, params = token, None
        changed: dict[str, RemoteEvent] = {}
        removed: set[str] = set()
        prefer = {"Prefer": f"{wire.PREFER_UTC}, {wire.PREFER_TEXT_BODY}"}
        for _page in range(MAX_PAGES):
            answer = self._request("GET", url, mailbox, params=params, headers=prefer)
            if answer.status == 410 or answer.code.lower() in _SYNC_RESET:
                raise SyncTokenInvalid(f"mailbox {mailbox!r}: Graph no longer knows the delta link")
            if answer.status != 200:
                raise self._fail(answer, f"mailbox {mailbox!r} (calendarView delta)")
            payload = answer.payload or {}
            for item in payload.get("value") or []:
                self._read_delta_item(item, changed, removed)
            next_link = payload.get("@odata.nextLink")
            if next_link:
                url, params = str(next_link), None
                if not url.startswith(self.base + "/"):  # our token goes to Graph only
                    raise ConnectorError(f"mailbox {mailbox!r}: a next page off {self.base}")
                continue
            delta_link = payload.get("@odata.deltaLink")
            if not delta_link:
                raise ConnectorError(f"mailbox {mailbox!r}: delta answer without a link")
            full = token is None
            return ChangeSet(
                str(delta_link),
                changed=tuple(changed.values()),
                removed=() if full else tuple(sorted(removed)),
                full=full,
            )
        raise ConnectorError(f"mailbox {mailbox!r}: delta round longer than {MAX_PAGES} pages")

    def _read_delta_item(
        self, item: Mapping[str, Any], changed: dict[str, RemoteEvent], removed: set[str]
    ) -> None:
        href = str(item.get("id") or "")
        if not href:
            return
        uid = wire.uid_of(item.get("transactionId"))
        if "@removed" in item or (uid is not None and item.get("isCancelled")):
            changed.pop(href, None)
            removed.add(href)
            return
        if uid is None:
            return  # the teacher's own event: it reaches us as free/busy
        try:
            changed[href] = wire.to_remote_event(item, uid, fallback=self.tz)
        except BadCalendarData:
            log.warning("ignoring an unreadable Graph event %s", href)
            return
        removed.discard(href)

    # --- writes ---------------------------------------------------------------------------

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        """Create the event (no attendees, private, Teams when asked); idempotent by UID:
        an event already tagged with ``event.uid`` is reused, updated if it differs.

        Raises:
            NotFound: the mailbox does not exist.
            WrongEtag: the event we found changed while we updated it.
        """
        mailbox = calendar.calendar
        existing = self._find(mailbox, event.uid)
        if existing is not None:
            if wire.says_the_same(existing, event):
                return wire.ref_of(existing)
            return self.update_event(calendar, wire.ref_of(existing), event)
        answer = self._request(
            "POST",
            f"{self._users(mailbox)}/events",
            mailbox,
            body=wire.event_body(event, create=True),
            headers={"Prefer": f"{wire.PREFER_UTC}, {wire.PREFER_TEXT_BODY}"},
        )
        if answer.status not in (200, 201):
            raise self._fail(answer, f"mailbox {mailbox!r} (create event)")
        created = answer.payload or {}
        if not wire.says_the_same(created, event):
            # The server answered a repeated transactionId with the earlier event.
            return self.update_event(calendar, wire.ref_of(created), event)
        return wire.ref_of(created)

    def _find(self, mailbox: str, uid: str) -> Mapping[str, Any] | None:
        answer = self._request(
            "GET",
            f"{self._users(mailbox)}/events",
            mailbox,
            params={"$filter": wire.uid_filter(uid)},
            headers={"Prefer": f"{wire.PREFER_UTC}, {wire.PREFER_TEXT_BODY}"},
        )
        if answer.status != 200:
            raise self._fail(answer, f"mailbox {mailbox!r} (find event)")
        found = (answer.payload or {}).get("value") or []
        return found[0] if found else None

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        """PATCH the event with ``If-Match: ref.etag``.

        Raises:
            WrongEtag: 412 and the event does not already say what ``event`` says.
            NotFound: 404.
        """
        mailbox = calendar.calendar
        url = f"{self._users(mailbox)}/events/{quote(ref.href, safe='')}"
        headers = {"Prefer": f"{wire.PREFER_UTC}, {wire.PREFER_TEXT_BODY}"}
        if ref.etag:
            headers["If-Match"] = ref.etag
        answer = self._request(
            "PATCH", url, mailbox, body=wire.event_body(event, create=False), headers=headers
        )
        if answer.status == 200:
            return wire.ref_of(answer.payload or {})
        if answer.status == 412:
            current = self._request("GET", url, mailbox, headers=headers)
            if current.status == 200 and wire.says_the_same(current.payload or {}, event):
                return wire.ref_of(current.payload)
            if current.status == 404:
                raise NotFound(f"mailbox {mailbox!r}: event {ref.href} is gone")
        raise self._fail(answer, f"mailbox {mailbox!r}: event {ref.href}")

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        """DELETE with ``If-Match``; 404 is success.

        Raises:
            WrongEtag: 412: the event changed since ``ref.etag``.
        """
        mailbox = calendar.calendar
        url = f"{self._users(mailbox)}/events/{quote(ref.href, safe='')}"
        headers = {"If-Match": ref.etag} if ref.etag else {}
        answer = self._request("DELETE", url, mailbox, headers=headers)
        if answer.status in (200, 204, 404):
            return
        raise self._fail(answer, f"mailbox {mailbox!r}: event {ref.href}")

    # --- check ----------------------------------------------------------------------------

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """One line per problem: refused secret, missing permission (read from the token's
        ``roles`` and from a 403), unreachable Entra ID or Graph, unknown mailbox."""
        who = f"Graph account {self.account.id!r}"
        try:
            token = self.tokens.token()
        except Unavailable as exc:
            return [f"{who}: {exc}"]
        except PtmError as exc:
            return [str(exc)]
        lines: list[str] = []
        granted = roles(token)
        if granted is not None and NEEDED_ROLE not in granted:
            lines.append(self._permission_line())
        for ref in calendars:
            try:
                answer = self._once(
                    "GET",
                    f"{self._users(ref.calendar)}/calendar",
                    ref.calendar,
                    None,
                    {"$select": "id"},
                    {},
                )
            except Unavailable as exc:
                lines.append(f"{who}: {exc}")
                break
            except PtmError as exc:
                lines.append(str(exc))
                break
            if answer.status == 200:
                continue
            if answer.status == 403 or answer.code.lower() in _DENIED:
                if granted is not None and NEEDED_ROLE in granted:
                    # The permission is there: this mailbox is outside the app's scope
                    # (an RBAC for Applications scope or an application access policy).
                    lines.append(
                        f"{who}: mailbox {ref.calendar!r} refused the app ({answer.code or 403}):"
                        " it is outside the app's management scope or access policy"
                    )
                elif self._permission_line() not in lines:
                    lines.append(self._permission_line())
            elif answer.status == 404:
                lines.append(f"{who}: mailbox {ref.calendar!r} not found ({answer.code})")
            else:
                lines.append(f"{who}: mailbox {ref.calendar!r}: HTTP {answer.status} {answer.code}")
        return lines

    def close(self) -> None:
        self._session.close()


def _json(reply: requests.Response) -> Any:
    if not reply.content:
        return None
    try:
        return reply.json()
    except ValueError:
        return None
