"""Reading a CalDAV collection's objects: calendar-query and calendar-multiget REPORTs
(RFC 4791 §7.8, §7.9) and sync-collection (RFC 6578).

The queries are shared by the change listing (:mod:`connectors.caldav`) and local free/busy
(:mod:`connectors.caldav_freebusy`), which differ only in what a failed status means: an
error raised for the caller (``raise_for_status``), or that calendar's own error in a
free/busy answer.  Each takes the status check to apply.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from urllib.parse import urlsplit

from connectors import dav_xml
from connectors.base import RemoteEvent
from connectors.caldav_http import DavTransport, Reply, raise_for_status
from ptm_sync.core.errors import SyncTokenInvalid

#: Headers of a request with an XML body (RFC 4918 §8.2).
XML = {"Content-Type": "application/xml; charset=utf-8"}

#: RFC 6578 §3.6: a server may cut a sync answer short; ask again this many times at most.
MAX_SYNC_PAGES = 20

#: ``check(reply, what, ok)``: the reply when its status is in ``ok``, else raise.
Check = Callable[[Reply, str, Collection[int]], Reply]


def report_objects(
    http: DavTransport, url: str, body: bytes, check: Check = raise_for_status
) -> list[RemoteEvent]:
    """The objects a calendar-query REPORT (RFC 4791 §7.8) on collection ``url`` lists,
    whole: those it listed without calendar-data are fetched by one calendar-multiget.

    Raises:
        whatever ``check`` raises for a status other than 207; the transport's errors.
    """
    what = f"calendar-query on {url}"
    reply = http.request("REPORT", url, body, {**XML, "Depth": "1"})
    check(reply, what, (207,))
    resources = reply.multistatus().resources
    gone = [r.status for r in resources if same(r.href, url) and r.status in (404, 410)]
    if gone:  # a multistatus saying the collection itself is not there is never "empty"
        check(Reply(gone[0]), what, (207,))
    found = [r for r in resources if r.status != 404 and not same(r.href, url)]
    events = [RemoteEvent(r.href, r.etag, r.calendar_data) for r in found if r.calendar_data]
    missing = [r.href for r in found if not r.calendar_data]
    fetched, _gone = multiget(http, url, missing, check)
    return events + fetched


def multiget(
    http: DavTransport, url: str, hrefs: Sequence[str], check: Check = raise_for_status
) -> tuple[list[RemoteEvent], list[str]]:
    """calendar-multiget (RFC 4791 §7.9): the objects found, and the hrefs now gone.  No
    request when ``hrefs`` is empty.

    Raises:
        whatever ``check`` raises for a status other than 207; the transport's errors.
    """
    if not hrefs:
        return [], []
    reply = http.request("REPORT", url, dav_xml.calendar_multiget(hrefs), XML)
    check(reply, f"calendar-multiget on {url}", (207,))
    events, gone = [], []
    for resource in reply.multistatus().resources:
        if resource.status == 404 or not resource.calendar_data:
            gone.append(resource.href)
        else:
            events.append(RemoteEvent(resource.href, resource.etag, resource.calendar_data))
    return events, gone


class SyncRefused(SyncTokenInvalid):
    """The server will not do sync-collection on this collection (RFC 6578 §3.2 not
    supported there): reload, and use the ctag from now on."""


def sync(
    http: DavTransport, url: str, token: str
) -> tuple[list[RemoteEvent], tuple[str, ...], str]:
    """RFC 6578 sync-collection on collection ``url`` from ``token``, following truncated
    answers (§3.6); objects listed without calendar-data are fetched by one multiget.

    Returns:
        (the changed objects, the hrefs removed (sorted), the new token).

    Raises:
        SyncTokenInvalid: the server no longer knows ``token`` (§3.2 valid-sync-token).
        SyncRefused: the server will not do sync-collection here.
        AccessDenied, NotFound, Unavailable, …: as ``raise_for_status`` says.
    """
    changed: dict[str, dav_xml.DavResource] = {}
    removed: set[str] = set()
    for _page in range(MAX_SYNC_PAGES):
        answer = _sync_page(http, url, token)
        for resource in answer.resources:
            if same(resource.href, url):
                continue
            if resource.status == 404:
                removed.add(resource.href)
                changed.pop(resource.href, None)
            else:
                changed[resource.href] = resource
                removed.discard(resource.href)
        token = answer.sync_token or token
        if not answer.truncated:
            break
    events = [
        RemoteEvent(r.href, r.etag, r.calendar_data) for r in changed.values() if r.calendar_data
    ]
    missing = [h for h, r in changed.items() if not r.calendar_data]
    fetched, gone = multiget(http, url, missing)
    return events + fetched, tuple(sorted(removed | set(gone))), token


def _sync_page(http: DavTransport, url: str, token: str) -> dav_xml.Multistatus:
    reply = http.request("REPORT", url, dav_xml.sync_collection(token), {**XML, "Depth": "0"})
    conditions = reply.preconditions() if reply.status in (403, 409, 412) else {}
    if dav_xml.VALID_SYNC_TOKEN in conditions:
        raise SyncTokenInvalid(f"{url}: the server no longer knows our sync token")
    if reply.status == 403 and not conditions:
        raise_for_status(reply, f"sync-collection on {url}")  # AccessDenied, not a refusal
    if reply.status in (400, 403, 405, 409, 412, 415, 501):
        raise SyncRefused(f"{url}: sync-collection refused (HTTP {reply.status}); reload")
    raise_for_status(reply, f"sync-collection on {url}", ok=(207,))
    return reply.multistatus()


def same(href: str, url: str) -> bool:
    """Whether ``href`` is the collection at ``url`` itself (a multistatus may list it)."""
    return href.rstrip("/") == urlsplit(url).path.rstrip("/")
