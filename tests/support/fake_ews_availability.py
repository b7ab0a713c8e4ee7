"""GetUserAvailability in the fake Exchange server (:mod:`tests.support.fake_ews`): the
request's limits and the shapes of its answer.

Written from Microsoft's EWS reference ("GetUserAvailability operation", "FreeBusyResponse",
"FreeBusyView", "FreeBusyViewType", "MergedFreeBusy"): more than 100 mailboxes is
ErrorInvalidRequest ("the maximum number of identities that the GetUserAvailability
operation can request"), a TimeWindow over 42 days ErrorTimeIntervalTooBig.  Each mailbox
is answered with its own ResponseMessage and FreeBusyView: the requested view type,
CalendarEventArray for the event views (BusyType of each appointment, NoData for
:meth:`FakeEWS.no_data` spans), MergedFreeBusy for the merged views (one digit per
MergedFreeBusyIntervalInMinutes from the TimeWindow's start: 0 free, 1 tentative, 2 busy,
3 OOF, 4 no data, the highest that overlaps).  Per mailbox the tester can choose an error
(:meth:`FakeEWS.fail_mailbox`), the shape (:meth:`FakeEWS.serve_view`: ``MergedOnly`` or
``None``), or a whole recorded answer (:meth:`FakeEWS.serve_raw_availability`); they are
kept on the :class:`~tests.support.fake_ews_items.Mailbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from tests.support.fake_ews_items import Mailbox
from tests.support.fake_ews_soap import Fault, M, T, Verbatim, m, parse_time, t

MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
BUSY = ("Busy", "Tentative", "OOF", "WorkingElsewhere", "NoData")
#: MergedFreeBusy digit of each LegacyFreeBusyType ("MergedFreeBusy": 0 free, 1 tentative,
#: 2 busy, 3 out of office, 4 no data); an interval takes the highest digit of what
#: overlaps it ([MS-ASCMD] 2.2.3.107 says so of the same stream).
DIGIT = {"Free": 0, "WorkingElsewhere": 0, "Tentative": 1, "Busy": 2, "OOF": 3, "NoData": 4}
MERGED_VIEWS = ("MergedOnly", "FreeBusyMerged", "DetailedMerged")


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


def get_user_availability(op: Any, mailboxes: Mapping[str, Mailbox]) -> Any:
    """The GetUserAvailabilityResponse to ``op`` (the operation's ``m:`` element) over
    ``mailboxes``; a mailbox's recorded answer as it is when it is the only one asked."""
    boxes = op.findall(f"{m('MailboxDataArray')}/{t('MailboxData')}")
    if len(boxes) > MAX_MAILBOXES:
        raise Fault(
            "ErrorInvalidRequest",
            f"{len(boxes)} mailboxes: at most {MAX_MAILBOXES} identities per request.",
        )
    options = op.find(t("FreeBusyViewOptions"))
    window = options.find(t("TimeWindow"))
    start = parse_time(window.findtext(t("StartTime")))
    end = parse_time(window.findtext(t("EndTime")))
    if end - start > MAX_WINDOW:
        raise Fault("ErrorTimeIntervalTooBig", "The time window is longer than 42 days.")
    asked = Window(
        start,
        end,
        timedelta(minutes=int(options.findtext(t("MergedFreeBusyIntervalInMinutes")) or 30)),
        timedelta(minutes=int(op.findtext(f"{t('TimeZone')}/{t('Bias')}") or 0)),
    )
    view = options.findtext(t("RequestedView")) or "FreeBusy"
    addresses = [(d.findtext(f"{t('Email')}/{t('Address')}") or "").lower() for d in boxes]
    if len(addresses) == 1:
        only = mailboxes.get(addresses[0])
        if only is not None and only.raw is not None:
            raise Verbatim(only.raw)
    response = etree.Element(m("GetUserAvailabilityResponse"), nsmap={"m": M, "t": T})
    array = etree.SubElement(response, m("FreeBusyResponseArray"))
    for address in addresses:
        array.append(_free_busy_response(mailboxes, address, view, asked))
    return response


def _free_busy_response(
    mailboxes: Mapping[str, Mailbox], address: str, view: str, asked: Window
) -> Any:
    """One mailbox's FreeBusyResponse ("FreeBusyResponse": its own ResponseMessage and
    FreeBusyView) for a request of ``view`` over ``asked``."""
    box = mailboxes.get(address)
    if box is not None and box.raw is not None:
        found = etree.fromstring(box.raw).find(f".//{m('FreeBusyResponse')}")
        if found is not None:
            return found
    answer = etree.Element(m("FreeBusyResponse"), nsmap={"m": M, "t": T})
    fault = ("ErrorMailRecipientNotFound", None) if box is None else box.fault
    if box is not None and box.fault is not None and box.fault_times is not None:
        box.fault_times -= 1
        if box.fault_times <= 0:
            box.fault, box.fault_times = None, None
    if fault is not None:
        code, back_off_ms = fault
        message = etree.SubElement(answer, m("ResponseMessage"), ResponseClass="Error")
        etree.SubElement(message, m("MessageText")).text = f"{code} for {address}."
        etree.SubElement(message, m("ResponseCode")).text = code
        if back_off_ms is not None:
            xml = etree.SubElement(message, m("MessageXml"))
            value = etree.SubElement(xml, t("Value"), Name="BackOffMilliseconds")
            value.text = str(back_off_ms)
        return answer
    assert box is not None
    message = etree.SubElement(answer, m("ResponseMessage"), ResponseClass="Success")
    etree.SubElement(message, m("ResponseCode")).text = "NoError"
    shape = box.view or view
    fb = etree.SubElement(answer, m("FreeBusyView"))
    etree.SubElement(fb, t("FreeBusyViewType")).text = shape
    if shape == "None":
        return answer
    spans = _spans(box, asked)
    if shape in MERGED_VIEWS:
        etree.SubElement(fb, t("MergedFreeBusy")).text = _digits(spans, asked)
    if shape == "MergedOnly":
        return answer
    events = etree.SubElement(fb, t("CalendarEventArray"))
    for first, last, status in spans:
        event = etree.SubElement(events, t("CalendarEvent"))
        # Times in the request's TimeZone, without an offset (Bias: UTC = local + bias).
        etree.SubElement(event, t("StartTime")).text = asked.local(first)
        etree.SubElement(event, t("EndTime")).text = asked.local(last)
        etree.SubElement(event, t("BusyType")).text = status
    return answer


def _spans(box: Mailbox, asked: Window) -> list[tuple[datetime, datetime, str]]:
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
