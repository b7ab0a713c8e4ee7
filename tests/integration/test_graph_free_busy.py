"""Graph free/busy per calendar (issue 14): each mailbox its own answer or its own error.

The connector (msal + requests, unchanged) against the TLS fake of Graph, whose schedules
are written from resources/scheduleinformation, scheduleitem and freebusyerror: the
per-schedule error, the availabilityView without scheduleItems, scheduleItems of status
``unknown``, a schedule without any data, and the 404 of an unknown mailbox in the URL.
The pure reading of one schedule is at the bottom.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors import graph_schedule as schedule
from connectors.base import CalendarRef, FreeBusy, FreeBusyAnswer, open_connector
from connectors.graph import GraphConnector
from ptm_sync.core.errors import (
    AccessDenied,
    AuthFailed,
    CalendarProblem,
    ConnectorError,
    NotFound,
    Unavailable,
)
from ptm_sync.core.model import Busy, Interval
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.support.fake_graph import FakeGraph, running

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGraph]:
    with running(tmp_path) as server:
        yield server


@pytest.fixture
def graph(fake: FakeGraph) -> Iterator[GraphConnector]:
    connector = open_connector(fake.account(), ZoneInfo("UTC"), HORIZON)
    assert isinstance(connector, GraphConnector)
    connector.retry = RetryPolicy(sleep=no_sleep([]))
    yield connector
    connector.close()


def mailbox(fake: FakeGraph, name: str) -> CalendarRef:
    return CalendarRef("m365", fake.add_mailbox(f"{name}@school.test"))


def ghost(name: str = "ghost") -> CalendarRef:
    """A mailbox Graph does not know (the fake never heard of it)."""
    return CalendarRef("m365", f"{name}@school.test")


def answered(found: FreeBusyAnswer, ref: CalendarRef) -> FreeBusy:
    result = found[ref]
    assert isinstance(result, FreeBusy), f"{ref.calendar}: {result!r}"
    return result


def url_mailboxes(fake: FakeGraph) -> list[str]:
    """The mailbox in the URL of each getSchedule call, in order."""
    return [r.path.split("/")[3] for r in fake.graph_requests("getSchedule")]


# --- one calendar's error among others ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "problem"),
    [
        ("ErrorNoFreeBusyAccess", AccessDenied, CalendarProblem.ACCESS_DENIED),
        ("ErrorProxyRequestProcessingFailed", Unavailable, CalendarProblem.UNAVAILABLE),
        ("ErrorFreeBusyGenerationFailed", Unavailable, CalendarProblem.UNAVAILABLE),
        ("ErrorMailRecipientNotFound", NotFound, CalendarProblem.NOT_FOUND),
        ("ErrorInvalidSmtpAddress", NotFound, CalendarProblem.NOT_FOUND),
        ("ErrorFreeBusyDLLimitReached", ConnectorError, CalendarProblem.FAILED),
    ],
)
def test_one_schedules_error_is_its_own_and_the_others_are_exact(
    fake: FakeGraph,
    graph: GraphConnector,
    code: str,
    error: type[ConnectorError],
    problem: CalendarProblem,
) -> None:
    ada, bob, carol = mailbox(fake, "ada"), mailbox(fake, "bob"), mailbox(fake, "carol")
    fake.add_event(ada.calendar, START, START + HOUR)
    fake.add_event(bob.calendar, START, START + 2 * HOUR)
    fake.add_event(carol.calendar, START + 2 * HOUR, START + 3 * HOUR, show_as="tentative")
    # Graph's own words name another mailbox: they must not reach bob's error.
    fake.fail_schedule(bob.calendar, code, message=f"Proxy for {ada.calendar} failed.")

    found = graph.free_busy([ada, bob, carol], START, START + 4 * HOUR)

    assert len(fake.graph_requests("getSchedule")) == 1
    failed = found[bob]
    assert type(failed) is error
    assert failed.problem == problem
    assert failed.retryable is (error is Unavailable)
    assert failed.retry_after is None
    assert "'bob@school.test'" in str(failed) and code in str(failed)
    assert "ada@" not in str(failed) and "carol@" not in str(failed)
    assert found[ada] == FreeBusy((Busy(START, START + HOUR),))
    assert found[carol] == FreeBusy((Busy(START + 2 * HOUR, START + 3 * HOUR, tentative=True),))


def test_a_numeric_response_code_for_an_unresolved_address_is_not_found(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    """Graph has been seen answering 5009 "Unable to resolve e-mail address … to an
    Active Directory object" (microsoftgraph/microsoft-graph-docs#11225)."""
    ada, bob = mailbox(fake, "ada"), mailbox(fake, "bob")
    fake.fail_schedule(bob.calendar, "5009", "Unable to resolve e-mail address to an AD object.")

    found = graph.free_busy([ada, bob], START, START + HOUR)

    assert isinstance(found[bob], NotFound) and "'bob@school.test'" in str(found[bob])
    assert found[ada] == FreeBusy()


def test_two_refs_to_one_mailbox_share_its_answer_and_it_is_asked_once(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    shouting = CalendarRef("m365", "ADA@School.Test")
    fake.add_event(ada.calendar, START, START + HOUR)

    found = graph.free_busy([ada, shouting], START, START + 2 * HOUR)

    (call,) = fake.graph_requests("getSchedule")
    assert call.body["schedules"] == [ada.calendar]
    assert found[ada] == found[shouting] == FreeBusy((Busy(START, START + HOUR),))


def test_a_whole_call_refused_for_want_of_permission_stays_auth_failed(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    fake.roles = ("Mail.Read",)
    with pytest.raises(AuthFailed, match=r"lacks the Calendars\.ReadWrite"):
        graph.free_busy([mailbox(fake, "ada"), mailbox(fake, "bob")], START, START + HOUR)


def test_a_mailbox_outside_the_apps_scope_in_the_url_is_its_own_trouble_not_the_schools(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    """A new teacher not yet in the RBAC for Applications scope, first of the batch: Graph
    answers 403 for a getSchedule through that mailbox although the app holds the role."""
    ada, bob, cleo = (mailbox(fake, n) for n in ("ada", "bob", "cleo"))
    fake.add_event(bob.calendar, START, START + HOUR)
    fake.out_of_scope.add(ada.calendar)

    found = graph.free_busy([ada, bob, cleo], START, START + 3 * HOUR)

    assert url_mailboxes(fake) == [ada.calendar, bob.calendar]  # one more call, once
    assert found[bob] == FreeBusy((Busy(START, START + HOUR),))
    assert found[cleo] == FreeBusy()
    # Its schedule came back through Bob's URL (the fake shows free/busy to the
    # organisation); were it refused there too, it would be its own AccessDenied.
    assert found[ada] == FreeBusy()

    graph.free_busy([ada, bob, cleo], START, START + 3 * HOUR)  # the next pass
    assert url_mailboxes(fake)[2:] == [bob.calendar]


def test_a_lone_mailbox_outside_the_scope_is_access_denied_for_it_alone(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    fake.out_of_scope.add(ada.calendar)
    found = graph.free_busy([ada], START, START + HOUR)
    assert isinstance(found[ada], AccessDenied)
    assert found[ada].problem == CalendarProblem.ACCESS_DENIED
    assert "outside the app's management scope" in str(found[ada])


# --- the shapes of "no data" ----------------------------------------------------------------


def test_an_availability_view_without_schedule_items_is_decoded_at_the_interval_asked(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada, bob = mailbox(fake, "ada"), mailbox(fake, "bob")
    fake.add_event(ada.calendar, START + 5 * MINUTE, START + 40 * MINUTE)
    fake.add_event(ada.calendar, START + HOUR, START + 90 * MINUTE, show_as="tentative")
    fake.add_event(ada.calendar, START + 2 * HOUR, START + 2 * HOUR + 15 * MINUTE, show_as="oof")
    fake.add_event(ada.calendar, START + 3 * HOUR, START + 4 * HOUR, show_as="workingElsewhere")
    fake.add_event(bob.calendar, START + 5 * MINUTE, START + 40 * MINUTE)
    fake.schedule_view_only(ada.calendar)

    found = graph.free_busy([ada, bob], START, START + 5 * HOUR)

    (call,) = fake.graph_requests("getSchedule")
    assert call.body["availabilityViewInterval"] == schedule.VIEW_INTERVAL_MINUTES == 15
    # Whole quarters from the view: 13:00-13:45 busy, 14:00-14:30 tentative, the out of
    # office quarter busy, working elsewhere free.
    assert sorted(answered(found, ada).busy, key=lambda b: b.start) == [
        Busy(START, START + 45 * MINUTE),
        Busy(START + HOUR, START + 90 * MINUTE, tentative=True),
        Busy(START + 2 * HOUR, START + 2 * HOUR + 15 * MINUTE),
    ]
    assert answered(found, ada).unknown == ()
    # bob's schedule has its items: his times stay exact.
    assert found[bob] == FreeBusy((Busy(START + 5 * MINUTE, START + 40 * MINUTE),))


def test_schedule_items_of_status_unknown_are_unknown_time(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada, bob = mailbox(fake, "ada"), mailbox(fake, "bob")
    fake.add_event(ada.calendar, START, START + HOUR)
    fake.no_data(ada.calendar, START + 2 * HOUR, START + 3 * HOUR)
    fake.no_data(ada.calendar, START + 4 * HOUR, START + 9 * HOUR)  # runs past the range

    found = graph.free_busy([ada, bob], START, START + 5 * HOUR)

    assert found[ada] == FreeBusy(
        (Busy(START, START + HOUR),),
        (
            Interval(START + 2 * HOUR, START + 3 * HOUR),
            Interval(START + 4 * HOUR, START + 5 * HOUR),
        ),
    )
    assert found[bob] == FreeBusy()


def test_unknown_time_in_a_view_without_items_is_unknown(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    fake.add_event(ada.calendar, START, START + HOUR)
    fake.no_data(ada.calendar, START + 2 * HOUR, START + 3 * HOUR)
    fake.schedule_view_only(ada.calendar)

    found = graph.free_busy([ada], START, START + 4 * HOUR)

    assert found[ada] == FreeBusy(
        (Busy(START, START + HOUR),), (Interval(START + 2 * HOUR, START + 3 * HOUR),)
    )


def test_a_schedule_without_any_data_is_unknown_over_the_whole_range(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada, bob = mailbox(fake, "ada"), mailbox(fake, "bob")
    fake.add_event(ada.calendar, START, START + HOUR)  # Graph does not tell it
    fake.no_data(ada.calendar)

    found = graph.free_busy([ada, bob], START, START + 4 * HOUR)

    assert found[ada] == FreeBusy.no_data(START, START + 4 * HOUR)
    assert found[bob] == FreeBusy()


def test_unknown_time_across_the_62_day_cut_comes_back_in_pieces_that_meet(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    start = datetime(2027, 3, 1, tzinfo=UTC)
    cut = start + schedule.MAX_SPAN
    fake.no_data(ada.calendar, cut - HOUR, cut + HOUR)

    found = graph.free_busy([ada], start, start + timedelta(days=70))

    assert len(fake.graph_requests("getSchedule")) == 2
    assert sorted(answered(found, ada).unknown) == [
        Interval(cut - HOUR, cut),
        Interval(cut, cut + HOUR),
    ]


# --- the mailbox in the URL -----------------------------------------------------------------


def test_an_unknown_mailbox_in_the_url_costs_one_more_call_once_never_one_per_teacher(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    bad = ghost()
    teachers = [mailbox(fake, f"t{n:02d}") for n in range(24)]
    fake.add_event(teachers[0].calendar, START, START + HOUR)
    fake.add_event(teachers[23].calendar, START + HOUR, START + 2 * HOUR)
    refs = [bad, *teachers]  # 25: two batches, the bad one first in the URL

    found = graph.free_busy(refs, START, START + 3 * HOUR)

    calls = fake.graph_requests("getSchedule")
    assert len(calls) == 2 + 1  # ⌈25/20⌉ and one retry
    assert all(len(c.body["schedules"]) in (20, 5) for c in calls)
    assert url_mailboxes(fake).count(bad.calendar) == 1
    assert isinstance(found[bad], NotFound) and "'ghost@school.test'" in str(found[bad])
    assert not any(t.calendar in str(found[bad]) for t in teachers)
    assert found[teachers[0]] == FreeBusy((Busy(START, START + HOUR),))
    assert found[teachers[23]] == FreeBusy((Busy(START + HOUR, START + 2 * HOUR),))
    assert all(found[t] == FreeBusy() for t in teachers[1:23])

    again = graph.free_busy(refs, START, START + 3 * HOUR)  # the next pass

    assert len(fake.graph_requests("getSchedule")) == 3 + 2
    assert bad.calendar not in url_mailboxes(fake)[3:]
    assert isinstance(again[bad], NotFound)
    assert {t: again[t] for t in teachers} == {t: found[t] for t in teachers}


def test_500_teachers_with_an_unknown_mailbox_take_25_calls_and_one_retry(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    refs = [mailbox(fake, f"t{n:03d}") for n in range(499)]
    refs.insert(40, ghost())  # the first of the third batch
    fake.fail_schedule(refs[300].calendar, "ErrorProxyRequestProcessingFailed")

    found = graph.free_busy(refs, HORIZON.start, HORIZON.end)

    assert len(fake.graph_requests("getSchedule")) == 25 + 1
    assert isinstance(found[refs[40]], NotFound)
    assert isinstance(found[refs[300]], Unavailable)
    assert sum(isinstance(r, FreeBusy) for r in found.values()) == 498


def test_unknown_mailboxes_at_the_head_of_a_batch_cost_at_most_two_retries(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ghosts = [ghost(f"ghost{n}") for n in range(3)]
    ada = mailbox(fake, "ada")
    fake.add_event(ada.calendar, START, START + HOUR)

    found = graph.free_busy([*ghosts, ada], START, START + 2 * HOUR)

    # Three calls, each through another ghost; ada was never asked about.
    assert url_mailboxes(fake) == [g.calendar for g in ghosts]
    assert all(isinstance(found[g], NotFound) for g in ghosts)
    waiting = found[ada]
    assert isinstance(waiting, Unavailable) and waiting.retryable
    assert "'ada@school.test'" in str(waiting) and "ghost" not in str(waiting)

    again = graph.free_busy([*ghosts, ada], START, START + 2 * HOUR)  # the pass's retry

    assert url_mailboxes(fake)[3:] == [ada.calendar]
    assert again[ada] == FreeBusy((Busy(START, START + HOUR),))
    assert all(isinstance(again[g], NotFound) for g in ghosts)


def test_a_mailbox_known_to_answer_is_put_in_the_url(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada, bob = mailbox(fake, "ada"), mailbox(fake, "bob")
    graph.free_busy([ada], START, START + HOUR)
    graph.free_busy([bob], START, START + HOUR)
    lost = ghost()

    # A batch of unknown mailboxes is asked through a mailbox of another batch.
    found = graph.free_busy([lost, ada], START, START + HOUR)

    assert url_mailboxes(fake) == [ada.calendar, bob.calendar, ada.calendar]
    assert isinstance(found[lost], NotFound)
    alone = graph.free_busy([lost], START, START + HOUR)
    assert url_mailboxes(fake)[3] in (ada.calendar, bob.calendar)
    assert len(url_mailboxes(fake)) == 4
    assert isinstance(alone[lost], NotFound)


# --- check --------------------------------------------------------------------------------


def test_check_names_each_mailbox_with_its_own_problem_once(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada, bob, carol = mailbox(fake, "ada"), mailbox(fake, "bob"), mailbox(fake, "carol")
    fake.fail_schedule(bob.calendar, "ErrorNoFreeBusyAccess")

    lines = graph.check([ada, bob, ghost(), carol])

    assert len(lines) == 2
    (lost,) = [line for line in lines if "ghost@" in line]
    (denied,) = [line for line in lines if "bob@" in line]
    assert "not found" in lost and "ada@" not in lost
    assert "ErrorNoFreeBusyAccess" in denied and "ghost" not in denied and "ada@" not in denied
    assert graph.check([ada, carol]) == []


# --- one schedule, pure ---------------------------------------------------------------------


def read(info: dict[str, object], minutes: int = 120) -> schedule.Part:
    return schedule.read_schedule(
        {"scheduleId": "ada@school.test", **info},
        START,
        START + minutes * MINUTE,
        account="m365",
        mailbox="ada@school.test",
    )


def at(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


@pytest.mark.parametrize(
    ("view", "busy", "unknown"),
    [
        ("00000000", [], []),
        ("12300000", [(0, 15, True), (15, 45, False)], []),
        ("00400000", [], [(30, 45)]),  # 4: not a documented digit (no data in Exchange's)
        ("0090x000", [], [(30, 45), (60, 75)]),
    ],
)
def test_view_digits(
    view: str, busy: list[tuple[int, int, bool]], unknown: list[tuple[int, int]]
) -> None:
    result = read({"availabilityView": view})
    assert result == FreeBusy(
        tuple(Busy(START + a * MINUTE, START + b * MINUTE, tentative=t) for a, b, t in busy),
        tuple(Interval(START + a * MINUTE, START + b * MINUTE) for a, b in unknown),
    )


def test_a_partial_last_slot_may_be_given_or_left_out() -> None:
    """110 minutes are 7⅓ quarters: 8 digits (the last one partial) or 7."""
    assert read({"availabilityView": "22222222"}, minutes=110) == FreeBusy(
        (Busy(START, START + 110 * MINUTE),)
    )
    assert read({"availabilityView": "2222222"}, minutes=110) == FreeBusy(
        (Busy(START, START + 105 * MINUTE),),
        (Interval(START + 105 * MINUTE, START + 110 * MINUTE),),
    )
    assert type(read({"availabilityView": "2222222"}, minutes=120)) is ConnectorError


def test_a_view_of_another_interval_is_refused_not_misread() -> None:
    result = read({"availabilityView": "0200"})  # 30-minute slots for 15-minute ones
    assert type(result) is ConnectorError
    assert "'ada@school.test'" in str(result) and "availabilityView" in str(result)


def test_an_empty_item_list_does_not_hide_a_busy_view() -> None:
    result = read({"scheduleItems": [], "availabilityView": "00220000"})
    assert result == FreeBusy((Busy(START + 30 * MINUTE, START + 60 * MINUTE),))
    assert read({"scheduleItems": [], "availabilityView": "00000000"}) == FreeBusy()


def test_an_undocumented_status_is_unknown_and_an_unreadable_item_refused() -> None:
    item = {"status": "away", "start": at(START), "end": at(START + HOUR)}
    assert read({"scheduleItems": [item]}) == FreeBusy((), (Interval(START, START + HOUR),))
    broken = {"status": "busy", "start": {"dateTime": "soon"}, "end": at(START)}
    assert type(read({"scheduleItems": [broken]})) is ConnectorError
    assert type(read({"scheduleItems": {"status": "busy"}})) is ConnectorError


def test_an_empty_error_code_is_a_plain_error_of_that_mailbox() -> None:
    result = read({"error": {"message": "Something went wrong for bob@school.test."}})
    assert type(result) is ConnectorError
    assert "'ada@school.test'" in str(result) and "bob@" not in str(result)
