"""The web server of the daemon: Starlette on uvicorn, on a background thread.

:class:`~ptm_sync.interfaces.web.pages.Site` routes a path to its page; this module serves it.
Every answer carries the headers of :func:`~ptm_sync.interfaces.web.security.security_headers`;
a request body over :data:`~ptm_sync.interfaces.web.security.MAX_BODY_BYTES` is answered 413;
uvicorn's event loop holds idle or slow connections without a thread each (pages are read
on a bounded thread pool), closes idle keep-alive connections after
:data:`KEEP_ALIVE_SECONDS` and answers 503 past :data:`MAX_CONNECTIONS`.  The access log
(debug level) writes a personal link as ``/f/***`` and no query string.  Signals stay the
daemon's: uvicorn installs its handlers only on the main thread, and it runs on another.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.security import MAX_BODY_BYTES, log_path, security_headers

log = logging.getLogger(__name__)

#: Retry-After of a 503 (the database is away): RFC 9110 §10.2.3.
RETRY_AFTER_SECONDS = 30
#: Connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
BACKLOG = 2048
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_SECONDS = 5
#: Connections and requests served at once; more are answered 503 at once.
MAX_CONNECTIONS = 1000
#: Seconds stopping waits for requests in progress.
GRACEFUL_SECONDS = 5
#: Seconds :meth:`WebServer.start` waits for the server to serve.
START_SECONDS = 10


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"web.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_app(site: Site) -> ASGIApp:
    """The ASGI application: GET and HEAD of any path go to ``site``; other methods 405."""

    async def page(request: Request) -> Response:
        target = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        client = request.client.host if request.client is not None else ""
        try:
            # A database outage comes back as a 503 response (Site.handle); what is raised
            # is a bug: logged with its traceback, answered 500.
            answer = await run_in_threadpool(site.handle, target, client=client)
        except Exception:
            log.exception("error serving %s", log_path(request.url.path))
            return Response(b"Internal server error.\n", 500, media_type="text/plain")
        headers = {"Cache-Control": f"public, max-age={answer.cache_seconds}"}
        if answer.status == 503:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return Response(answer.body, answer.status, headers, media_type=answer.content_type)

    app = Starlette(routes=[Route("/{path:path}", page, methods=["GET", "HEAD"])])
    return Guard(app, headers=security_headers(site.config.web.public_url))


class BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware around the whole application: the security headers on every answer,
    the body size limit (the body is read here, at most :data:`MAX_BODY_BYTES`, and handed
    on), one access log line per request, and no traceback for a client that hung up."""

    def __init__(self, app: ASGIApp, *, headers: list[tuple[str, str]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_guarded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers[name] = value
            await send(message)

        try:
            try:
                replay = await _read_body(scope, receive)
            except BodyTooLarge:
                await _plain(send_guarded, 413, b"Request body too large.\n")
                return
            if replay is None:  # the client hung up before its request was complete
                return
            try:
                await self.app(scope, replay, send_guarded)
            except Exception:
                # Starlette's own error page is sent by then, unless the answer had started.
                log.exception("error serving %s", log_path(scope.get("path", "")))
                if not status:
                    await _plain(send_guarded, 500, b"Internal server error.\n")
        finally:
            client = scope.get("client")
            raw = scope.get("raw_path") or scope.get("path", "").encode()
            log.debug(
                '%s "%s %s" %s',
                client[0] if client else "-",
                scope.get("method"),
                log_path(raw.decode("latin-1")),
                status or "-",
            )


async def _read_body(scope: Scope, receive: Receive) -> Receive | None:
    """A ``receive`` that hands on the request's whole body, read now; None when the
    client disconnected; raises BodyTooLarge past :data:`MAX_BODY_BYTES`."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(body)
        if not message.get("more_body", False):
            break
    whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return whole
        return await receive()  # what follows the body: the disconnect, when it comes

    return replay


async def _plain(send: Send, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise UserError(f"web.listen: cannot listen on {listen}: {exc.strerror}") from None
    return sock


class WebServer:
    """Serves the site on a background thread from :meth:`start` until :meth:`stop`.

    Raises UserError (``web.listen: cannot listen on …``) when the address cannot be bound.
    """

    def __init__(self, site: Site, listen: str) -> None:
        self.sock = _bind(listen)
        config = uvicorn.Config(
            build_app(site),
            http="h11",
            loop="asyncio",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,  # the daemon's logging, untouched
            access_log=False,  # Guard writes it, tokens masked
            server_header=False,
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        self.server = uvicorn.Server(config)
        host, port = self.sock.getsockname()[:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except (Exception, SystemExit):  # uvicorn exits so when it cannot start
            log.exception("the web server stopped")

    def start(self) -> None:
        """Serve; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        waited = 0.0
        while not self.server.started and self._thread.is_alive() and waited < START_SECONDS:
            self._thread.join(timeout=0.02)
            waited += 0.02
        if not self.server.started:
            self.stop()
            raise UserError(f"web.listen: the web server did not start on {self.url}")

    def stop(self) -> None:
        """Stop serving (requests in progress get :data:`GRACEFUL_SECONDS`) and close."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SECONDS + 5)
        self.sock.close()
