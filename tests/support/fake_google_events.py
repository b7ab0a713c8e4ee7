"""Calendars and their events in the fake Google (:mod:`tests.support.fake_google`):
``calendars/{id}`` and ``calendars/{id}/events`` list / insert / get / patch / update /
delete, each a function of the fake, the calendar and the request.

Written from Google Calendar API v3's reference ("Calendars: get", "Events: list", "Events:
insert", "Events: get", "Events: patch", "Events: update", "Events: delete", "Synchronize
resources efficiently", "Create events" for conferences): etags that change on every write,
``If-Match`` (412), ``syncToken`` (410 once forgotten; the parameters Google forbids with it
are 400), paging, ``privateExtendedProperty`` filters, client-chosen ids (base32hex,
5–1024 chars, 409 when taken), Meet conferences for ``conferenceDataVersion=1`` (pending for
:attr:`FakeGoogle.meet_reads_pending` reads, then with a link).
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from tests.support.fake_google_wire import Calendar, Recorded, Refusal, parse_time

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle

#: Parameters events.list refuses together with syncToken (the reference of syncToken).
NOT_WITH_SYNC_TOKEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_ID_CHARS = set("abcdefghijklmnopqrstuv0123456789")


def calendar_resource(cal: Calendar) -> dict[str, Any]:
    """calendars.get: the calendar resource of ``cal``."""
    return {
        "kind": "calendar#calendar",
        "etag": '"1"',
        "id": cal.owner,
        "summary": cal.owner,
        "timeZone": "UTC",
    }


def list_events(fake: FakeGoogle, cal: Calendar, query: dict[str, list[str]]) -> dict[str, Any]:
    """events.list: a page of ``cal``'s events for ``query`` (a time range and filters, a
    ``syncToken`` or a ``pageToken``), a ``nextSyncToken`` on the last page."""
    one = {k: v[-1] for k, v in query.items()}
    max_results = int(one.get("maxResults", "250"))
    if not 1 <= max_results <= 2500:
        raise Refusal(400, "invalid", "Invalid value for maxResults.")
    size = min(max_results, fake.page_size)
    if "pageToken" in one:
        held = fake.page_tokens.pop(one["pageToken"], None)
        if held is None:
            raise Refusal(400, "invalid", "Invalid page token value.")
        rest, final = held
        return _page(fake, cal, rest, size, final)
    if "syncToken" in one:
        for name in NOT_WITH_SYNC_TOKEN:
            if name in query:
                raise Refusal(400, "invalid", f"{name} cannot be used with syncToken.")
        if one.get("showDeleted") == "false":
            raise Refusal(400, "invalid", "showDeleted cannot be false with syncToken.")
        held_token = fake.sync_tokens.get(one["syncToken"])
        if held_token is None or held_token[0] != cal.owner:
            raise Refusal(
                410,
                "fullSyncRequired",
                "Sync token is no longer valid, a full sync is required.",
            )
        since = held_token[1]
        items = [_listed(e) for i, e in cal.events.items() if cal.seq[i] > since]
    else:
        show_deleted = one.get("showDeleted") == "true"
        start = parse_time(one["timeMin"]) if "timeMin" in one else None
        end = parse_time(one["timeMax"]) if "timeMax" in one else None
        if start and end and start >= end:
            raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
        wanted = [p.partition("=") for p in query.get("privateExtendedProperty", [])]
        items = []
        for event in cal.events.values():
            if event.get("status") == "cancelled" and not show_deleted:
                continue
            if start and parse_time(event["end"]["dateTime"]) <= start:
                continue
            if end and parse_time(event["start"]["dateTime"]) >= end:
                continue
            tags = event.get("extendedProperties", {}).get("private", {})
            if any(tags.get(name) != value for name, _, value in wanted):
                continue
            items.append(_listed(event))
    items.sort(key=lambda e: e["updated"])
    final = "sync-" + secrets.token_urlsafe(12)
    fake.sync_tokens[final] = (cal.owner, fake.now)
    return _page(fake, cal, items, size, final)


def _page(
    fake: FakeGoogle, cal: Calendar, items: list[dict[str, Any]], size: int, final: str
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": f'"p{fake.now}"',
        "summary": cal.owner,
        "timeZone": "UTC",
        "accessRole": "owner",
        "defaultReminders": [],
        "items": items[:size],
    }
    if len(items) > size:
        page = "page-" + secrets.token_urlsafe(12)
        fake.page_tokens[page] = (items[size:], final)
        answer["nextPageToken"] = page
    else:
        answer["nextSyncToken"] = final
    return answer


def _listed(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("status") == "cancelled":  # a deleted event: little more than its id
        return {k: event[k] for k in ("kind", "etag", "id", "status", "updated")}
    return dict(event)


def _check_query(query: dict[str, list[str]]) -> None:
    """The write parameters' allowed values (events.insert/patch/update/delete)."""
    send = query.get("sendUpdates", ["none"])[-1]
    if send not in ("all", "externalOnly", "none"):
        raise Refusal(400, "invalidParameter", f"Invalid value for sendUpdates: {send}")
    if query.get("conferenceDataVersion", ["0"])[-1] not in ("0", "1"):
        raise Refusal(400, "invalidParameter", "Invalid value for conferenceDataVersion.")


def insert_event(
    fake: FakeGoogle, cal: Calendar, query: dict[str, list[str]], body: Any
) -> dict[str, Any]:
    """events.insert: the event stored from ``body`` (with its id when the client chose
    one), as answered."""
    _check_query(query)
    _check_event(body)
    event_id = body.get("id") or secrets.token_hex(13)
    if not (5 <= len(event_id) <= 1024 and set(event_id) <= _ID_CHARS):
        raise Refusal(400, "invalid", "Invalid resource id value.")
    if event_id in cal.events:
        raise Refusal(409, "duplicate", "The requested identifier already exists.")
    body = {k: v for k, v in body.items() if k != "id"}
    body["conferenceData"] = _conference(fake, cal, event_id, query, body, None)
    if body["conferenceData"] is None:
        del body["conferenceData"]
    return _with_link(fake, fake.store(cal, event_id, body))


def _check_event(body: Any) -> None:
    if not isinstance(body, dict):
        raise Refusal(400, "parseError", "Parse Error")
    try:
        start, end = parse_time(body["start"]["dateTime"]), parse_time(body["end"]["dateTime"])
    except (KeyError, TypeError, ValueError):
        raise Refusal(400, "required", "Missing start or end time.") from None
    if end <= start:
        raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")


def _conference(
    fake: FakeGoogle,
    cal: Calendar,
    event_id: str,
    query: dict[str, list[str]],
    body: dict[str, Any],
    old: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """conferenceData to store: a new Meet for a createRequest with version 1 (version 0
    ignores conference data in the body), else what the event had."""
    kept = old.get("conferenceData") if old else None
    wanted = body.get("conferenceData")
    if query.get("conferenceDataVersion", ["0"])[-1] != "1" or not wanted:
        return kept
    create = wanted.get("createRequest")
    if not create:
        return wanted
    if create.get("conferenceSolutionKey", {}).get("type") != "hangoutsMeet":
        raise Refusal(400, "invalid", "Invalid conference type value.")
    if kept and kept.get("createRequest", {}).get("requestId") == create.get("requestId"):
        return kept
    code = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(10))
    code = f"{code[:3]}-{code[3:7]}-{code[7:]}"
    if fake.meet_reads_pending:
        cal.meet_pending[event_id] = fake.meet_reads_pending
    return {
        "createRequest": {
            "requestId": create.get("requestId"),
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
            "status": {"statusCode": "success"},
        },
        "entryPoints": [
            {
                "entryPointType": "video",
                "uri": f"https://meet.google.com/{code}",
                "label": f"meet.google.com/{code}",
            }
        ],
        "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
        "conferenceId": code,
    }


def _with_link(fake: FakeGoogle, event: dict[str, Any]) -> dict[str, Any]:
    """The event as answered: while its conference is pending, no link yet."""
    event = json.loads(json.dumps(event))
    cal = fake.calendars[event["organizer"]["email"]]
    data = event.get("conferenceData")
    if not data:
        return event
    if cal.meet_pending.get(event["id"], 0) > 0:
        data["createRequest"]["status"]["statusCode"] = "pending"
        data.pop("entryPoints", None)
        data.pop("conferenceSolution", None)
        data.pop("conferenceId", None)
        return event
    for point in data.get("entryPoints", []):
        if point.get("entryPointType") == "video":
            event["hangoutLink"] = point["uri"]
    return event


def one_event(
    fake: FakeGoogle, cal: Calendar, event_id: str, request: Recorded
) -> tuple[int, Any, dict[str, str]]:
    """events.get / patch / update / delete of one event: status, JSON body (None: empty),
    extra headers."""
    event = cal.events.get(event_id)
    if event is None:
        raise Refusal(404, "notFound", "Not Found")
    if request.method == "GET":
        answer = _with_link(fake, event)
        if cal.meet_pending.get(event_id):
            cal.meet_pending[event_id] -= 1
        return 200, answer, {"ETag": event["etag"]}
    _check_query(request.query)
    condition = request.headers.get("if-match")
    if condition and condition not in ("*", event["etag"]):
        raise Refusal(
            412,
            "conditionNotMet",
            "Precondition Failed",
            location="If-Match",
            locationType="header",
        )
    if request.method == "DELETE":
        if event.get("status") == "cancelled":
            raise Refusal(410, "deleted", "Resource has been deleted")
        fake.store(cal, event_id, {**event, "status": "cancelled"})
        return 204, None, {}
    body = request.body
    if request.method == "PATCH":
        merged = {**event, **(body or {})}
    elif request.method == "PUT":
        keep = ("conferenceData",)
        merged = {**{k: event[k] for k in keep if k in event}, **(body or {})}
    else:
        raise Refusal(405, "httpMethodNotAllowed", "Method Not Allowed")
    _check_event(merged)
    conference = _conference(fake, cal, event_id, request.query, body or {}, event)
    merged.pop("conferenceData", None)
    if conference:
        merged["conferenceData"] = conference
    stored = fake.store(cal, event_id, merged)
    return 200, _with_link(fake, stored), {"ETag": stored["etag"]}
