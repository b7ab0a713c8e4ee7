"""freeBusy in the fake Google (:mod:`tests.support.fake_google`): the request's limits and
each calendar's answer.

Written from Google Calendar API v3's "Freebusy: query" (at most 50 items, a range of at
most 90 days) and its FreeBusyCalendar schema: per calendar ``busy`` (the merged times of
its events neither cancelled nor transparent, within the range), or "optional error(s) (if
computation for the calendar failed)" as ``errors: [{domain, reason}]`` beside ``busy: []``
(:meth:`FakeGoogle.fail_calendar`; ``notFound`` for a calendar it does not know), or no
``busy`` at all for a calendar without data (:meth:`FakeGoogle.no_data`).  A captured answer
can be served as it is (:meth:`FakeGoogle.serve_raw_freebusy`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.support.fake_google_wire import Refusal, parse_time, stamp

if TYPE_CHECKING:
    from tests.support.fake_google import FakeGoogle

MAX_ITEMS = 50
MAX_SPAN = timedelta(days=90)


def free_busy(fake: FakeGoogle, body: Any) -> dict[str, Any]:
    """The answer to the freeBusy request ``body`` (its JSON)."""
    if not isinstance(body, dict) or "timeMin" not in body or "timeMax" not in body:
        raise Refusal(400, "required", "Missing timeMin or timeMax.")
    try:
        start, end = parse_time(body["timeMin"]), parse_time(body["timeMax"])
    except (TypeError, ValueError):
        raise Refusal(400, "invalid", "Bad Request") from None
    if end <= start:
        raise Refusal(400, "timeRangeEmpty", "The specified time range is empty.")
    if end - start > MAX_SPAN:
        raise Refusal(400, "timeRangeTooLong", "The requested time range is too long.")
    items = body.get("items", [])
    if len(items) > MAX_ITEMS:
        raise Refusal(400, "tooManyCalendarsRequested", "Too many calendars requested.")
    if fake.raw_freebusy:
        raw: Any = fake.raw_freebusy.pop(0)
        return raw
    calendars: dict[str, Any] = {}
    for item in items:
        key = str(item.get("id", "")).lower()
        cal = fake.calendars.get(key)
        if key in fake.calendar_errors:
            reason = fake.calendar_errors[key]
            calendars[item["id"]] = {
                "errors": [{"domain": "global", "reason": reason}],
                "busy": [],
            }
            continue
        if key in fake.no_data_calendars:
            calendars[item["id"]] = {}
            continue
        if cal is None:
            calendars[item["id"]] = {
                "errors": [{"domain": "global", "reason": "notFound"}],
                "busy": [],
            }
            continue
        spans = []
        for event in cal.events.values():
            if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                continue
            first = parse_time(event["start"]["dateTime"])
            last = parse_time(event["end"]["dateTime"])
            first, last = max(first, start), min(last, end)
            if first < last:
                spans.append((first, last))
        merged: list[list[datetime]] = []
        for first, last in sorted(spans):
            if merged and first <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        calendars[item["id"]] = {"busy": [{"start": stamp(a), "end": stamp(b)} for a, b in merged]}
    return {
        "kind": "calendar#freeBusy",
        "timeMin": body["timeMin"],
        "timeMax": body["timeMax"],
        "calendars": calendars,
    }
