"""Embedded CalDAV servers for tests: Radicale and Xandikos in-process on 127.0.0.1.

Both servers run as WSGI apps in a threaded ``wsgiref`` server on a free port with their
storage in a temporary directory, once per test session.  A small WSGI middleware in front
of each records every request it receives, so a test can count HTTP requests at the
transport level without touching any client library.

Fixtures (all importable through ``tests/conftest.py``):

``radicale_server`` (session)
    Radicale with htpasswd (plain) authentication: user ``teacher``, password
    ``teacher-secret`` (:data:`RADICALE_USER`, :data:`RADICALE_PASSWORD`); any
    authenticated user may read and write every collection.
``xandikos_server`` (session)
    Xandikos without authentication; the principal is ``/teacher/``, its
    calendar-user-address-set (RFC 6638 §2.4.1) :data:`XANDIKOS_ADDRESSES`.
``caldav_server``
    Parametrized over both (test ids ``[radicale]`` and ``[xandikos]``): a test that takes
    it runs once against each server.  Carries the ``radicale`` / ``xandikos`` marker.
``caldav_calendar``
    A fresh, empty calendar collection on ``caldav_server``; its URL as a string.
``caldav_account``
    An :class:`~ptm_sync.config.settings.AccountConfig` (``id="dav"``, ``type="caldav"``) with the
    right URL and credentials for ``caldav_server``.

Helpers for other tests (sync, demo, end-to-end)::

    def test_something(caldav_server, caldav_account):
        url = make_calendar(caldav_server, "mary")          # a new calendar collection
        href = put_ics(caldav_server, url, ICS_TEXT)        # store a raw object, returns href
        ref = CalendarRef(caldav_account.id, url)           # what a teacher's roster row holds
        with caldav_server.requests.recording() as log:     # count what the server receives
            ...
        assert len(log) == 1
        caldav_server.requests.fail_next("429 Too Many Requests", {"Retry-After": "7"})
        caldav_server.requests.fail_path(urlsplit(url).path, "403 Forbidden")  # one collection

    account = account_for(radicale_server, freebusy="local")  # one server, fields overridden
    delete_href(radicale_server, href)                           # remove an object behind our back

:class:`EmbeddedCalDAV` holds ``kind`` (``"radicale"`` / ``"xandikos"``), ``url`` (the
account URL: the user's home, calendars are created under it), ``username``,
``password``, ``requests`` (a :class:`RequestLog`: what the server received, and faults to
inject) and ``expect`` (the :class:`ServerExpectations` for this server: the per-server table of
known differences that tests consult instead of comparing server names; what a server's
free-busy REPORT gets right is in ``connectors.caldav_features.FEATURES[server.kind]``).
"""

from __future__ import annotations

import contextlib
import io
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urljoin, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.demo.embedded import radicale_app

RADICALE_USER = "teacher"
RADICALE_PASSWORD = "teacher-secret"
XANDIKOS_USER = "teacher"
#: The Xandikos principal's calendar-user-address-set, as a Nextcloud principal gives its
#: user's primary and alias addresses (case as the administrator typed them).
XANDIKOS_ADDRESSES = ("mailto:Ada.Lovelace@School.test", "mailto:a.lovelace@school.test")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class ServerExpectations:
    """How one embedded server differs where a test can see it.

    What a server's free-busy REPORT gets right lives in the connector's own table,
    ``connectors.caldav_features.FEATURES[server.kind]``; this holds the rest.

    ``sync_sends_calendar_data``: a sync-collection answer carries calendar-data, so an
    incremental sync with changes is one request (else one more calendar-multiget).
    ``authenticates``: the server checks a user name and password.
    ``owner_addresses``: the email addresses the principal's calendar-user-address-set gives
    (lower case, without ``mailto:``): Radicale's holds the principal's path alone.
    """

    kind: str
    sync_sends_calendar_data: bool
    authenticates: bool
    owner_addresses: frozenset[str] = frozenset()


EXPECTATIONS: dict[str, ServerExpectations] = {
    "radicale": ServerExpectations("radicale", sync_sends_calendar_data=True, authenticates=True),
    "xandikos": ServerExpectations(
        "xandikos",
        sync_sends_calendar_data=False,
        authenticates=False,
        owner_addresses=frozenset(a.removeprefix("mailto:").lower() for a in XANDIKOS_ADDRESSES),
    ),
}


@dataclass(frozen=True)
class Fault:
    """What the middleware answers instead of the server."""

    status: str
    headers: list[tuple[str, str]]
    body: str = ""


@dataclass
class RequestLog:
    """Every request an embedded server received, as ``(method, path)`` pairs.

    It also injects faults: :meth:`fail_next` makes the server answer the next requests with
    an error status (throttling, outage, a 401 with chosen challenges) before the real
    server sees them; :meth:`fail_path` answers every request for one collection so (a
    collection the account may not read, one whose part of the server fails).
    """

    entries: list[tuple[str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    path_faults: dict[str, Fault] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str) -> Fault | None:
        """Record a request; return the fault to answer it with, if one is due."""
        with self._lock:
            self.entries.append((method, path))
            for prefix, fault in self.path_faults.items():
                if path.startswith(prefix):
                    return fault
            return self.faults.pop(0) if self.faults else None

    def fail_next(
        self,
        status: str,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. ``"429 Too Many Requests"``);
        ``headers`` as a dict, or as (name, value) pairs to send one name twice."""
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        with self._lock:
            self.faults.extend([Fault(status, pairs)] * times)

    def fail_path(
        self, path: str, status: str, headers: dict[str, str] | None = None, body: str = ""
    ) -> None:
        """Answer every request for ``path`` and below with ``status`` (and ``body``, else
        the status as text) from now on."""
        with self._lock:
            self.path_faults[path] = Fault(status, list((headers or {}).items()), body)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.path_faults.clear()

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, str]]]:
        """Yield a list that fills with the requests received inside the ``with`` block."""
        with self._lock:
            start = len(self.entries)
        seen: list[tuple[str, str]] = []
        try:
            yield seen
        finally:
            with self._lock:
                seen.extend(self.entries[start:])


def _counting(app: WSGIApp, log: RequestLog) -> WSGIApp:
    """Record each request; hand the app a body stream that ends at Content-Length.

    wsgiref passes the raw socket as ``wsgi.input``; Xandikos reads it to EOF, which on a
    kept-alive connection never comes.  Production WSGI servers bound the stream the same way.
    """

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fault = log.add(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if fault is not None:
            # A short text, as Radicale words its own refusals, unless the fault has a body.
            body = (fault.body or fault.status).encode()
            start_response(fault.status, [*fault.headers, ("Content-Length", str(len(body)))])
            return [body]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length) if length else b"")
        return app(environ, start_response)

    return middleware


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class EmbeddedCalDAV:
    """One running server; see the module docstring."""

    kind: str
    url: str
    username: str
    password: str | None
    requests: RequestLog
    expect: ServerExpectations
    _httpd: WSGIServer | None = None
    _thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _serve(kind: str, app: WSGIApp, path: str, user: str, password: str | None) -> EmbeddedCalDAV:
    log = RequestLog()
    httpd = make_server(
        "127.0.0.1",
        0,
        _counting(app, log),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=httpd.serve_forever, name=f"{kind}-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_port}{path}"
    return EmbeddedCalDAV(kind, url, user, password, log, EXPECTATIONS[kind], httpd, thread)


def start_radicale(storage: Path) -> EmbeddedCalDAV:
    """Start Radicale with htpasswd auth on a free port; storage under ``storage``."""
    users = storage / "users"
    users.write_text(f"{RADICALE_USER}:{RADICALE_PASSWORD}\n", encoding="utf-8")
    app = radicale_app(
        storage / "collections",
        htpasswd=users,
        settings={
            "auth": {"delay": "0"},
            "rights": {"type": "authenticated"},
            "server": {"delay_on_error": "0"},
            "storage": {"_filesystem_fsync": "False"},
            "reporting": {
                "freebusy_view_past_days": "36500",
                "freebusy_view_future_days": "36500",
            },
        },
    )
    return _serve("radicale", app, f"/{RADICALE_USER}/", RADICALE_USER, RADICALE_PASSWORD)


def start_xandikos(storage: Path) -> EmbeddedCalDAV:
    """Start Xandikos (no auth) on a free port; storage under ``storage``."""
    from xandikos.web import SingleUserFilesystemBackend, XandikosApp

    principal = f"/{XANDIKOS_USER}/"
    backend = SingleUserFilesystemBackend(str(storage), autocreate=True)
    backend.create_principal(principal, create_defaults=True)
    app = XandikosApp(backend, current_user_principal=principal, strict=True)
    server = _serve("xandikos", app, f"/{XANDIKOS_USER}/calendars/", XANDIKOS_USER, None)
    set_addresses(server, principal, XANDIKOS_ADDRESSES)
    return server


# --- helpers ---------------------------------------------------------------------------


def _client(server: EmbeddedCalDAV) -> Any:
    from caldav.davclient import DAVClient

    return DAVClient(
        url=server.url,
        username=server.username if server.password else None,
        password=server.password,
        enable_rfc6764=False,
    )


def make_calendar(server: EmbeddedCalDAV, name: str | None = None) -> str:
    """Create a new calendar collection (MKCALENDAR) under the server's home; return its URL."""
    slug = name or f"cal-{uuid.uuid4().hex[:10]}"
    url = urljoin(server.url, f"{slug}/")
    with _client(server) as client:
        response = client.mkcalendar(url)
    if response.status not in (200, 201):
        raise RuntimeError(f"MKCALENDAR {url} failed: {response.status} {response.raw}")
    return url


def put_ics(server: EmbeddedCalDAV, calendar_url: str, ics: str, name: str | None = None) -> str:
    """PUT a raw iCalendar object into a calendar; return its href (the URL path)."""
    target = urljoin(calendar_url, name or f"{uuid.uuid4().hex}.ics")
    with _client(server) as client:
        response = client.put(
            target,
            ics.replace("\r\n", "\n").replace("\n", "\r\n"),
            {"Content-Type": "text/calendar"},
        )
    if response.status not in (200, 201, 204):
        raise RuntimeError(f"PUT {target} failed: {response.status} {response.raw}")
    return urlsplit(target).path


def delete_href(server: EmbeddedCalDAV, href: str) -> None:
    """DELETE one object by href (path or URL)."""
    with _client(server) as client:
        response = client.delete(urljoin(server.url, href))
    if response.status not in (200, 204, 404):
        raise RuntimeError(f"DELETE {href} failed: {response.status}")


def set_addresses(server: EmbeddedCalDAV, principal: str, addresses: Iterable[str]) -> None:
    """PROPPATCH a principal's calendar-user-address-set (RFC 6638 §2.4.1), as a client or
    an administrator sets it on Xandikos."""
    hrefs = "".join(f"<D:href>{address}</D:href>" for address in addresses)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:set><D:prop><C:calendar-user-address-set>{hrefs}</C:calendar-user-address-set>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    with _client(server) as client:
        response = client.proppatch(urljoin(server.url, principal), body)
    if response.status != 207 or "200" not in str(response.raw):
        raise RuntimeError(f"PROPPATCH {principal} failed: {response.status} {response.raw}")


def account_for(server: EmbeddedCalDAV, **overrides: Any) -> AccountConfig:
    """An ``[[accounts]]`` entry for ``server``; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "id": "dav",
        "type": "caldav",
        "url": server.url,
        "username": server.username,
        "password": Secret(key="accounts.password", value=server.password)
        if server.password
        else None,
    }
    fields.update(overrides)
    return AccountConfig(**fields)


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCalDAV]:
    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCalDAV]:
    server = start_xandikos(tmp_path_factory.mktemp("xandikos"))
    yield server
    server.stop()


@pytest.fixture(
    params=[
        pytest.param("radicale", marks=pytest.mark.radicale),
        pytest.param("xandikos", marks=pytest.mark.xandikos),
    ]
)
def caldav_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedCalDAV]:
    """Each embedded server in turn; faults a test injected but did not use are dropped."""
    server: EmbeddedCalDAV = request.getfixturevalue(f"{request.param}_server")
    yield server
    server.requests.clear_faults()


@pytest.fixture
def caldav_calendar(caldav_server: EmbeddedCalDAV) -> str:
    """A fresh, empty calendar collection on ``caldav_server``."""
    return make_calendar(caldav_server)


@pytest.fixture
def caldav_account(caldav_server: EmbeddedCalDAV) -> AccountConfig:
    return account_for(caldav_server)
