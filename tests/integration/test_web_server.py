"""The web server itself (Starlette on uvicorn): headers on every answer, /metrics only for
``[web] metrics_from``, a body size limit, clients that hang up, many clients at once, and an
access log that never holds a personal link's token.  Served over real sockets on 127.0.0.1
from a SQLite store."""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptm_sync.adapters.store import Database
from ptm_sync.config import settings as config_mod
from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.security import (
    CSP,
    MAX_BODY_BYTES,
    log_path,
    may_read_metrics,
    networks,
)
from ptm_sync.interfaces.web.server import WebServer
from ptm_sync.ops.metrics import ProcessMetrics
from tests.integration.test_health_store import CONFIG_TEXT, NOW
from tests.support.factories import make_period

PATHS = [
    "/",
    "/healthz",
    "/metrics",
    "/periods/p",
    "/periods/p/slots.json",
    "/periods/p/teachers/nobody.ics",
    "/periods/nope",
    "/no/such/page",
    "/f/secret-token-123",
]


def serve(db: Database, web: str = "") -> WebServer:
    text = CONFIG_TEXT + (f"[web]\n{web}\n" if web else "")
    site = Site(config_mod.parse(text), db, lambda: NOW, process=ProcessMetrics())
    server = WebServer(site, "127.0.0.1:0")
    server.start()
    return server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'ptm.db'}")
    db.migrate()
    with db.write() as s:
        make_period(s)
    yield db
    db.dispose()


@pytest.fixture
def server(store: Database) -> Iterator[WebServer]:
    web = serve(store)
    yield web
    web.stop()


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_every_answer_carries_the_security_headers(server: WebServer, method: str) -> None:
    statuses = set()
    for path in PATHS:
        status, headers, body = request(server.url, method, path)
        statuses.add(status)
        assert headers["content-security-policy"] == CSP, path
        assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert "strict-transport-security" not in headers, path  # public_url is not https
        if method == "HEAD":
            assert body == b""
    # The pages answered (200; /healthz 503: no teacher synced), missing ones 404, other
    # methods 405: headers on all of them.
    assert statuses == ({405} if method == "POST" else {200, 404, 503})


def test_head_answers_the_headers_of_get_without_a_body(server: WebServer) -> None:
    _, got, body = request(server.url, "GET", "/periods/p/slots.json")
    status, head, empty = request(server.url, "HEAD", "/periods/p/slots.json")
    assert (status, empty) == (200, b"")
    assert head["content-length"] == got["content-length"] == str(len(body))
    assert head["content-type"] == got["content-type"] == "application/json"


def test_hsts_only_when_the_public_url_is_https(store: Database) -> None:
    for public_url, hsts in [("https://conferences.s.test", True), ("http://s.test", False)]:
        web = serve(store, f'public_url = "{public_url}"')
        try:
            for path in ("/", "/healthz", "/nope"):
                _, headers, _ = request(web.url, "GET", path)
                assert ("strict-transport-security" in headers) is hsts, (public_url, path)
            if hsts:
                assert headers["strict-transport-security"].startswith("max-age=")
        finally:
            web.stop()


def test_metrics_answer_only_the_networks_of_metrics_from(store: Database) -> None:
    defaults = networks(config_mod.parse(CONFIG_TEXT).web.metrics_from)
    assert may_read_metrics("127.0.0.1", defaults)
    assert may_read_metrics("127.8.9.10", defaults)
    assert may_read_metrics("::1", defaults)
    assert may_read_metrics("::ffff:127.0.0.1", defaults)  # IPv4 mapped into IPv6
    for outside in ("10.0.0.7", "192.168.1.20", "2001:db8::1", "", "not-an-address"):
        assert not may_read_metrics(outside, defaults), outside
    site = Site(config_mod.parse(CONFIG_TEXT), store, lambda: NOW, process=ProcessMetrics())
    assert site.handle("/metrics", client="10.0.0.7").status == 403
    assert site.handle("/metric%73", client="10.0.0.7").status == 403  # encoded, the same page
    assert site.handle("/metrics", client="").status == 403  # a peer of unknown address
    assert site.handle("/", client="10.0.0.7").status == 200  # the other paths answer
    assert site.handle("/metrics", client="127.0.0.1").status == 200

    # Over a real socket: 127.0.0.1 may by default, and not when metrics_from leaves it out.
    web = serve(store)
    try:
        status, headers, body = request(web.url, "GET", "/metrics")
        assert status == 200 and b"ptm_sync_" in body
        # A reverse proxy on this machine forwarding a client from elsewhere: that client.
        forwarded = {"X-Forwarded-For": "10.0.0.7"}
        assert request(web.url, "GET", "/metrics", headers=forwarded)[0] == 403
    finally:
        web.stop()
    web = serve(store, 'metrics_from = ["10.0.0.0/8"]')
    try:
        status, headers, body = request(web.url, "GET", "/metrics")
        assert status == 403 and b"ptm_sync_" not in body
        assert headers["content-security-policy"] == CSP
        assert request(web.url, "GET", "/periods/p/slots.json")[0] == 200
    finally:
        web.stop()
    assert ipaddress.ip_address("127.0.0.1") in defaults[0]


def raw(url: str, data: bytes) -> bytes:
    """What the server answers ``data`` sent on a fresh connection, read to its close."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_body_over_the_limit_is_413(server: WebServer) -> None:
    # Announced: answered before a byte of the body is read.
    big = MAX_BODY_BYTES + 1
    answer = raw(
        server.url, f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert f"content-security-policy: {CSP}".encode() in answer.lower()
    # Chunked, without a Content-Length: counted as it comes.
    chunk = b"4000\r\n" + b"y" * 0x4000 + b"\r\n"
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert raw(server.url, head + chunk * 5).startswith(b"HTTP/1.1 413")
    # Within the limit the method decides (no page takes a POST yet).
    assert request(server.url, "POST", "/", body=b"x" * 100)[0] == 405
    assert request(server.url, "POST", "/", body=b"x" * MAX_BODY_BYTES)[0] == 405


def test_a_client_that_hangs_up_is_no_traceback(
    server: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    caplog.set_level(logging.DEBUG)
    for partial in (
        b"GET /periods/p HTTP/1.1\r\nHost: x\r\n",  # headers not finished
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",  # body cut short
        b"GET /periods/p/slots.json HTTP/1.1\r\nHost: x\r\n\r\n",  # gone before the answer
    ):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(partial)
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    # The server still serves, and nothing was logged as an error or with a traceback.
    assert request(server.url, "GET", "/periods/p/slots.json")[0] == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "Traceback" not in caplog.text


def test_two_hundred_clients_at_once_get_their_slots_without_an_error(server: WebServer) -> None:
    clients = 200
    start = threading.Barrier(clients)
    errors: list[str] = []
    answers: list[bytes] = []
    lock = threading.Lock()

    def fetch() -> None:
        start.wait()
        try:
            with urllib.request.urlopen(server.url + "/periods/p/slots.json", timeout=60) as r:
                body = r.read()
            with lock:
                answers.append(body)
        except (OSError, urllib.error.URLError) as exc:
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=fetch) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(answers) == clients and len(set(answers)) == 1


def test_the_access_log_never_holds_a_personal_token(
    server: WebServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert log_path("/f/abc.def-ghi") == "/f/***"
    assert log_path("/f/abc/meetings/7.ics") == "/f/***/meetings/7.ics"
    assert log_path("/periods/p") == "/periods/p"
    caplog.set_level(logging.DEBUG, logger="ptm_sync.interfaces.web.server")
    request(server.url, "GET", "/f/secret-token-123/meetings/1.ics?x=secret-query")
    request(server.url, "GET", "/periods/p")
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("web.server")]
    assert any('"GET /f/***/meetings/1.ics" 404' in line for line in lines), lines
    assert any('"GET /periods/p" 200' in line for line in lines), lines
    assert "secret-token-123" not in caplog.text and "secret-query" not in caplog.text


def test_an_address_in_use_is_one_line(store: Database) -> None:
    web = serve(store)
    try:
        site = Site(config_mod.parse(CONFIG_TEXT), store, lambda: NOW, process=ProcessMetrics())
        listen = web.url.removeprefix("http://")
        with pytest.raises(UserError, match=f"web.listen: cannot listen on {listen}: "):
            WebServer(site, listen)
    finally:
        web.stop()
