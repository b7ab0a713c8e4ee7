"""The Google connector on the wire: the real googleapiclient and google-auth against the fake
Google (tests/support/fake_google.py), which checks what Google's documentation requires.

Covered: paging to nextSyncToken, 410 and the full resync, only our events in the change
feed, writes with sendUpdates=none, no attendees and If-Match, Meet links through
conferenceData (also while "pending"), throttling back-off, token renewal, impersonation of
the teacher, check() lines, TLS with ca_file.  Free/busy (batches, pieces, each calendar's
own answer, request counts) is in test_google_freebusy.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.base import CalendarRef, FreeBusy, MeetingEvent, RemoteRef, open_connector
from connectors.google import GoogleConnector
from connectors.google_wire import event_id
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import AuthFailed, NotFound, SyncTokenInvalid, Unavailable, WrongEtag
from ptm_sync.core.model import Busy
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.contract.system_google import DOMAIN, account
from tests.support.fake_google import FakeGoogle, make_service_account, running
from tests.support.mailservers import make_tls_material
from tests.support.servers import free_port

UTC_ZONE = ZoneInfo("UTC")
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with running() as server:
        yield server


@dataclasses.dataclass
class Setup:
    fake: FakeGoogle
    connector: GoogleConnector
    waits: list[float]

    def calendar(self, teacher: str) -> CalendarRef:
        return CalendarRef("google", self.fake.add_calendar(f"{teacher}@{DOMAIN}"))


def connect(fake: FakeGoogle, config: AccountConfig) -> tuple[GoogleConnector, list[float]]:
    connector = open_connector(config, UTC_ZONE, HORIZON)
    assert isinstance(connector, GoogleConnector)
    waits: list[float] = []
    connector.retry = RetryPolicy(sleep=no_sleep(waits))
    return connector, waits


@pytest.fixture
def g(fake: FakeGoogle, tmp_path: Path) -> Iterator[Setup]:
    connector, waits = connect(fake, account(fake, tmp_path))
    yield Setup(fake, connector, waits)
    connector.close()


def meeting(n: int, **changes: object) -> MeetingEvent:
    base = MeetingEvent(
        uid=f"meeting-{n}@ptm-sync.test",
        start=START + timedelta(minutes=15 * n),
        end=START + timedelta(minutes=15 * n + 15),
        summary=f"Conference {n}",
        description="Parent-teacher conference",
        location="Room 12",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def calls(fake: FakeGoogle, method: str, suffix: str = "") -> list:
    return [r for r in fake.api_log() if r.method == method and r.path.endswith(suffix)]


def test_event_ids_are_stable_base32hex_that_google_accepts() -> None:
    ids = {event_id(f"meeting-{n}@ptm-sync.test") for n in range(200)}
    assert len(ids) == 200
    assert all(
        5 <= len(i) <= 1024 and set(i) <= set("abcdefghijklmnopqrstuv0123456789") for i in ids
    )
    assert event_id("x@y") == event_id("x@y")


# --- changes --------------------------------------------------------------------------


def test_full_sync_pages_to_the_sync_token_and_lists_only_our_events(g: Setup) -> None:
    ada = g.calendar("ada")
    refs = [g.connector.create_event(ada, meeting(n)) for n in range(5)]
    g.fake.add_event(ada.calendar, START, START + timedelta(hours=1), summary="Dentist")
    g.fake.page_size = 2

    before = len(calls(g.fake, "GET", "/events"))
    changes = g.connector.changes(ada, None)

    lists = calls(g.fake, "GET", "/events")[before:]
    assert len(lists) == 3
    assert changes.full and changes.token
    assert sorted(e.href for e in changes.changed) == sorted(r.href for r in refs)
    assert "ptm-sync.test" in changes.changed[0].ics
    assert "pageToken" in lists[1].query and "pageToken" in lists[2].query


def test_incremental_sync_sends_nothing_google_forbids_with_a_sync_token(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    token = g.connector.changes(ada, None).token
    assert token
    moved = START + timedelta(days=2)
    g.fake.teacher_moves(ada.calendar, ref.href, moved, moved + timedelta(minutes=15))
    g.fake.add_event(ada.calendar, START, START + timedelta(hours=1), summary="Dentist")

    changes = g.connector.changes(ada, token)

    last = calls(g.fake, "GET", "/events")[-1]
    forbidden = {"timeMin", "timeMax", "privateExtendedProperty", "q", "iCalUID", "orderBy"}
    assert last.query["syncToken"] == [token]
    assert not forbidden & set(last.query)
    assert [e.href for e in changes.changed] == [ref.href]
    assert "DTSTART:" + moved.strftime("%Y%m%dT%H%M%SZ") in changes.changed[0].ics
    assert not changes.full and changes.token != token


def test_deleted_and_out_of_horizon_events_of_ours_are_removed(g: Setup) -> None:
    ada = g.calendar("ada")
    gone, far = (g.connector.create_event(ada, meeting(n)) for n in (1, 2))
    token = g.connector.changes(ada, None).token
    g.fake.teacher_deletes(ada.calendar, gone.href)
    later = HORIZON.end + timedelta(days=3)
    g.fake.teacher_moves(ada.calendar, far.href, later, later + timedelta(minutes=15))
    dentist = g.fake.add_event(ada.calendar, START, START + timedelta(hours=1))
    g.fake.teacher_deletes(ada.calendar, dentist)

    changes = g.connector.changes(ada, token)

    assert sorted(changes.removed) == sorted([gone.href, far.href])
    assert changes.changed == ()
    assert g.connector.changes(ada, None).changed == ()


def test_a_forgotten_sync_token_is_sync_token_invalid_and_the_resync_counts_once(
    g: Setup,
) -> None:
    ada = g.calendar("ada")
    refs = [g.connector.create_event(ada, meeting(n)) for n in range(3)]
    token = g.connector.changes(ada, None).token
    g.fake.forget_sync_tokens()
    g.fake.page_size = 2

    with pytest.raises(SyncTokenInvalid):
        g.connector.changes(ada, token)
    again = g.connector.changes(ada, None)

    hrefs = [e.href for e in again.changed]
    assert sorted(hrefs) == sorted(r.href for r in refs) and len(set(hrefs)) == len(hrefs)
    busy = g.connector.free_busy([ada], START, START + timedelta(hours=2))[ada]
    assert busy == FreeBusy((Busy(START, START + timedelta(minutes=45)),))


# --- writes ---------------------------------------------------------------------------


def test_every_write_says_send_updates_none_and_carries_no_attendees(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    ref = g.connector.update_event(ada, ref, meeting(1, summary="Moved"))
    g.connector.delete_event(ada, ref)

    writes = [r for r in g.fake.api_log() if r.method in WRITES]
    assert [w.method for w in writes] == ["POST", "PATCH", "DELETE"]
    assert all(w.query.get("sendUpdates") == ["none"] for w in writes)
    assert all("attendees" not in (w.body or {}) for w in writes)
    assert all("conferenceDataVersion" not in w.query for w in writes)
    created = writes[0].body
    assert created["id"] == event_id(meeting(1).uid)
    assert (created["visibility"], created["transparency"]) == ("private", "opaque")
    assert (created["description"], created["location"]) == ("Parent-teacher conference", "Room 12")
    assert writes[1].headers["if-match"] and writes[2].headers["if-match"] == ref.etag


def test_a_meet_link_comes_with_conference_data_version_1(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1, online_meeting=True))

    insert = calls(g.fake, "POST", "/events")[-1]
    assert insert.query["conferenceDataVersion"] == ["1"]
    create = insert.body["conferenceData"]["createRequest"]
    assert create["conferenceSolutionKey"] == {"type": "hangoutsMeet"} and create["requestId"]
    assert ref.join_url.startswith("https://meet.google.com/")

    moved = g.connector.update_event(ada, ref, meeting(1, online_meeting=True, summary="Moved"))
    assert moved.join_url == ref.join_url  # the conference is kept
    assert "conferenceData" not in calls(g.fake, "PATCH")[-1].body


def test_a_pending_meet_link_is_waited_for(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.meet_reads_pending = 2

    ref = g.connector.create_event(ada, meeting(1, online_meeting=True))

    assert ref.join_url.startswith("https://meet.google.com/")
    # The insert's answer and two reads say "pending"; the third read has the link.
    assert len(g.waits) == 3
    assert len(calls(g.fake, "GET", ref.href)) == 3


def test_create_again_reuses_the_event_and_updates_it_when_different(g: Setup) -> None:
    ada = g.calendar("ada")
    first = g.connector.create_event(ada, meeting(1))
    same = g.connector.create_event(ada, meeting(1))
    changed = g.connector.create_event(ada, meeting(1, summary="Changed"))

    assert same == first
    assert changed.href == first.href and changed.etag != first.etag
    events = g.fake.events_of(ada.calendar)
    assert len(events) == 1 and events[first.href]["summary"] == "Changed"
    assert [r.status for r in calls(g.fake, "POST", "/events")] == [200, 409, 409]


def test_update_after_the_teacher_moved_it_is_wrong_etag(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    g.fake.teacher_moves(
        ada.calendar, ref.href, START + timedelta(days=1), START + timedelta(days=1, hours=1)
    )

    with pytest.raises(WrongEtag):
        g.connector.update_event(ada, ref, meeting(1, summary="Ours"))
    assert calls(g.fake, "PATCH")[-1].status == 412


def test_update_that_is_already_there_returns_the_current_ref(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    done = g.connector.update_event(ada, ref, meeting(1, summary="Ours"))

    again = g.connector.update_event(ada, ref, meeting(1, summary="Ours"))  # stale etag

    assert again == done


def test_update_of_a_deleted_event_is_not_found_and_delete_of_it_succeeds(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    g.fake.teacher_deletes(ada.calendar, ref.href)

    with pytest.raises(NotFound):
        g.connector.update_event(ada, ref, meeting(1, summary="Ours"))
    g.connector.delete_event(ada, ref)
    g.connector.delete_event(ada, RemoteRef(event_id("never@ptm-sync.test")))


def test_a_meeting_created_again_after_its_event_was_deleted_comes_back(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    token = g.connector.changes(ada, None).token
    g.connector.delete_event(ada, ref)

    again = g.connector.create_event(ada, meeting(1))

    assert again.href == ref.href
    assert g.fake.events_of(ada.calendar)[ref.href]["status"] == "confirmed"
    assert [e.href for e in g.connector.changes(ada, token).changed] == [ref.href]


def test_a_teacher_google_does_not_know_is_not_found(g: Setup) -> None:
    ghost = CalendarRef("google", f"ghost@{DOMAIN}")
    with pytest.raises(NotFound):
        g.connector.create_event(ghost, meeting(1))
    with pytest.raises(NotFound):
        g.connector.changes(ghost, None)


def test_delete_after_the_teacher_changed_it_is_wrong_etag(g: Setup) -> None:
    ada = g.calendar("ada")
    ref = g.connector.create_event(ada, meeting(1))
    g.fake.teacher_edits(ada.calendar, ref.href, summary="Mine now")
    with pytest.raises(WrongEtag):
        g.connector.delete_event(ada, ref)


def test_writes_impersonate_the_teacher_whose_calendar_it_is(g: Setup) -> None:
    ada, bob = g.calendar("ada"), g.calendar("bob")
    g.connector.create_event(ada, meeting(1))
    g.connector.create_event(bob, meeting(2))
    g.connector.create_event(ada, meeting(3))

    assert [c["sub"] for c in g.fake.assertions] == [ada.calendar, bob.calendar]
    assert all(c["scope"] == "https://www.googleapis.com/auth/calendar" for c in g.fake.assertions)


# --- limits ---------------------------------------------------------------------------


def test_403_rate_limit_is_retried_with_exponential_back_off(g: Setup) -> None:
    ada = g.calendar("ada")
    g.fake.fail_next(403, reason="rateLimitExceeded")
    g.fake.fail_next(403, reason="userRateLimitExceeded")

    g.connector.free_busy([ada], START, START + timedelta(hours=1))

    assert len(g.waits) == 2
    assert 1 <= g.waits[0] <= 1.5 and 2 <= g.waits[1] <= 3
    assert [r.status for r in calls(g.fake, "POST", "/freeBusy")] == [403, 403, 200]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(g: Setup, status: int) -> None:
    ada = g.calendar("ada")
    g.fake.fail_next(status, retry_after=1)
    g.connector.create_event(ada, meeting(1))
    assert g.waits == [1.0]

    g.fake.fail_next(status, retry_after=600)
    with pytest.raises(Unavailable) as raised:
        g.connector.create_event(ada, meeting(2))
    assert raised.value.retry_after == 600


def test_a_revoked_token_is_renewed_once_then_auth_failed(g: Setup) -> None:
    ada = g.calendar("ada")
    g.connector.create_event(ada, meeting(1))
    g.fake.revoke_tokens()
    g.connector.create_event(ada, meeting(2))
    assert len(g.fake.token_log()) == 2

    g.fake.accept_tokens = False
    with pytest.raises(AuthFailed):
        g.connector.create_event(ada, meeting(3))
    assert len(g.fake.token_log()) == 3


def test_an_expiring_token_is_renewed_before_it_runs_out(g: Setup) -> None:
    """google-auth renews a token close to its ``expires_in`` before using it: no 401."""
    ada = g.calendar("ada")
    g.fake.expires_in = 1
    g.connector.create_event(ada, meeting(1))
    g.connector.create_event(ada, meeting(2))
    assert len(g.fake.token_log()) == 2
    assert all(r.status == 200 for r in g.fake.api_log())


# --- check ----------------------------------------------------------------------------


def test_check_is_quiet_when_all_is_well(g: Setup) -> None:
    assert g.connector.check([g.calendar("ada")]) == []
    assert g.connector.check() == []


def test_check_names_a_missing_calendar(g: Setup) -> None:
    lines = g.connector.check([g.calendar("ada"), CalendarRef("google", f"ghost@{DOMAIN}")])
    assert len(lines) == 1 and "ghost@" in lines[0]


def test_check_names_a_wrong_key(fake: FakeGoogle, tmp_path: Path) -> None:
    config = account(fake, tmp_path)
    other = make_service_account(tmp_path, fake.token_url)  # same address, another key
    info = json.loads(other.path.read_text())
    info["client_email"] = json.loads(config.service_account_file.read_text())["client_email"]  # type: ignore[union-attr]
    other.path.write_text(json.dumps(info))
    connector, _ = connect(fake, dataclasses.replace(config, service_account_file=other.path))
    fake.add_calendar(f"ada@{DOMAIN}")

    lines = connector.check([CalendarRef("google", f"ada@{DOMAIN}")])

    assert len(lines) == 1 and "refused the service account key" in lines[0]
    assert "PRIVATE KEY" not in lines[0]
    with pytest.raises(AuthFailed):
        connector.free_busy(
            [CalendarRef("google", f"ada@{DOMAIN}")], START, START + timedelta(hours=1)
        )


def test_check_names_missing_domain_wide_delegation(g: Setup) -> None:
    g.fake.delegation = False
    cals = [g.calendar("ada"), g.calendar("bob")]
    client_id = json.loads(g.connector.account.service_account_file.read_text())["client_id"]  # type: ignore[union-attr]

    lines = g.connector.check(cals)

    assert lines == [
        f"account 'google': domain-wide delegation is not set up for client id {client_id} "
        "with scope https://www.googleapis.com/auth/calendar (Google Workspace admin console: "
        "Security, API controls, Domain-wide delegation)"
    ]


def test_check_names_a_disabled_api(g: Setup) -> None:
    g.fake.api_enabled = False
    lines = g.connector.check([g.calendar("ada")])
    assert len(lines) == 1 and "Google Calendar API is not enabled" in lines[0]


def test_check_names_an_unreadable_key_file(fake: FakeGoogle, tmp_path: Path) -> None:
    config = dataclasses.replace(
        account(fake, tmp_path), service_account_file=tmp_path / "missing.json"
    )
    connector, _ = connect(fake, config)
    lines = connector.check([CalendarRef("google", fake.add_calendar(f"ada@{DOMAIN}"))])
    assert len(lines) == 1 and "cannot read the key file" in lines[0] and "missing.json" in lines[0]
    assert connector.check() == lines


def test_check_names_an_unreachable_server(tmp_path: Path) -> None:
    port = free_port()
    key = make_service_account(tmp_path, f"http://127.0.0.1:{port}/token")
    config = AccountConfig(
        id="google",
        type="google",
        service_account_file=key.path,
        api_url=f"http://127.0.0.1:{port}/",
        token_url=f"http://127.0.0.1:{port}/token",
    )
    connector = open_connector(config, UTC_ZONE, HORIZON)

    lines = connector.check([CalendarRef("google", f"ada@{DOMAIN}")])

    assert len(lines) == 1 and "cannot reach" in lines[0] and "connection refused" in lines[0]
    with pytest.raises(Unavailable):
        connector.free_busy(
            [CalendarRef("google", f"ada@{DOMAIN}")], START, START + timedelta(hours=1)
        )


# --- other credentials and TLS --------------------------------------------------------


def test_an_oauth_refresh_token_account_works_without_impersonation(
    fake: FakeGoogle, tmp_path: Path
) -> None:
    fake.register_oauth(
        "client-1.apps.googleusercontent.com", "s3cret", "1//refresh", f"office@{DOMAIN}"
    )
    token_file = tmp_path / "authorized_user.json"
    token_file.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "client-1.apps.googleusercontent.com",
                "client_secret": "s3cret",
                "refresh_token": "1//refresh",
            }
        )
    )
    config = AccountConfig(
        id="google",
        type="google",
        oauth_token_file=token_file,
        api_url=fake.api_url,
        token_url=fake.token_url,
    )
    connector, _ = connect(fake, config)
    ada, bob = (CalendarRef("google", fake.add_calendar(f"{n}@{DOMAIN}")) for n in ("ada", "bob"))

    connector.create_event(ada, meeting(1))
    connector.create_event(bob, meeting(2))
    found = connector.free_busy([ada, bob], START, START + timedelta(hours=1))
    assert found == {
        ada: FreeBusy((Busy(START + timedelta(minutes=15), START + timedelta(minutes=30)),)),
        bob: FreeBusy((Busy(START + timedelta(minutes=30), START + timedelta(minutes=45)),)),
    }

    tokens = fake.token_log()
    assert len(tokens) == 1 and tokens[0].body["grant_type"] == "refresh_token"


def test_a_private_ca_is_trusted_with_ca_file(tmp_path: Path) -> None:
    tls = make_tls_material(tmp_path)
    with running(tls.server_context()) as fake:
        config = account(fake, tmp_path)
        ada = CalendarRef("google", fake.add_calendar(f"ada@{DOMAIN}"))
        untrusting, _ = connect(fake, config)
        with pytest.raises(Unavailable):
            untrusting.free_busy([ada], START, START + timedelta(hours=1))

        trusting, _ = connect(fake, dataclasses.replace(config, ca_file=tls.ca_file))
        assert trusting.free_busy([ada], START, START + timedelta(hours=1)) == {ada: FreeBusy()}
        assert fake.api_url.startswith("https://")


def test_times_on_the_wire_are_utc_rfc3339(g: Setup) -> None:
    ada = g.calendar("ada")
    local = ZoneInfo("America/New_York")
    start = datetime(2027, 4, 13, 9, 0, tzinfo=local)
    g.connector.create_event(ada, meeting(1, start=start, end=start + timedelta(minutes=15)))
    body = calls(g.fake, "POST", "/events")[-1].body
    assert body["start"]["dateTime"] == "2027-04-13T13:00:00Z"
    assert datetime.fromisoformat(body["end"]["dateTime"]) == (
        start + timedelta(minutes=15)
    ).astimezone(UTC)
