"""The mailboxes of the fake Exchange server (:mod:`tests.support.fake_ews`) and the EWS
operations on their calendar items: GetServerTimeZones, GetFolder, CreateItem, GetItem,
FindItem, UpdateItem, DeleteItem and SyncFolderItems, each a function of the fake, the
operation's ``m:`` element and the impersonated mailbox (:data:`OPERATIONS`).

Written from Microsoft's EWS reference ("EWS reference for Exchange": the operations above,
"ExchangeImpersonation", "CalendarItem" and its element order in types.xsd,
"ConflictResolution", "SyncState"): a mailbox the login may not impersonate is
ErrorImpersonateUserDenied, a folder that is not the impersonated mailbox's calendar
ErrorFolderNotFound, a stale ChangeKey with ConflictResolution NeverOverwrite
ErrorIrresolvableConflict, a sync state the fake no longer knows ErrorInvalidSyncStateData.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lxml import etree

from tests.support.fake_ews_soap import (
    Fault,
    ItemError,
    iso,
    m,
    operation_response,
    parse_time,
    response_message,
    t,
)

if TYPE_CHECKING:
    from tests.support.fake_ews import FakeEWS


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
        return parse_time(self.props["Start"])

    @property
    def end(self) -> datetime:
        return parse_time(self.props["End"])

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


def impersonated(fake: FakeEWS, mailbox: str) -> Mailbox:
    """The mailbox a request impersonates (ExchangeImpersonation's PrimarySmtpAddress), or
    the Fault Exchange answers: none named, one the login may not impersonate, no such one."""
    if not mailbox:
        raise Fault("ErrorInvalidRequest", "This operation needs an impersonated mailbox here.")
    if mailbox in fake.denied:
        raise Fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
        )
    box = fake.mailboxes.get(mailbox)
    if box is None:
        raise Fault(
            "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
        )
    return box


def _check_folder(op: Any, tag: str, box: Mailbox) -> None:
    """The folder a request names must be this mailbox's calendar: its FolderId from
    GetFolder, or DistinguishedFolderId "calendar" (with this mailbox, when given)."""
    container = op.find(m(tag))
    folder = container[0] if container is not None and len(container) else None
    if folder is None:
        raise Fault("ErrorInvalidRequest", f"{tag} is missing.")
    name = etree.QName(folder).localname
    address = (folder.findtext(f"{t('Mailbox')}/{t('EmailAddress')}") or box.address).lower()
    if name == "DistinguishedFolderId" and folder.get("Id") == "calendar":
        if address == box.address:
            return
    elif name == "FolderId" and folder.get("Id") == f"calendar-{box.address}":
        return
    raise Fault("ErrorFolderNotFound", "The specified folder could not be found in the store.")


def get_server_time_zones(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    message = response_message("GetServerTimeZones")
    etree.SubElement(message, m("TimeZoneDefinitions"))
    return operation_response("GetServerTimeZones", [message])


def get_folder(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    messages = []
    for folder_id in op.find(m("FolderIds")):
        name = folder_id.get("Id", "")
        message = response_message("GetFolder")
        folders = etree.SubElement(message, m("Folders"))
        kind = "CalendarFolder" if name.startswith("calendar") else "Folder"
        folder = etree.SubElement(folders, t(kind))
        etree.SubElement(folder, t("FolderId"), Id=f"{name}-{box.address}", ChangeKey="AQAAAA==")
        if kind == "CalendarFolder":
            etree.SubElement(folder, t("FolderClass")).text = "IPF.Appointment"
        etree.SubElement(folder, t("DisplayName")).text = (
            "Calendar" if kind == "CalendarFolder" else "Root"
        )
        messages.append(message)
    return operation_response("GetFolder", messages)


def create_item(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    _check_folder(op, "SavedItemFolderId", box)
    messages = []
    for element in op.find(m("Items")):
        props, body, extended = _read_item(element)
        item = fake.store(box, props, body=body or ("Text", ""), extended=extended)
        message = response_message("CreateItem")
        items = etree.SubElement(message, m("Items"))
        _write_id(etree.SubElement(items, t("CalendarItem")), item)
        messages.append(message)
    return operation_response("CreateItem", messages)


def _find(box: Mailbox, item_id: str) -> Item:
    item = box.items.get(item_id)
    if item is None:
        raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
    return item


def get_item(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    messages = []
    for item_id in op.find(m("ItemIds")):
        try:
            item = _find(box, item_id.get("Id", ""))
        except ItemError as error:
            messages.append(response_message("GetItem", error))
            continue
        message = response_message("GetItem")
        _write_item(etree.SubElement(message, m("Items")), item, body=True)
        messages.append(message)
    return operation_response("GetItem", messages)


def find_item(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    _check_folder(op, "ParentFolderIds", box)
    wanted = None
    equal = op.find(f"{m('Restriction')}/{t('IsEqualTo')}")
    if equal is not None:
        uri = equal.find(t("ExtendedFieldURI"))
        value = equal.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if uri is None or value is None:
            raise Fault("ErrorInvalidRestriction", "Only extended properties can be searched here.")
        wanted = (uri.get("PropertyName", ""), value.get("Value", ""))
    found = [
        item for item in box.items.values() if wanted is None or item.ext(wanted[0]) == wanted[1]
    ]
    message = response_message("FindItem")
    root = etree.SubElement(
        message,
        m("RootFolder"),
        TotalItemsInView=str(len(found)),
        IncludesLastItemInRange="true",
    )
    items = etree.SubElement(root, t("Items"))
    for item in found:
        _write_item(items, item, body=False)
    return operation_response("FindItem", [message])


def update_item(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    messages = []
    for change in op.find(m("ItemChanges")):
        ref = change.find(t("ItemId"))
        try:
            item = _find(box, ref.get("Id", ""))
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
            messages.append(response_message("UpdateItem", error))
            continue
        for update in change.find(t("Updates")):
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
        fake.touch(item)
        message = response_message("UpdateItem")
        _write_id(etree.SubElement(etree.SubElement(message, m("Items")), t("CalendarItem")), item)
        conflicts = etree.SubElement(message, m("ConflictResults"))
        etree.SubElement(conflicts, t("Count")).text = "0"
        messages.append(message)
    return operation_response("UpdateItem", messages)


def delete_item(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    messages = []
    for ref in op.find(m("ItemIds")):
        try:
            item = _find(box, ref.get("Id", ""))
        except ItemError as error:
            messages.append(response_message("DeleteItem", error))
            continue
        fake.delete(box.address, item.id)
        messages.append(response_message("DeleteItem"))
    return operation_response("DeleteItem", messages)


def sync_folder_items(fake: FakeEWS, op: Any, mailbox: str) -> Any:
    box = impersonated(fake, mailbox)
    _check_folder(op, "SyncFolderId", box)
    state = op.findtext(m("SyncState"))
    since = 0
    if state:
        try:
            generation, address, at = base64.b64decode(state).decode().split("|")
            since = int(at)
            valid = int(generation) == fake.generation and address == box.address
        except ValueError:
            valid = False
        if not valid:
            error = ItemError(
                "ErrorInvalidSyncStateData",
                "Synchronization state data is corrupt or otherwise invalid.",
            )
            message = response_message("SyncFolderItems", error)
            etree.SubElement(message, m("SyncState"))
            etree.SubElement(message, m("IncludesLastItemInRange")).text = "true"
            return operation_response("SyncFolderItems", [message])
    limit = min(int(op.findtext(m("MaxChangesReturned")) or 512), fake.page_size)
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
        last = fake.next_seq()  # a new state on every answer, as Exchange gives
    message = response_message("SyncFolderItems")
    token = f"{fake.generation}|{box.address}|{last}"
    etree.SubElement(message, m("SyncState")).text = base64.b64encode(token.encode()).decode()
    etree.SubElement(message, m("IncludesLastItemInRange")).text = "false" if rest else "true"
    container = etree.SubElement(message, m("Changes"))
    for _, kind, what in page:
        element = etree.SubElement(container, t(kind))
        if kind == "Delete":
            etree.SubElement(element, t("ItemId"), Id=what, ChangeKey="")
        else:
            _write_item(element, what, body=False)
    return operation_response("SyncFolderItems", [message])


#: DeleteItemField FieldURI -> the element name it removes.
_FIELD_URI = {"calendar:Location": "Location", "item:Body": "Body"}


def _read_item(element: Any) -> tuple[dict[str, str], tuple[str, str] | None, dict[str, Any]]:
    props: dict[str, str] = {}
    body = None
    extended: dict[str, tuple[dict[str, str], str]] = {}
    for child in element:
        name = etree.QName(child).localname
        if name == "Body":
            body = (child.get("BodyType", "Text"), child.text or "")
        elif name == "ExtendedProperty":
            uri = child.find(t("ExtendedFieldURI"))
            extended[uri.get("PropertyName", "")] = (
                dict(uri.attrib),
                child.findtext(t("Value")) or "",
            )
        elif name in ("RequiredAttendees", "OptionalAttendees", "Resources"):
            props[name] = "present"
        elif len(child) == 0:
            value = child.text or ""
            props[name] = iso(parse_time(value)) if name in ("Start", "End") else value
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
    etree.SubElement(parent, t("ItemId"), Id=item.id, ChangeKey=item.changekey)


def _write_item(parent: Any, item: Item, *, body: bool) -> None:
    element = etree.SubElement(parent, t("CalendarItem"))
    _write_id(element, item)
    props = {"IsCancelled": "false", **item.props}
    for name in _ORDER:
        if name == "Body":
            if body:
                etree.SubElement(element, t("Body"), BodyType=item.body[0]).text = item.body[1]
        elif name == "ExtendedProperty":
            for attrs, value in item.extended.values():
                prop = etree.SubElement(element, t("ExtendedProperty"))
                etree.SubElement(prop, t("ExtendedFieldURI"), **attrs)
                etree.SubElement(prop, t("Value")).text = value
        elif name in props:
            etree.SubElement(element, t(name)).text = props[name]


#: The operations of this module by the local name of their ``m:`` element.
OPERATIONS: dict[str, Callable[[FakeEWS, Any, str], Any]] = {
    "GetServerTimeZones": get_server_time_zones,
    "GetFolder": get_folder,
    "CreateItem": create_item,
    "GetItem": get_item,
    "FindItem": find_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "SyncFolderItems": sync_folder_items,
}
