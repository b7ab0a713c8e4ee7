"""The Graph connector (msal + requests, unchanged) against the TLS fake of Graph and Entra ID.

What is specific to Microsoft 365: getSchedule batches and range limits, calendar-view delta
paging and links, throttling, token renewal, what goes on the wire for an event, Teams links
and the ``check`` lines.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from icalendar import Calendar

from connectors import graph_wire as wire
from connectors.base import (
    CalendarRef,
    Capability,
    FreeBusy,
    FreeBusyAnswer,
    MeetingEvent,
    open_connector,
)
from connectors.graph import GraphConnector
from ptm_sync.config.settings import Secret
from ptm_sync.core.errors import AuthFailed, NotFound, SyncTokenInvalid, Unavailable, WrongEtag
from ptm_sync.core.model import Busy
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.support.fake_graph import SECRET, FakeGraph, running
from tests.support.servers import free_port

UTC_ZONE = ZoneInfo("UTC")


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeGraph]:
    with running(tmp_path) as server:
        yield server


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def graph(fake: FakeGraph, waits: list[float]) -> Iterator[GraphConnector]:
    connector = open_connector(fake.account(), UTC_ZONE, HORIZON)
    assert isinstance(connector, GraphConnector)
    connector.retry = RetryPolicy(sleep=no_sleep(waits))
    yield connector
    connector.close()


def mailbox(fake: FakeGraph, name: str) -> CalendarRef:
    return CalendarRef("m365", fake.add_mailbox(f"{name}@school.test"))


def meeting(uid: str = "meeting-1@ptm.test", **changes: object) -> MeetingEvent:
    event = MeetingEvent(
        uid=uid,
        start=START,
        end=START + timedelta(minutes=15),
        summary="Conference: Ada Lovelace",
        description="Parent-teacher conference about Ada.",
        location="Room 12",
    )
    return replace(event, **changes)  # type: ignore[arg-type]


def answered(found: FreeBusyAnswer, ref: CalendarRef) -> FreeBusy:
    """The calendar's FreeBusy; its error, if it got one, fails the test with its text."""
    result = found[ref]
    assert isinstance(result, FreeBusy), f"{ref.calendar}: {result!r}"
    return result


def vevent(ics: str) -> dict[str, object]:
    (component,) = Calendar.from_ical(ics).walk("VEVENT")
    return {
        "uid": str(component["UID"]),
        "start": component.DTSTART,
        "end": component.DTEND,
        "summary": str(component["SUMMARY"]),
        "status": str(component["STATUS"]),
    }


# --- free/busy ------------------------------------------------------------------------------


def test_45_mailboxes_take_3_getschedule_calls_of_at_most_20(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    refs = [mailbox(fake, f"teacher{n:02d}") for n in range(45)]
    fake.add_event(refs[30].calendar, START, START + timedelta(hours=1))
    fake.add_event(refs[44].calendar, START, START + timedelta(hours=2), show_as="tentative")

    found = graph.free_busy(refs, START - timedelta(hours=1), START + timedelta(hours=3))

    calls = fake.graph_requests("getSchedule")
    assert sorted(len(c.body["schedules"]) for c in calls) == [5, 20, 20]
    assert sorted(m for c in calls for m in c.body["schedules"]) == [r.calendar for r in refs]
    # The mailbox in the URL is the first of its batch (Calendars.Read reads anybody's).
    assert [c.path.split("/")[3] for c in calls] == [c.body["schedules"][0] for c in calls]
    assert set(found) == set(refs)
    assert answered(found, refs[30]).busy == (Busy(START, START + timedelta(hours=1)),)
    assert answered(found, refs[44]).busy == (
        Busy(START, START + timedelta(hours=2), tentative=True),
    )
    assert all(found[r] == FreeBusy() for r in refs[:30] + refs[31:44])
    assert max(graph.in_flight.peak.values()) <= 4


def test_a_70_day_range_is_asked_in_spans_under_62_days(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    start = datetime(2027, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=70)
    across = start + timedelta(days=61) - timedelta(hours=1)
    fake.add_event(ada.calendar, across, across + timedelta(hours=2))

    found = graph.free_busy([ada], start, end)

    asked = sorted(
        (
            datetime.fromisoformat(c.body["startTime"]["dateTime"]).replace(tzinfo=UTC),
            datetime.fromisoformat(c.body["endTime"]["dateTime"]).replace(tzinfo=UTC),
        )
        for c in fake.graph_requests("getSchedule")
    )
    assert len(asked) == 2
    assert all(last - first < timedelta(days=62) for first, last in asked)
    assert asked[0][0] == start and asked[-1][1] == end and asked[0][1] == asked[1][0]
    assert all(c.body["startTime"]["timeZone"] == "UTC" for c in fake.graph_requests())
    # The event across the cut comes back whole, in two pieces that meet.
    assert answered(found, ada).unknown == ()
    pieces = sorted(answered(found, ada).busy, key=lambda b: b.start)
    assert pieces[0].start == across and pieces[-1].end == across + timedelta(hours=2)
    assert all(a.end == b.start for a, b in itertools.pairwise(pieces))


def test_free_and_working_elsewhere_are_not_busy_and_spans_are_clipped(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    fake.add_event(ada.calendar, START - timedelta(hours=1), START + timedelta(hours=1))
    fake.add_event(
        ada.calendar, START + timedelta(hours=2), START + timedelta(hours=3), show_as="free"
    )
    fake.add_event(
        ada.calendar,
        START + timedelta(hours=3),
        START + timedelta(hours=4),
        show_as="workingElsewhere",
    )
    fake.add_event(
        ada.calendar, START + timedelta(hours=4), START + timedelta(hours=5), show_as="oof"
    )

    found = graph.free_busy([ada], START, START + timedelta(hours=6))

    assert answered(found, ada).unknown == ()
    assert sorted((b.start, b.end) for b in answered(found, ada).busy) == [
        (START, START + timedelta(hours=1)),
        (START + timedelta(hours=4), START + timedelta(hours=5)),
    ]


def test_times_in_a_windows_zone_are_read_right(fake: FakeGraph, graph: GraphConnector) -> None:
    """A proxy that drops the Prefer header: Graph answers in the mailbox's zone."""
    ada = mailbox(fake, "ada")
    fake.add_event(ada.calendar, START, START + timedelta(hours=1))
    ref = graph.create_event(
        ada, meeting(start=START + timedelta(hours=2), end=START + timedelta(hours=2, minutes=15))
    )
    fake.force_time_zone = "W. Europe Standard Time"

    found = graph.free_busy([ada], START - timedelta(hours=1), START + timedelta(hours=4))
    changes = graph.changes(ada, None)

    raw = fake.graph_requests("getSchedule")[-1]
    assert 'outlook.timezone="UTC"' in raw.headers["prefer"]
    assert sorted(b.start for b in answered(found, ada).busy) == [START, START + timedelta(hours=2)]
    (event,) = changes.changed
    assert event.href == ref.href
    assert vevent(event.ics)["start"] == START + timedelta(hours=2)


# --- changes --------------------------------------------------------------------------------


def test_delta_pages_are_followed_to_the_delta_link_and_only_our_events_come(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    refs = [
        graph.create_event(
            ada,
            meeting(
                f"m{n}@ptm.test",
                start=START + timedelta(hours=n),
                end=START + timedelta(hours=n, minutes=15),
            ),
        )
        for n in range(5)
    ]
    fake.add_event(ada.calendar, START, START + timedelta(hours=8))  # the teacher's own
    fake.add_event(ada.calendar, START, START + timedelta(hours=9))
    fake.max_page = 2
    before = len(fake.graph_requests("delta"))

    full = graph.changes(ada, None)

    assert len(fake.graph_requests("delta")) - before == 4  # 7 events, pages of 2
    assert full.full and full.token and "$deltatoken=" in full.token
    assert {e.href for e in full.changed} == {r.href for r in refs}
    assert {e.href: e.etag for e in full.changed} == {r.href: r.etag for r in refs}
    assert {vevent(e.ics)["uid"] for e in full.changed} == {f"m{n}@ptm.test" for n in range(5)}
    first = vevent(next(e.ics for e in full.changed if e.href == refs[0].href))
    assert first == {
        "uid": "m0@ptm.test",
        "start": START,
        "end": START + timedelta(minutes=15),
        "summary": "Conference: Ada Lovelace",
        "status": "CONFIRMED",
    }

    idle = graph.changes(ada, full.token)
    assert (idle.changed, idle.removed, idle.full) == ((), (), False)

    fake.teacher_moves(
        ada.calendar, refs[1].href, START + timedelta(days=1), START + timedelta(days=1, minutes=15)
    )
    fake.teacher_deletes(ada.calendar, refs[2].href)
    fake.add_event(ada.calendar, START, START + timedelta(hours=1))
    later = graph.changes(ada, idle.token)

    assert [e.href for e in later.changed] == [refs[1].href]
    assert vevent(later.changed[0].ics)["start"] == START + timedelta(days=1)
    assert later.removed == (refs[2].href,)
    assert all(
        'outlook.timezone="UTC"' in r.headers["prefer"] for r in fake.graph_requests("delta")
    )


def test_a_forgotten_delta_link_is_sync_token_invalid(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    graph.create_event(ada, meeting())
    token = graph.changes(ada, None).token
    assert token is not None
    fake.forget_delta_links()

    with pytest.raises(SyncTokenInvalid):
        graph.changes(ada, token)
    with pytest.raises(SyncTokenInvalid):
        graph.changes(ada, "https://elsewhere.example/v1.0/users/ada/calendarView/delta")
    assert len(graph.changes(ada, None).changed) == 1


# --- throttling and tokens ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_waited_out_when_short(
    fake: FakeGraph, graph: GraphConnector, waits: list[float], status: int
) -> None:
    ada = mailbox(fake, "ada")
    fake.throttle(status, 1, count=2)

    assert graph.free_busy([ada], START, START + timedelta(hours=1)) == {ada: FreeBusy()}
    assert waits == [1.0, 1.0]
    assert len(fake.graph_requests("getSchedule")) == 3


def test_a_long_retry_after_is_given_back_as_unavailable(
    fake: FakeGraph, graph: GraphConnector, waits: list[float]
) -> None:
    ada = mailbox(fake, "ada")
    fake.throttle(429, 120)

    with pytest.raises(Unavailable) as caught:
        graph.free_busy([ada], START, START + timedelta(hours=1))
    assert caught.value.retry_after == 120
    assert waits == []


def test_an_expired_token_is_renewed_once(fake: FakeGraph, graph: GraphConnector) -> None:
    ada = mailbox(fake, "ada")
    graph.free_busy([ada], START, START + timedelta(hours=1))
    fake.expire_access_tokens()
    before = len(fake.graph_requests())

    graph.free_busy([ada], START, START + timedelta(hours=1))

    assert len(fake.token_requests()) == 2
    refused, retried = fake.graph_requests()[before:]
    assert refused.headers["authorization"] != retried.headers["authorization"]
    assert refused.body == retried.body

    fake.expire_access_tokens()
    fake.issue_expired = True  # the new token is refused too
    with pytest.raises(AuthFailed, match="after renewing"):
        graph.free_busy([ada], START, START + timedelta(hours=1))
    assert len(fake.token_requests()) == 3


# --- writes ---------------------------------------------------------------------------------


def test_create_sends_no_attendees_a_private_busy_event_with_our_tags(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    ref = graph.create_event(ada, meeting())

    (post,) = [r for r in fake.graph_requests("/events") if r.method == "POST"]
    body = post.body
    assert "attendees" not in body
    assert body["sensitivity"] == "private" and body["showAs"] == "busy"
    assert body["isReminderOn"] is False
    assert body["body"] == {
        "contentType": "text",
        "content": "Parent-teacher conference about Ada.",
    }
    assert body["location"] == {"displayName": "Room 12"}
    assert body["start"] == {"dateTime": "2027-04-13T13:00:00", "timeZone": "UTC"}
    assert "meeting-1@ptm.test" in body["transactionId"]
    assert [p["value"] for p in body["singleValueExtendedProperties"]] == ["meeting-1@ptm.test"]
    assert "isOnlineMeeting" not in body
    stored = fake.event(ada.calendar, ref.href)
    assert stored.attendees == [] and ref.join_url == ""
    assert ref.etag == f'W/"{stored.change_key}"'


def test_a_teams_meeting_is_asked_for_and_its_link_kept_across_an_update(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    assert Capability.ONLINE_MEETINGS in graph.capabilities
    ref = graph.create_event(ada, meeting(online_meeting=True))

    (post,) = [r for r in fake.graph_requests("/events") if r.method == "POST"]
    assert post.body["isOnlineMeeting"] is True
    assert post.body["onlineMeetingProvider"] == "teamsForBusiness"
    assert ref.join_url == fake.event(ada.calendar, ref.href).join_url != ""

    moved = graph.update_event(
        ada,
        ref,
        meeting(start=START + timedelta(hours=1), end=START + timedelta(hours=1, minutes=15)),
    )
    assert moved.join_url == ref.join_url
    assert moved.etag != ref.etag


def test_create_is_idempotent_by_uid(fake: FakeGraph, graph: GraphConnector) -> None:
    ada = mailbox(fake, "ada")
    first = graph.create_event(ada, meeting())
    again = graph.create_event(ada, meeting())
    assert again == first
    assert len([r for r in fake.graph_requests("/events") if r.method == "POST"]) == 1

    # A retry with a changed meeting finds the event by its tag and updates it.
    changed = graph.create_event(ada, meeting(summary="Conference (moved room)"))
    assert changed.href == first.href and changed.etag != first.etag
    assert fake.event(ada.calendar, first.href).subject == "Conference (moved room)"
    assert len([e for e in fake.mailboxes[ada.calendar].values() if not e.deleted]) == 1


def test_update_and_delete_are_conditional(fake: FakeGraph, graph: GraphConnector) -> None:
    ada = mailbox(fake, "ada")
    ref = graph.create_event(ada, meeting())
    fake.teacher_moves(
        ada.calendar, ref.href, START + timedelta(hours=2), START + timedelta(hours=2, minutes=15)
    )

    with pytest.raises(WrongEtag):
        graph.update_event(ada, ref, meeting(summary="New title"))
    patch = [r for r in fake.graph_requests("/events/") if r.method == "PATCH"][-1]
    assert patch.headers["if-match"] == ref.etag
    with pytest.raises(WrongEtag):
        graph.delete_event(ada, ref)

    # Stale, but the event already says it: our own write whose ETag was lost.
    same = meeting(start=START + timedelta(hours=2), end=START + timedelta(hours=2, minutes=15))
    current = graph.update_event(ada, ref, same)
    assert current.etag == f'W/"{fake.event(ada.calendar, ref.href).change_key}"'

    graph.delete_event(ada, current)
    graph.delete_event(ada, current)  # gone already: success
    with pytest.raises(NotFound):
        graph.update_event(ada, current, same)


# --- check ----------------------------------------------------------------------------------


def test_check_is_empty_when_all_is_well(fake: FakeGraph, graph: GraphConnector) -> None:
    assert graph.check([mailbox(fake, "ada"), mailbox(fake, "bob")]) == []


def test_check_names_a_refused_secret_without_showing_it(fake: FakeGraph) -> None:
    wrong = "not-the-secret"
    account = fake.account(client_secret=Secret(key="client_secret", value=wrong))
    connector = open_connector(account, UTC_ZONE, HORIZON)

    lines = connector.check([mailbox(fake, "ada")])

    assert len(lines) == 1
    assert "refused the client secret of account 'm365'" in lines[0]
    assert "AADSTS7000215" in lines[0]
    assert wrong not in lines[0] and SECRET not in lines[0]
    with pytest.raises(AuthFailed):
        connector.free_busy([mailbox(fake, "ada")], START, START + timedelta(hours=1))


def test_check_names_the_missing_application_permission(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    fake.roles = ("Calendars.Read",)
    lines = graph.check([mailbox(fake, "ada")])
    assert lines == [
        "Graph account 'm365': the app lacks the Calendars.ReadWrite application permission "
        "(grant admin consent in Entra ID)"
    ]
    with pytest.raises(AuthFailed, match=r"Calendars\.ReadWrite"):
        graph.create_event(mailbox(fake, "ada"), meeting())


def test_check_names_a_mailbox_outside_the_apps_scope_not_a_missing_permission(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    fake.out_of_scope.add("bob@school.test")
    lines = graph.check([mailbox(fake, "ada"), mailbox(fake, "bob")])
    assert len(lines) == 1 and "mailbox 'bob@school.test' refused the app" in lines[0]
    assert "scope" in lines[0] and "lacks" not in lines[0]


def test_check_names_an_unknown_mailbox(fake: FakeGraph, graph: GraphConnector) -> None:
    lines = graph.check([mailbox(fake, "ada"), CalendarRef("m365", "ghost@school.test")])
    assert len(lines) == 1 and "mailbox 'ghost@school.test' not found" in lines[0]


def test_check_names_an_unreachable_server(fake: FakeGraph) -> None:
    closed = f"https://127.0.0.1:{free_port()}"
    connector = open_connector(
        fake.account(authority_url=closed, graph_url=f"{closed}/v1.0"), UTC_ZONE, HORIZON
    )
    (line,) = connector.check([CalendarRef("m365", "ada@school.test")])
    assert line.startswith("Graph account 'm365': cannot reach Entra ID at https://127.0.0.1")
    assert line.endswith(": connection refused")
    with pytest.raises(Unavailable):
        connector.free_busy(
            [CalendarRef("m365", "ada@school.test")], START, START + timedelta(hours=1)
        )


def test_check_names_an_unknown_tenant(fake: FakeGraph) -> None:
    connector = open_connector(fake.account(tenant_id="not-our-tenant"), UTC_ZONE, HORIZON)
    assert connector.check([mailbox(fake, "ada")]) == [
        f"Graph account 'm365': Entra ID at {fake.base} does not know the tenant "
        "'not-our-tenant' (tenant_id)"
    ]


@pytest.mark.parametrize("first_use", [True, False])
def test_an_entra_id_outage_is_unavailable(
    fake: FakeGraph, graph: GraphConnector, first_use: bool
) -> None:
    """A 503 from the OpenID configuration (first use) or from the token endpoint."""
    ada = mailbox(fake, "ada")
    if not first_use:
        graph.check([ada])
        fake.expire_access_tokens()
    fake.entra_outage = 503
    with pytest.raises(Unavailable, match=r"Entra ID at .* is unavailable"):
        graph.free_busy([ada], START, START + timedelta(hours=1))
    (line,) = graph.check([ada])
    assert line.startswith("Graph account 'm365': Entra ID at https://127.0.0.1")


def test_a_certificate_authenticates_the_app(fake: FakeGraph, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ptm-sync app")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "app.pem").write_bytes(
        pem
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    fake.certificate_pem = pem
    account = fake.account(client_secret=None, certificate_file=tmp_path / "app.pem")
    connector = open_connector(account, UTC_ZONE, HORIZON)

    assert connector.check([mailbox(fake, "ada")]) == []
    (token,) = fake.token_requests()
    assert token.body["client_assertion_type"].endswith("jwt-bearer")


# --- the fake refuses what Graph refuses ----------------------------------------------------


def test_the_fake_refuses_21_schedules_and_62_days(fake: FakeGraph, graph: GraphConnector) -> None:
    ada = mailbox(fake, "ada")
    token = graph.tokens.token()
    url = f"{fake.graph_url}/users/{ada.calendar}/calendar/getSchedule"

    def ask(schedules: list[str], days: int) -> int:
        body = {
            "schedules": schedules,
            "startTime": {"dateTime": "2027-04-01T00:00:00", "timeZone": "UTC"},
            "endTime": {
                "dateTime": (datetime(2027, 4, 1) + timedelta(days=days)).isoformat(),
                "timeZone": "UTC",
            },
        }
        return requests.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            verify=str(fake.tls.ca_file),
            timeout=10,
        ).status_code

    assert ask([ada.calendar] * 20, 61) == 200
    assert ask([ada.calendar] * 21, 1) == 400
    assert ask([ada.calendar], 62) == 400
    assert requests.post(url, json={}, verify=str(fake.tls.ca_file), timeout=10).status_code == 401


# --- requests per pass ----------------------------------------------------------------------


def test_requests_per_full_and_idle_free_busy_pass_for_500_mailboxes(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    refs = [mailbox(fake, f"t{n:03d}") for n in range(500)]

    graph.free_busy(refs, HORIZON.start, HORIZON.end)  # full: the first pass
    full = (len(fake.graph_requests()), len(fake.token_requests()))
    graph.free_busy(refs, HORIZON.start, HORIZON.end)  # idle: nothing changed
    idle = (len(fake.graph_requests()) - full[0], len(fake.token_requests()) - full[1])

    assert full == (25, 1)
    assert idle == (25, 0)


def test_a_create_the_server_answers_with_an_earlier_event_updates_that_event(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    """The UID search can miss (the tag not yet indexed); the POST's transactionId then makes
    Graph give back the event of the first try, which is brought up to date."""
    ada = mailbox(fake, "ada")
    first = graph.create_event(ada, meeting())
    fake.event(ada.calendar, first.href).extended.clear()

    again = graph.create_event(ada, meeting(location="Library"))

    assert again.href == first.href and again.etag != first.etag
    assert fake.event(ada.calendar, first.href).location == "Library"
    methods = [r.method for r in fake.graph_requests("/events")]
    assert methods == ["GET", "POST", "GET", "POST", "PATCH"]


# --- the wire, pure ---------------------------------------------------------------------------


def test_the_uid_comes_back_from_our_transaction_id_only() -> None:
    event = meeting("odd/uid@ptm.test", sequence=3)
    assert wire.uid_of(wire.transaction_id(event)) == "odd/uid@ptm.test"
    assert wire.uid_of(None) is None
    assert wire.uid_of("7b0a2c4e-outlook-client-id") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"dateTime": "2027-04-13T13:00:00.0000000", "timeZone": "UTC"}, START),
        ({"dateTime": "2027-04-13T15:00:00.0000000", "timeZone": "W. Europe Standard Time"}, START),
        ({"dateTime": "2027-04-13T09:00:00", "timeZone": "Eastern Standard Time"}, START),
        ({"dateTime": "2027-04-13T15:00:00", "timeZone": "Europe/Berlin"}, START),
    ],
)
def test_date_time_time_zone_is_read_as_utc(value: dict[str, str], expected: datetime) -> None:
    assert wire.read_time(value) == expected


def test_an_apostrophe_in_a_uid_is_quoted_in_the_filter() -> None:
    assert "ep/value eq 'o''brien@ptm.test'" in wire.uid_filter("o'brien@ptm.test")


def test_a_video_link_outside_the_description_goes_into_the_body(
    fake: FakeGraph, graph: GraphConnector
) -> None:
    ada = mailbox(fake, "ada")
    event = meeting(video_url="https://meet.school.test/ptm-ada")
    ref = graph.create_event(ada, event)
    content = fake.event(ada.calendar, ref.href).body["content"]
    assert content.startswith(event.description) and content.endswith(event.video_url)
    assert graph.create_event(ada, event) == ref  # and it says the same on a retry
