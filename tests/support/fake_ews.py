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

GetUserAvailability ("GetUserAvailability operation", "FreeBusyResponse", "FreeBusyView",
"FreeBusyViewType", "MergedFreeBusy") answers each mailbox with its own ResponseMessage and
FreeBusyView: the requested view type, CalendarEventArray for the event views (BusyType of
each appointment, NoData for :meth:`FakeEWS.no_data` spans), MergedFreeBusy for the merged
views (one digit per MergedFreeBusyIntervalInMinutes from the TimeWindow's start: 0 free,
1 tentative, 2 busy, 3 OOF, 4 no data, the highest that overlaps).  Per mailbox the tester
can choose an error (:meth:`FakeEWS.fail_mailbox`), the shape (:meth:`FakeEWS.serve_view`:
``MergedOnly`` or ``None``), or a whole recorded answer
(:meth:`FakeEWS.serve_raw_availability`).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from lxml import etree

from tests.support.mailservers import TlsMaterial

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
EWS_PATH = "/EWS/Exchange.asmx"
MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
BUSY_TEXT = "The server cannot service this request right now. Try again later."
BUSY = ("Busy", "Tentative", "OOF", "WorkingElsewhere", "NoData")
#: MergedFreeBusy digit of each LegacyFreeBusyType ("MergedFreeBusy": 0 free, 1 tentative,
#: 2 busy, 3 out of office, 4 no data); an interval takes the highest digit of what
#: overlaps it ([MS-ASCMD] 2.2.3.107 says so of the same stream).
DIGIT = {"Free": 0, "WorkingElsewhere": 0, "Tentative": 1, "Busy": 2, "OOF": 3, "NoData": 4}
MERGED_VIEWS = ("MergedOnly", "FreeBusyMerged", "DetailedMerged")
#: Exchange's default: Windows sign-in, Basic where enabled, OAuth where configured.
CHALLENGES = ("NTLM", 'Basic realm="127.0.0.1"', "Bearer")
Headers = Mapping[str, str | list[str]]


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


def _m(name: str) -> str:
    return f"{{{M}}}{name}"


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fault(Exception):
    """A SOAP fault answer (HTTP 500)."""

    def __init__(self, code: str, text: str, back_off_ms: int | None = None) -> None:
        super().__init__(text)
        self.code, self.text, self.back_off_ms = code, text, back_off_ms


class ItemError(Exception):
    """A per-item ResponseMessage with ResponseClass Error."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


@dataclass
class Item:
    id: str
    changekey: str
    props: dict[str, str] = field(default_factory=dict)  # local name -> text
    body: tuple[str, str] = ("Text", "")  # BodyType, text
    extended: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)
    seq: int = 0

    @property
    def start(self) -> datetime:
        return _when(self.props["Start"])

    @property
    def end(self) -> datetime:
        return _when(self.props["End"])

    def ext(self, name: str) -> str | None:
        found = self.extended.get(name)
        return found[1] if found else None


@dataclass
class Mailbox:
    address: str
    items: dict[str, Item] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)  # item id -> seq deleted at
    created: dict[str, int] = field(default_factory=dict)  # item id -> seq created at
    #: Spans the availability service has no data for (BusyType NoData, digit 4).
    no_data: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: GetUserAvailability answers this mailbox with this ResponseCode (and back-off).
    fault: tuple[str, int | None] | None = None
    fault_times: int | None = None  # how many more answers fail (None: all of them)
    view: str | None = None  # the FreeBusyViewType answered whatever was asked
    raw: bytes | None = None  # a whole GetUserAvailability answer, served as it is


class Verbatim(Exception):
    """An answer sent as these bytes, as they are (a case file)."""

    def __init__(self, data: bytes) -> None:
        super().__init__("verbatim answer")
        self.data = data


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
            "Start": _iso(start),
            "End": _iso(end),
            "LegacyFreeBusyStatus": status,
            "IsCancelled": "false",
        }
        return self._store(self.add_mailbox(address), props)

    def move(self, address: str, item_id: str, start: datetime, end: datetime) -> None:
        with self._lock:
            item = self.mailboxes[address.lower()].items[item_id]
            item.props.update(Start=_iso(start), End=_iso(end))
            self._touch(item)

    def delete(self, address: str, item_id: str) -> None:
        with self._lock:
            box = self.mailboxes[address.lower()]
            box.items.pop(item_id)
            box.deleted[item_id] = next(self._seq)

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

    def _store(self, box: Mailbox, props: dict[str, str], **rest: Any) -> Item:
        with self._lock:
            item_id = base64.b64encode(f"AAMk-{next(self._ids)}".encode()).decode()
            item = Item(item_id, "", props, **rest)
            self._touch(item)
            box.items[item_id] = item
            box.created[item_id] = item.seq
            return item

    def _touch(self, item: Item) -> None:
        item.seq = next(self._seq)
        item.changekey = base64.b64encode(f"DwAAABYA-{item.seq}".encode()).decode()

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
            return self._token(data)
        if path != EWS_PATH:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        auth = headers.get("Authorization", "")
        scheme = auth.split(" ", 1)[0]
        self.auth_headers.append(scheme)
        if auth and scheme.lower() not in self._offered():
            return self._unauthorized()  # a scheme this server does not take
        if scheme in ("NTLM", "Negotiate"):
            refused = self._ntlm_step(auth, connection)
            if refused is not None:
                return refused
        elif not (connection.get("ntlm_user") == self.username and not auth) and not (
            self._authorized(auth)
        ):
            return self._unauthorized()
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
                f"{_t('ExchangeImpersonation')}/{_t('ConnectingSID')}/{_t('PrimarySmtpAddress')}"
            )
            mailbox = (found.text or "").lower() if found is not None else ""
        action = etree.QName(operation).localname
        with self._lock:
            self.log.append(Request(action, headers, dict(operation.attrib), mailbox, operation))
            try:
                if self._busy:
                    raise Fault("ErrorServerBusy", BUSY_TEXT, self._busy.pop(0))
                handler = getattr(self, f"_op_{action}", None)
                if handler is None:
                    raise Fault("ErrorInvalidRequest", f"{action} is not supported here")
                return 200, _XML, _envelope(handler(operation, mailbox))
            except Verbatim as verbatim:
                return 200, _XML, verbatim.data
            except Fault as fault:
                return 500, _XML, _envelope(_fault(fault))

    def _ntlm_step(
        self, auth: str, connection: dict[str, Any]
    ) -> tuple[int, Headers, bytes] | None:
        """One leg of the NTLM handshake (MS-NLMP) through pyspnego's acceptor, which reads
        the accounts from the file that ``NTLM_USER_FILE`` names (DOMAIN:USER:PASSWORD);
        None when the connection is now authenticated as our user.  Under ``Negotiate`` the
        tokens are raw NTLM (what requests_ntlm sends and IIS accepts)."""
        import spnego

        denied = self._unauthorized()
        scheme, _, value = auth.partition(" ")
        token = base64.b64decode(value)
        try:
            context = connection.get("ntlm")
            if context is None or context.complete:
                context = connection["ntlm"] = spnego.server(protocol="ntlm")
            answer = context.step(token)
        except Exception:  # noqa: BLE001 - any failure of the handshake is a refusal
            connection.pop("ntlm", None)
            return denied
        if not context.complete:
            challenge = base64.b64encode(answer or b"").decode()
            return (
                401,
                {"WWW-Authenticate": f"{scheme} {challenge}", "Content-Type": "text/plain"},
                b"",
            )
        connection["ntlm_user"] = context.client_principal
        return None if context.client_principal == self.username else denied

    def ntlm_user_file(self, directory: Path) -> Path:
        """Write the NTLM account file for ``NTLM_USER_FILE`` (the test sets the variable)."""
        domain, _, user = self.username.partition("\\")
        path = directory / "ntlm-users"
        path.write_text(f"{domain}:{user}:{self.password}\n")
        return path

    def _offered(self) -> set[str]:
        """The schemes of :attr:`challenges` (the first word of each value), lower case."""
        return {value.split()[0].rstrip(",").lower() for value in self.challenges if value}

    def _unauthorized(self) -> tuple[int, Headers, bytes]:
        """401 with one ``WWW-Authenticate`` line per value of :attr:`challenges`."""
        challenge: Headers = {"WWW-Authenticate": list(self.challenges)}
        return 401, {**challenge, "Content-Type": "text/plain"}, b"401 Unauthorized"

    def _authorized(self, auth: str) -> bool:
        scheme, _, value = auth.partition(" ")
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and password == self.password
        if scheme == "Bearer":
            return value in self.tokens and not self.refuse_tokens
        return False

    def _token(self, data: bytes) -> tuple[int, Headers, bytes]:
        form = parse_qs(data.decode())
        self.token_requests.append(form)
        ok = (
            form.get("grant_type") == ["client_credentials"]
            and form.get("client_id") == [self.client_id]
            and form.get("client_secret") == [self.client_secret]
        )
        if not ok:
            body = {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            }
            return 401, {"Content-Type": "application/json"}, json.dumps(body).encode()
        token = base64.b64encode(f"token-{next(self._ids)}".encode()).decode()
        self.tokens.add(token)
        issued = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        return 200, {"Content-Type": "application/json"}, json.dumps(issued).encode()

    # --- operations (the ``m:`` element of the SOAP body) ------------------------------

    def _box(self, mailbox: str) -> Mailbox:
        if not mailbox:
            raise Fault("ErrorInvalidRequest", "This operation needs an impersonated mailbox here.")
        if mailbox in self.denied:
            raise Fault(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
        box = self.mailboxes.get(mailbox)
        if box is None:
            raise Fault(
                "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
            )
        return box

    def _check_folder(self, op: Any, tag: str, box: Mailbox) -> None:
        """The folder a request names must be this mailbox's calendar: its FolderId from
        GetFolder, or DistinguishedFolderId "calendar" (with this mailbox, when given)."""
        container = op.find(_m(tag))
        folder = container[0] if container is not None and len(container) else None
        if folder is None:
            raise Fault("ErrorInvalidRequest", f"{tag} is missing.")
        name = etree.QName(folder).localname
        address = (folder.findtext(f"{_t('Mailbox')}/{_t('EmailAddress')}") or box.address).lower()
        if name == "DistinguishedFolderId" and folder.get("Id") == "calendar":
            if address == box.address:
                return
        elif name == "FolderId" and folder.get("Id") == f"calendar-{box.address}":
            return
        raise Fault("ErrorFolderNotFound", "The specified folder could not be found in the store.")

    def _op_GetServerTimeZones(self, op: Any, mailbox: str) -> Any:
        message = _message("GetServerTimeZones")
        etree.SubElement(message, _m("TimeZoneDefinitions"))
        return _response("GetServerTimeZones", [message])

    def _op_GetFolder(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        messages = []
        for folder_id in op.find(_m("FolderIds")):
            name = folder_id.get("Id", "")
            message = _message("GetFolder")
            folders = etree.SubElement(message, _m("Folders"))
            kind = "CalendarFolder" if name.startswith("calendar") else "Folder"
            folder = etree.SubElement(folders, _t(kind))
            etree.SubElement(
                folder, _t("FolderId"), Id=f"{name}-{box.address}", ChangeKey="AQAAAA=="
            )
            if kind == "CalendarFolder":
                etree.SubElement(folder, _t("FolderClass")).text = "IPF.Appointment"
            etree.SubElement(folder, _t("DisplayName")).text = (
                "Calendar" if kind == "CalendarFolder" else "Root"
            )
            messages.append(message)
        return _response("GetFolder", messages)

    def _op_GetUserAvailabilityRequest(self, op: Any, mailbox: str) -> Any:
        boxes = op.findall(f"{_m('MailboxDataArray')}/{_t('MailboxData')}")
        if len(boxes) > MAX_MAILBOXES:
            raise Fault(
                "ErrorInvalidRequest",
                f"{len(boxes)} mailboxes: at most {MAX_MAILBOXES} identities per request.",
            )
        options = op.find(_t("FreeBusyViewOptions"))
        window = options.find(_t("TimeWindow"))
        start = _when(window.findtext(_t("StartTime")))
        end = _when(window.findtext(_t("EndTime")))
        if end - start > MAX_WINDOW:
            raise Fault("ErrorTimeIntervalTooBig", "The time window is longer than 42 days.")
        asked = Window(
            start,
            end,
            timedelta(minutes=int(options.findtext(_t("MergedFreeBusyIntervalInMinutes")) or 30)),
            timedelta(minutes=int(op.findtext(f"{_t('TimeZone')}/{_t('Bias')}") or 0)),
        )
        view = options.findtext(_t("RequestedView")) or "FreeBusy"
        addresses = [(d.findtext(f"{_t('Email')}/{_t('Address')}") or "").lower() for d in boxes]
        if len(addresses) == 1:
            only = self.mailboxes.get(addresses[0])
            if only is not None and only.raw is not None:
                raise Verbatim(only.raw)
        response = etree.Element(_m("GetUserAvailabilityResponse"), nsmap={"m": M, "t": T})
        array = etree.SubElement(response, _m("FreeBusyResponseArray"))
        for address in addresses:
            array.append(self._free_busy_response(address, view, asked))
        return response

    def _free_busy_response(self, address: str, view: str, asked: Window) -> Any:
        """One mailbox's FreeBusyResponse ("FreeBusyResponse": its own ResponseMessage and
        FreeBusyView) for a request of ``view`` over ``asked``."""
        box = self.mailboxes.get(address)
        if box is not None and box.raw is not None:
            found = etree.fromstring(box.raw).find(f".//{_m('FreeBusyResponse')}")
            if found is not None:
                return found
        answer = etree.Element(_m("FreeBusyResponse"), nsmap={"m": M, "t": T})
        fault = ("ErrorMailRecipientNotFound", None) if box is None else box.fault
        if box is not None and box.fault is not None and box.fault_times is not None:
            box.fault_times -= 1
            if box.fault_times <= 0:
                box.fault, box.fault_times = None, None
        if fault is not None:
            code, back_off_ms = fault
            message = etree.SubElement(answer, _m("ResponseMessage"), ResponseClass="Error")
            etree.SubElement(message, _m("MessageText")).text = f"{code} for {address}."
            etree.SubElement(message, _m("ResponseCode")).text = code
            if back_off_ms is not None:
                xml = etree.SubElement(message, _m("MessageXml"))
                value = etree.SubElement(xml, _t("Value"), Name="BackOffMilliseconds")
                value.text = str(back_off_ms)
            return answer
        assert box is not None
        message = etree.SubElement(answer, _m("ResponseMessage"), ResponseClass="Success")
        etree.SubElement(message, _m("ResponseCode")).text = "NoError"
        shape = box.view or view
        fb = etree.SubElement(answer, _m("FreeBusyView"))
        etree.SubElement(fb, _t("FreeBusyViewType")).text = shape
        if shape == "None":
            return answer
        spans = self._spans(box, asked)
        if shape in MERGED_VIEWS:
            etree.SubElement(fb, _t("MergedFreeBusy")).text = _digits(spans, asked)
        if shape == "MergedOnly":
            return answer
        events = etree.SubElement(fb, _t("CalendarEventArray"))
        for first, last, status in spans:
            event = etree.SubElement(events, _t("CalendarEvent"))
            # Times in the request's TimeZone, without an offset (Bias: UTC = local + bias).
            etree.SubElement(event, _t("StartTime")).text = asked.local(first)
            etree.SubElement(event, _t("EndTime")).text = asked.local(last)
            etree.SubElement(event, _t("BusyType")).text = status
        return answer

    def _spans(self, box: Mailbox, asked: Window) -> list[tuple[datetime, datetime, str]]:
        """The mailbox's appointments (not Free, not cancelled) and no-data spans that
        overlap the window, as (start, end, LegacyFreeBusyType), by start."""
        spans = [
            (item.start, item.end, item.props.get("LegacyFreeBusyStatus", "Busy"))
            for item in box.items.values()
            if item.props.get("IsCancelled") != "true"
        ]
        spans += [(first, last, "NoData") for first, last in box.no_data]
        return sorted(
            (first, last, status)
            for first, last, status in spans
            if status in BUSY and first < asked.end and last > asked.start
        )

    def _op_CreateItem(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        self._check_folder(op, "SavedItemFolderId", box)
        messages = []
        for element in op.find(_m("Items")):
            props, body, extended = _read_item(element)
            item = self._store(box, props, body=body or ("Text", ""), extended=extended)
            message = _message("CreateItem")
            items = etree.SubElement(message, _m("Items"))
            _write_id(etree.SubElement(items, _t("CalendarItem")), item)
            messages.append(message)
        return _response("CreateItem", messages)

    def _find(self, box: Mailbox, item_id: str) -> Item:
        item = box.items.get(item_id)
        if item is None:
            raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
        return item

    def _op_GetItem(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        messages = []
        for item_id in op.find(_m("ItemIds")):
            try:
                item = self._find(box, item_id.get("Id", ""))
            except ItemError as error:
                messages.append(_message("GetItem", error))
                continue
            message = _message("GetItem")
            _write_item(etree.SubElement(message, _m("Items")), item, body=True)
            messages.append(message)
        return _response("GetItem", messages)

    def _op_FindItem(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        self._check_folder(op, "ParentFolderIds", box)
        wanted = None
        equal = op.find(f"{_m('Restriction')}/{_t('IsEqualTo')}")
        if equal is not None:
            uri = equal.find(_t("ExtendedFieldURI"))
            value = equal.find(f"{_t('FieldURIOrConstant')}/{_t('Constant')}")
            if uri is None or value is None:
                raise Fault(
                    "ErrorInvalidRestriction", "Only extended properties can be searched here."
                )
            wanted = (uri.get("PropertyName", ""), value.get("Value", ""))
        found = [
            item
            for item in box.items.values()
            if wanted is None or item.ext(wanted[0]) == wanted[1]
        ]
        message = _message("FindItem")
        root = etree.SubElement(
            message,
            _m("RootFolder"),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange="true",
        )
        items = etree.SubElement(root, _t("Items"))
        for item in found:
            _write_item(items, item, body=False)
        return _response("FindItem", [message])

    def _op_UpdateItem(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        messages = []
        for change in op.find(_m("ItemChanges")):
            ref = change.find(_t("ItemId"))
            try:
                item = self._find(box, ref.get("Id", ""))
                if (
                    op.get("ConflictResolution") == "NeverOverwrite"
                    and ref.get("ChangeKey") != item.changekey
                ):
                    raise ItemError(
                        "ErrorIrresolvableConflict",
                        "The change key passed in the request does not match the current change "
                        "key for the item.",
                    )
            except ItemError as error:
                messages.append(_message("UpdateItem", error))
                continue
            for update in change.find(_t("Updates")):
                kind = etree.QName(update).localname
                if kind == "SetItemField":
                    props, body, extended = _read_item(update[1])
                    item.props.update(props)
                    item.extended.update(extended)
                    if body is not None:
                        item.body = body
                elif kind == "DeleteItemField":
                    uri = update[0].get("FieldURI", "")
                    item.props.pop(_FIELD_URI.get(uri, uri.split(":")[-1]), None)
            self._touch(item)
            message = _message("UpdateItem")
            _write_id(
                etree.SubElement(etree.SubElement(message, _m("Items")), _t("CalendarItem")), item
            )
            conflicts = etree.SubElement(message, _m("ConflictResults"))
            etree.SubElement(conflicts, _t("Count")).text = "0"
            messages.append(message)
        return _response("UpdateItem", messages)

    def _op_DeleteItem(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        messages = []
        for ref in op.find(_m("ItemIds")):
            try:
                item = self._find(box, ref.get("Id", ""))
            except ItemError as error:
                messages.append(_message("DeleteItem", error))
                continue
            self.delete(box.address, item.id)
            messages.append(_message("DeleteItem"))
        return _response("DeleteItem", messages)

    def _op_SyncFolderItems(self, op: Any, mailbox: str) -> Any:
        box = self._box(mailbox)
        self._check_folder(op, "SyncFolderId", box)
        state = op.findtext(_m("SyncState"))
        since = 0
        if state:
            try:
                generation, address, at = base64.b64decode(state).decode().split("|")
                since = int(at)
                valid = int(generation) == self.generation and address == box.address
            except ValueError:
                valid = False
            if not valid:
                error = ItemError(
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                )
                message = _message("SyncFolderItems", error)
                etree.SubElement(message, _m("SyncState"))
                etree.SubElement(message, _m("IncludesLastItemInRange")).text = "true"
                return _response("SyncFolderItems", [message])
        limit = min(int(op.findtext(_m("MaxChangesReturned")) or 512), self.page_size)
        changes: list[tuple[int, str, Any]] = []
        for item in box.items.values():
            if item.seq > since:
                kind = "Create" if box.created[item.id] > since else "Update"
                changes.append((item.seq, kind, item))
        for item_id, seq in box.deleted.items():
            if seq > since and box.created.get(item_id, 0) <= since:
                changes.append((seq, "Delete", item_id))
        changes.sort(key=lambda change: change[0])
        page, rest = changes[:limit], changes[limit:]
        last = page[-1][0] if page else since
        if not page:
            last = next(self._seq)  # a new state on every answer, as Exchange gives
        message = _message("SyncFolderItems")
        token = f"{self.generation}|{box.address}|{last}"
        etree.SubElement(message, _m("SyncState")).text = base64.b64encode(token.encode()).decode()
        etree.SubElement(message, _m("IncludesLastItemInRange")).text = "false" if rest else "true"
        container = etree.SubElement(message, _m("Changes"))
        for _, kind, what in page:
            element = etree.SubElement(container, _t(kind))
            if kind == "Delete":
                etree.SubElement(element, _t("ItemId"), Id=what, ChangeKey="")
            else:
                _write_item(element, what, body=False)
        return _response("SyncFolderItems", [message])


# --- XML helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A GetUserAvailability request's TimeWindow (UTC), merged interval and zone bias."""

    start: datetime
    end: datetime
    interval: timedelta
    bias: timedelta

    def local(self, moment: datetime) -> str:
        """``moment`` in the request's TimeZone, without an offset (UTC = local + bias)."""
        return (moment - self.bias).strftime("%Y-%m-%dT%H:%M:%S")


def _digits(spans: list[tuple[datetime, datetime, str]], asked: Window) -> str:
    """The MergedFreeBusy string: one digit per interval from the window's start (the last
    one may end after the window), the highest digit of the spans overlapping it."""
    count = -(-(asked.end - asked.start) // asked.interval)
    digits = [0] * count
    for first, last, status in spans:
        low = max(0, (first - asked.start) // asked.interval)
        high = min(count, -(-(last - asked.start) // asked.interval))
        for i in range(low, high):
            digits[i] = max(digits[i], DIGIT.get(status, 4))
    return "".join(str(d) for d in digits)


_XML = {"Content-Type": "text/xml; charset=utf-8"}
#: DeleteItemField FieldURI -> the element name it removes.
_FIELD_URI = {"calendar:Location": "Location", "item:Body": "Body"}


def _envelope(body: Any) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    etree.SubElement(
        header,
        _t("ServerVersionInfo"),
        nsmap={"h": T},
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version="Exchange2016",
    )
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(body)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _fault(fault: Fault) -> Any:
    element = etree.Element(f"{{{SOAP}}}Fault", nsmap={"s": SOAP})
    etree.SubElement(element, "faultcode").text = f"a:{fault.code}"
    etree.SubElement(element, "faultstring").text = fault.text
    detail = etree.SubElement(element, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = fault.code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = fault.text
    if fault.back_off_ms is not None:
        xml = etree.SubElement(detail, _t("MessageXml"), nsmap={"t": T})
        etree.SubElement(xml, _t("Value"), Name="BackOffMilliseconds").text = str(fault.back_off_ms)
    return element


def _message(operation: str, error: ItemError | None = None) -> Any:
    message = etree.Element(
        _m(f"{operation}ResponseMessage"),
        nsmap={"m": M, "t": T},
        ResponseClass="Error" if error else "Success",
    )
    if error:
        etree.SubElement(message, _m("MessageText")).text = error.text
    etree.SubElement(message, _m("ResponseCode")).text = error.code if error else "NoError"
    return message


def _response(operation: str, messages: list[Any]) -> Any:
    response = etree.Element(_m(f"{operation}Response"), nsmap={"m": M, "t": T})
    container = etree.SubElement(response, _m("ResponseMessages"))
    for message in messages:
        container.append(message)
    return response


def _read_item(element: Any) -> tuple[dict[str, str], tuple[str, str] | None, dict[str, Any]]:
    props: dict[str, str] = {}
    body = None
    extended: dict[str, tuple[dict[str, str], str]] = {}
    for child in element:
        name = etree.QName(child).localname
        if name == "Body":
            body = (child.get("BodyType", "Text"), child.text or "")
        elif name == "ExtendedProperty":
            uri = child.find(_t("ExtendedFieldURI"))
            extended[uri.get("PropertyName", "")] = (
                dict(uri.attrib),
                child.findtext(_t("Value")) or "",
            )
        elif name in ("RequiredAttendees", "OptionalAttendees", "Resources"):
            props[name] = "present"
        elif len(child) == 0:
            value = child.text or ""
            props[name] = _iso(_when(value)) if name in ("Start", "End") else value
    return props, body, extended


#: Properties in the order of the CalendarItem schema (types.xsd).
_ORDER = (
    "Subject",
    "Sensitivity",
    "Body",
    "ReminderIsSet",
    "ExtendedProperty",
    "UID",
    "Start",
    "End",
    "IsCancelled",
    "LegacyFreeBusyStatus",
    "Location",
)


def _write_id(parent: Any, item: Item) -> None:
    etree.SubElement(parent, _t("ItemId"), Id=item.id, ChangeKey=item.changekey)


def _write_item(parent: Any, item: Item, *, body: bool) -> None:
    element = etree.SubElement(parent, _t("CalendarItem"))
    _write_id(element, item)
    props = {"IsCancelled": "false", **item.props}
    for name in _ORDER:
        if name == "Body":
            if body:
                etree.SubElement(element, _t("Body"), BodyType=item.body[0]).text = item.body[1]
        elif name == "ExtendedProperty":
            for attrs, value in item.extended.values():
                prop = etree.SubElement(element, _t("ExtendedProperty"))
                etree.SubElement(prop, _t("ExtendedFieldURI"), **attrs)
                etree.SubElement(prop, _t("Value")).text = value
        elif name in props:
            etree.SubElement(element, _t(name)).text = props[name]


@contextmanager
def running(**kwargs: Any) -> Iterator[FakeEWS]:
    fake = FakeEWS(**kwargs)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
