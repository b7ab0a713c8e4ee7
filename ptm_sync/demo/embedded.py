"""Real servers embedded in this process, for the demo (and reused by the tests).

Radicale runs as a WSGI application in a thread on 127.0.0.1; the SMTP sink is aiosmtpd.
These are the real servers, not imitations: the demo exercises the same code paths a school
runs against its own servers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ptm_sync.core.errors import UserError


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EmbeddedServer:
    """A WSGI application served on a background thread."""

    url: str
    httpd: WSGIServer = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_wsgi(app: Any, name: str, host: str = "127.0.0.1", port: int = 0) -> EmbeddedServer:
    httpd = make_server(
        host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    return EmbeddedServer(f"http://{host}:{httpd.server_port}/", httpd, thread)


def radicale_app(
    folder: Path,
    *,
    htpasswd: Path | None = None,
    settings: dict[str, dict[str, str]] | None = None,
) -> Any:
    """Radicale's WSGI application storing into ``folder``.

    Without ``htpasswd`` any user name is accepted.  ``settings`` override Radicale's
    configuration section by section (the tests relax rights and delays with it).
    """
    try:
        import radicale
        from radicale import config as radicale_config
    except ImportError:
        raise UserError("the demo needs Radicale: pip install 'ptm-sync[demo]'") from None
    logging.getLogger("radicale").setLevel(logging.ERROR)
    configuration = radicale_config.load()
    auth: dict[str, str] = {"type": "none"}
    if htpasswd is not None:
        auth = {
            "type": "htpasswd",
            "htpasswd_filename": str(htpasswd),
            "htpasswd_encryption": "plain",
        }
    values: dict[str, dict[str, str]] = {
        "storage": {"filesystem_folder": str(folder)},
        "auth": auth,
        "rights": {"type": "owner_only"},
        "logging": {"level": "warning", "mask_passwords": "True"},
    }
    for section, options in (settings or {}).items():
        values.setdefault(section, {}).update(options)
    configuration.update(values, "ptm-sync embedded", privileged=True)
    return radicale.Application(configuration)


def start_radicale(
    folder: Path,
    *,
    htpasswd: Path | None = None,
    wrap: Callable[[Any], Any] | None = None,
) -> EmbeddedServer:
    """Radicale storing into ``folder``, served on 127.0.0.1.

    ``wrap`` receives the WSGI application and returns the one to serve (a middleware,
    e.g. the benchmark's request counter).
    """
    app = radicale_app(folder, htpasswd=htpasswd)
    return serve_wsgi(wrap(app) if wrap else app, "radicale")


@dataclass
class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it receives."""

    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    _controller: Any = field(default=None, repr=False)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


def start_smtp_sink() -> SmtpSink:
    """Start a local SMTP sink (the parents' mail servers, as far as the demo goes)."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
            )
            return "250 OK: queued"

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    sink._controller = controller
    return sink
