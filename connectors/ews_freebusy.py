"""Free/busy from Exchange's GetUserAvailability, one answer per mailbox (DESIGN §5).

What we ask (Microsoft, "GetUserAvailability operation", "FreeBusyViewOptions"):
``RequestedView`` **FreeBusyMerged** with ``MergedFreeBusyIntervalInMinutes`` **5**
(:data:`MERGED_INTERVAL`), times in UTC.  Why:

* ``FreeBusyMerged`` gives "all the properties in FreeBusy with a stream of merged
  free/busy availability information" ("FreeBusyViewType"): the appointments' own start and
  end times (precise) *and* the digit string, which is the only place Exchange marks time it
  has no data for (digit 4) inside an otherwise answered window.  ``Detailed`` would add
  subjects and locations we must not read.
* Whatever we ask, Exchange may answer ``MergedOnly`` (free/busy across forests without an
  Availability service, or from the free/busy public folder: "public folders only store
  free/busy information in merged form") or ``None`` ("valid for responses").  The digits of
  a ``MergedOnly`` answer are at the interval we asked, so the interval is chosen for that
  case too: 5 minutes is the smallest Exchange accepts ("MergedFreeBusyIntervalInMinutes":
  "Five minutes is the minimum interval"; Exchange 2007/2010 said six, we speak 2016) and
  every grid of 5, 10 or 15-minute slots is a whole number of intervals, so a merged answer
  (an interval takes the highest status that touches it; [MS-ASCMD] "MergedFreeBusy" says
  so of the same stream) blocks at most the 5 minutes around an appointment's edge.  The
  price is the string: 288 digits per mailbox and day (about 12,000 for a 42-day window,
  1.2 MB for 100 mailboxes at worst); a pass's horizon is usually a few days.

How a FreeBusyView is read (:func:`read_view`), never as "free" when it says nothing:

* ``None`` → the whole window unknown.
* A ``CalendarEventArray`` (in any view type) → the events, precise: BusyType
  ([MS-OXWSCDATA], "LegacyFreeBusyType simple type") Busy and OOF busy, Tentative tentative, Free
  and WorkingElsewhere free, NoData and anything else unknown; the digits' 4s, when a string
  came too, are unknown as well.  ``FreeBusy`` / ``Detailed`` without one: no appointments.
* ``MergedOnly``, or ``FreeBusyMerged`` / ``DetailedMerged`` without events → the digits
  ("MergedFreeBusy": each digit is one interval of the request's
  ``MergedFreeBusyIntervalInMinutes`` from the TimeWindow's start; 0 free, 1 tentative,
  2 busy, 3 out of office, 4 no data): 1 is ``Busy(tentative=True)``, 2 and 3 busy, 4 and
  any other character unknown.  Time the string does not reach (all of it, for a merged
  view without a string) is unknown; a string longer than the window is refused.
* Any other view type → refused.

Errors per mailbox (each ``FreeBusyResponse`` has its own ``ResponseMessage``; Microsoft,
"FreeBusyResponse", "ResponseCode"): ErrorMailRecipientNotFound / ErrorNonExistentMailbox
→ NotFound; ErrorNoFreeBusyAccess → AccessDenied; ErrorProxyRequestProcessingFailed,
ErrorFreeBusyGenerationFailed, ErrorServerBusy, timeouts and store outages → Unavailable
(``retry_after`` from ``MessageXml`` BackOffMilliseconds when given); any other code, and a
view that is refused → ConnectorError.  Each message names its own mailbox and the response
code, never the MessageText (Exchange's words, which may name anything).

Documents (learn.microsoft.com/exchange/client-developer/web-service-reference/…):
``getuseravailability-operation``, ``freebusyviewoptions``,
``mergedfreebusyintervalinminutes``, ``freebusyviewtype``, ``mergedfreebusy``,
``freebusyresponse``, ``responsecode``; [MS-OXWSCDATA] (learn.microsoft.com/openspecs/
exchange_server_protocols/ms-oxwscdata) for LegacyFreeBusyType.

PURE apart from exchangelib's types and the one request :func:`ask` sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from exchangelib import UTC as EWS_UTC
from exchangelib.properties import FreeBusyViewOptions, MailboxData, TimeWindow
from exchangelib.services import GetUserAvailability
from exchangelib.util import MNS, TNS

from connectors.base import FreeBusy
from connectors.ews_items import ews_time, utc, utc_timezone
from ptm_sync.core.errors import AccessDenied, ConnectorError, NotFound, Unavailable
from ptm_sync.core.model import Busy, Interval

#: The view we ask for and the merged string's interval (minutes); see the module text.
REQUESTED_VIEW = "FreeBusyMerged"
MERGED_INTERVAL = 5
#: BusyType of a CalendarEvent → tentative (busy) or None (free); absent: unknown.
BUSY_TYPES: dict[str, bool | None] = {
    "Busy": False,
    "OOF": False,
    "Tentative": True,
    "Free": None,
    "WorkingElsewhere": None,
}
#: MergedFreeBusy digits → tentative (busy) or None (free); absent (4, others): unknown.
DIGITS: dict[str, bool | None] = {"0": None, "1": True, "2": False, "3": False}
EVENT_VIEWS = frozenset({"FreeBusy", "Detailed", "FreeBusyMerged", "DetailedMerged"})
#: The view types that come with a MergedFreeBusy string ("MergedFreeBusy": text value).
MERGED_VIEWS = frozenset({"MergedOnly", "FreeBusyMerged", "DetailedMerged"})
NOT_FOUND = frozenset({"ErrorMailRecipientNotFound", "ErrorNonExistentMailbox"})
NO_ACCESS = frozenset({"ErrorNoFreeBusyAccess"})
RETRYABLE = frozenset(
    {
        "ErrorProxyRequestProcessingFailed",
        "ErrorFreeBusyGenerationFailed",
        "ErrorServerBusy",
        "ErrorTimeoutExpired",
        "ErrorInternalServerTransientError",
        "ErrorMailboxStoreUnavailable",
        "ErrorConnectionFailed",
    }
)


class MailboxFault(Exception):
    """One mailbox's ``ResponseMessage`` that is not Success/NoError, or a view that could
    not be parsed (``code`` ""), as a value among the batch's answers."""

    def __init__(self, code: str, text: str, back_off: float | None = None) -> None:
        super().__init__(f"{code}: {text}" if code else text)
        self.code, self.text, self.back_off = code, text, back_off


class Unreadable(ValueError):
    """A FreeBusyView that cannot be read as time (its mailbox's error)."""


class Availability(GetUserAvailability):
    """exchangelib's GetUserAvailability, answering each mailbox on its own: a parsed
    FreeBusyView or a :class:`MailboxFault`, in the order asked.  (exchangelib's own raises
    for most per-mailbox codes, which fails the whole batch.)"""

    def _get_elements_in_response(self, response: Iterable[Any]) -> Iterator[Any]:
        for message in response:
            fault = _fault(message.find(f"{{{MNS}}}ResponseMessage"))
            if fault is not None:
                yield fault
                continue
            view = message.find(f"{{{MNS}}}FreeBusyView")
            yield view if view is not None else MailboxFault("", "no FreeBusyView in the answer")

    def _elem_to_obj(self, elem: Any) -> Any:
        try:
            return super()._elem_to_obj(elem)
        except Exception as exc:  # noqa: BLE001 - one unreadable view is its mailbox's error
            return MailboxFault("", f"unreadable FreeBusyView ({type(exc).__name__})")


def _fault(message: Any) -> MailboxFault | None:
    if message is None:
        return MailboxFault("", "no ResponseMessage in the answer")
    code = (message.findtext(f"{{{MNS}}}ResponseCode") or "").strip()
    if code == "NoError":
        return None
    back_off = None
    for value in message.iterfind(f"{{{MNS}}}MessageXml/{{{TNS}}}Value"):
        if value.get("Name") == "BackOffMilliseconds":
            try:
                back_off = int((value.text or "").strip()) / 1000
            except ValueError:
                back_off = None
    return MailboxFault(code, (message.findtext(f"{{{MNS}}}MessageText") or "").strip(), back_off)


def ask(
    protocol: Any, mailboxes: Sequence[str], start: datetime, end: datetime, interval: int
) -> list[Any]:
    """One GetUserAvailability request for ``mailboxes`` (at most 100) over ``[start,
    end)`` (at most 42 days): per mailbox, in order, an exchangelib ``FreeBusyView`` or a
    :class:`MailboxFault`.  Raises what exchangelib raises for the whole request (SOAP
    fault, HTTP error, refused login)."""
    service = Availability(protocol=protocol, chunk_size=max(1, len(mailboxes)))
    return list(
        service.call(
            tzinfo=EWS_UTC,
            mailbox_data=[
                MailboxData(email=address, attendee_type="Required", exclude_conflicts=False)
                for address in mailboxes
            ],
            timezone=utc_timezone(),
            free_busy_view_options=FreeBusyViewOptions(
                time_window=TimeWindow(start=ews_time(start), end=ews_time(end)),
                merged_free_busy_interval=interval,
                requested_view=REQUESTED_VIEW,
            ),
        )
    )


def mailbox_error(fault: MailboxFault, mailbox: str) -> ConnectorError:
    """The ptm-sync error for one mailbox's fault; its text names only ``mailbox``."""
    code = fault.code
    if code in NOT_FOUND:
        return NotFound(f"mailbox {mailbox}: not found on Exchange ({code})")
    if code in NO_ACCESS:
        return AccessDenied(
            f"mailbox {mailbox}: shares no free/busy with this account ({code}); the teacher "
            f"or the Exchange administrator must share it"
        )
    if code in RETRYABLE:
        return Unavailable(
            f"mailbox {mailbox}: Exchange cannot give its free/busy now ({code})",
            retry_after=fault.back_off,
        )
    if not code:
        return ConnectorError(f"mailbox {mailbox}: Exchange's answer cannot be read ({fault.text})")
    return ConnectorError(f"mailbox {mailbox}: Exchange answered {code}")


def read_batch(
    mailboxes: Sequence[str], answers: Sequence[Any], start: datetime, end: datetime, interval: int
) -> list[FreeBusy | ConnectorError]:
    """Each mailbox's answer of one request (:func:`ask`), read: its :class:`FreeBusy` or
    its own error, in the order of ``mailboxes``.  An answer with another number of views
    than mailboxes asked cannot be told apart: each mailbox gets an error of its own."""
    if len(answers) != len(mailboxes):
        return [
            ConnectorError(
                f"mailbox {mailbox}: Exchange answered {len(answers)} free/busy views for "
                f"{len(mailboxes)} mailboxes"
            )
            for mailbox in mailboxes
        ]
    results: list[FreeBusy | ConnectorError] = []
    for mailbox, answer in zip(mailboxes, answers, strict=True):
        if isinstance(answer, MailboxFault):
            results.append(mailbox_error(answer, mailbox))
            continue
        try:
            results.append(read_view(answer, start, end, interval))
        except Unreadable as exc:
            results.append(ConnectorError(f"mailbox {mailbox}: Exchange answered {exc}"))
    return results


def read_view(view: Any, start: datetime, end: datetime, interval: int) -> FreeBusy:
    """Busy and unknown spans (UTC, clipped to ``[start, end)``) of one exchangelib
    ``FreeBusyView`` answering a request for that window at ``interval`` minutes.

    Raises:
        Unreadable: an unknown view type, or a merged string longer than the window.
    """
    kind = view.view_type
    if kind == "None":
        return FreeBusy.no_data(start, end)
    if kind not in EVENT_VIEWS and kind != "MergedOnly":
        raise Unreadable(f"a free/busy view of type {kind!r}, which ptm-sync cannot read")
    digits = (view.merged or "").strip()
    events = view.calendar_events
    if events is None and (kind in MERGED_VIEWS or digits):  # the digits are all there is
        busy, unknown = decode_merged(digits, start, end, interval)  # none: all unknown
        return FreeBusy(tuple(busy), tuple(merge(unknown)))
    busy, unknown = event_spans(events or (), start, end)
    if digits:
        unknown.extend(decode_merged(digits, start, end, interval)[1])
    return FreeBusy(tuple(busy), tuple(merge(unknown)))


def event_spans(
    events: Iterable[Any], start: datetime, end: datetime
) -> tuple[list[Busy], list[Interval]]:
    """Busy and unknown spans of CalendarEvents (see :data:`BUSY_TYPES`), clipped to
    ``[start, end)`` (UTC).

    Raises:
        Unreadable: an event without a start or end time.
    """
    busy: list[Busy] = []
    unknown: list[Interval] = []
    for event in events:
        if event.start is None or event.end is None:  # exchangelib: absent or unparsable
            raise Unreadable("a calendar event without a readable start and end time")
        first, last = max(utc(event.start), start), min(utc(event.end), end)
        if first >= last:
            continue
        kind = str(event.busy_type)
        if kind not in BUSY_TYPES:
            unknown.append(Interval(first, last))
        elif (tentative := BUSY_TYPES[kind]) is not None:
            busy.append(Busy(first, last, tentative=tentative))
    return busy, unknown


def decode_merged(
    digits: str, start: datetime, end: datetime, interval: int
) -> tuple[list[Busy], list[Interval]]:
    """The MergedFreeBusy ``digits`` of a request for ``[start, end)`` at ``interval``
    minutes: digit *i* covers ``start + i * interval`` to the next (the last one cut at
    ``end``); runs of the same digit make one span.  Time after the last digit is unknown.

    Raises:
        Unreadable: more digits than the window has intervals (they were not made at the
            interval asked, so no digit's time is known).
    """
    step = timedelta(minutes=interval)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    count = -(-(end - start) // step)  # ceil
    if len(digits) > count:
        raise Unreadable(
            f"a merged free/busy string of {len(digits)} digits for a window of {count} "
            f"intervals of {interval} minutes"
        )
    busy: list[Busy] = []
    unknown: list[Interval] = []
    i = 0
    while i < len(digits):
        j = i
        while j < len(digits) and digits[j] == digits[i]:
            j += 1
        first, last = start + i * step, min(end, start + j * step)
        if digits[i] not in DIGITS:
            unknown.append(Interval(first, last))
        elif (tentative := DIGITS[digits[i]]) is not None:
            busy.append(Busy(first, last, tentative=tentative))
        i = j
    reached = min(end, start + len(digits) * step)
    if reached < end:
        unknown.append(Interval(reached, end))
    return busy, unknown


def merge(spans: Iterable[Interval]) -> list[Interval]:
    """``spans`` sorted, overlapping or touching ones joined."""
    out: list[Interval] = []
    for span in sorted(spans, key=lambda s: s.start):
        if out and span.start <= out[-1].end:
            out[-1] = Interval(out[-1].start, max(out[-1].end, span.end))
        else:
            out.append(span)
    return out
