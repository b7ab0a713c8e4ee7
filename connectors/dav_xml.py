"""WebDAV/CalDAV request bodies and multistatus answers, as pure functions.

Bodies: PROPFIND (RFC 4918 §9.1), calendar-query and calendar-multiget (RFC 4791 §7.8,
§7.9), free-busy-query (RFC 4791 §7.10) and sync-collection (RFC 6578 §3.2).  Answers: the
multistatus (RFC 4918 §13) with its ``sync-token`` and the RFC 6578 §3.6 truncation marker,
href-valued properties (DAV:owner, RFC 3744 §5.1; DAV:current-user-principal, RFC 5397 §3;
CALDAV:calendar-user-address-set, RFC 6638 §2.4.1) and DAV:error precondition bodies
(RFC 4918 §16).

Hrefs are kept as the server sent them (percent-encoding and all) but reduced to their path,
so that the same resource always has the same href.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET  # building only; answers are parsed with lxml

from lxml import etree

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CALSERVER = "http://calendarserver.org/ns/"

GETETAG = f"{{{DAV}}}getetag"
SYNC_TOKEN = f"{{{DAV}}}sync-token"
RESOURCETYPE = f"{{{DAV}}}resourcetype"
CTAG = f"{{{CALSERVER}}}getctag"
CALENDAR_DATA = f"{{{CALDAV}}}calendar-data"
CALENDAR_COLLECTION = f"{{{CALDAV}}}calendar"
#: Who owns a collection (RFC 3744 §5.1), who we are (RFC 5397 §3), and the addresses a
#: principal goes by in scheduling (RFC 6638 §2.4.1): each holds DAV:href elements.
OWNER = f"{{{DAV}}}owner"
CURRENT_USER_PRINCIPAL = f"{{{DAV}}}current-user-principal"
CALENDAR_USER_ADDRESS_SET = f"{{{CALDAV}}}calendar-user-address-set"

#: RFC 6578 §3.2: the token is no longer valid; RFC 4791 §5.3.2.1: the UID is in use.
VALID_SYNC_TOKEN = f"{{{DAV}}}valid-sync-token"
NO_UID_CONFLICT = f"{{{CALDAV}}}no-uid-conflict"

ET.register_namespace("D", DAV)
ET.register_namespace("C", CALDAV)
ET.register_namespace("CS", CALSERVER)


def ical_utc(moment: datetime) -> str:
    """``20270301T000000Z``: the form of a CALDAV:time-range attribute."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} in a time-range")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def propfind(*props: str) -> bytes:
    """A PROPFIND body asking for ``props`` (Clark notation)."""
    root = ET.Element(f"{{{DAV}}}propfind")
    prop = _child(root, f"{{{DAV}}}prop")
    for name in props:
        _child(prop, name)
    return _document(root)


def _event_filter(root: ET.Element, start: datetime | None, end: datetime | None) -> ET.Element:
    calendar = _child(
        _child(root, f"{{{CALDAV}}}filter"), f"{{{CALDAV}}}comp-filter", name="VCALENDAR"
    )
    event = _child(calendar, f"{{{CALDAV}}}comp-filter", name="VEVENT")
    if start is not None and end is not None:
        _child(event, f"{{{CALDAV}}}time-range", start=ical_utc(start), end=ical_utc(end))
    return event


def calendar_query(start: datetime, end: datetime) -> bytes:
    """Every VEVENT object overlapping ``[start, end)``, whole: etag and calendar-data.

    No CALDAV:expand: recurrences are expanded locally (the server's expansion is exactly
    what we do not trust).
    """
    root = ET.Element(f"{{{CALDAV}}}calendar-query")
    prop = _child(root, f"{{{DAV}}}prop")
    _child(prop, GETETAG)
    _child(prop, CALENDAR_DATA)
    _event_filter(root, start, end)
    return _document(root)


def uid_query(uid: str) -> bytes:
    """The objects whose VEVENT UID contains ``uid`` (RFC 4791 §9.7.5 text-match, i;octet)."""
    root = ET.Element(f"{{{CALDAV}}}calendar-query")
    prop = _child(root, f"{{{DAV}}}prop")
    _child(prop, GETETAG)
    _child(prop, CALENDAR_DATA)
    uid_filter = _child(_event_filter(root, None, None), f"{{{CALDAV}}}prop-filter", name="UID")
    _child(uid_filter, f"{{{CALDAV}}}text-match", uid, collation="i;octet")
    return _document(root)


def calendar_multiget(hrefs: Iterable[str]) -> bytes:
    """Etag and calendar-data of the objects at ``hrefs``."""
    root = ET.Element(f"{{{CALDAV}}}calendar-multiget")
    prop = _child(root, f"{{{DAV}}}prop")
    _child(prop, GETETAG)
    _child(prop, CALENDAR_DATA)
    for href in hrefs:
        _child(root, f"{{{DAV}}}href", href)
    return _document(root)


def free_busy_query(start: datetime, end: datetime) -> bytes:
    root = ET.Element(f"{{{CALDAV}}}free-busy-query")
    _child(root, f"{{{CALDAV}}}time-range", start=ical_utc(start), end=ical_utc(end))
    return _document(root)


def sync_collection(token: str) -> bytes:
    """Changes since ``token`` (RFC 6578 §3.2), with etag and, where served, calendar-data."""
    root = ET.Element(f"{{{DAV}}}sync-collection")
    _child(root, SYNC_TOKEN, token)
    _child(root, f"{{{DAV}}}sync-level", "1")
    prop = _child(root, f"{{{DAV}}}prop")
    _child(prop, GETETAG)
    _child(prop, CALENDAR_DATA)
    return _document(root)


# --- answers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DavResource:
    """One ``<response>`` of a multistatus: the properties found (200 propstats only).

    ``props``: property (Clark notation) → its text.  ``hrefs``: property → the DAV:href
    values inside it, as sent (a ``mailto:`` address stays one), for the properties that hold
    any (DAV:owner, DAV:current-user-principal, CALDAV:calendar-user-address-set).
    """

    href: str
    status: int = 200
    props: Mapping[str, str] = field(default_factory=dict)
    hrefs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return self.props.get(GETETAG) or None

    @property
    def calendar_data(self) -> str | None:
        return self.props.get(CALENDAR_DATA) or None

    @property
    def is_calendar(self) -> bool:
        return CALENDAR_COLLECTION in self.props.get(RESOURCETYPE, "").split()


@dataclass(frozen=True, slots=True)
class Multistatus:
    resources: tuple[DavResource, ...] = ()
    sync_token: str | None = None
    truncated: bool = False  # RFC 6578 §3.6: ask again with ``sync_token`` for the rest


def parse_xml(body: bytes | str) -> Any:
    """Parse an answer with lxml, refusing entities and network access."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(body, parser=parser)


def href_path(href: str) -> str:
    """The path of an href, which a server may send as a full URL."""
    return urlsplit(href.strip()).path if "://" in href else href.strip()


def status_code(text: str | None) -> int:
    """``HTTP/1.1 404 Not Found`` → 404 (200 when absent or unreadable)."""
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 200


def parse_multistatus(root: Any) -> Multistatus:
    """Read a multistatus element (from :func:`parse_xml` or an lxml tree)."""
    if root is None or root.tag != f"{{{DAV}}}multistatus":
        return Multistatus()
    resources: list[DavResource] = []
    token: str | None = None
    truncated = False
    for element in root:
        if element.tag == SYNC_TOKEN:
            token = (element.text or "").strip() or None
        elif element.tag == f"{{{DAV}}}response":
            resource = _resource(element)
            if resource is None:
                continue
            if resource.status == 507 and not resource.props:
                truncated = True
                continue
            resources.append(resource)
    return Multistatus(tuple(resources), token, truncated)


def _resource(response: Any) -> DavResource | None:
    href = response.findtext(f"{{{DAV}}}href")
    if not href:
        return None
    props: dict[str, str] = {}
    hrefs: dict[str, tuple[str, ...]] = {}
    for propstat in response.iterfind(f"{{{DAV}}}propstat"):
        if status_code(propstat.findtext(f"{{{DAV}}}status")) != 200:
            continue
        for prop in propstat.iterfind(f"{{{DAV}}}prop"):
            for value in prop:
                if not isinstance(value.tag, str):
                    continue  # comments, processing instructions
                inner = [(h.text or "").strip() for h in value.iterfind(f"{{{DAV}}}href")]
                if any(inner):
                    hrefs[value.tag] = tuple(h for h in inner if h)
                if value.tag == RESOURCETYPE:
                    props[value.tag] = " ".join(str(kind.tag) for kind in value)
                else:
                    props[value.tag] = (
                        (value.text or "").strip()
                        if value.tag != CALENDAR_DATA
                        else value.text or ""
                    )
    status = status_code(response.findtext(f"{{{DAV}}}status"))
    return DavResource(href_path(href), status, props, hrefs)


def preconditions(body: bytes | str) -> dict[str, list[str]]:
    """The conditions a DAV:error body names, each with the hrefs inside it.

    ``{"{DAV:}valid-sync-token": []}``; for ``no-uid-conflict`` the href of the resource that
    holds the UID (RFC 4791 §5.3.2.1).  Anything that is not a DAV:error gives ``{}``.
    """
    if not body or not body.strip():
        return {}
    try:
        root = parse_xml(body)
    except etree.XMLSyntaxError:
        return {}
    if root.tag != f"{{{DAV}}}error":
        return {}
    return {
        str(child.tag): [href_path(h.text or "") for h in child.iter(f"{{{DAV}}}href")]
        for child in root
        if isinstance(child.tag, str)
    }
