"""Google free/busy on the wire, each calendar with its own answer (DESIGN §5, issue 14): the
real googleapiclient and google-auth against the fake Google (tests/support/fake_google.py).

Covered: batches of 50 and 90-day pieces (joined again), clipping, one calendar's error
among others (each reason Google documents, each told as its own), an entry without
``busy`` (unknown, never free), a calendar missing from the answer, an error in one piece,
the captured case ``google-freebusy-one-calendar-error.json``, the impersonation fallback's
request count over passes, and the request count of passes over 500 calendars.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.base import CalendarRef, FreeBusy
from ptm_sync.core.errors import CalendarProblem, ConnectorError, NotFound, Unavailable
from ptm_sync.core.model import Busy, Interval
from tests.contract.harness import START
from tests.contract.system_google import DOMAIN, account
from tests.integration.test_google_connector import Setup, calls, connect
from tests.support.cases import CASES
from tests.support.fake_google import FakeGoogle, running

HOUR = timedelta(hours=1)


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with running() as server:
        yield server


@pytest.fixture
def g(fake: FakeGoogle, tmp_path: Path) -> Iterator[Setup]:
    connector, waits = connect(fake, account(fake, tmp_path))
    yield Setup(fake, connector, waits)
    connector.close()


def spans(result: FreeBusy | ConnectorError) -> list[tuple[datetime, datetime]]:
    assert isinstance(result, FreeBusy), result
    return [(b.start, b.end) for b in result.busy]


def queries(fake: FakeGoogle) -> list[Any]:
    return calls(fake, "POST", "/freeBusy")


# --- batches and pieces -----------------------------------------------------------------


def test_120_calendars_take_three_freebusy_calls_of_at_most_50(g: Setup) -> None:
    cals = [g.calendar(f"t{n:03d}") for n in range(120)]
    g.fake.add_event(cals[7].calendar, START, START + HOUR)
    g.fake.add_event(cals[119].calendar, START + 2 * HOUR, START + 3 * HOUR)

    found = g.connector.free_busy(cals, START - HOUR, START + 4 * HOUR)

    assert [len(q.body["items"]) for q in queries(g.fake)] == [50, 50, 20]
    assert set(found) == set(cals)
    assert spans(found[cals[7]]) == [(START, START + HOUR)]
    assert spans(found[cals[119]]) == [(START + 2 * HOUR, START + 3 * HOUR)]
    assert sum(len(spans(result)) for result in found.values()) == 2


def test_the_fake_refuses_51_calendars_and_a_span_over_90_days(fake: FakeGoogle) -> None:
    """What the connector avoids is really refused (so the batching test means something)."""
    client = build(
        "calendar",
        "v3",
        developerKey="unused",
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": fake.api_url + "calendar/v3/"},
    )
    fake.add_calendar(f"ada@{DOMAIN}")
    fake.tokens["ok"] = (f"ada@{DOMAIN}", 2e9)
    too_many = {
        "timeMin": "2027-04-13T00:00:00Z",
        "timeMax": "2027-04-14T00:00:00Z",
        "items": [{"id": f"t{n}@{DOMAIN}"} for n in range(51)],
    }
    too_long = {**too_many, "items": [], "timeMax": "2027-07-13T00:00:01Z"}
    for body, reason in ((too_many, "tooManyCalendarsRequested"), (too_long, "timeRangeTooLong")):
        request = client.freebusy().query(body=body)
        request.headers["Authorization"] = "Bearer ok"
        with pytest.raises(HttpError) as refused:
            request.execute()
        assert refused.value.resp.status == 400
        assert refused.value.error_details[0]["reason"] == reason


def test_a_long_range_is_asked_in_pieces_of_at_most_90_days(g: Setup) -> None:
    ada = g.calendar("ada")
    start, end = START, START + timedelta(days=200)
    across = START + timedelta(days=90)  # a busy span over the first cut
    g.fake.add_event(ada.calendar, across - HOUR, across + HOUR)

    found = g.connector.free_busy([ada], start, end)

    asked = [
        (datetime.fromisoformat(q.body["timeMin"]), datetime.fromisoformat(q.body["timeMax"]))
        for q in queries(g.fake)
    ]
    assert len(asked) == 3
    assert all(last - first <= timedelta(days=90) for first, last in asked)
    assert asked[0][0] == start and asked[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(asked))
    assert found[ada] == FreeBusy((Busy(across - HOUR, across + HOUR),))


def test_busy_spans_are_clipped_and_free_time_is_not_busy(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.add_event(ada.calendar, START - 2 * HOUR, START + timedelta(minutes=30))
    g.fake.add_event(ada.calendar, START + HOUR, START + 2 * HOUR, transparency="transparent")

    found = g.connector.free_busy([ada], START, START + 3 * HOUR)

    assert found[ada] == FreeBusy((Busy(START, START + timedelta(minutes=30)),))


# --- one calendar's error stays its own ---------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "kind", "problem"),
    [
        ("internalError", Unavailable, CalendarProblem.UNAVAILABLE),
        ("backendError", Unavailable, CalendarProblem.UNAVAILABLE),
        ("rateLimitExceeded", Unavailable, CalendarProblem.UNAVAILABLE),
        ("notFound", NotFound, CalendarProblem.NOT_FOUND),
        ("groupTooBig", ConnectorError, CalendarProblem.FAILED),
        ("aReasonGoogleAddsLater", ConnectorError, CalendarProblem.FAILED),
    ],
)
def test_one_calendars_error_among_three_is_its_own_and_the_others_are_exact(
    g: Setup, reason: str, kind: type[ConnectorError], problem: CalendarProblem
) -> None:
    ada, bob, cy = g.calendar("ada"), g.calendar("bob"), g.calendar("cy")
    g.fake.add_event(ada.calendar, START, START + HOUR)
    g.fake.add_event(bob.calendar, START + HOUR, START + 2 * HOUR)
    g.fake.add_event(cy.calendar, START + 2 * HOUR, START + 3 * HOUR)
    g.fake.fail_calendar(bob.calendar, reason)

    found = g.connector.free_busy([ada, bob, cy], START, START + 4 * HOUR)

    assert len(queries(g.fake)) == 1
    assert found[ada] == FreeBusy((Busy(START, START + HOUR),))
    assert found[cy] == FreeBusy((Busy(START + 2 * HOUR, START + 3 * HOUR),))
    failed = found[bob]
    assert type(failed) is kind
    assert failed.problem is problem
    assert failed.retryable is (kind is Unavailable)
    assert failed.retry_after is None
    assert bob.calendar in str(failed) and reason in str(failed)
    assert ada.calendar not in str(failed) and cy.calendar not in str(failed)


def test_two_failing_calendars_each_get_their_own_error(g: Setup) -> None:
    ada, bob, cy = g.calendar("ada"), g.calendar("bob"), g.calendar("cy")
    g.fake.fail_calendar(ada.calendar, "internalError")
    g.fake.fail_calendar(cy.calendar, "backendError")

    found = g.connector.free_busy([ada, bob, cy], START, START + HOUR)

    first, second = found[ada], found[cy]
    assert isinstance(first, Unavailable) and isinstance(second, Unavailable)
    assert first is not second
    assert ada.calendar in str(first) and cy.calendar not in str(first)
    assert cy.calendar in str(second) and ada.calendar not in str(second)
    assert found[bob] == FreeBusy()


def test_an_unknown_calendar_is_its_own_not_found_by_name(g: Setup) -> None:
    ada = g.calendar("ada")
    ghost = CalendarRef("google", f"ghost@{DOMAIN}")
    g.fake.add_event(ada.calendar, START, START + HOUR)

    alone = g.connector.free_busy([ghost], START, START + HOUR)
    together = g.connector.free_busy([ada, ghost], START, START + HOUR)

    for found in (alone, together):
        assert isinstance(found[ghost], NotFound) and "ghost@" in str(found[ghost])
    assert together[ada] == FreeBusy((Busy(START, START + HOUR),))


def test_the_captured_answer_gives_smith_his_busy_time_and_jones_her_own_error(
    g: Setup,
) -> None:
    """``google-freebusy-one-calendar-error.json``: busy for smith, ``internalError`` (with
    ``busy: []``) for jones, in one 200 answer."""
    case = json.loads((CASES / "google-freebusy-one-calendar-error.json").read_text())
    smith, jones = g.calendar("smith"), g.calendar("jones")
    assert {smith.calendar, jones.calendar} == set(case["calendars"])
    g.fake.serve_raw_freebusy(case)
    start = datetime.fromisoformat(case["timeMin"])
    end = datetime.fromisoformat(case["timeMax"])

    found = g.connector.free_busy([smith, jones], start, end)

    assert found[smith] == FreeBusy(
        (Busy(datetime(2027, 3, 15, 20, 0, tzinfo=UTC), datetime(2027, 3, 15, 20, 30, tzinfo=UTC)),)
    )
    failed = found[jones]
    assert isinstance(failed, Unavailable) and failed.retryable
    assert failed.problem is CalendarProblem.UNAVAILABLE
    assert "jones@school.test" in str(failed) and "internalError" in str(failed)
    assert "smith" not in str(failed)


def test_errors_win_over_busy_times_beside_them(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.serve_raw_freebusy(
        {
            "kind": "calendar#freeBusy",
            "calendars": {
                ada.calendar: {
                    "errors": [{"domain": "global", "reason": "internalError"}],
                    "busy": [{"start": "2027-04-13T13:00:00Z", "end": "2027-04-13T14:00:00Z"}],
                }
            },
        }
    )
    assert isinstance(g.connector.free_busy([ada], START, START + HOUR)[ada], Unavailable)


# --- answers without data or that cannot be read ------------------------------------------


def test_an_entry_without_busy_is_unknown_never_free(g: Setup) -> None:
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.fake.add_event(ada.calendar, START, START + HOUR)
    g.fake.add_event(bob.calendar, START, START + HOUR)
    g.fake.no_data(bob.calendar)

    found = g.connector.free_busy([ada, bob], START, START + 4 * HOUR)

    assert found[bob] == FreeBusy((), (Interval(START, START + 4 * HOUR),))
    assert found[bob] == FreeBusy.no_data(START, START + 4 * HOUR)
    assert found[ada] == FreeBusy((Busy(START, START + HOUR),))


def test_no_data_over_a_long_range_is_one_unknown_span(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.no_data(ada.calendar)
    end = START + timedelta(days=200)

    found = g.connector.free_busy([ada], START, end)

    assert len(queries(g.fake)) == 3
    assert found[ada] == FreeBusy((), (Interval(START, end),))


def test_pieces_with_and_without_data_are_joined_per_calendar(g: Setup) -> None:
    ada = g.calendar("ada")
    cut = START + timedelta(days=90)
    end = START + timedelta(days=100)
    g.fake.serve_raw_freebusy(
        {"calendars": {ada.calendar: {"busy": [{"start": _z(START), "end": _z(START + HOUR)}]}}}
    )
    g.fake.serve_raw_freebusy({"calendars": {ada.calendar: {}}})

    found = g.connector.free_busy([ada], START, end)

    assert found[ada] == FreeBusy((Busy(START, START + HOUR),), (Interval(cut, end),))


def test_an_error_in_one_piece_is_the_calendars_answer_and_it_is_not_asked_again(
    g: Setup,
) -> None:
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.fake.add_event(ada.calendar, START, START + HOUR)
    late = START + timedelta(days=95)
    g.fake.add_event(ada.calendar, late, late + HOUR)
    g.fake.serve_raw_freebusy(
        {
            "calendars": {
                ada.calendar: {"busy": [{"start": _z(START), "end": _z(START + HOUR)}]},
                bob.calendar: {"errors": [{"domain": "global", "reason": "backendError"}]},
            }
        }
    )

    found = g.connector.free_busy([ada, bob], START, START + timedelta(days=100))

    assert isinstance(found[bob], Unavailable) and bob.calendar in str(found[bob])
    assert found[ada] == FreeBusy((Busy(START, START + HOUR), Busy(late, late + HOUR)))
    second = queries(g.fake)[1]
    assert second.body["items"] == [{"id": ada.calendar}]


def test_a_calendar_missing_from_the_answer_is_its_own_unreadable_answer(g: Setup) -> None:
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.fake.serve_raw_freebusy({"calendars": {ada.calendar: {"busy": []}}})

    found = g.connector.free_busy([ada, bob], START, START + HOUR)

    assert found[ada] == FreeBusy()
    missing = found[bob]
    assert type(missing) is ConnectorError and not missing.retryable
    assert missing.problem is CalendarProblem.FAILED
    assert bob.calendar in str(missing) and ada.calendar not in str(missing)


def test_busy_times_that_cannot_be_read_fail_only_their_calendar(g: Setup) -> None:
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.fake.serve_raw_freebusy(
        {
            "calendars": {
                ada.calendar: {"busy": [{"start": "yesterday", "end": "today"}]},
                bob.calendar: {"busy": [{"start": _z(START), "end": _z(START + HOUR)}]},
            }
        }
    )

    found = g.connector.free_busy([ada, bob], START, START + HOUR)

    assert type(found[ada]) is ConnectorError and ada.calendar in str(found[ada])
    assert found[bob] == FreeBusy((Busy(START, START + HOUR),))


def test_a_404_for_the_whole_call_is_no_calendars_not_found(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.fail_next(404, reason="notFound")
    with pytest.raises(ConnectorError) as raised:
        g.connector.free_busy([ada], START, START + HOUR)
    assert not isinstance(raised.value, NotFound)


# --- impersonation ------------------------------------------------------------------------


def test_freebusy_acts_as_the_first_teacher_of_the_batch(g: Setup) -> None:
    cals = [g.calendar(name) for name in ("ada", "bob", "cy")]
    g.connector.free_busy(cals, START, START + HOUR)
    assert [claims["sub"] for claims in g.fake.assertions] == [cals[0].calendar]


def test_a_teacher_google_does_not_know_is_tried_as_the_acting_user_once(g: Setup) -> None:
    ghost = CalendarRef("google", f"ghost@{DOMAIN}")
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.fake.add_event(bob.calendar, START, START + HOUR)

    per_pass = []
    for _ in range(3):
        tokens, api = len(g.fake.token_log()), len(g.fake.api_log())
        found = g.connector.free_busy([ghost, ada, bob], START, START + HOUR)
        per_pass.append((len(g.fake.token_log()) - tokens, len(g.fake.api_log()) - api))
        assert isinstance(found[ghost], NotFound) and "ghost@" in str(found[ghost])
        assert found[ada] == FreeBusy() and found[bob] == FreeBusy((Busy(START, START + HOUR),))

    # Pass 1: ghost's token refused, ada's given, one query; then one query a pass.
    assert per_pass == [(2, 1), (0, 1), (0, 1)]
    assert [claims["sub"] for claims in g.fake.assertions] == [ada.calendar]


def test_a_batch_of_teachers_google_does_not_know_costs_nothing_after_the_first_pass(
    g: Setup,
) -> None:
    ghosts = [CalendarRef("google", f"ghost{n}@{DOMAIN}") for n in range(2)]

    first = g.connector.free_busy(ghosts, START, START + HOUR)
    tokens = len(g.fake.token_log())
    again = g.connector.free_busy(ghosts, START, START + HOUR)

    assert tokens == 2 and len(g.fake.token_log()) == tokens
    assert g.fake.api_log() == []
    for found in (first, again):
        for ghost in ghosts:
            assert isinstance(found[ghost], NotFound)
            assert ghost.calendar in str(found[ghost])
            assert all(o.calendar not in str(found[ghost]) for o in ghosts if o != ghost)


# --- request counts -------------------------------------------------------------------


def test_requests_for_a_full_and_an_idle_freebusy_pass_of_500_calendars(g: Setup) -> None:
    cals = [g.calendar(f"t{n:03d}") for n in range(500)]
    window = (START, START + timedelta(days=14))

    g.connector.free_busy(cals, *window)
    full_api, full_tokens = len(g.fake.api_log()), len(g.fake.token_log())
    g.connector.free_busy(cals, *window)
    idle_api = len(g.fake.api_log()) - full_api
    idle_tokens = len(g.fake.token_log()) - full_tokens

    assert (full_api, idle_api) == (10, 10)  # 500 / 50: the minimum Google allows
    assert (full_tokens, idle_tokens) == (10, 0)  # one token per batch's subject, then kept


def test_one_failing_calendar_among_500_costs_no_extra_request(g: Setup) -> None:
    cals = [g.calendar(f"t{n:03d}") for n in range(500)]
    g.fake.fail_calendar(cals[321].calendar, "internalError")

    found = g.connector.free_busy(cals, START, START + timedelta(days=14))

    assert len(g.fake.api_log()) == 10
    assert isinstance(found[cals[321]], Unavailable)
    assert all(found[c] == FreeBusy() for c in cals if c != cals[321])


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
