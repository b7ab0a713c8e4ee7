"""A web server publishing iCalendar feeds on 127.0.0.1, as a school website or a calendar
app's "publish" link does: ETag and Last-Modified on every feed, 304 to a conditional GET
whose validator still holds (RFC 9110 §13.1), and faults on command: the next requests, or
every request for one feed.

:class:`RefusingServer` answers every request with 401 and the ``WWW-Authenticate``
challenges a test chooses (RFC 7235 §4.1), recording what it was sent; it also serves as an
HTTP proxy, so that a client may ask for a URL on any host name (Google's CalDAV endpoint)
and reach it."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def vevent(
    start: datetime,
    end: datetime,
    *,
    summary: str = "School event",
    status: str = "CONFIRMED",
    uid: str = "",
) -> str:
    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    return (
        f"BEGIN:VEVENT\r\nUID:{uid or uuid.uuid4()}@school.test\r\nDTSTAMP:20270101T000000Z\r\n"
        f"DTSTART:{stamp(start)}\r\nDTEND:{stamp(end)}\r\nSUMMARY:{summary}\r\n"
        f"STATUS:{status}\r\nEND:VEVENT\r\n"
    )


@dataclass
class Feed:
    events: list[str] = field(default_factory=list)
    modified: datetime = field(default_factory=lambda: datetime(2027, 1, 1, tzinfo=UTC))
    #: Served instead of the calendar (a web page where a feed was expected).
    raw: bytes | None = None

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//school website//EN\r\n"
            + "".join(self.events)
            + "END:VCALENDAR\r\n"
        ).encode()

    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body()).hexdigest()[:16] + '"'


Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def _pairs(headers: Headers | None) -> list[tuple[str, str]]:
    """(name, value) pairs from a dict, or pairs as given (one name may come twice)."""
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


@dataclass
class FeedServer:
    """Feeds by path; ``log`` records (method, path, If-None-Match, If-Modified-Since)."""

    feeds: dict[str, Feed] = field(default_factory=dict)
    log: list[tuple[str, str, str, str]] = field(default_factory=list)
    faults: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)
    path_faults: dict[str, tuple[int, list[tuple[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def add(self, path: str, event: str) -> None:
        with self.lock:
            feed = self.feeds.setdefault(path, Feed())
            feed.events.append(event)
            feed.modified = datetime.now(UTC).replace(microsecond=0)

    def fail_next(self, status: int, headers: Headers | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and ``headers``."""
        with self.lock:
            self.faults.extend([(status, _pairs(headers))] * times)

    def fail_path(self, path: str, status: int, headers: Headers | None = None) -> None:
        """Answer every request for the feed at ``path`` with ``status`` from now on."""
        with self.lock:
            self.path_faults[path] = (status, _pairs(headers))

    def start(self) -> FeedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0].lstrip("/")
                with server.lock:
                    server.log.append(
                        (
                            "GET",
                            path,
                            self.headers.get("If-None-Match", ""),
                            self.headers.get("If-Modified-Since", ""),
                        )
                    )
                    fault = server.path_faults.get(path) or (
                        server.faults.pop(0) if server.faults else None
                    )
                    feed = server.feeds.get(path)
                    body = feed.body() if feed else b""
                    etag = feed.etag() if feed else ""
                    modified = feed.modified if feed else None
                if fault is not None:
                    self.send_response(fault[0])
                    for name, value in fault[1]:
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if feed is None:
                    self.send_error(404)
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("ETag", etag)
                assert modified is not None
                self.send_header("Last-Modified", format_datetime(modified, usegmt=True))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    yield server
    server.stop()


@dataclass
class RefusingServer:
    """Answers every request with ``401 Unauthorized`` and ``challenges`` (each its own
    ``WWW-Authenticate`` header), as an origin server or as an HTTP proxy (absolute-form
    request targets, RFC 9112 §3.2.2).  ``seen`` records (method, target, Authorization)."""

    challenges: list[str] = field(default_factory=list)
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> RefusingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def refuse(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with server.lock:
                    server.seen.append(
                        (self.command, self.path, self.headers.get("Authorization", ""))
                    )
                    challenges = list(server.challenges)
                body = b"Unauthorized"
                self.send_response(401)
                for challenge in challenges:
                    self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_HEAD = refuse
            do_OPTIONS = do_PROPFIND = do_REPORT = do_PROPPATCH = do_MKCALENDAR = refuse

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@pytest.fixture
def refusing_server() -> Iterator[RefusingServer]:
    server = RefusingServer().start()
    yield server
    server.stop()
