"""Microsoft 365 calendars through Microsoft Graph v1.0 (app-only, msal client credentials).

A teacher's ``calendar`` is their mailbox (SMTP address); the app reads and writes every
mailbox with the application permission Calendars.ReadWrite (admin consent in Entra ID).

Requests per operation (one token request per hour or so besides, :mod:`graph_auth`):

* ``free_busy(cals, start, end)``: one ``POST /users/{X}/calendar/getSchedule`` per 20
  mailboxes and per 61 days of range (calendar-getschedule: ≤ 20 schedules, < 62 days).
  Up to four batches are asked at once (threads; :attr:`GraphConnector.workers`), each
  naming in the URL a mailbox of its batch known to answer (:mod:`graph_freebusy`): 500
  teachers over the horizon = 25 calls, plus at most one when a mailbox in a URL is
  unknown.  Each mailbox gets its own answer or error (:mod:`graph_schedule`).
* ``changes(cal, None)``: ``GET /users/{m}/calendarView/delta`` over the horizon, one request
  per page to the ``@odata.deltaLink``; ``changes(cal, link)``: the delta link (one request
  when nothing changed).  Only called for calendars holding events of ours, so an idle
  pass of N teachers costs its ⌈N/20⌉ getSchedule calls plus one delta call per such
  calendar.
* ``create_event``: ``GET /users/{m}/events?$filter=<our UID property>`` then one ``POST``
  (or a ``PATCH`` when a crashed earlier try left the event there).
* ``update_event`` / ``delete_event``: one ``PATCH`` / ``DELETE`` with ``If-Match``.

Limits (throttling, four requests in flight per mailbox, token renewal): :mod:`graph_http`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from connectors import graph_wire as wire
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
from connectors.graph_auth import NEEDED_ROLE, roles
from connectors.graph_freebusy import ScheduleReader
from connectors.graph_http import DENIED, Answer, GraphClient
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    BadCalendarData,
    ConnectorError,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
)

log = logging.getLogger(__name__)

#: A delta round longer than this many pages is a server bug, not a calendar.
MAX_PAGES = 1000
#: Error codes of a delta link the server no longer knows (delta-query-overview,
#: "Synchronization reset", "Token duration").
_SYNC_RESET = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})


class GraphConnector(GraphClient):
    """A Microsoft 365 account via Graph; see :class:`connectors.base.CalendarConnector`."""

    kind = "graph"
    capabilities = frozenset(
        {Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED, Capability.ONLINE_MEETINGS}
    )
    #: The ``[video] provider`` whose links this system makes (``Capability.ONLINE_MEETINGS``).
    online_meeting_provider = "teams"

    def __init__(self, account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> None:
        super().__init__(account)
        self.tz = tz
        self.horizon = horizon
        #: getSchedule calls in flight at once (threads), each for another URL mailbox.
        self.workers = 4
        #: getSchedule reader; remembers which mailboxes answer (URL mailboxes).
        self.schedules = ScheduleReader(
            account.id,
            self._post_schedule,
            self._schedule_failed,
            fallback=tz,
            granted=self._permission_granted,
        )

    # --- free/busy ------------------------------------------------------------------------

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each mailbox's :class:`~connectors.base.FreeBusy` from ``calendar/getSchedule``
        (UTC, clipped to ``[start, end)``), or its own error; see
        :mod:`connectors.graph_freebusy` for the calls and :mod:`connectors.graph_schedule`
        for how each schedule is read.  Mailboxes are compared without case: two refs to
        one mailbox share its answer.

        Per calendar: :class:`~ptm_sync.core.errors.NotFound` (ErrorMailRecipientNotFound …, or
        a 404 with it in the URL), :class:`~ptm_sync.core.errors.AccessDenied`
        (ErrorNoFreeBusyAccess), :class:`~ptm_sync.core.errors.Unavailable` (proxy and back-end
        codes; retryable), a plain :class:`~ptm_sync.core.errors.ConnectorError` otherwise.

        Raises:
            AuthFailed: the token was refused after renewal, or HTTP 403 for the call (the
                app lacks the permission).
            Unavailable: Graph unreachable, or 5xx/429 for a whole call beyond a short wait.
            ConnectorError: any other refusal of a whole call (e.g. HTTP 400).
        """
        by_mailbox: dict[str, list[CalendarRef]] = {}
        for ref in calendars:
            by_mailbox.setdefault(ref.calendar.lower(), []).append(ref)
        found = self.schedules.read(
            [refs[0].calendar for refs in by_mailbox.values()], start, end, workers=self.workers
        )
        return {ref: found[key] for key, refs in by_mailbox.items() for ref in refs}

    def _post_schedule(self, url_mailbox: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        answer = self._request(
            "POST",
            f"{self._users(url_mailbox)}/calendar/getSchedule",
            url_mailbox,
            body=body,
            headers={"Prefer": wire.PREFER_UTC},
            what=f"getSchedule of account {self.account.id!r}",
        )
        return answer.status, answer.payload

    def _schedule_failed(self, status: int, payload: Any) -> PtmError:
        return self._fail(Answer(status, payload), "getSchedule")

    def _permission_granted(self) -> bool | None:
        """Whether the app's token carries the Calendars permission (its ``roles`` claim);
        None when the token does not say (not a readable JWT)."""
        granted = roles(self.tokens.token())
        if granted is None:
            return None
        return NEEDED_ROLE in granted or "Calendars.Read" in granted

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
        ``roles`` and from a 403), unreachable Entra ID or Graph, and one line per mailbox
        that is unknown, outside the app's scope, or whose schedule Graph answers with an
        error of its own (one getSchedule per 20 readable mailboxes, over the first day of
        the horizon), each naming that mailbox only."""
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
        readable = self._mailbox_lines(list(calendars), granted, lines)
        if readable and self._permission_line() not in lines:
            lines.extend(self._free_busy_lines(readable))
        return lines

    def _mailbox_lines(
        self, calendars: Sequence[CalendarRef], granted: Collection[str] | None, lines: list[str]
    ) -> list[CalendarRef]:
        """``GET /users/{m}/calendar`` for each calendar, a line in ``lines`` for each that
        fails; the calendars that can be read (none when Graph itself failed)."""
        who = f"Graph account {self.account.id!r}"
        readable: list[CalendarRef] = []
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
                return []
            except PtmError as exc:
                lines.append(str(exc))
                return []
            if answer.status == 200:
                readable.append(ref)
            elif answer.status == 403 or answer.code.lower() in DENIED:
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
        return readable

    def _free_busy_lines(self, calendars: Sequence[CalendarRef]) -> list[str]:
        """A line for each calendar whose free/busy comes back as its own error."""
        start = self.horizon.start
        try:
            found = self.free_busy(calendars, start, start + timedelta(days=1))
        except Unavailable as exc:
            return [f"Graph account {self.account.id!r}: {exc}"]
        except PtmError as exc:
            return [str(exc)]
        lines: list[str] = []
        for ref in calendars:
            result = found[ref]
            if isinstance(result, ConnectorError) and str(result) not in lines:
                lines.append(str(result))
        return lines
