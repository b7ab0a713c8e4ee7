"""A small threaded HTTP server in front of :class:`~ptm_sync.interfaces.web.pages.Site`."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.web.pages import Site

log = logging.getLogger(__name__)

#: Retry-After of a 503 (the database is away): RFC 9110 §10.2.3.
RETRY_AFTER_SECONDS = 30


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"web.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class WebServer:
    """Serves the site on a background thread until :meth:`stop`."""

    def __init__(self, site: Site, listen: str) -> None:
        host, port = parse_listen(listen)

        class Handler(BaseHTTPRequestHandler):
            server_version = "ptm-sync"

            def do_GET(self) -> None:
                self._respond(with_body=True)

            def do_HEAD(self) -> None:
                # RFC 9110 §9.3.2: the headers a GET would send, and no content.
                self._respond(with_body=False)

            def _respond(self, *, with_body: bool) -> None:
                try:
                    # A database outage comes back as a 503 response (Site.handle); what
                    # is raised is a bug: logged with its traceback, answered 500.
                    response = site.handle(self.path)
                except Exception:
                    log.exception("error serving %s", self.path.split("?")[0])
                    self.send_error(500)
                    return
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("Cache-Control", f"public, max-age={response.cache_seconds}")
                self.send_header("X-Content-Type-Options", "nosniff")
                if response.status == 503:
                    self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
                self.end_headers()
                if with_body:
                    self.wfile.write(response.body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise UserError(f"web.listen: cannot listen on {listen}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
