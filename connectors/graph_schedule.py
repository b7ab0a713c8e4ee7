"""Microsoft Graph ``calendar/getSchedule``: what we ask and how each schedule's answer is read.

PURE: no I/O, no clock.  Followed pages of learn.microsoft.com/graph/api/…:

* ``calendar-getschedule``: ``POST /users/{id}/calendar/getSchedule`` with ``schedules``
  (SMTP addresses), ``startTime``/``endTime`` (dateTimeTimeZone) and
  ``availabilityViewInterval`` ("the duration of a time slot in an availabilityView …
  default is 30 minutes, minimum is 5, maximum is 1440"); the answer is "a collection of
  scheduleInformation objects for each object in the schedules parameter".  At most 20
  schedules and less than 62 days per call (outlook-get-free-busy-schedule, "Limits").
* ``resources/scheduleinformation``: ``scheduleId``, ``scheduleItems``, ``availabilityView``
  ("a merged view of availability of all the items in scheduleItems … 0 = free or working
  elsewhere, 1 = tentative, 2 = busy, 3 = out of office.  Working elsewhere is set to 0
  instead of 4 for backward compatibility") and ``error`` (a freeBusyError).
* ``resources/scheduleitem``: ``start``/``end`` (dateTimeTimeZone) and ``status``, a
  freeBusyStatus: ``free``, ``tentative``, ``busy``, ``oof``, ``workingElsewhere``,
  ``unknown``.
* ``resources/freebusyerror``: ``message`` and ``responseCode`` ("the response code from
  querying for the availability of the user").  The codes are Exchange's availability
  codes (MS-OXWSCDATA 2.2.5.24 ResponseCodeType: ``ErrorMailRecipientNotFound``,
  ``ErrorNoFreeBusyAccess``, ``ErrorProxyRequestProcessingFailed`` …); an unresolvable
  address has also been seen answered as ``"5009"`` ("Unable to resolve e-mail address …
  to an Active Directory object", microsoftgraph/microsoft-graph-docs#11225).

"No data" is never "free" (DESIGN §5): every shape is read or refused.  ``scheduleItems``
are read when Graph gives them; a schedule without them is read from its
``availabilityView`` at the interval we asked; a schedule with neither is unknown for the
whole span.  A status or digit the documentation does not define is unknown, never free:
the digit 4 among them (Graph writes working elsewhere as 0; in Exchange's merged
free/busy string, which the view stays compatible with, 4 is "no data").
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from connectors.base import FreeBusy
from connectors.graph_wire import date_time_time_zone, read_time
from ptm_sync.core.errors import (
    AccessDenied,
    BadCalendarData,
    ConnectorError,
    NotFound,
    Unavailable,
)
from ptm_sync.core.model import Busy, Interval, as_utc

#: calendar-getschedule / outlook-get-free-busy-schedule, "Limits and error conditions".
MAX_SCHEDULES = 20
#: "The time period to look up must be less than 62 days."
MAX_SPAN = timedelta(days=61)
#: The availabilityViewInterval we ask for, in minutes: the view is read only for a
#: schedule without scheduleItems, and a slot of a quarter of an hour loses little time
#: while keeping a 61-day view at 5,856 digits per schedule.
VIEW_INTERVAL_MINUTES = 15

#: freeBusyStatus → tentative (busy either way); free and workingElsewhere are free.
_BUSY_STATUS = {"busy": False, "oof": False, "tentative": True}
_FREE_STATUS = frozenset({"free", "workingelsewhere"})
#: availabilityView digit → what its slot is; any other digit is unknown.
_VIEW_KIND = {"0": "free", "1": "tentative", "2": "busy", "3": "busy"}

#: responseCode (lower case) of a schedule whose mailbox does not exist or cannot be found.
NOT_FOUND_CODES = frozenset(
    {
        "errormailrecipientnotfound",
        "errornonexistentmailbox",
        "errorinvalidsmtpaddress",
        "erroraddressspacenotfound",
        "errorinvaliduser",
        "5009",
    }
)
#: responseCode of a mailbox that exists but shares no free/busy with the app.
ACCESS_DENIED_CODES = frozenset({"errornofreebusyaccess", "erroraccessdenied"})
#: responseCode of a failure of the mailbox's part of the service, worth asking again.
TRANSIENT_CODES = frozenset(
    {
        "errorproxyrequestprocessingfailed",
        "errorfreebusygenerationfailed",
        "errorserverbusy",
        "errortimeoutexpired",
        "errormailboxstoreunavailable",
        "errormailboxlogonfailed",
        "errormailboxmoveinprogress",
        "erroradunavailable",
        "erroradoperation",
        "errorconnectionfailed",
        "errorproxycallfailed",
        "errorproxyservicediscoveryfailed",
        "errorservicediscoveryfailed",
        "errorproxytokenexpired",
        "errorexceededconnectioncount",
        "errorinternalservertransienterror",
        "errorinternalservererror",
    }
)

#: One calendar's answer for one span: its free/busy, or its own error.
Part = FreeBusy | ConnectorError


def spans(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` (aware) cut into UTC pieces shorter than 62 days."""
    first = as_utc(start)
    last = as_utc(end)
    while first < last:
        upto = min(last, first + MAX_SPAN)
        yield first, upto
        first = upto


def batches(mailboxes: Sequence[str]) -> Iterator[list[str]]:
    """Mailboxes in groups of at most 20, in their order."""
    for index in range(0, len(mailboxes), MAX_SCHEDULES):
        yield list(mailboxes[index : index + MAX_SCHEDULES])


def schedule_request(mailboxes: Sequence[str], start: datetime, end: datetime) -> dict[str, Any]:
    """The calendar-getschedule request body (times in UTC, :data:`VIEW_INTERVAL_MINUTES`)."""
    return {
        "schedules": list(mailboxes),
        "startTime": date_time_time_zone(start),
        "endTime": date_time_time_zone(end),
        "availabilityViewInterval": VIEW_INTERVAL_MINUTES,
    }


def by_mailbox(infos: Sequence[Any], batch: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The scheduleInformation objects of an answer keyed by the lower-case mailbox of
    ``batch`` they answer: by ``scheduleId`` (without case), else by position when the
    answer has one object per schedule asked (the documented order).  Anything else in
    the answer is left out."""
    asked = [m.lower() for m in batch]
    found: dict[str, Mapping[str, Any]] = {}
    for index, info in enumerate(infos):
        if not isinstance(info, Mapping):
            continue
        key = str(info.get("scheduleId") or "").lower()
        if key in asked:
            found[key] = info
        elif len(infos) == len(asked):
            found.setdefault(asked[index], info)
    return found


def read_schedule(
    info: Mapping[str, Any],
    start: datetime,
    end: datetime,
    *,
    account: str,
    mailbox: str,
    fallback: tzinfo = UTC,
) -> Part:
    """One scheduleInformation as the calendar's :class:`FreeBusy` over ``[start, end)``
    (UTC, clipped), or its own error (:func:`schedule_error`).

    Shapes: ``scheduleItems`` (busy, oof, tentative are busy; free and workingElsewhere
    free; ``unknown`` and undocumented statuses unknown); without them (missing, or empty
    while the view says otherwise) the ``availabilityView`` decoded at
    :data:`VIEW_INTERVAL_MINUTES` (:func:`decode_view`); with neither,
    :meth:`FreeBusy.no_data`.  A schedule whose items cannot be read, or whose view is not
    one digit per interval of the span, is a plain :class:`~ptm_sync.core.errors.ConnectorError`
    naming ``mailbox``.
    """
    error = info.get("error")
    if error:
        return schedule_error(account, mailbox, error)
    items = info.get("scheduleItems")
    view = info.get("availabilityView")
    view = view if isinstance(view, str) and view else None
    try:
        if isinstance(items, list) and (items or view is None or not view.strip("0")):
            return _read_items(items, start, end, fallback)
        if items is not None and not isinstance(items, list):
            raise BadCalendarData(f"scheduleItems is {type(items).__name__}, not a list")
        if view is not None:
            busy, unknown = decode_view(view, start, end, VIEW_INTERVAL_MINUTES)
            return FreeBusy(tuple(busy), tuple(unknown))
    except BadCalendarData as exc:
        return ConnectorError(
            f"Graph account {account!r}: mailbox {mailbox!r}: unreadable schedule ({exc})"
        )
    return FreeBusy.no_data(start, end)


def _read_items(items: Sequence[Any], start: datetime, end: datetime, fallback: tzinfo) -> FreeBusy:
    window_start, window_end = as_utc(start), as_utc(end)
    busy: list[Busy] = []
    unknown: list[Interval] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise BadCalendarData(f"a scheduleItem is {type(item).__name__}")
        # The case varies between the documentation's examples ("Tentative", "busy").
        status = str(item.get("status") or "").lower()
        if status in _FREE_STATUS:
            continue
        first = max(read_time(item.get("start"), fallback=fallback), window_start)
        last = min(read_time(item.get("end"), fallback=fallback), window_end)
        if first >= last:
            continue
        if status in _BUSY_STATUS:
            busy.append(Busy(first, last, tentative=_BUSY_STATUS[status]))
        else:  # "unknown", or a status the documentation does not name
            unknown.append(Interval(first, last))
    return FreeBusy(tuple(busy), tuple(unknown))


def decode_view(
    view: str, start: datetime, end: datetime, interval_minutes: int
) -> tuple[list[Busy], list[Interval]]:
    """An availabilityView read as busy and unknown spans over ``[start, end)``.

    Digit ``i`` covers ``[start + i·interval, start + (i+1)·interval)``, clipped to
    ``end``: 0 free, 1 tentative (busy, ``tentative``), 2 busy, 3 out of office (busy),
    anything else unknown.  Neighbouring slots of one kind come back as one span.

    Raises:
        BadCalendarData: the view is not one digit per interval (the last one may be
            partial or left out): read at another interval, its digits would fall on the
            wrong times.  Time a view without the partial last slot does not reach is
            unknown.
    """
    first, last = as_utc(start), as_utc(end)
    step = timedelta(minutes=interval_minutes)
    slots = (last - first) / step
    if len(view) not in {math.floor(slots), math.ceil(slots)}:
        raise BadCalendarData(
            f"availabilityView of {len(view)} digits for {slots:g} slots of {interval_minutes} min"
        )
    busy: list[Busy] = []
    unknown: list[Interval] = []
    runs: list[tuple[str, datetime, datetime]] = []
    moment = first
    for digit in view:
        if moment >= last:
            break
        upto = min(moment + step, last)
        kind = _VIEW_KIND.get(digit, "?")
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1], upto)
        else:
            runs.append((kind, moment, upto))
        moment = upto
    if moment < last:
        runs.append(("?", moment, last))
    for kind, run_start, run_end in runs:
        if kind == "?":
            unknown.append(Interval(run_start, run_end))
        elif kind != "free":
            busy.append(Busy(run_start, run_end, tentative=kind == "tentative"))
    return busy, unknown


def schedule_error(account: str, mailbox: str, error: object) -> ConnectorError:
    """The calendar's own error for a freeBusyError, by its ``responseCode``:

    unknown mailbox codes → :class:`~ptm_sync.core.errors.NotFound`; ``ErrorNoFreeBusyAccess``
    and access-denied → :class:`~ptm_sync.core.errors.AccessDenied`; proxy, back-end and
    transient codes → :class:`~ptm_sync.core.errors.Unavailable` (retryable, no
    ``retry_after``); anything else a plain :class:`~ptm_sync.core.errors.ConnectorError`.
    The message names ``mailbox`` and the code, never Graph's ``message`` (the server's
    words, which may name anything, another teacher's mailbox among them).
    """
    code = str(error.get("responseCode") or "").strip() if isinstance(error, Mapping) else ""
    said = code or "no responseCode"
    head = f"Graph account {account!r}: mailbox {mailbox!r}"
    key = code.lower()
    if key in NOT_FOUND_CODES:
        return NotFound(f"{head} not found ({said})")
    if key in ACCESS_DENIED_CODES:
        return AccessDenied(
            f"{head} shares no free/busy with the app ({said}); the teacher or the Exchange "
            "administrator must share it with the organisation"
        )
    if key in TRANSIENT_CODES:
        return Unavailable(f"{head}: its free/busy could not be read now ({said})")
    return ConnectorError(f"{head}: Graph could not give its free/busy ({said})")


def merge(parts: Sequence[Part]) -> Part:
    """One calendar's answers for consecutive spans as one: the first error if any span
    has one, else every span's busy and unknown times together (a span that is missing
    altogether is the caller's to report)."""
    busy: list[Busy] = []
    unknown: list[Interval] = []
    for part in parts:
        if isinstance(part, ConnectorError):
            return part
        busy.extend(part.busy)
        unknown.extend(part.unknown)
    return FreeBusy(tuple(busy), tuple(unknown))
