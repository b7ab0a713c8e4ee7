"""Read-only calendars published as an iCalendar feed over HTTP(S) (``type = "ics"``).

The school events calendar is the usual one (``blocks = "everyone"``: its busy times block
every teacher); a teacher whose only calendar is a published feed is the other.  A feed is
one VCALENDAR (RFC 5545 §3.4) fetched whole; it is split into one object per UID (a
recurring event with its overridden instances together, with the VTIMEZONEs they need) so
that the service mirrors it like a CalDAV collection and expands busy times itself.

Requests: one GET per feed and pass, conditional on the ETag or Last-Modified the previous
answer carried (RFC 9110 §13.1: If-None-Match, If-Modified-Since), so an unchanged feed is
one 304 with no body.  The sync token is that validator pair.  Writes are refused
(:class:`~ptm_sync.core.errors.Unsupported`): nothing of ours is ever written to a feed.

Errors: a 401 is the account's :class:`~ptm_sync.core.errors.AuthFailed`, saying what the server
wants (its ``WWW-Authenticate`` challenges, :mod:`connectors.challenge`) and naming the
account and the host only; 403 is :class:`~ptm_sync.core.errors.AccessDenied`, 404/410
:class:`~ptm_sync.core.errors.NotFound`.  In a free/busy answer each feed's error is its own,
except that the account's own server unreachable or throttling us raises (a teacher's feed
on another host that is down is that teacher's error).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests
from icalendar import Calendar, Component

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
from connectors.challenge import AuthScheme, refusal, schemes
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import (
    AccessDenied,
    AuthFailed,
    BadCalendarData,
    ConnectorError,
    NotFound,
    PtmError,
    SyncTokenInvalid,
    Unavailable,
    Unsupported,
)
from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.ical.parse import decode_calendar, parse_calendar
from ptm_sync.ops.failures import plain
from ptm_sync.ops.throttle import RetryPolicy, parse_retry_after

#: (connect, read) seconds.
TIMEOUT = (10.0, 60.0)
#: A feed larger than this is refused (a school's events feed is a few hundred kB).
MAX_FEED_BYTES = 20_000_000


class ServerDown(Unavailable):
    """The feed's server cannot be reached, or throttles us (429, 503 with Retry-After):
    the account's failure when it is the account's own server."""


class Untrusted(ConnectorError):
    """The feed's server presents a TLS certificate we do not trust (set ``ca_file``)."""


class IcsFeedConnector:
    """An ``[[accounts]]`` entry of type ``ics``; see :class:`connectors.base.CalendarConnector`.

    The account's ``url`` is the feed (``blocks = "everyone"``), or the base that a teacher's
    ``calendar`` column is resolved against (an absolute URL there is taken as it is).
    """

    kind = "ics"

    def __init__(self, account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> None:
        self.account, self.tz, self.horizon = account, tz, horizon
        caps = {Capability.MIRRORED, Capability.READ_ONLY}
        if account.blocks == "everyone":
            caps.add(Capability.BLOCKS_EVERYONE)
        self.capabilities = frozenset(caps)
        self.retry = RetryPolicy(attempts=2)
        self._http = requests.Session()
        # Given with each request: requests lets REQUESTS_CA_BUNDLE override a session's
        # verify, which would drop ca_file silently.
        self._verify: str | bool = str(account.ca_file) if account.ca_file else True
        if account.username and account.password is not None:
            self._http.auth = (account.username, account.password.reveal())
        self._http.headers["Accept"] = "text/calendar, */*;q=0.5"
        #: The last body per URL, for free_busy right after changes in one pass.
        self._last: dict[str, tuple[str, str]] = {}

    # --- reading ------------------------------------------------------------------------

    def url_of(self, calendar: CalendarRef) -> str:
        """The feed's URL for ``calendar`` (the account's own URL when it names none)."""
        name = calendar.calendar.strip()
        if not name or name == self.account.url:
            return self.account.url
        return urljoin(self.account.url, name)

    def _fetch(self, url: str, validators: dict[str, str]) -> tuple[str | None, dict[str, str]]:
        """The feed's text (None: unchanged since ``validators``) and its new validators."""
        headers = {}
        if validators.get("etag"):
            headers["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            headers["If-Modified-Since"] = validators["last_modified"]
        where = _safe(url)

        def get() -> requests.Response:
            try:
                reply = self._http.get(
                    url, headers=headers, timeout=TIMEOUT, stream=True, verify=self._verify
                )
            except requests.exceptions.SSLError as exc:
                raise Untrusted(
                    f"feed {where}: the server's TLS certificate is not trusted "
                    f"({exc.__class__.__name__}); set ca_file for a private CA"
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise ServerDown(
                    f"feed {where}: cannot reach the server: {plain(str(exc))}"
                ) from None
            status, wait = reply.status_code, reply.headers.get("Retry-After")
            if status >= 500 or status == 429:
                reply.close()  # streamed: give the connection back before it is retried
            if status == 429 or (status == 503 and wait):
                raise ServerDown(f"feed {where}: HTTP {status}", parse_retry_after(wait))
            if status >= 500:
                raise Unavailable(f"feed {where}: HTTP {status}", parse_retry_after(wait))
            return reply

        reply = self.retry.run(get)
        with reply:
            if reply.status_code == 304:
                return None, validators
            if reply.status_code == 401:
                raise self._refused(url, reply.headers.get("WWW-Authenticate"))
            if reply.status_code == 403:
                raise AccessDenied(f"feed {where}: the server refuses access (HTTP 403)")
            if reply.status_code in (404, 410):
                raise NotFound(f"feed {where}: not found (HTTP {reply.status_code})")
            if reply.status_code != 200:
                raise ConnectorError(f"feed {where}: HTTP {reply.status_code}")
            body = reply.raw.read(MAX_FEED_BYTES + 1, decode_content=True)
        if len(body) > MAX_FEED_BYTES:
            raise BadCalendarData(f"feed {where}: larger than {MAX_FEED_BYTES} bytes")
        charset = reply.encoding if "charset" in reply.headers.get("Content-Type", "") else None
        text = decode_calendar(body, charset)
        if "BEGIN:VCALENDAR" not in text[:2000].upper():
            raise BadCalendarData(f"feed {where}: not an iCalendar feed (no BEGIN:VCALENDAR)")
        new = {
            "etag": reply.headers.get("ETag", ""),
            "last_modified": reply.headers.get("Last-Modified", ""),
        }
        self._last[url] = (json.dumps(new, sort_keys=True), text)
        return text, new

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """Every event of the feed (``full``) when it changed since ``token``; nothing when
        the server answers 304.  Raises as :meth:`CalendarConnector.changes`;
        :class:`BadCalendarData` when the body is not a calendar."""
        url = self.url_of(calendar)
        validators: dict[str, str] = {}
        if token is not None:
            try:
                validators = json.loads(token)
            except ValueError:
                raise SyncTokenInvalid(f"feed {_safe(url)}: unreadable token") from None
        text, new = self._fetch(url, validators)
        next_token = json.dumps(new, sort_keys=True) if any(new.values()) else None
        if text is None:
            return ChangeSet(token=token)
        return ChangeSet(token=next_token, changed=tuple(split_feed(url, text)), full=True)

    def _refused(self, url: str, challenge: str | None) -> AuthFailed:
        """A 401 in words (RFC 7235 §4.1 challenges): the account and the host, never the
        feed's path (it is shown in ``/healthz``)."""
        host = urlsplit(url).hostname or ""
        offered = set(schemes([challenge]))
        if self._http.auth is None and (not offered or offered & _PASSWORDS):
            sentence = "the server asks for a user name and password and the account gives none"
        else:
            sentence = refusal([challenge], sent=AuthScheme.BASIC, host=host)
        return AuthFailed(f"account {self.account.id!r} ({host}): {sentence}")

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each feed's busy time in ``[start, end)``, expanded here (one GET per feed), or
        that feed's own error (see the module docstring).

        Raises:
            AuthFailed: the account's credentials were refused.
            Unavailable: the account's server cannot be reached or throttles us.
        """
        found: FreeBusyAnswer = {}
        own_server = _server(self.account.url)
        for ref in calendars:
            url = self.url_of(ref)
            try:
                text, _ = self._fetch(url, {})
                assert text is not None
                found[ref] = FreeBusy(tuple(busy_times(text, start, end, self.tz)))
            except AuthFailed:
                raise
            except (ServerDown, Untrusted) as exc:
                if _server(url) == own_server:
                    raise
                found[ref] = exc
            except ConnectorError as exc:
                found[ref] = exc
            except BadCalendarData as exc:
                found[ref] = ConnectorError(f"feed {_safe(url)}: {exc}")
        return found

    # --- writing: never -------------------------------------------------------------------

    def _read_only(self) -> Unsupported:
        return Unsupported(f"account {self.account.id!r} is an ICS feed: it is read only")

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        raise self._read_only()

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        raise self._read_only()

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        raise self._read_only()

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """One line per feed that cannot be read as a calendar: the teachers' feeds, and the
        account's own URL when it is a feed itself (``blocks = "everyone"``, or no teacher
        names the account yet and it does not look like a folder)."""
        refs = list(calendars)
        if Capability.BLOCKS_EVERYONE in self.capabilities or (
            not refs and not self.account.url.endswith("/")
        ):
            refs.append(CalendarRef(self.account.id, self.account.url))
        problems = []
        for url in dict.fromkeys(self.url_of(ref) for ref in refs):
            try:
                text, _ = self._fetch(url, {})
                assert text is not None
                parse_calendar(text)
            except AuthFailed as exc:
                problems.append(str(exc))  # names the account and the host already
            except PtmError as exc:
                problems.append(f"account {self.account.id!r}: {exc}")
        return problems

    def close(self) -> None:
        self._http.close()


_PASSWORDS = {AuthScheme.BASIC, AuthScheme.DIGEST}


def split_feed(url: str, text: str) -> list[RemoteEvent]:
    """One :class:`RemoteEvent` per UID of the feed, in UID order: its components (master and
    overridden instances) with the feed's VTIMEZONEs; ``href`` is ``url#uid``, ``etag`` a
    digest of the object's text, so an unchanged event is recognised in the next listing.

    Raises:
        BadCalendarData: the feed cannot be parsed.
    """
    calendar = parse_calendar(text)
    zones = [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]
    by_uid: dict[str, list[Component]] = {}
    for component in calendar.subcomponents:
        if component.name != "VEVENT":
            continue
        uid = str(component.get("UID", "")) or hashlib.sha256(component.to_ical()).hexdigest()
        by_uid.setdefault(uid, []).append(component)
    objects = []
    for uid in sorted(by_uid):
        part = Calendar()
        part.add("PRODID", "-//ptm-sync//ics feed//EN")
        part.add("VERSION", "2.0")
        for zone in zones:
            part.add_component(zone)
        for component in by_uid[uid]:
            part.add_component(component)
        ics = part.to_ical().decode("utf-8")
        digest = hashlib.sha256(ics.encode("utf-8")).hexdigest()[:32]
        objects.append(RemoteEvent(href=f"{url}#{uid}", etag=f'"{digest}"', ics=ics))
    return objects


def _server(url: str) -> tuple[str, int | None]:
    """The host and port a URL's requests go to."""
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def _safe(url: str) -> str:
    """The URL without credentials, query or inner path: a feed's secret token often sits
    in them (``?token=…``, Google's ``/private-<key>/basic.ics``).  Host and file name stay."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + segments[-1] if len(segments) <= 1 else "/…/" + segments[-1]
    return f"{parts.scheme}://{host}{port}{path if segments else '/'}"
