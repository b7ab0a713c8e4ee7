"""A Zoom API on 127.0.0.1, written from Zoom's documentation (Server-to-Server OAuth and
the Meetings API), that checks what it is sent and refuses what Zoom refuses."""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET = "acct-lincoln", "zoom-client", "zoom-secret"


@dataclass
class FakeZoom:
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    log: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(85746065400))
    _httpd: ThreadingHTTPServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth/token"

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.faults.append((status, headers or {}))

    def start(self) -> FakeZoom:
        zoom = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(
                self,
                status: int,
                body: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw and url.path != "/oauth/token" else None
                with zoom.lock:
                    zoom.log.append((method, url.path, body))
                    fault = zoom.faults.pop(0) if zoom.faults else None
                if fault is not None:
                    self._send(fault[0], {"code": fault[0], "message": "fault"}, fault[1])
                    return
                if url.path == "/oauth/token":
                    self._token(method, parse_qs(url.query))
                    return
                auth = self.headers.get("Authorization", "")
                with zoom.lock:
                    valid = auth.startswith("Bearer ") and auth[7:] in zoom.tokens
                if not valid:
                    self._send(401, {"code": 124, "message": "Invalid access token."})
                    return
                if method == "POST" and url.path == "/v2/users/me/meetings":
                    self._create(body or {})
                elif method == "DELETE" and url.path.startswith("/v2/meetings/"):
                    meeting_id = url.path.rsplit("/", 1)[1]
                    with zoom.lock:
                        gone = zoom.meetings.pop(meeting_id, None)
                    if gone is None:
                        self._send(404, {"code": 3001, "message": "Meeting does not exist."})
                    else:
                        self._send(204)
                else:
                    self._send(404, {"code": 404, "message": "No such API."})

            def _token(self, method: str, query: dict[str, list[str]]) -> None:
                expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if method != "POST" or query.get("grant_type") != ["account_credentials"]:
                    self._send(
                        400, {"reason": "unsupported grant type", "error": "invalid_request"}
                    )
                elif query.get("account_id") != [ACCOUNT_ID]:
                    self._send(400, {"reason": "Invalid account_id", "error": "invalid_request"})
                elif self.headers.get("Authorization") != f"Basic {expected}":
                    self._send(
                        401,
                        {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
                    )
                else:
                    token = secrets.token_urlsafe(24)
                    with zoom.lock:
                        zoom.tokens.add(token)
                    self._send(
                        200,
                        {
                            "access_token": token,
                            "token_type": "bearer",
                            "expires_in": 3599,
                            "scope": "meeting:write:admin",
                        },
                    )

            def _create(self, body: dict[str, Any]) -> None:
                try:
                    assert body["type"] == 2 and isinstance(body["duration"], int)
                    datetime.strptime(body["start_time"], "%Y-%m-%dT%H:%M:%SZ")
                    assert isinstance(body["topic"], str) and len(body["topic"]) <= 200
                except (KeyError, AssertionError, ValueError):
                    self._send(400, {"code": 300, "message": "Validation Failed."})
                    return
                with zoom.lock:
                    meeting_id = str(next(zoom._ids))
                    meeting = {
                        "id": int(meeting_id),
                        "topic": body["topic"],
                        "start_time": body["start_time"],
                        "duration": body["duration"],
                        "join_url": f"https://us02web.zoom.us/j/{meeting_id}?pwd=abc123",
                    }
                    zoom.meetings[meeting_id] = meeting
                self._send(201, meeting)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_GET(self) -> None:
                self._handle("GET")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def video_keys(self, secret: str = CLIENT_SECRET) -> str:
        """The ``[video]`` keys of a school whose links are made here."""
        return (
            f'provider = "zoom"\nzoom_account_id = "{ACCOUNT_ID}"\nzoom_client_id = "{CLIENT_ID}"\n'
            f'zoom_client_secret = "{secret}"\nzoom_api_url = "{self.api_url}"\n'
            f'zoom_token_url = "{self.token_url}"'
        )


@pytest.fixture
def fake_zoom() -> Iterator[FakeZoom]:
    server = FakeZoom().start()
    yield server
    server.stop()
