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
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/calendar"
#: The JWT's ``aud``: Google's docs say it is always this, wherever the request is sent.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ITEMS = 50
MAX_SPAN = timedelta(days=90)
#: Parameters events.list refuses together with syncToken (the reference of syncToken).
NOT_WITH_SYNC_TOKEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_ID_CHARS = set("abcdefghijklmnopqrstuv0123456789")


@dataclass
class Recorded:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0

    @property
    def api(self) -> bool:
        return self.path.startswith("/calendar/v3/")


@dataclass
class ServiceAccountKey:
    path: Path
    client_email: str
    client_id: str
    public_key: rsa.RSAPublicKey


def make_service_account(
    directory: Path, token_url: str, *, name: str = "ptm-sync", project: str = "school-123"
) -> ServiceAccountKey:
    """Write a service-account key JSON (a fresh RSA key) like the one Google's console gives."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    email = f"{name}@{project}.iam.gserviceaccount.com"
    client_id = str(100000000000000000000 + secrets.randbelow(10**18))
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_url,
    }
    path = directory / f"{name}-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(info), encoding="utf-8")
    return ServiceAccountKey(path, email, client_id, key.public_key())


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Refusal(Exception):
    """An error answer: HTTP status, Google reason and message."""

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.extra = status, reason, message, extra


@dataclass
class Calendar:
    owner: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # event id -> clock of its last write
    meet_pending: dict[str, int] = field(default_factory=dict)  # id -> reads still pending


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
            "start": {"dateTime": _stamp(start)},
            "end": {"dateTime": _stamp(end)},
            "status": status,
            "transparency": transparency,
            **extra,
        }
        with self.lock:
            return self._store(self._calendar(calendar), secrets.token_hex(13), body)["id"]

    def teacher_moves(self, calendar: str, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            event = dict(cal.events[event_id])
            event["start"] = {"dateTime": _stamp(start), "timeZone": "UTC"}
            event["end"] = {"dateTime": _stamp(end), "timeZone": "UTC"}
            self._store(cal, event_id, event)

    def teacher_edits(self, calendar: str, event_id: str, **fields: Any) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            self._store(cal, event_id, {**cal.events[event_id], **fields})

    def teacher_deletes(self, calendar: str, event_id: str) -> None:
        with self.lock:
            cal = self._calendar(calendar)
            self._store(cal, event_id, {**cal.events[event_id], "status": "cancelled"})

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

    def _store(self, cal: Calendar, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.now = next(self.clock)
        moment = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)
        old = cal.events.get(event_id, {})
        event = {
            "kind": "calendar#event",
            **body,
            "id": event_id,
            "etag": f'"{3180000000000000 + self.now}"',
            "iCalUID": f"{event_id}@google.com",
            "created": old.get("created", _stamp(moment)),
            "updated": _stamp(moment),
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
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            return self._jwt_grant(form.get("assertion", ""))
        if grant == "refresh_token":
            client = self.oauth_clients.get(form.get("refresh_token", ""))
            if client is None:
                return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
            if (form.get("client_id"), form.get("client_secret")) != client[:2]:
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            return self._issue(client[2])
        return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}

    def _jwt_grant(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            head, payload, signature = assertion.split(".")
            header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(payload))
        except ValueError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        key = self.keys.get(str(claims.get("iss")))
        if header.get("alg") != "RS256" or key is None:
            return 401, {
                "error": "invalid_client",
                "error_description": "The OAuth client was not found.",
            }
        try:
            key.public_key.verify(
                _b64decode(signature),
                f"{head}.{payload}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        now = time.time()
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT: audience"}
        if not (claims.get("exp", 0) > now and claims["exp"] - claims.get("iat", 0) <= 3600):
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: Token must be a short-lived token",
            }
        if SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
        subject = claims.get("sub")
        if subject is not None:
            if not self.delegation:
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                }
            if str(subject).lower() not in self.users:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid email or User ID",
                }
        self.assertions.append(claims)
        return self._issue(str(subject).lower() if subject else key.client_email)

    def _issue(self, subject: str) -> tuple[int, dict[str, Any]]:
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens[token] = (subject, time.time() + self.expires_in)
        body = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return 200, body

    # --- API ------------------------------------------------------------------------------

    def api(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        """Answer one API request: status, JSON body (None: empty), extra headers."""
        auth = request.headers.get("authorization", "")
        held = self.tokens.get(auth.removeprefix("Bearer ").strip())
        if held is None or held[1] < time.time() or not self.accept_tokens:
            raise Refusal(
                401,
                "authError",
                "Invalid Credentials",
                location="Authorization",
                locationType="header",
            )
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
        subject = held[0]
        parts = [unquote(p) for p in request.path.removeprefix("/calendar/v3/").split("/")]
        method = request.method
        if parts == ["freeBusy"] and method == "POST":
            return 200, self._free_busy(request.body), {}
        if len(parts) >= 2 and parts[0] == "calendars":
            cal = self._calendar(parts[1])
            if subject != cal.owner and not self._oauth_user(subject):
                raise Refusal(404, "notFound", "Not Found")  # not this user's calendar
            if len(parts) == 2 and method == "GET":
                return 200, self._calendar_resource(cal), {}
            if len(parts) == 3 and parts[2] == "events":
                if method == "GET":
                    return 200, self._list(cal, request.query), {}
                if method == "POST":
                    event = self._insert(cal, request.query, request.body)
                    return 200, event, {"ETag": event["etag"]}
            if len(parts) == 4 and parts[2] == "events":
                return self._one(cal, parts[3], request)
        raise Refusal(404, "notFound", "Not Found")

    def _oauth_user(self, subject: str | None) -> bool:
        return any(user == subject for _, _, user in self.oauth_clients.values())

    def _calendar_resource(self, cal: Calendar) -> dict[str, Any]:
        return {
            "kind": "calendar#calendar",
            "etag": '"1"',
            "id": cal.owner,
            "summary": cal.owner,
            "timeZone": "UTC",
        }

    def _free_busy(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "timeMin" not in body or "timeMax" not in body:
            raise Refusal(400, "required", "Missing timeMin or timeMax.")
        try:
            start, end = _time(body["timeMin"]), _time(body["timeMax"])
        except (TypeError, ValueError):
            raise Refusal(400, "invalid", "Bad Request") from None
        if end <= start:
            raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
        if end - start > MAX_SPAN:
            raise Refusal(400, "timeRangeTooLong", "The requested time range is too long.")
        items = body.get("items", [])
        if len(items) > MAX_ITEMS:
            raise Refusal(400, "tooManyCalendarsRequested", "Too many calendars requested.")
        if self.raw_freebusy:
            raw: Any = self.raw_freebusy.pop(0)
            return raw
        calendars: dict[str, Any] = {}
        for item in items:
            key = str(item.get("id", "")).lower()
            cal = self.calendars.get(key)
            if key in self.calendar_errors:
                reason = self.calendar_errors[key]
                calendars[item["id"]] = {
                    "errors": [{"domain": "global", "reason": reason}],
                    "busy": [],
                }
                continue
            if key in self.no_data_calendars:
                calendars[item["id"]] = {}
                continue
            if cal is None:
                calendars[item["id"]] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            spans = []
            for event in cal.events.values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                first, last = _time(event["start"]["dateTime"]), _time(event["end"]["dateTime"])
                first, last = max(first, start), min(last, end)
                if first < last:
                    spans.append((first, last))
            merged: list[list[datetime]] = []
            for first, last in sorted(spans):
                if merged and first <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], last)
                else:
                    merged.append([first, last])
            calendars[item["id"]] = {
                "busy": [{"start": _stamp(a), "end": _stamp(b)} for a, b in merged]
            }
        return {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    def _list(self, cal: Calendar, query: dict[str, list[str]]) -> dict[str, Any]:
        one = {k: v[-1] for k, v in query.items()}
        max_results = int(one.get("maxResults", "250"))
        if not 1 <= max_results <= 2500:
            raise Refusal(400, "invalid", "Invalid value for maxResults.")
        size = min(max_results, self.page_size)
        if "pageToken" in one:
            held = self.page_tokens.pop(one["pageToken"], None)
            if held is None:
                raise Refusal(400, "invalid", "Invalid page token value.")
            rest, final = held
            return self._page(cal, rest, size, final)
        if "syncToken" in one:
            for name in NOT_WITH_SYNC_TOKEN:
                if name in query:
                    raise Refusal(400, "invalid", f"{name} cannot be used with syncToken.")
            if one.get("showDeleted") == "false":
                raise Refusal(400, "invalid", "showDeleted cannot be false with syncToken.")
            held_token = self.sync_tokens.get(one["syncToken"])
            if held_token is None or held_token[0] != cal.owner:
                raise Refusal(
                    410,
                    "fullSyncRequired",
                    "Sync token is no longer valid, a full sync is required.",
                )
            since = held_token[1]
            items = [self._listed(e) for i, e in cal.events.items() if cal.seq[i] > since]
        else:
            show_deleted = one.get("showDeleted") == "true"
            start = _time(one["timeMin"]) if "timeMin" in one else None
            end = _time(one["timeMax"]) if "timeMax" in one else None
            if start and end and start >= end:
                raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
            wanted = [p.partition("=") for p in query.get("privateExtendedProperty", [])]
            items = []
            for event in cal.events.values():
                if event.get("status") == "cancelled" and not show_deleted:
                    continue
                if start and _time(event["end"]["dateTime"]) <= start:
                    continue
                if end and _time(event["start"]["dateTime"]) >= end:
                    continue
                tags = event.get("extendedProperties", {}).get("private", {})
                if any(tags.get(name) != value for name, _, value in wanted):
                    continue
                items.append(self._listed(event))
        items.sort(key=lambda e: e["updated"])
        final = "sync-" + secrets.token_urlsafe(12)
        self.sync_tokens[final] = (cal.owner, self.now)
        return self._page(cal, items, size, final)

    def _page(
        self, cal: Calendar, items: list[dict[str, Any]], size: int, final: str
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"p{self.now}"',
            "summary": cal.owner,
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [],
            "items": items[:size],
        }
        if len(items) > size:
            page = "page-" + secrets.token_urlsafe(12)
            self.page_tokens[page] = (items[size:], final)
            answer["nextPageToken"] = page
        else:
            answer["nextSyncToken"] = final
        return answer

    @staticmethod
    def _listed(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") == "cancelled":  # a deleted event: little more than its id
            return {k: event[k] for k in ("kind", "etag", "id", "status", "updated")}
        return dict(event)

    @staticmethod
    def _check_query(query: dict[str, list[str]]) -> None:
        """The write parameters' allowed values (events.insert/patch/update/delete)."""
        send = query.get("sendUpdates", ["none"])[-1]
        if send not in ("all", "externalOnly", "none"):
            raise Refusal(400, "invalidParameter", f"Invalid value for sendUpdates: {send}")
        if query.get("conferenceDataVersion", ["0"])[-1] not in ("0", "1"):
            raise Refusal(400, "invalidParameter", "Invalid value for conferenceDataVersion.")

    def _insert(self, cal: Calendar, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
        self._check_query(query)
        self._check_event(body)
        event_id = body.get("id") or secrets.token_hex(13)
        if not (5 <= len(event_id) <= 1024 and set(event_id) <= _ID_CHARS):
            raise Refusal(400, "invalid", "Invalid resource id value.")
        if event_id in cal.events:
            raise Refusal(409, "duplicate", "The requested identifier already exists.")
        body = {k: v for k, v in body.items() if k != "id"}
        body["conferenceData"] = self._conference(cal, event_id, query, body, None)
        if body["conferenceData"] is None:
            del body["conferenceData"]
        return self._with_link(self._store(cal, event_id, body))

    def _check_event(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise Refusal(400, "parseError", "Parse Error")
        try:
            start, end = _time(body["start"]["dateTime"]), _time(body["end"]["dateTime"])
        except (KeyError, TypeError, ValueError):
            raise Refusal(400, "required", "Missing start or end time.") from None
        if end <= start:
            raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")

    def _conference(
        self,
        cal: Calendar,
        event_id: str,
        query: dict[str, list[str]],
        body: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """conferenceData to store: a new Meet for a createRequest with version 1 (version 0
        ignores conference data in the body), else what the event had."""
        kept = old.get("conferenceData") if old else None
        wanted = body.get("conferenceData")
        if query.get("conferenceDataVersion", ["0"])[-1] != "1" or not wanted:
            return kept
        create = wanted.get("createRequest")
        if not create:
            return wanted
        if create.get("conferenceSolutionKey", {}).get("type") != "hangoutsMeet":
            raise Refusal(400, "invalid", "Invalid conference type value.")
        if kept and kept.get("createRequest", {}).get("requestId") == create.get("requestId"):
            return kept
        code = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(10))
        code = f"{code[:3]}-{code[3:7]}-{code[7:]}"
        if self.meet_reads_pending:
            cal.meet_pending[event_id] = self.meet_reads_pending
        return {
            "createRequest": {
                "requestId": create.get("requestId"),
                "conferenceSolutionKey": {"type": "hangoutsMeet"},
                "status": {"statusCode": "success"},
            },
            "entryPoints": [
                {
                    "entryPointType": "video",
                    "uri": f"https://meet.google.com/{code}",
                    "label": f"meet.google.com/{code}",
                }
            ],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        }

    def _with_link(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as answered: while its conference is pending, no link yet."""
        event = json.loads(json.dumps(event))
        cal = self.calendars[event["organizer"]["email"]]
        data = event.get("conferenceData")
        if not data:
            return event
        if cal.meet_pending.get(event["id"], 0) > 0:
            data["createRequest"]["status"]["statusCode"] = "pending"
            data.pop("entryPoints", None)
            data.pop("conferenceSolution", None)
            data.pop("conferenceId", None)
            return event
        for point in data.get("entryPoints", []):
            if point.get("entryPointType") == "video":
                event["hangoutLink"] = point["uri"]
        return event

    def _one(
        self, cal: Calendar, event_id: str, request: Recorded
    ) -> tuple[int, Any, dict[str, str]]:
        event = cal.events.get(event_id)
        if event is None:
            raise Refusal(404, "notFound", "Not Found")
        if request.method == "GET":
            answer = self._with_link(event)
            if cal.meet_pending.get(event_id):
                cal.meet_pending[event_id] -= 1
            return 200, answer, {"ETag": event["etag"]}
        self._check_query(request.query)
        condition = request.headers.get("if-match")
        if condition and condition not in ("*", event["etag"]):
            raise Refusal(
                412,
                "conditionNotMet",
                "Precondition Failed",
                location="If-Match",
                locationType="header",
            )
        if request.method == "DELETE":
            if event.get("status") == "cancelled":
                raise Refusal(410, "deleted", "Resource has been deleted")
            self._store(cal, event_id, {**event, "status": "cancelled"})
            return 204, None, {}
        body = request.body
        if request.method == "PATCH":
            merged = {**event, **(body or {})}
        elif request.method == "PUT":
            keep = ("conferenceData",)
            merged = {**{k: event[k] for k in keep if k in event}, **(body or {})}
        else:
            raise Refusal(405, "httpMethodNotAllowed", "Method Not Allowed")
        self._check_event(merged)
        conference = self._conference(cal, event_id, request.query, body or {}, event)
        merged.pop("conferenceData", None)
        if conference:
            merged["conferenceData"] = conference
        stored = self._store(cal, event_id, merged)
        return 200, self._with_link(stored), {"ETag": stored["etag"]}


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
                status = refusal.status
                extra = refusal.extra.pop("headers", {})
                error = {"domain": "global", "reason": refusal.reason, "message": refusal.message}
                if refusal.reason in ("rateLimitExceeded", "userRateLimitExceeded"):
                    error["domain"] = "usageLimits"
                error.update(refusal.extra)
                answer = {"error": {"errors": [error], "code": status, "message": refusal.message}}
                if status == 401:
                    extra["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
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
