"""A fake Microsoft Graph v1.0 and Entra ID token endpoint on 127.0.0.1, over TLS.

Written from Microsoft's documentation (learn.microsoft.com), answering what msal and the
Graph connector ask, and refusing what the documentation does not allow:

* Entra ID: ``/common/discovery/instance`` (msal's instance discovery),
  ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``
  (client credentials grant, v2-oauth2-client-creds-grant-flow): a wrong secret is 401
  ``invalid_client`` AADSTS7000215, an unknown app 400 AADSTS700016, a scope other than
  ``https://graph.microsoft.com/.default`` 400 AADSTS1002012.  Tokens are JWT-shaped
  (``roles`` = the application permissions granted) and can be expired on demand.
* Graph: ``calendar/getSchedule`` (≤ 20 schedules, < 62 days, availabilityViewInterval
  5…1440; 404 ``ErrorInvalidUser`` when the mailbox in the URL is unknown; per schedule
  (resources/scheduleinformation, :func:`~tests.support.fake_graph_wire.schedule_information`)
  scheduleItems and the availabilityView, or a freeBusyError ``{message, responseCode}`` —
  ``ErrorMailRecipientNotFound`` for an unknown schedule, any code by
  :meth:`FakeGraph.fail_schedule` — or the no-data shapes: items of status ``unknown``
  (:meth:`FakeGraph.no_data` with a span), a view without items
  (:meth:`FakeGraph.schedule_view_only`), neither (:meth:`FakeGraph.no_data` without one)),
  ``calendarView/delta`` (pages by
  ``Prefer: odata.maxpagesize``, ``$skiptoken`` / ``$deltatoken`` links, ``@removed``
  entries, 410 ``syncStateNotFound`` for a forgotten link), ``events`` (POST with
  transactionId de-duplication, ``$filter`` on our single-value extended property,
  PATCH/DELETE with ``If-Match`` → 412), ``calendar``.  A missing or expired token is 401
  ``InvalidAuthenticationToken``; a missing permission 403 ``ErrorAccessDenied``; throttling
  429/503 with ``Retry-After``.  Times come back in the ``Prefer: outlook.timezone`` zone
  (UTC when absent), or in :attr:`FakeGraph.force_time_zone` to play a proxy that drops
  the header.

Every request is logged (:attr:`FakeGraph.log`) for assertions on paths, bodies and headers.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ptm_sync.config.settings import AccountConfig, Secret
from tests.support import fake_graph_wire as w
from tests.support.fake_graph_wire import Logged, StoredEvent
from tests.support.mailservers import TlsMaterial, make_tls_material

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "fake-graph-secret~value"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ALL_ROLES = ("Calendars.ReadWrite",)


@dataclass
class _DeltaRound:
    mailbox: str
    start: datetime
    end: datetime
    since: int  # version the round started after (0: initial)


class FakeGraph:
    """The server state and its knobs; :func:`running` starts one."""

    def __init__(self, tls: TlsMaterial) -> None:
        self.tls = tls
        self.port = 0
        self.lock = threading.RLock()
        self.log: list[Logged] = []
        self.mailboxes: dict[str, dict[str, StoredEvent]] = {}
        self.secret = SECRET
        self.roles: tuple[str, ...] = ALL_ROLES
        #: Mailboxes outside the app's scope (RBAC for Applications, application access
        #: policy): Exchange Online answers 403 ErrorAccessDenied with the role granted.
        self.out_of_scope: set[str] = set()
        self.tokens: dict[str, bool] = {}  # token -> still valid
        self.issue_expired = False
        #: An HTTP status (5xx) Entra ID answers every request with, while set.
        self.entra_outage: int | None = None
        self.throttles: list[tuple[int, float]] = []
        self.max_page: int | None = None
        self.force_time_zone: str | None = None
        #: How each mailbox's schedule is answered in getSchedule (lower-case address).
        self.schedule_shapes: dict[str, w.ScheduleShape] = {}
        self.certificate_pem: bytes | None = None
        self._versions = itertools.count(1)
        self._rounds: dict[str, _DeltaRound] = {}
        self._skips: dict[str, tuple[_DeltaRound, list[str], int]] = {}

    # --- addresses ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base}/v1.0"

    def account(self, **overrides: Any) -> AccountConfig:
        """An ``[[accounts]]`` entry of type graph pointed at this fake."""
        values: dict[str, Any] = {
            "id": "m365",
            "type": "graph",
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": Secret(key="client_secret", value=self.secret),
            "graph_url": self.graph_url,
            "authority_url": self.base,
            "ca_file": self.tls.ca_file,
        }
        values.update(overrides)
        return AccountConfig(**values)

    # --- the teacher's and the server's hands -------------------------------------------

    def add_mailbox(self, address: str) -> str:
        with self.lock:
            self.mailboxes.setdefault(address.lower(), {})
        return address

    def add_event(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        *,
        show_as: str = "busy",
        subject: str = "Own appointment",
    ) -> str:
        """The teacher's own event (no transactionId); its id."""
        with self.lock:
            event = StoredEvent(w.new_id(), mailbox.lower(), start, end, subject, show_as=show_as)
            self._store(event)
            return event.id

    def event(self, mailbox: str, event_id: str) -> StoredEvent:
        return self.mailboxes[mailbox.lower()][event_id]

    def teacher_moves(self, mailbox: str, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            event = self.event(mailbox, event_id)
            event.start, event.end = start, end
            self._store(event)

    def teacher_deletes(self, mailbox: str, event_id: str) -> None:
        with self.lock:
            event = self.event(mailbox, event_id)
            event.deleted = True
            self._store(event)

    def fail_schedule(
        self,
        mailbox: str,
        response_code: str = "ErrorProxyRequestProcessingFailed",
        message: str | None = None,
    ) -> None:
        """From now on getSchedule answers ``mailbox``'s schedule with a freeBusyError of
        ``response_code`` (e.g. ErrorNoFreeBusyAccess, ErrorMailRecipientNotFound), the
        other schedules of the call as usual.  The mailbox itself stays (its events, and
        the URL /users/{mailbox}/… keep working)."""
        text = message or f"Free/busy of {mailbox} could not be read ({response_code})."
        self._shape(mailbox, error=(response_code, text))

    def no_data(
        self, mailbox: str, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        """``mailbox`` has no free/busy data in ``[start, end)``: scheduleItems of status
        ``unknown`` there (and a no-data digit in its availabilityView).  Without a span, its
        schedule has no data at all: neither scheduleItems nor availabilityView."""
        if start is None or end is None:
            self._shape(mailbox, bare=True)
        else:
            unknown = self.schedule_shapes.get(mailbox.lower(), w.ScheduleShape()).unknown
            self._shape(mailbox, unknown=(*unknown, (start, end)))

    def schedule_view_only(self, mailbox: str) -> None:
        """``mailbox``'s schedule comes as an availabilityView only (no scheduleItems)."""
        self._shape(mailbox, view_only=True)

    def _shape(self, mailbox: str, **changes: Any) -> None:
        with self.lock:
            key = mailbox.lower()
            self.schedule_shapes[key] = replace(
                self.schedule_shapes.get(key, w.ScheduleShape()), **changes
            )

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, False)

    def forget_delta_links(self) -> None:
        with self.lock:
            self._rounds.clear()
            self._skips.clear()

    def throttle(self, status: int = 429, retry_after: float = 1, count: int = 1) -> None:
        with self.lock:
            self.throttles.extend([(status, retry_after)] * count)

    def graph_requests(self, path_part: str = "") -> list[Logged]:
        with self.lock:
            return [e for e in self.log if e.kind == "graph" and path_part in e.path]

    def token_requests(self) -> list[Logged]:
        with self.lock:
            return [e for e in self.log if e.kind == "token"]

    def _store(self, event: StoredEvent) -> None:
        event.version = next(self._versions)
        event.change_key = base64.b64encode(secrets.token_bytes(9)).decode()
        self.mailboxes[event.mailbox][event.id] = event

    # --- Entra ID -------------------------------------------------------------------------

    def discovery(self, query: dict[str, str]) -> tuple[int, Any]:
        host = f"127.0.0.1:{self.port}"
        endpoint = query.get("authorization_endpoint", "")
        tenant = urlsplit(endpoint).path.strip("/").split("/")[0] if endpoint else "common"
        return 200, {
            "tenant_discovery_endpoint": (
                f"{self.base}/{tenant}/v2.0/.well-known/openid-configuration"
            ),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    def openid_configuration(self, tenant: str) -> tuple[int, Any]:
        if self.entra_outage:
            return self.entra_outage, w.aad("temporarily_unavailable", 90033, "outage")
        if tenant != TENANT:
            return 400, w.aad("invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        root = f"{self.base}/{tenant}"
        return 200, {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "issuer": f"{root}/v2.0",
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        }

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, Any]:
        if self.entra_outage:
            return self.entra_outage, w.aad("temporarily_unavailable", 90033, "outage")
        if tenant != TENANT:
            return 400, w.aad("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return 400, w.aad(
                "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != CLIENT_ID:
            return 400, w.aad(
                "unauthorized_client",
                700016,
                f"Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory.",
            )
        if form.get("scope", "").split() != [GRAPH_SCOPE]:
            return 400, w.aad(
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')!r} is not valid.",
            )
        if "client_assertion" in form:
            if not self._assertion_ok(form["client_assertion"], tenant):
                return 401, w.aad(
                    "invalid_client", 700027, "Client assertion failed signature validation."
                )
        elif form.get("client_secret") != self.secret:
            return 401, w.aad(
                "invalid_client",
                7000215,
                "Invalid client secret provided. "
                "Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added "
                f"to app '{CLIENT_ID}'.",
            )
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "aud": "https://graph.microsoft.com",
            "tid": tenant,
            "appid": CLIENT_ID,
            "roles": list(self.roles),
            "iat": now,
            "exp": now + 3599,
            "jti": secrets.token_hex(8),
        }
        token = ".".join(
            (w.b64({"typ": "JWT", "alg": "RS256"}), w.b64(claims), secrets.token_urlsafe(32))
        )
        self.tokens[token] = not self.issue_expired
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }

    def _assertion_ok(self, assertion: str, tenant: str) -> bool:
        if self.certificate_pem is None:
            return False
        import jwt
        from cryptography import x509

        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=f"{self.base}/{tenant}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == CLIENT_ID == claims.get("sub"))

    # --- Graph ----------------------------------------------------------------------------

    def graph(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if not token:
            return 401, w.error("InvalidAuthenticationToken", "Access token is empty."), {}
        if not self.tokens.get(token):
            return (
                401,
                w.error(
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                ),
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        if self.throttles:
            status, wait = self.throttles.pop(0)
            code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            return (
                status,
                w.error(code, "Application is over its MailboxConcurrency limit."),
                {"Retry-After": f"{wait:g}"},
            )
        match = re.fullmatch(r"/v1\.0/users/([^/]+)(/.*)", path)
        if not match:
            return 400, w.error("BadRequest", f"Resource not found for the segment {path!r}."), {}
        mailbox, rest = unquote(match.group(1)).lower(), match.group(2)
        if mailbox not in self.mailboxes:
            return (
                404,
                w.error("ErrorInvalidUser", f"The requested user '{mailbox}' is invalid."),
                {},
            )
        write = method in ("POST", "PATCH", "DELETE") and not rest.endswith("getSchedule")
        needed = {"Calendars.ReadWrite"} if write else {"Calendars.Read", "Calendars.ReadWrite"}
        if not needed & set(self.roles) or mailbox in self.out_of_scope:
            return (
                403,
                w.error("ErrorAccessDenied", "Access is denied. Check credentials and try again."),
                {},
            )
        prefer = w.prefer(headers.get("prefer", ""))
        zone = self.force_time_zone or prefer.get("outlook.timezone", "UTC")
        text_body = prefer.get("outlook.body-content-type", "html") == "text"
        view = w.View(zone, text_body)
        route = (method, re.sub(r"/events/[^/]+$", "/events/{id}", rest))
        if route == ("POST", "/calendar/getSchedule"):
            return (*self._get_schedule(body, view), {})
        if route == ("GET", "/calendar"):
            return 200, {"id": f"calendar-{mailbox}", "name": "Calendar"}, {}
        if route == ("GET", "/calendarView/delta"):
            return self._delta(mailbox, query, prefer, view)
        if route == ("GET", "/events"):
            return (*self._list(mailbox, query, view), {})
        if route == ("POST", "/events"):
            return (*self._create(mailbox, body, view), {})
        if route[1] == "/events/{id}":
            event_id = unquote(rest.rsplit("/", 1)[1])
            return (*self._one(method, mailbox, event_id, headers, body, view), {})
        return 400, w.error("BadRequest", f"Resource not found for the segment {rest!r}."), {}

    def _get_schedule(self, body: Any, view: w.View) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("schedules"), list):
            return 400, w.error("ErrorInvalidRequest", "schedules is required.")
        schedules = body["schedules"]
        if not 1 <= len(schedules) <= 20:
            return 400, w.error(
                "ErrorInvalidRequest", "The number of schedules must be between 1 and 20."
            )
        try:
            start, end = w.read_time(body.get("startTime")), w.read_time(body.get("endTime"))
        except ValueError as exc:
            return 400, w.error("ErrorInvalidRequest", str(exc))
        if not timedelta(0) < end - start < timedelta(days=62):
            return 400, w.error(
                "ErrorInvalidParameter", "The time period must be positive and less than 62 days."
            )
        interval = int(body.get("availabilityViewInterval", 30))
        if not 5 <= interval <= 1440:
            return 400, w.error("ErrorInvalidParameter", "availabilityViewInterval is 5…1440.")
        value = []
        for schedule in schedules:
            key = str(schedule).lower()
            events = self.mailboxes.get(key)
            shape = self.schedule_shapes.get(key, w.ScheduleShape())
            if events is None and shape.error is None:
                shape = w.ScheduleShape(
                    error=("ErrorMailRecipientNotFound", f"Unable to resolve {schedule}.")
                )
            value.append(
                w.schedule_information(
                    schedule, list((events or {}).values()), start, end, interval, view, shape
                )
            )
        return 200, {
            "@odata.context": f"{self.graph_url}/$metadata#Collection("
            "microsoft.graph.scheduleInformation)",
            "value": value,
        }

    def _delta(
        self, mailbox: str, query: dict[str, str], prefer: dict[str, str], view: w.View
    ) -> tuple[int, Any, dict[str, str]]:
        page = int(prefer.get("odata.maxpagesize", 0)) or self.max_page or 10**6
        if "$skiptoken" in query:
            found = self._skips.pop(query["$skiptoken"], None)
            if found is None or found[0].mailbox != mailbox:
                return self._gone(mailbox)
            round_, ids, upto = found
        else:
            if "$deltatoken" in query:
                known = self._rounds.get(query["$deltatoken"])
                if known is None or known.mailbox != mailbox:
                    return self._gone(mailbox)
                round_ = known
            else:
                try:
                    start = w.iso(query["startDateTime"])
                    end = w.iso(query["endDateTime"])
                except (KeyError, ValueError):
                    return (
                        400,
                        w.error(
                            "ErrorInvalidParameter", "startDateTime and endDateTime are required."
                        ),
                        {},
                    )
                round_ = _DeltaRound(mailbox, start, end, 0)
            upto = next(self._versions)
            ids = sorted(
                (e.id for e in self.mailboxes[mailbox].values() if round_.since < e.version < upto),
                key=lambda i: self.mailboxes[mailbox][i].version,
            )
        chunk, rest = ids[:page], ids[page:]
        items = []
        for event_id in chunk:
            event = self.mailboxes[mailbox][event_id]
            inside = event.start < round_.end and event.end > round_.start
            if event.deleted or not inside:
                if round_.since:  # an initial round lists only what is there
                    items.append(
                        {
                            "@odata.type": "#microsoft.graph.event",
                            "id": event.id,
                            "@removed": {"reason": "deleted"},
                        }
                    )
            else:
                items.append(view.event(event))
        answer: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#Collection(event)",
            "value": items,
        }
        link = f"{self.graph_url}/users/{quote(mailbox, safe='@')}/calendarView/delta"
        if rest:
            skip = secrets.token_urlsafe(12)
            self._skips[skip] = (round_, rest, upto)
            answer["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
        else:
            delta = secrets.token_urlsafe(12)
            self._rounds[delta] = _DeltaRound(mailbox, round_.start, round_.end, upto)
            answer["@odata.deltaLink"] = f"{link}?$deltatoken={delta}"
        return 200, answer, {}

    def _gone(self, mailbox: str) -> tuple[int, Any, dict[str, str]]:
        link = f"{self.graph_url}/users/{mailbox}/calendarView/delta?$deltatoken="
        return (
            410,
            w.error("syncStateNotFound", "The sync state generation is not found."),
            {"Location": link},
        )

    def _list(self, mailbox: str, query: dict[str, str], view: w.View) -> tuple[int, Any]:
        events = [e for e in self.mailboxes[mailbox].values() if not e.deleted]
        wanted = query.get("$filter")
        if wanted is not None:
            match = re.fullmatch(
                r"singleValueExtendedProperties/Any\(ep: ep/id eq '((?:[^']|'')*)' and "
                r"ep/value eq '((?:[^']|'')*)'\)",
                wanted,
            )
            if match is None:
                return 400, w.error(
                    "ErrorInvalidUrlQueryFilter", "The $filter is not supported by this fake."
                )
            prop, value = (g.replace("''", "'") for g in match.groups())
            events = [e for e in events if e.extended.get(prop.lower()) == value]
        return 200, {"value": [view.event(e) for e in events]}

    def _create(self, mailbox: str, body: Any, view: w.View) -> tuple[int, Any]:
        problem = w.event_problem(body, create=True)
        if problem:
            return 400, w.error("ErrorInvalidRequest", problem)
        transaction = body.get("transactionId")
        if transaction:
            for existing in self.mailboxes[mailbox].values():
                if existing.transaction_id == transaction and not existing.deleted:
                    return 201, view.event(existing)
        event = StoredEvent(
            w.new_id(),
            mailbox,
            w.read_time(body["start"]),
            w.read_time(body["end"]),
            transaction_id=transaction,
        )
        w.apply_body(event, body)
        for prop in body.get("singleValueExtendedProperties") or []:
            event.extended[str(prop["id"]).lower()] = str(prop["value"])
        self._store(event)
        return 201, view.event(event)

    def _one(
        self,
        method: str,
        mailbox: str,
        event_id: str,
        headers: dict[str, str],
        body: Any,
        view: w.View,
    ) -> tuple[int, Any]:
        event = self.mailboxes[mailbox].get(event_id)
        if event is None or event.deleted:
            return 404, w.error(
                "ErrorItemNotFound", "The specified object was not found in the store."
            )
        if method == "GET":
            return 200, view.event(event)
        match = headers.get("if-match")
        if match is not None and match not in (w.etag(event), "*"):
            return 412, w.error(
                "ErrorIrresolvableConflict",
                "The change key passed in the "
                "request does not match the current change key for the item.",
            )
        if method == "DELETE":
            event.deleted = True
            self._store(event)
            return 204, None
        if method == "PATCH":
            problem = w.event_problem(body, create=False)
            if problem:
                return 400, w.error("ErrorInvalidRequest", problem)
            w.apply_body(event, body)
            self._store(event)
            return 200, view.event(event)
        return 405, w.error("ErrorInvalidRequest", f"{method} is not allowed here.")


# --- the HTTP server ----------------------------------------------------------------------


def _handler(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = unquote(parts.path)
            with fake.lock:
                extra: dict[str, str] = {}
                if path == "/common/discovery/instance":
                    kind, (status, payload) = "discovery", fake.discovery(query)
                    body: Any = query
                elif path.endswith("/v2.0/.well-known/openid-configuration"):
                    kind, body = "discovery", None
                    status, payload = fake.openid_configuration(path.split("/")[1])
                elif path.endswith("/oauth2/v2.0/token") and self.command == "POST":
                    form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
                    kind, body = (
                        "token",
                        {
                            k: v
                            for k, v in form.items()
                            if k not in ("client_secret", "client_assertion")
                        },
                    )
                    status, payload = fake.token(path.split("/")[1], form)
                elif path.startswith("/v1.0/"):
                    kind = "graph"
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        body = raw.decode(errors="replace")
                    if isinstance(body, str):
                        status, payload = 400, w.error("BadRequest", "Unreadable JSON.")
                    else:
                        status, payload, extra = fake.graph(
                            self.command, path, query, headers, body
                        )
                else:
                    kind, body, status, payload = (
                        "other",
                        None,
                        404,
                        w.error("BadRequest", "Unknown path."),
                    )
                fake.log.append(Logged(self.command, path, query, headers, body, kind))
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def running(directory: Path) -> Iterator[FakeGraph]:
    """A fake Graph + Entra ID on a free port of 127.0.0.1 with a fresh test CA."""
    tls = make_tls_material(directory)
    fake = FakeGraph(tls)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
