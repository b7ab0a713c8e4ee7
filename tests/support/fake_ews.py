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
from the file ``NTLM_USER_FILE`` names: :meth:`FakeEWS.ntlm_user_file`).  Every answered
EWS request is recorded in :attr:`FakeEWS.log`; every request's Authorization scheme in
:attr:`FakeEWS.auth_headers`.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
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
BUSY = ("Busy", "Tentative", "OOF", "WorkingElsewhere")


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
                    self.send_header(key, value)
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
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP answer; ``connection`` is the state of the TCP connection (NTLM
        authenticates a connection, not a request: MS-NTHT)."""
        connection = {} if connection is None else connection
        if path.endswith("/oauth2/v2.0/token"):
            return self._token(data)
        if path != EWS_PATH:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        auth = headers.get("Authorization", "")
        self.auth_headers.append(auth.split(" ", 1)[0])
        if auth.startswith("NTLM "):
            refused = self._ntlm_step(auth, connection)
            if refused is not None:
                return refused
        elif not (connection.get("ntlm_user") == self.username and not auth) and not (
            self._authorized(auth)
        ):
            # Exchange offers NTLM and (where enabled) Basic.
            challenge = {"WWW-Authenticate": 'NTLM, Basic realm="127.0.0.1"'}
            return 401, {**challenge, "Content-Type": "text/plain"}, b"401 Unauthorized"
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
            except Fault as fault:
                return 500, _XML, _envelope(_fault(fault))

    def _ntlm_step(
        self, auth: str, connection: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """One leg of the NTLM handshake (MS-NLMP) through pyspnego's acceptor, which reads
        the accounts from the file that ``NTLM_USER_FILE`` names (DOMAIN:USER:PASSWORD);
        None when the connection is now authenticated as our user."""
        import spnego

        denied = (401, {"Content-Type": "text/plain"}, b"401 Unauthorized")
        token = base64.b64decode(auth.split(" ", 1)[1])
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
            return 401, {"WWW-Authenticate": f"NTLM {challenge}", "Content-Type": "text/plain"}, b""
        connection["ntlm_user"] = context.client_principal
        return None if context.client_principal == self.username else denied

    def ntlm_user_file(self, directory: Path) -> Path:
        """Write the NTLM account file for ``NTLM_USER_FILE`` (the test sets the variable)."""
        domain, _, user = self.username.partition("\\")
        path = directory / "ntlm-users"
        path.write_text(f"{domain}:{user}:{self.password}\n")
        return path

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

    def _token(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
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
        body = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

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
        bias = int(op.findtext(f"{_t('TimeZone')}/{_t('Bias')}") or 0)
        view = options.findtext(_t("RequestedView")) or "FreeBusy"
        response = etree.Element(_m("GetUserAvailabilityResponse"), nsmap={"m": M, "t": T})
        array = etree.SubElement(response, _m("FreeBusyResponseArray"))
        for data in boxes:
            address = (data.findtext(f"{_t('Email')}/{_t('Address')}") or "").lower()
            answer = etree.SubElement(array, _m("FreeBusyResponse"))
            box = self.mailboxes.get(address)
            if box is None:
                message = etree.SubElement(answer, _m("ResponseMessage"), ResponseClass="Error")
                etree.SubElement(message, _m("MessageText")).text = f"No mailbox for {address}."
                etree.SubElement(message, _m("ResponseCode")).text = "ErrorMailRecipientNotFound"
                continue
            message = etree.SubElement(answer, _m("ResponseMessage"), ResponseClass="Success")
            etree.SubElement(message, _m("ResponseCode")).text = "NoError"
            fb = etree.SubElement(answer, _m("FreeBusyView"))
            etree.SubElement(fb, _t("FreeBusyViewType")).text = view
            events = etree.SubElement(fb, _t("CalendarEventArray"))
            for item in sorted(box.items.values(), key=lambda i: i.start):
                status = item.props.get("LegacyFreeBusyStatus", "Busy")
                cancelled = item.props.get("IsCancelled") == "true"
                if status not in BUSY or cancelled or not (item.start < end and item.end > start):
                    continue
                event = etree.SubElement(events, _t("CalendarEvent"))
                # Times in the request's TimeZone, without an offset (Bias: UTC = local + bias).
                local = timedelta(minutes=bias)
                etree.SubElement(event, _t("StartTime")).text = (item.start - local).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                )
                etree.SubElement(event, _t("EndTime")).text = (item.end - local).strftime(
                    "%Y-%m-%dT%H:%M:%S"
                )
                etree.SubElement(event, _t("BusyType")).text = status
        return response

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
                generation, address, seq = base64.b64decode(state).decode().split("|")
                since = int(seq)
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
