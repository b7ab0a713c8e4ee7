"""A fake Exchange server speaking EWS SOAP (Exchange 2016 schema) on 127.0.0.1.

Written from Microsoft's EWS reference ("EWS reference for Exchange": the operations
GetFolder, FindItem, GetItem, CreateItem, UpdateItem, DeleteItem, SyncFolderItems,
GetUserAvailability, GetServerTimeZones; ResponseMessage / ResponseCode; SOAP faults with
``e:ResponseCode`` and, for ErrorServerBusy, ``t:MessageXml/t:Value Name=BackOffMilliseconds``
("EWS throttling in Exchange")) plus an OAuth 2.0 client-credentials token endpoint
(Microsoft identity platform, ``/{tenant}/oauth2/v2.0/token``).

It refuses what the documentation does not allow: a missing or wrong password or token (401),
GetUserAvailability with more than 100 mailboxes (ErrorInvalidRequest: "the maximum number of
identities that the GetUserAvailability operation can request") or a TimeWindow over 42 days
(ErrorTimeIntervalTooBig), impersonation without the right (ErrorImpersonateUserDenied), a
stale ChangeKey with ConflictResolution NeverOverwrite (ErrorIrresolvableConflict), a sync
state it no longer knows (ErrorInvalidSyncStateData), a wrong path (404), a folder that is
not the impersonated mailbox's calendar (ErrorFolderNotFound).  Authentication: Basic and
Bearer per request; NTLM per connection, the handshake done by pyspnego's acceptor (accounts
from the file ``NTLM_USER_FILE`` names: :meth:`FakeEWS.ntlm_user_file`; raw NTLM under
``Negotiate`` too).  A 401 carries one ``WWW-Authenticate`` line per offered scheme (RFC 7235
§4.1), Exchange's NTLM, Basic and Bearer unless :meth:`FakeEWS.challenge` names others, and
a scheme not offered is refused.  Every answered EWS request is recorded in
:attr:`FakeEWS.log`; every request's Authorization scheme in :attr:`FakeEWS.auth_headers`.

GetUserAvailability answers each mailbox with its own ResponseMessage and FreeBusyView, in
the shape the tester chooses per mailbox (:meth:`FakeEWS.fail_mailbox`,
:meth:`FakeEWS.no_data`, :meth:`FakeEWS.serve_view`, :meth:`FakeEWS.serve_raw_availability`).

This module holds the server, its state and the tester's hands, and answers HTTP; the rest
is by concern: :mod:`tests.support.fake_ews_soap` (namespaces, envelope, faults, response
messages), :mod:`tests.support.fake_ews_auth` (NTLM, Basic, Bearer, the 401 challenge, the
token endpoint), :mod:`tests.support.fake_ews_items` (mailboxes and the item and folder
operations), :mod:`tests.support.fake_ews_availability` (GetUserAvailability).  Every public
name this module had before it was split is still importable from here (``__all__``).
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree

from tests.support import fake_ews_auth
from tests.support.fake_ews_auth import CHALLENGES, authenticate, token_endpoint
from tests.support.fake_ews_availability import (
    BUSY,
    DIGIT,
    MAX_MAILBOXES,
    MAX_WINDOW,
    MERGED_VIEWS,
    Window,
    get_user_availability,
)
from tests.support.fake_ews_items import OPERATIONS, Item, Mailbox
from tests.support.fake_ews_soap import (
    SOAP,
    XML,
    E,
    Fault,
    Headers,
    ItemError,
    M,
    T,
    Verbatim,
    iso,
    soap_envelope,
    soap_fault,
    t,
)
from tests.support.mailservers import TlsMaterial

__all__ = [
    "BUSY",
    "BUSY_TEXT",
    "CHALLENGES",
    "DIGIT",
    "EWS_PATH",
    "MAX_MAILBOXES",
    "MAX_WINDOW",
    "MERGED_VIEWS",
    "SOAP",
    "E",
    "FakeEWS",
    "Fault",
    "Headers",
    "Item",
    "ItemError",
    "M",
    "Mailbox",
    "Request",
    "T",
    "Verbatim",
    "Window",
    "running",
]

EWS_PATH = "/EWS/Exchange.asmx"
BUSY_TEXT = "The server cannot service this request right now. Try again later."


@dataclass
class Request:
    """One EWS request as received."""

    action: str  # the operation element's local name (GetUserAvailabilityRequest, CreateItem…)
    headers: dict[str, str]
    attrs: dict[str, str]  # the operation element's attributes
    mailbox: str  # ExchangeImpersonation's PrimarySmtpAddress, "" without
    body: Any  # the lxml element of the operation


class FakeEWS:
    """The server: mailboxes in memory, knobs for faults, a request log."""

    def __init__(
        self,
        *,
        username: str = "LINCOLN\\ptm-sync",
        password: str = "s3cret",
        client_id: str = "ews-app",
        client_secret: str = "app-s3cret",
        tls: TlsMaterial | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.client_id, self.client_secret = client_id, client_secret
        self.mailboxes: dict[str, Mailbox] = {}
        self.denied: set[str] = set()  # mailboxes the login may not impersonate
        self.log: list[Request] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.auth_headers: list[str] = []
        self.tokens: set[str] = set()
        #: The WWW-Authenticate values of a 401, one header line each; only their schemes
        #: are taken (:meth:`challenge`).
        self.challenges: tuple[str, ...] = CHALLENGES
        self.refuse_tokens = False  # every access token is refused (as if revoked at once)
        self.page_size = 512  # the most SyncFolderItems returns in one answer
        self.generation = 1
        self._busy: list[int] = []  # BackOffMilliseconds of the next ErrorServerBusy faults
        self._http: list[tuple[int, str]] = []  # status, Retry-After of the next answers
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None

    # --- the tester's hands -------------------------------------------------------------

    def add_mailbox(self, address: str) -> Mailbox:
        with self._lock:
            return self.mailboxes.setdefault(address.lower(), Mailbox(address.lower()))

    def add_appointment(
        self, address: str, start: datetime, end: datetime, status: str = "Busy"
    ) -> Item:
        """The teacher's own appointment (no ptm-sync property)."""
        props = {
            "Subject": "Own appointment",
            "Start": iso(start),
            "End": iso(end),
            "LegacyFreeBusyStatus": status,
            "IsCancelled": "false",
        }
        return self.store(self.add_mailbox(address), props)

    def move(self, address: str, item_id: str, start: datetime, end: datetime) -> None:
        with self._lock:
            item = self.mailboxes[address.lower()].items[item_id]
            item.props.update(Start=iso(start), End=iso(end))
            self.touch(item)

    def delete(self, address: str, item_id: str) -> None:
        with self._lock:
            box = self.mailboxes[address.lower()]
            box.items.pop(item_id)
            box.deleted[item_id] = self.next_seq()

    def fail_mailbox(
        self,
        address: str,
        response_code: str | None,
        *,
        back_off_ms: int | None = None,
        times: int | None = None,
    ) -> None:
        """GetUserAvailability answers ``address`` with its own ResponseMessage
        (ResponseClass Error, ``response_code``, e.g. ErrorNoFreeBusyAccess,
        ErrorProxyRequestProcessingFailed, ErrorServerBusy with ``back_off_ms`` as MessageXml
        BackOffMilliseconds), the request's other mailboxes answered as usual; ``times``
        answers (None: until told otherwise; ``response_code`` None heals it)."""
        with self._lock:
            box = self.add_mailbox(address)
            box.fault = (response_code, back_off_ms) if response_code else None
            box.fault_times = times

    def no_data(self, address: str, start: datetime, end: datetime) -> None:
        """The availability service has no data for ``address`` in ``[start, end)``: a
        CalendarEvent with BusyType NoData in event views, digits 4 in merged strings."""
        with self._lock:
            self.add_mailbox(address).no_data.append((start, end))

    def serve_view(self, address: str, view: str | None) -> None:
        """Answer ``address`` with FreeBusyViewType ``view`` whatever was asked:
        ``MergedOnly`` (the digit string only, no CalendarEventArray: cross-forest and
        public-folder free/busy) or ``None`` (nothing else); None: as asked again."""
        with self._lock:
            self.add_mailbox(address).view = view

    def serve_raw_availability(self, address: str, xml: bytes | None) -> None:
        """Answer ``address`` with the FreeBusyResponse of ``xml`` (a whole SOAP
        GetUserAvailabilityResponse, e.g. a case file): the file itself, byte for byte,
        when ``address`` is the only mailbox asked; its FreeBusyResponse in the mailbox's
        place among others.  The file answers whatever window was asked."""
        with self._lock:
            self.add_mailbox(address).raw = xml

    def challenge(self, *values: str) -> None:
        """A 401 carries these ``WWW-Authenticate`` values (one header line each) and the
        server takes only their schemes (the first word of each: ``"Negotiate"``,
        ``"NTLM"``, ``'Basic realm="x"'``, ``'Bearer error="invalid_token"'``); none:
        Exchange's default (NTLM, Basic, Bearer)."""
        self.challenges = values or CHALLENGES

    def server_busy(self, back_off_ms: int, times: int = 1) -> None:
        self._busy.extend([back_off_ms] * times)

    def http_error(self, status: int, retry_after: str, times: int = 1) -> None:
        self._http.extend([(status, retry_after)] * times)

    def forget_sync_states(self) -> None:
        self.generation += 1

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def actions(self, name: str) -> list[Request]:
        return [r for r in self.log if r.action == name]

    @property
    def ca_file(self) -> Path | None:
        """The PEM of the CA that signed the fake's certificate (None: plain HTTP)."""
        return self._tls.ca_file if self._tls else None

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}{EWS_PATH}"

    @property
    def token_url(self) -> str:
        return self.url.replace(EWS_PATH, "/tenant-1/oauth2/v2.0/token")

    # --- storage ------------------------------------------------------------------------

    def store(self, box: Mailbox, props: dict[str, str], **rest: Any) -> Item:
        """A new item in ``box`` with ``props`` (local name -> text) and a fresh id."""
        with self._lock:
            item_id = base64.b64encode(f"AAMk-{self.next_id()}".encode()).decode()
            item = Item(item_id, "", props, **rest)
            self.touch(item)
            box.items[item_id] = item
            box.created[item_id] = item.seq
            return item

    def touch(self, item: Item) -> None:
        """A new version of ``item``: its change clock tick and ChangeKey."""
        item.seq = self.next_seq()
        item.changekey = base64.b64encode(f"DwAAABYA-{item.seq}".encode()).decode()

    def next_seq(self) -> int:
        """The next tick of the change clock (item versions, deletions, sync states)."""
        return next(self._seq)

    def next_id(self) -> int:
        """The next number for an item id or an access token (one counter for both)."""
        return next(self._ids)

    # --- HTTP ---------------------------------------------------------------------------

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                if not hasattr(self, "connection_state"):
                    self.connection_state: dict[str, Any] = {}
                status, headers, body = fake.answer(
                    self.path, dict(self.headers), data, self.connection_state
                )
                self.send_response(status)
                for key, value in headers.items():
                    for one in [value] if isinstance(value, str) else value:
                        self.send_header(key, one)  # a list: one header line each
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self._tls:
            context = self._tls.server_context()
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def answer(
        self,
        path: str,
        headers: dict[str, str],
        data: bytes,
        connection: dict[str, Any] | None = None,
    ) -> tuple[int, Headers, bytes]:
        """One HTTP answer; ``connection`` is the state of the TCP connection (NTLM
        authenticates a connection, not a request: MS-NTHT)."""
        connection = {} if connection is None else connection
        if path.endswith("/oauth2/v2.0/token"):
            return token_endpoint(self, data)
        if path != EWS_PATH:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        refused = authenticate(self, headers.get("Authorization", ""), connection)
        if refused is not None:
            return refused
        with self._lock:
            if self._http:
                status, retry_after = self._http.pop(0)
                return status, {"Retry-After": retry_after, "Content-Type": "text/plain"}, b""
        try:
            root = etree.fromstring(data)
            header = root.find(f"{{{SOAP}}}Header")
            operation = root.find(f"{{{SOAP}}}Body")[0]
        except (etree.XMLSyntaxError, TypeError, IndexError):
            return 400, {"Content-Type": "text/plain"}, b"bad SOAP"
        mailbox = ""
        if header is not None:
            found = header.find(
                f"{t('ExchangeImpersonation')}/{t('ConnectingSID')}/{t('PrimarySmtpAddress')}"
            )
            mailbox = (found.text or "").lower() if found is not None else ""
        action = etree.QName(operation).localname
        with self._lock:
            self.log.append(Request(action, headers, dict(operation.attrib), mailbox, operation))
            try:
                if self._busy:
                    raise Fault("ErrorServerBusy", BUSY_TEXT, self._busy.pop(0))
                return 200, XML, soap_envelope(self._operate(action, operation, mailbox))
            except Verbatim as verbatim:
                return 200, XML, verbatim.data
            except Fault as fault:
                return 500, XML, soap_envelope(soap_fault(fault))

    def _operate(self, action: str, operation: Any, mailbox: str) -> Any:
        """The answer (the response element) to ``operation``, the ``m:`` element of the
        SOAP body whose local name is ``action``, for the impersonated ``mailbox``."""
        if action == "GetUserAvailabilityRequest":
            return get_user_availability(operation, self.mailboxes)
        handler = OPERATIONS.get(action)
        if handler is None:
            raise Fault("ErrorInvalidRequest", f"{action} is not supported here")
        return handler(self, operation, mailbox)

    def ntlm_user_file(self, directory: Path) -> Path:
        """Write the NTLM account file for ``NTLM_USER_FILE`` (the test sets the variable)."""
        return fake_ews_auth.ntlm_user_file(self.username, self.password, directory)


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeEWS]:
    fake = FakeEWS(**kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
