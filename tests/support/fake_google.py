"""A fake Google Calendar API v3 and OAuth 2.0 token endpoint on 127.0.0.1, for tests.

It answers what Google's documentation says and refuses what it does not allow, so the real
``googleapiclient`` / ``google-auth`` run against it unchanged:

* Token endpoint (Google, "Using OAuth 2.0 for Server to Server Applications"): the
  ``jwt-bearer`` grant whose assertion must be RS256-signed by a registered service-account
  key, with ``aud`` = Google's token URL, ``scope`` holding the calendar scope, ``exp`` in the
  future and at most an hour after ``iat``; ``sub`` (the impersonated user) must be a known
  user and needs domain-wide delegation (else ``unauthorized_client``).  A wrong key is
  ``invalid_grant``.  Also the ``refresh_token`` grant of an OAuth client.
* API: ``freeBusy`` (at most 50 items, spans up to 90 days; per calendar ``busy``, or
  ``errors: [{domain, reason}]`` beside ``busy: []`` as Google's FreeBusyCalendar schema has
  it, or no ``busy`` at all for a calendar without data), ``calendars/{id}``, and
  ``calendars/{id}/events`` list / insert / get / patch / update / delete with etags that
  change on every write, ``If-Match`` (412), ``syncToken`` (410 once forgotten; the
  parameters Google forbids with it are 400), paging, client-chosen ids (base32hex,
  5–1024 chars, 409 when taken), Meet conferences for ``conferenceDataVersion=1``.
  Errors carry Google's JSON error body (``error.errors[].reason``).
* Every request is logged (:attr:`FakeGoogle.log`) with method, path, query, headers, body.

This module holds the fake's state, the tester's hands, the HTTP server and the routing of
API requests; the rest is by concern: :mod:`tests.support.fake_google_auth` (service-account
keys, the token endpoint, access tokens), :mod:`tests.support.fake_google_freebusy`
(freeBusy), :mod:`tests.support.fake_google_events` (calendars and events),
:mod:`tests.support.fake_google_wire` (the request record, stored calendars, times, Google's
error body).  Every public name this module had before it was split is still importable from
here (``__all__``).
"""

from __future__ import annotations

import itertools
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.fake_google_auth import (
    GOOGLE_TOKEN_AUDIENCE,
    JWT_GRANT,
    SCOPE,
    ServiceAccountKey,
    access_subject,
    make_service_account,
    oauth_user,
    token_answer,
)
from tests.support.fake_google_events import (
    NOT_WITH_SYNC_TOKEN,
    calendar_resource,
    insert_event,
    list_events,
    one_event,
)
from tests.support.fake_google_freebusy import MAX_ITEMS, MAX_SPAN, free_busy
from tests.support.fake_google_wire import Calendar, Recorded, Refusal, error_answer, stamp

__all__ = [
    "GOOGLE_TOKEN_AUDIENCE",
    "JWT_GRANT",
    "MAX_ITEMS",
    "MAX_SPAN",
    "NOT_WITH_SYNC_TOKEN",
    "SCOPE",
    "Calendar",
    "FakeGoogle",
    "Recorded",
    "Refusal",
    "ServiceAccountKey",
    "make_service_account",
    "running",
]


class FakeGoogle:
    """The fake's state, its knobs and the server; use :func:`running`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.calendars: dict[str, Calendar] = {}
        self.users: set[str] = set()
        self.keys: dict[str, ServiceAccountKey] = {}  # client_email -> key
        self.oauth_clients: dict[str, tuple[str, str, str]] = {}  # refresh token -> client
        self.tokens: dict[str, tuple[str | None, float]] = {}  # access token -> (sub, expiry)
        self.sync_tokens: dict[str, tuple[str, int]] = {}  # token -> (calendar, clock)
        self.page_tokens: dict[str, tuple[list[dict[str, Any]], str]] = {}
        self.clock = itertools.count(1)
        self.now = 0
        self.log: list[Recorded] = []
        self.assertions: list[dict[str, Any]] = []  # JWT claims the token endpoint accepted
        # knobs
        self.delegation = True  # domain-wide delegation granted to the service account
        self.api_enabled = True
        self.expires_in = 3599
        self.page_size = 2500  # the most events.list puts on a page (maxResults caps it too)
        self.meet_reads_pending = 0  # events.get answers that still say "pending"
        self.failures: list[tuple[int, float | None, str]] = []  # next API answers
        self.accept_tokens = True  # False: every access token is refused (401)
        self.calendar_errors: dict[str, str] = {}  # calendar id -> reason in freeBusy
        self.no_data_calendars: set[str] = set()  # calendar ids answered without busy
        self.raw_freebusy: list[Any] = []  # next freeBusy answers, served as they are
        self.port = 0
        self.scheme = "http"
        self.server: ThreadingHTTPServer | None = None

    # --- addresses ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def token_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/token"

    # --- setup and the teacher's hands ----------------------------------------------------

    def add_calendar(self, email: str) -> str:
        with self.lock:
            self.users.add(email.lower())
            self.calendars.setdefault(email.lower(), Calendar(owner=email.lower()))
        return email

    def register_key(self, key: ServiceAccountKey) -> None:
        self.keys[key.client_email] = key

    def register_oauth(self, client_id: str, secret: str, refresh: str, user: str) -> None:
        self.oauth_clients[refresh] = (client_id, secret, user.lower())

    def add_event(
        self,
        calendar: str,
        start: datetime,
        end: datetime,
        *,
        summary: str = "Busy",
        status: str = "confirmed",
        transparency: str = "opaque",
        **extra: Any,
    ) -> str:
        """The teacher's own event; its id."""
        body = {
            "summary": summary,
            "start": {"dateTime": stamp(start)},
            "end": {"dateTime": stamp(end)},
            "status": status,
            "transparency": transparency,
            **extra,
        }
        with self.lock:
            return self.store(self._calendar(calendar), secrets.token_hex(13), body)["id"]

    def teacher_moves(self, calendar: str, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            event = dict(cal.events[event_id])
            event["start"] = {"dateTime": stamp(start), "timeZone": "UTC"}
            event["end"] = {"dateTime": stamp(end), "timeZone": "UTC"}
            self.store(cal, event_id, event)

    def teacher_edits(self, calendar: str, event_id: str, **fields: Any) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            self.store(cal, event_id, {**cal.events[event_id], **fields})

    def teacher_deletes(self, calendar: str, event_id: str) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            self.store(cal, event_id, {**cal.events[event_id], "status": "cancelled"})

    def forget_sync_tokens(self) -> None:
        with self.lock:
            self.sync_tokens.clear()
            self.page_tokens.clear()

    def revoke_tokens(self) -> None:
        """Access tokens stop working before their expiry (the API answers 401)."""
        with self.lock:
            self.tokens.clear()

    def fail_next(self, status: int, retry_after: float | None = None, reason: str = "") -> None:
        """The next API request is answered with ``status`` (and Retry-After)."""
        with self.lock:
            self.failures.append((status, retry_after, reason))

    def fail_calendar(self, calendar_id: str, reason: str = "internalError") -> None:
        """From now on freeBusy answers ``calendar_id`` with its own error, the other
        calendars of the same request as usual: ``{"errors": [{"domain": "global",
        "reason": reason}], "busy": []}`` (FreeBusyCalendar: "optional error(s) (if
        computation for the calendar failed)"; reasons such as ``internalError``,
        ``backendError``, ``notFound``, ``groupTooBig``).  :meth:`heal_calendar` ends it."""
        with self.lock:
            self.calendar_errors[calendar_id.lower()] = reason

    def heal_calendar(self, calendar_id: str) -> None:
        """freeBusy answers ``calendar_id`` as usual again (no error, with its data)."""
        with self.lock:
            self.calendar_errors.pop(calendar_id.lower(), None)
            self.no_data_calendars.discard(calendar_id.lower())

    def no_data(self, calendar_id: str) -> None:
        """From now on freeBusy answers ``calendar_id`` with an entry that has neither
        ``busy`` nor ``errors`` (``{}``): Google says nothing of its time, for the whole
        range asked (the answer has no way to say it for part of it)."""
        with self.lock:
            self.no_data_calendars.add(calendar_id.lower())

    def serve_raw_freebusy(self, payload: Any) -> None:
        """The next freeBusy request (once it passes the token and request checks) is
        answered 200 with ``payload`` as it is, whatever was asked (a captured answer,
        e.g. ``tests/fixtures/cases/google-freebusy-one-calendar-error.json``).  Queued:
        call again for the request after it."""
        with self.lock:
            self.raw_freebusy.append(payload)

    def events_of(self, calendar: str) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {k: dict(v) for k, v in self._calendar(calendar).events.items()}

    def api_log(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.log if r.api]

    def token_log(self) -> list[Recorded]:
        with self.lock:
            return [r for r in self.log if r.path == "/token"]

    # --- state ----------------------------------------------------------------------------

    def _calendar(self, calendar: str) -> Calendar:
        found = self.calendars.get(calendar.lower())
        if found is None:
            raise Refusal(404, "notFound", "Not Found")
        return found

    def store(self, cal: Calendar, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Write ``body`` as the event ``event_id`` of ``cal``: a new etag and clock tick."""
        self.now = next(self.clock)
        moment = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)
        old = cal.events.get(event_id, {})
        event = {
            "kind": "calendar#event",
            **body,
            "id": event_id,
            "etag": f'"{3180000000000000 + self.now}"',
            "iCalUID": f"{event_id}@google.com",
            "created": old.get("created", stamp(moment)),
            "updated": stamp(moment),
            "organizer": {"email": cal.owner, "self": True},
            "creator": {"email": cal.owner, "self": True},
        }
        event.setdefault("status", "confirmed")
        cal.events[event_id] = event
        cal.seq[event_id] = self.now
        return event

    # --- the server -----------------------------------------------------------------------

    def start(self, tls: ssl.SSLContext | None = None) -> None:
        """Serve on a free port of 127.0.0.1; over TLS with ``tls`` (a server context)."""
        fake = self

        class Handler(_Handler):
            google = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- token endpoint -------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer to the form ``form``: status and JSON body."""
        return token_answer(self, form)

    # --- API ------------------------------------------------------------------------------

    def api(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        """Answer one API request: status, JSON body (None: empty), extra headers."""
        subject = access_subject(self, request)
        if not self.api_enabled:
            raise Refusal(
                403,
                "accessNotConfigured",
                "Google Calendar API has not been used in project 123 before or it is "
                "disabled. Enable it by visiting https://console.developers.google.com/apis/"
                "api/calendar-json.googleapis.com/overview?project=123 then retry.",
            )
        if self.failures:
            status, retry_after, reason = self.failures.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            message = "Rate Limit Exceeded" if status in (403, 429) else "Backend Error"
            raise Refusal(status, reason or "backendError", message, headers=headers)
        parts = [unquote(p) for p in request.path.removeprefix("/calendar/v3/").split("/")]
        method = request.method
        if parts == ["freeBusy"] and method == "POST":
            return 200, free_busy(self, request.body), {}
        if len(parts) >= 2 and parts[0] == "calendars":
            cal = self._calendar(parts[1])
            if subject != cal.owner and not oauth_user(self, subject):
                raise Refusal(404, "notFound", "Not Found")  # not this user's calendar
            if len(parts) == 2 and method == "GET":
                return 200, calendar_resource(cal), {}
            if len(parts) == 3 and parts[2] == "events":
                if method == "GET":
                    return 200, list_events(self, cal, request.query), {}
                if method == "POST":
                    event = insert_event(self, cal, request.query, request.body)
                    return 200, event, {"ETag": event["etag"]}
            if len(parts) == 4 and parts[2] == "events":
                return one_event(self, cal, parts[3], request)
        raise Refusal(404, "notFound", "Not Found")


class _Handler(BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: Any = None
        if raw and "x-www-form-urlencoded" in headers.get("content-type", ""):
            body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = Recorded(self.command, parts.path, parse_qs(parts.query), headers, body)
        fake = self.google
        with fake.lock:
            fake.log.append(record)
            extra: dict[str, str] = {}
            try:
                if parts.path == "/token" and self.command == "POST":
                    status, answer = fake.token(body if isinstance(body, dict) else {})
                elif record.api:
                    status, answer, extra = fake.api(record)
                else:
                    raise Refusal(404, "notFound", "Not Found")
            except Refusal as refusal:
                status, answer, extra = error_answer(refusal)
            record.status = status
        data = b"" if answer is None else json.dumps(answer).encode("utf-8")
        self.send_response(status)
        if answer is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


@contextmanager
def running(tls: ssl.SSLContext | None = None) -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    fake.start(tls)
    try:
        yield fake
    finally:
        fake.stop()
