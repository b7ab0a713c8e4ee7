"""EWS free/busy, each mailbox on its own and every FreeBusyView shape read (issue 14).

exchangelib, unchanged, against the fake EWS server: one mailbox's ResponseCode among others
(Microsoft, "FreeBusyResponse", "ResponseCode"), the MergedOnly answer of the case
``ews-mergedonly-freebusy.xml`` served byte for byte, ``None`` views and NoData.  What is
asserted is the value a teacher's slots are made from: busy spans and unknown spans, UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from exchangelib.protocol import close_connections

from connectors.base import CalendarRef, FreeBusy, open_connector
from connectors.ews import EWSConnector
from connectors.ews_freebusy import decode_merged, read_batch
from ptm_sync.core.errors import (
    AccessDenied,
    CalendarProblem,
    ConnectorError,
    NotFound,
    Unavailable,
)
from ptm_sync.core.model import Busy, Interval
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.contract.system_ews import ACCOUNT, account_config
from tests.support.cases import CASES
from tests.support.fake_ews import FakeEWS, T, running
from tests.support.mailservers import make_tls_material

ADA, BOB, CAROL = "ada@school.test", "bob@school.test", "carol@school.test"
HOUR = timedelta(hours=1)
NEW_YORK = ZoneInfo("America/New_York")
CASE = "ews-mergedonly-freebusy.xml"
#: The case's window and interval (its comment; 15:00-19:00 EDT on 15 March 2027).
CASE_START = datetime(2027, 3, 15, 19, 0, tzinfo=UTC)
CASE_END = datetime(2027, 3, 15, 23, 0, tzinfo=UTC)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeEWS]:
    with running(tls=make_tls_material(tmp_path)) as server:
        for address in (ADA, BOB, CAROL):
            server.add_mailbox(address)
        yield server
    close_connections()


@pytest.fixture
def ews(fake: FakeEWS) -> Iterator[EWSConnector]:
    connector = open_connector(account_config(fake), ZoneInfo("UTC"), HORIZON)
    assert isinstance(connector, EWSConnector)
    connector.retry = RetryPolicy(sleep=no_sleep([]))
    yield connector
    connector.close()


def cal(address: str) -> CalendarRef:
    return CalendarRef(ACCOUNT, address)


def answered(found: dict[CalendarRef, FreeBusy | ConnectorError], address: str) -> FreeBusy:
    result = found[cal(address)]
    assert isinstance(result, FreeBusy), f"{address}: {result!r}"
    return result


def requests(fake: FakeEWS) -> int:
    return len(fake.actions("GetUserAvailabilityRequest"))


# --- one mailbox's error among three --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "problem"),
    [
        ("ErrorNoFreeBusyAccess", AccessDenied, CalendarProblem.ACCESS_DENIED),
        ("ErrorProxyRequestProcessingFailed", Unavailable, CalendarProblem.UNAVAILABLE),
        ("ErrorFreeBusyGenerationFailed", Unavailable, CalendarProblem.UNAVAILABLE),
        ("ErrorServerBusy", Unavailable, CalendarProblem.UNAVAILABLE),
        ("ErrorNonExistentMailbox", NotFound, CalendarProblem.NOT_FOUND),
        ("ErrorMailRecipientNotFound", NotFound, CalendarProblem.NOT_FOUND),
        ("ErrorAccessDenied", ConnectorError, CalendarProblem.FAILED),
    ],
)
def test_one_mailboxs_error_is_its_own_and_the_others_are_exact(
    fake: FakeEWS, ews: EWSConnector, code: str, kind: type[ConnectorError], problem: str
) -> None:
    fake.add_appointment(ADA, START, START + HOUR)
    fake.add_appointment(BOB, START + HOUR, START + 2 * HOUR)
    fake.add_appointment(CAROL, START + 2 * HOUR, START + 3 * HOUR, "Tentative")
    fake.fail_mailbox(BOB, code)

    found = ews.free_busy([cal(ADA), cal(BOB), cal(CAROL)], START, START + 4 * HOUR)

    failed = found[cal(BOB)]
    assert type(failed) is kind
    assert failed.problem == problem
    assert failed.retryable is (kind is Unavailable)
    assert str(failed).startswith(f"mailbox {BOB}: ") and code in str(failed)
    assert ADA not in str(failed) and CAROL not in str(failed)
    assert answered(found, ADA) == FreeBusy((Busy(START, START + HOUR),))
    assert answered(found, CAROL) == FreeBusy(
        (Busy(START + 2 * HOUR, START + 3 * HOUR, tentative=True),)
    )
    assert requests(fake) == 1  # no second request, nothing raised for the batch


def test_a_busy_mailbox_carries_its_back_off_and_heals(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.fail_mailbox(BOB, "ErrorServerBusy", back_off_ms=2500, times=1)

    first = ews.free_busy([cal(ADA), cal(BOB)], START, START + HOUR)
    again = ews.free_busy([cal(BOB)], START, START + HOUR)

    failed = first[cal(BOB)]
    assert isinstance(failed, Unavailable) and failed.retry_after == 2.5
    assert answered(first, ADA) == FreeBusy()
    assert again == {cal(BOB): FreeBusy()}


def test_an_error_in_one_42_day_window_is_the_mailboxs_answer(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    fake.add_appointment(ADA, START + timedelta(days=50), START + timedelta(days=50) + HOUR)
    fake.fail_mailbox(BOB, "ErrorProxyRequestProcessingFailed", times=1)  # the first window

    found = ews.free_busy([cal(ADA), cal(BOB)], START, START + timedelta(days=60))

    assert requests(fake) == 2
    assert isinstance(found[cal(BOB)], Unavailable)
    late = START + timedelta(days=50)
    assert answered(found, ADA) == FreeBusy((Busy(late, late + HOUR),))


# --- the case: a MergedOnly answer -----------------------------------------------------------


def test_the_merged_only_case_is_busy_and_away_not_free(fake: FakeEWS, ews: EWSConnector) -> None:
    data = (CASES / CASE).read_bytes()
    fake.serve_raw_availability(ADA, data)
    ews.merged_interval = 15  # the interval the case's request asked for

    found = ews.free_busy([cal(ADA)], CASE_START, CASE_END)

    (call,) = fake.actions("GetUserAvailabilityRequest")
    options = call.body.find(f"{{{T}}}FreeBusyViewOptions")
    assert options.findtext(f"{{{T}}}MergedFreeBusyIntervalInMinutes") == "15"
    result = answered(found, ADA)
    assert result.unknown == ()
    local = [(b.start.astimezone(NEW_YORK), b.end.astimezone(NEW_YORK)) for b in result.busy]
    day = datetime(2027, 3, 15, tzinfo=NEW_YORK)
    assert local == [
        (day.replace(hour=16), day.replace(hour=17)),  # digits 2: busy
        (day.replace(hour=17), day.replace(hour=18)),  # digits 3: out of office, busy
    ]
    assert not any(b.tentative for b in result.busy)


def test_the_merged_only_case_among_other_mailboxes(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.serve_raw_availability(ADA, (CASES / CASE).read_bytes())
    fake.add_appointment(BOB, CASE_START, CASE_START + HOUR)
    ews.merged_interval = 15

    found = ews.free_busy([cal(BOB), cal(ADA), cal(CAROL)], CASE_START, CASE_END)

    assert answered(found, ADA).busy == (
        Busy(CASE_START + HOUR, CASE_START + 2 * HOUR),
        Busy(CASE_START + 2 * HOUR, CASE_START + 3 * HOUR),
    )
    assert answered(found, BOB) == FreeBusy((Busy(CASE_START, CASE_START + HOUR),))
    assert answered(found, CAROL) == FreeBusy()


def test_digits_for_more_time_than_was_asked_are_refused(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.serve_raw_availability(ADA, (CASES / CASE).read_bytes())  # 16 digits of 15 minutes
    ews.merged_interval = 15

    found = ews.free_busy([cal(ADA), cal(BOB)], CASE_START, CASE_START + HOUR)  # 4 intervals

    refused = found[cal(ADA)]
    assert type(refused) is ConnectorError and "16 digits" in str(refused)
    assert answered(found, BOB) == FreeBusy()


def test_merged_only_at_five_minutes_blocks_every_interval_an_appointment_touches(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    odd = START + timedelta(minutes=7)
    fake.add_appointment(ADA, odd, odd + timedelta(minutes=15))  # 13:07-13:22
    fake.add_appointment(ADA, START + HOUR, START + 2 * HOUR, "Tentative")
    fake.add_appointment(ADA, START + 2 * HOUR, START + 3 * HOUR, "OOF")
    fake.serve_view(ADA, "MergedOnly")

    found = ews.free_busy([cal(ADA)], START, START + 4 * HOUR)

    asked = fake.log[-1].body  # FreeBusyMerged asked, MergedOnly answered: digits only
    assert asked.findtext(f"{{{T}}}FreeBusyViewOptions/{{{T}}}RequestedView") == "FreeBusyMerged"
    assert answered(found, ADA) == FreeBusy(
        (
            Busy(START + timedelta(minutes=5), START + timedelta(minutes=25)),
            Busy(START + HOUR, START + 2 * HOUR, tentative=True),
            Busy(START + 2 * HOUR, START + 3 * HOUR),
        )
    )


# --- no data -----------------------------------------------------------------------------------


def test_a_none_view_is_the_whole_window_unknown(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.add_appointment(ADA, START, START + HOUR)  # the server does not say so: unknown
    fake.serve_view(ADA, "None")

    found = ews.free_busy([cal(ADA), cal(BOB)], START, START + 4 * HOUR)

    assert answered(found, ADA) == FreeBusy((), (Interval(START, START + 4 * HOUR),))
    assert answered(found, BOB) == FreeBusy()


def test_no_data_events_and_digits_are_unknown(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.add_appointment(ADA, START, START + HOUR)
    fake.no_data(ADA, START + 2 * HOUR, START + 3 * HOUR)
    fake.add_appointment(BOB, START, START + HOUR)
    fake.no_data(BOB, START + 2 * HOUR, START + 3 * HOUR)
    fake.serve_view(BOB, "MergedOnly")

    found = ews.free_busy([cal(ADA), cal(BOB)], START, START + 4 * HOUR)

    for address in (ADA, BOB):  # the events' NoData and the digits' 4s: one span
        assert answered(found, address) == FreeBusy(
            (Busy(START, START + HOUR),), (Interval(START + 2 * HOUR, START + 3 * HOUR),)
        )
    assert requests(fake) == 1


def test_an_unknown_view_type_is_that_mailboxs_error(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.serve_view(ADA, "Sketchy")

    found = ews.free_busy([cal(ADA), cal(BOB)], START, START + HOUR)

    refused = found[cal(ADA)]
    assert type(refused) is ConnectorError
    assert str(refused) == (
        f"mailbox {ADA}: Exchange answered a free/busy view of type 'Sketchy', which "
        "ptm-sync cannot read"
    )
    assert answered(found, BOB) == FreeBusy()


# --- reading the digits and a batch (no server) ---------------------------------------------


def test_decode_merged_digits() -> None:
    step = timedelta(minutes=15)
    busy, unknown = decode_merged("01234x", START, START + 8 * step, 15)
    assert busy == [
        Busy(START + step, START + 2 * step, tentative=True),
        Busy(START + 2 * step, START + 3 * step),
        Busy(START + 3 * step, START + 4 * step),
    ]
    # 4 and an unknown digit, then the two intervals the string does not reach
    assert unknown == [
        Interval(START + 4 * step, START + 5 * step),
        Interval(START + 5 * step, START + 6 * step),
        Interval(START + 6 * step, START + 8 * step),
    ]
    # The last interval is cut at the window's end.
    assert decode_merged("02", START, START + 20 * timedelta(minutes=1), 15) == (
        [Busy(START + step, START + timedelta(minutes=20))],
        [],
    )


def test_a_batch_answer_that_cannot_be_told_apart_is_each_mailboxs_error() -> None:
    results = read_batch([ADA, BOB], [object()], START, START + HOUR, 5)
    assert [type(r) for r in results] == [ConnectorError, ConnectorError]
    assert [str(r).split(":")[0] for r in results] == [f"mailbox {ADA}", f"mailbox {BOB}"]
    assert BOB not in str(results[0]) and ADA not in str(results[1])
