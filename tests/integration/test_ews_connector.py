"""The EWS connector: exchangelib, unchanged, against the fake EWS server on 127.0.0.1.

What is asserted is what Exchange documents: GetUserAvailability takes at most 100 mailboxes
and a 42-day TimeWindow; SyncFolderItems pages until IncludesLastItemInRange; ErrorServerBusy
carries BackOffMilliseconds; nothing we write invites anybody (SendToNone, no attendees).
"""

from __future__ import annotations

import base64
import logging
import math
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from exchangelib.protocol import close_connections

import connectors.ews
from connectors.base import CalendarRef, FreeBusy, MeetingEvent, open_connector
from connectors.ews import EWSConnector
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.core.model import Busy, Interval
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.contract.system_ews import ACCOUNT, account_config
from tests.contract.system_ews import start as start_system
from tests.support.fake_ews import FakeEWS, M, T, running
from tests.support.mailservers import make_tls_material

ADA = "ada@school.test"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeEWS]:
    # On https with a private CA (ca_file): OAuth needs TLS, and TLS is how Exchange runs.
    with running(tls=make_tls_material(tmp_path)) as server:
        server.add_mailbox(ADA)
        yield server
    close_connections()  # exchangelib keeps Protocol objects per endpoint: drop this one's


def connect(fake: FakeEWS, **keys: object) -> tuple[EWSConnector, list[float]]:
    connector = open_connector(account_config(fake, **keys), ZoneInfo("UTC"), HORIZON)
    assert isinstance(connector, EWSConnector)
    waits: list[float] = []
    connector.retry = RetryPolicy(sleep=no_sleep(waits))
    return connector, waits


@pytest.fixture
def ews(fake: FakeEWS) -> Iterator[EWSConnector]:
    connector, _ = connect(fake)
    yield connector
    connector.close()


def cal(address: str = ADA) -> CalendarRef:
    return CalendarRef(ACCOUNT, address)


def meeting(uid: str = "meeting-1@ptm-sync", **changes: object) -> MeetingEvent:
    event = MeetingEvent(
        uid=uid,
        start=START + timedelta(hours=2),
        end=START + timedelta(hours=2, minutes=15),
        summary="Conference: Ben (Ms Ray)",
        description="Parent-teacher conference",
        location="Room 12",
        attendees=(),
    )
    return replace(event, **changes)  # type: ignore[arg-type]


# --- free/busy -----------------------------------------------------------------------------


def test_150_mailboxes_take_two_availability_requests_of_at_most_100(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    refs = [cal(f"t{n}@school.test") for n in range(150)]
    for ref in refs:
        fake.add_mailbox(ref.calendar)
    fake.add_appointment(refs[120].calendar, START, START + timedelta(hours=1))

    found = ews.free_busy(refs, START - timedelta(days=1), START + timedelta(days=7))

    calls = fake.actions("GetUserAvailabilityRequest")
    sizes = [len(c.body.findall(f"{{{M}}}MailboxDataArray/{{{T}}}MailboxData")) for c in calls]
    assert sorted(sizes) == [50, 100]
    assert set(found) == set(refs)
    assert found[refs[120]] == FreeBusy((Busy(START, START + timedelta(hours=1)),))
    assert all(found[ref] == FreeBusy() for ref in refs if ref != refs[120])


def test_a_60_day_range_is_asked_in_windows_of_at_most_42_days(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    early, late = START + timedelta(days=3), START + timedelta(days=50)
    fake.add_appointment(ADA, early, early + timedelta(hours=1))
    fake.add_appointment(ADA, late, late + timedelta(hours=1))
    # Across the end of the range: clipped to it.
    fake.add_appointment(ADA, START + timedelta(days=60, hours=-1), START + timedelta(days=61))

    found = ews.free_busy([cal()], START, START + timedelta(days=60))

    windows = []
    for call in fake.actions("GetUserAvailabilityRequest"):
        window = call.body.find(f"{{{T}}}FreeBusyViewOptions/{{{T}}}TimeWindow")
        first = datetime.fromisoformat(window.findtext(f"{{{T}}}StartTime").replace("Z", "+00:00"))
        last = datetime.fromisoformat(window.findtext(f"{{{T}}}EndTime").replace("Z", "+00:00"))
        windows.append((first, last))
    assert len(windows) == 2
    assert all(last - first <= timedelta(days=42) for first, last in windows)
    assert min(w[0] for w in windows) == START and max(w[1] for w in windows) == START + timedelta(
        days=60
    )
    answer = found[cal()]
    assert isinstance(answer, FreeBusy) and answer.unknown == ()
    spans = sorted((b.start, b.end) for b in answer.busy)
    assert spans[:2] == [(early, early + timedelta(hours=1)), (late, late + timedelta(hours=1))]
    assert spans[2][1] == START + timedelta(days=60)


def test_the_fake_refuses_101_mailboxes_and_43_days(
    fake: FakeEWS, ews: EWSConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [cal(f"t{n}@school.test") for n in range(101)]
    monkeypatch.setattr(connectors.ews, "MAX_MAILBOXES", 101)
    with pytest.raises(ConnectorError, match="Exchange answered") as raised:
        ews.free_busy(refs, START, START + timedelta(days=1))
    assert not isinstance(raised.value, Unavailable)  # (exchangelib reads ErrorInvalidRequest
    # as a schema-version mismatch: its ErrorInvalidSchemaVersionForMailboxVersion)
    monkeypatch.setattr(connectors.ews, "MAX_MAILBOXES", 100)
    monkeypatch.setattr(connectors.ews, "MAX_WINDOW", timedelta(days=43))
    with pytest.raises(ConnectorError, match="ErrorTimeIntervalTooBig"):
        ews.free_busy([cal()], START, START + timedelta(days=43))


def test_busy_types_tentative_free_and_no_data(fake: FakeEWS, ews: EWSConnector) -> None:
    hour = timedelta(hours=1)
    for n, status in enumerate(["Busy", "Tentative", "OOF", "Free", "WorkingElsewhere", "NoData"]):
        fake.add_appointment(ADA, START + n * hour, START + (n + 1) * hour, status)

    found = ews.free_busy([cal()], START, START + timedelta(days=1))

    assert found[cal()] == FreeBusy(
        (
            Busy(START, START + hour),
            Busy(START + hour, START + 2 * hour, tentative=True),
            Busy(START + 2 * hour, START + 3 * hour),
        ),
        (Interval(START + 5 * hour, START + 6 * hour),),  # NoData: unknown, never free
    )
    options = fake.actions("GetUserAvailabilityRequest")[0].body.find(f"{{{T}}}FreeBusyViewOptions")
    assert options.findtext(f"{{{T}}}RequestedView") == "FreeBusyMerged"
    assert options.findtext(f"{{{T}}}MergedFreeBusyIntervalInMinutes") == "5"


def test_an_unknown_mailbox_is_its_own_not_found_by_name(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.add_appointment(ADA, START, START + timedelta(hours=1))
    nobody = cal("nobody@school.test")

    found = ews.free_busy([cal(), nobody], START, START + timedelta(days=1))

    assert isinstance(found[nobody], NotFound)
    assert str(found[nobody]) == (
        "mailbox nobody@school.test: not found on Exchange (ErrorMailRecipientNotFound)"
    )
    assert found[cal()] == FreeBusy((Busy(START, START + timedelta(hours=1)),))
    assert len(fake.actions("GetUserAvailabilityRequest")) == 1


# --- change feed ---------------------------------------------------------------------------


def test_sync_folder_items_pages_to_the_end_and_gives_a_new_sync_state(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    refs = {}
    for n in range(5):
        event = meeting(
            f"m{n}@ptm-sync",
            start=START + timedelta(hours=n),
            end=START + timedelta(hours=n, minutes=15),
        )
        refs[event.uid] = ews.create_event(cal(), event)
    fake.add_appointment(ADA, START, START + timedelta(hours=1))  # the teacher's: not ours
    fake.page_size = 2
    before = len(fake.actions("SyncFolderItems"))

    first = ews.changes(cal(), None)

    pages = fake.actions("SyncFolderItems")[before:]
    assert len(pages) == 3  # 6 items, 2 a page
    assert all(p.body.findtext(f"{{{M}}}MaxChangesReturned") for p in pages)
    assert first.full and first.token
    assert {e.href for e in first.changed} == {r.href for r in refs.values()}
    assert all(
        f"UID:{uid}" in next(e.ics for e in first.changed if e.href == r.href)
        for uid, r in refs.items()
    )
    assert {e.etag for e in first.changed} == {r.etag for r in refs.values()}

    idle = ews.changes(cal(), first.token)
    assert (idle.changed, idle.removed, idle.full) == ((), (), False)
    assert idle.token and idle.token != first.token
    assert len(fake.actions("SyncFolderItems")) == before + 4  # idle: one request

    moved = refs["m1@ptm-sync"]
    fake.move(ADA, moved.href, START + timedelta(days=1), START + timedelta(days=1, minutes=15))
    fake.delete(ADA, refs["m2@ptm-sync"].href)
    later = ews.changes(cal(), idle.token)
    assert [e.href for e in later.changed] == [moved.href]
    assert "DTSTART:20270414T130000Z" in later.changed[0].ics
    assert later.removed == (refs["m2@ptm-sync"].href,)


def test_a_forgotten_sync_state_is_sync_token_invalid(fake: FakeEWS, ews: EWSConnector) -> None:
    token = ews.changes(cal(), None).token
    assert token
    fake.forget_sync_states()
    with pytest.raises(SyncTokenInvalid):
        ews.changes(cal(), token)
    assert ews.changes(cal(), None).full


# --- throttling ----------------------------------------------------------------------------


def test_server_busy_back_off_is_waited_when_short_and_raised_when_long(fake: FakeEWS) -> None:
    connector, waits = connect(fake)
    fake.server_busy(1500)
    assert connector.free_busy([cal()], START, START + timedelta(days=1)) == {cal(): FreeBusy()}
    assert waits == [1.5]

    fake.server_busy(300_000)
    with pytest.raises(Unavailable) as raised:
        connector.free_busy([cal()], START, START + timedelta(days=1))
    assert raised.value.retry_after == 300
    assert waits == [1.5]


@pytest.mark.parametrize("status", [429, 503])
def test_http_retry_after_is_honoured(fake: FakeEWS, status: int) -> None:
    connector, waits = connect(fake)
    fake.http_error(status, "2")
    assert connector.changes(cal(), None).full
    assert waits == [2.0]
    fake.http_error(status, "3600")
    with pytest.raises(Unavailable) as raised:
        connector.free_busy([cal()], START, START + timedelta(days=1))
    assert raised.value.retry_after == 3600


# --- writes --------------------------------------------------------------------------------


def test_writes_invite_nobody(fake: FakeEWS, ews: EWSConnector) -> None:
    ref = ews.create_event(cal(), meeting())
    ref = ews.update_event(cal(), ref, meeting(summary="Moved"))
    ews.delete_event(cal(), ref)

    (create,) = fake.actions("CreateItem")
    assert create.attrs["SendMeetingInvitations"] == "SendToNone"
    assert create.mailbox == ADA  # ExchangeImpersonation of the teacher's mailbox
    item = create.body.find(f"{{{M}}}Items/{{{T}}}CalendarItem")
    names = {child.tag.split("}")[1] for child in item}
    assert not names & {"RequiredAttendees", "OptionalAttendees", "Resources"}
    assert item.findtext(f"{{{T}}}Sensitivity") == "Private"
    assert item.findtext(f"{{{T}}}UID") == "meeting-1@ptm-sync"
    assert item.findtext(f"{{{T}}}Body") == "Parent-teacher conference"
    assert item.findtext(f"{{{T}}}Location") == "Room 12"
    (update,) = fake.actions("UpdateItem")
    assert update.attrs["SendMeetingInvitationsOrCancellations"] == "SendToNone"
    assert update.attrs["ConflictResolution"] == "NeverOverwrite"
    (delete,) = fake.actions("DeleteItem")
    assert delete.attrs["SendMeetingCancellations"] == "SendToNone"
    assert fake.mailboxes[ADA].items == {}


def test_create_is_idempotent_by_uid(fake: FakeEWS, ews: EWSConnector) -> None:
    first = ews.create_event(cal(), meeting())
    again = ews.create_event(cal(), meeting())
    assert again == first
    assert len(fake.actions("CreateItem")) == 1

    changed = ews.create_event(cal(), meeting(location="Room 7"))
    assert changed.href == first.href and changed.etag != first.etag
    assert len(fake.actions("CreateItem")) == 1 and len(fake.actions("UpdateItem")) == 1
    assert fake.mailboxes[ADA].items[first.href].props["Location"] == "Room 7"


def test_update_on_a_stale_change_key(fake: FakeEWS, ews: EWSConnector) -> None:
    ref = ews.create_event(cal(), meeting())
    fake.move(ADA, ref.href, START + timedelta(days=2), START + timedelta(days=2, minutes=15))
    with pytest.raises(WrongEtag):
        ews.update_event(cal(), ref, meeting(summary="Other"))

    # Our own earlier write whose change key was not recorded: the write is done.
    current = ews.create_event(cal(), meeting(summary="New"))
    assert ews.update_event(cal(), ref, meeting(summary="New")) == current


def test_gone_events(fake: FakeEWS, ews: EWSConnector) -> None:
    ref = ews.create_event(cal(), meeting())
    fake.delete(ADA, ref.href)
    with pytest.raises(NotFound):
        ews.update_event(cal(), ref, meeting(summary="Other"))
    ews.delete_event(cal(), ref)  # absent: success
    again = ews.create_event(cal(), meeting())
    fake.move(ADA, again.href, START + timedelta(days=2), START + timedelta(days=2, minutes=15))
    with pytest.raises(WrongEtag):
        ews.delete_event(cal(), again)


# --- authentication and TLS ----------------------------------------------------------------


def test_basic_auth_and_a_wrong_password(fake: FakeEWS) -> None:
    connector, _ = connect(fake, auth="basic")
    assert connector.check([cal()]) == []
    assert set(fake.auth_headers) == {"Basic"}

    wrong, _ = connect(fake, auth="basic", password=Secret(key="password", value="wrong"))
    sentence = (
        "account ews (user LINCOLN\\ptm-sync) on Exchange at 127.0.0.1: "
        "the server refused the user name or password"
    )
    assert wrong.check([cal()]) == [sentence]
    assert wrong.check() == [sentence]
    with pytest.raises(AuthFailed) as raised:
        wrong.free_busy([cal()], START, START + timedelta(days=1))
    assert str(raised.value) == sentence


def test_no_password_token_or_meeting_text_in_the_log(
    fake: FakeEWS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic, _ = connect(fake, auth="basic")
    basic.create_event(cal(), meeting())
    oauth, _ = connect(fake)
    oauth.free_busy([cal()], START, START + timedelta(days=1))
    basic_header = base64.b64encode(f"{fake.username}:{fake.password}".encode()).decode()
    secrets = [fake.password, basic_header, fake.client_secret, *fake.tokens, "Parent-teacher"]
    assert fake.tokens and not [s for s in secrets if s in caplog.text]


def test_ntlm_handshake(fake: FakeEWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake accepts NTLM with pyspnego's acceptor, which reads the accounts from the file
    # NTLM_USER_FILE names.
    monkeypatch.setenv("NTLM_USER_FILE", str(fake.ntlm_user_file(tmp_path)))
    connector, _ = connect(fake, auth="ntlm")
    assert connector.check([cal()]) == []
    connector.create_event(cal(), meeting())
    assert "NTLM" in fake.auth_headers and "Basic" not in fake.auth_headers
    assert len(fake.actions("CreateItem")) == 1

    wrong, _ = connect(fake, auth="ntlm", password=Secret(key="password", value="wrong"))
    assert wrong.check([cal()]) == [
        "account ews (user LINCOLN\\ptm-sync) on Exchange at 127.0.0.1: "
        "the server refused the user name or password"
    ]


def test_oauth_token_from_token_url_renewed_once(fake: FakeEWS, ews: EWSConnector) -> None:
    ews.free_busy([cal()], START, START + timedelta(days=1))
    assert len(fake.token_requests) == 1
    form = fake.token_requests[0]
    assert form["grant_type"] == ["client_credentials"] and form["client_id"] == [fake.client_id]
    assert set(fake.auth_headers) == {"Bearer"}

    fake.expire_tokens()
    ews.free_busy([cal()], START, START + timedelta(days=1))
    assert len(fake.token_requests) > 1  # a new token, and the call went through

    fake.refuse_tokens = True
    before = len(fake.auth_headers)  # every request to the EWS path, answered or refused
    with pytest.raises(AuthFailed, match=r"app ews-app.*: the server refused the access token$"):
        ews.free_busy([cal()], START, START + timedelta(days=1))
    assert len(fake.auth_headers) - before == 2  # renewed once, then given up
    fake.refuse_tokens = False

    wrong, _ = connect(fake, client_secret=Secret(key="client_secret", value="wrong"))
    with pytest.raises(AuthFailed, match="client secret"):
        wrong.free_busy([cal()], START, START + timedelta(days=1))
    assert "refused" in wrong.check([cal()])[0]


def test_tls_with_a_private_ca(fake: FakeEWS) -> None:
    assert fake.url.startswith("https://") and fake.ca_file is not None
    trusted, _ = connect(fake, auth="basic")
    assert trusted.check([cal()]) == []
    trusted.create_event(cal(), meeting())
    assert len(fake.actions("CreateItem")) == 1
    close_connections()

    # Another endpoint of the same server without ca_file (the bundles are per origin).
    url = fake.url.replace("127.0.0.1", "localhost")
    untrusted, _ = connect(fake, auth="basic", url=url, ca_file=None)
    assert untrusted.check([cal()]) == [
        f"account ews: the TLS certificate of {url} is not trusted (set ca_file to the "
        "private certificate authority)"
    ]


# --- check ---------------------------------------------------------------------------------


def test_check_lines(fake: FakeEWS, ews: EWSConnector) -> None:
    fake.add_mailbox("bob@school.test")
    fake.denied.add("bob@school.test")
    assert ews.check([cal(), cal("bob@school.test"), cal("nobody@school.test")]) == [
        "account ews: app ews-app has no ApplicationImpersonation right on "
        "bob@school.test (or no delegate access)",
        "account ews: mailbox nobody@school.test not found on Exchange",
    ]
    assert ews.check() == []


def test_check_a_url_that_is_not_the_ews_endpoint(fake: FakeEWS) -> None:
    url = fake.url.replace("/EWS/Exchange.asmx", "/owa/")
    connector, _ = connect(fake, auth="basic", url=url)
    assert connector.check([cal()]) == [
        f"account ews: {url} answered 404 Not Found: url must be the EWS endpoint "
        "(https://…/EWS/Exchange.asmx)"
    ]


def test_check_an_unreachable_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    account = AccountConfig(
        id=ACCOUNT,
        type="ews",
        url=f"http://127.0.0.1:{port}/EWS/Exchange.asmx",
        auth="basic",
        username="LINCOLN\\ptm-sync",
        password=Secret(key="password", value="x"),
    )
    connector = open_connector(account, ZoneInfo("UTC"), HORIZON)
    assert connector.check([cal()]) == [
        f"account ews: cannot reach Exchange at http://127.0.0.1:{port}/EWS/Exchange.asmx: "
        "connection refused"  # the server's outage, not one teacher's
    ]
    close_connections()


# --- requests per pass ---------------------------------------------------------------------


def test_requests_per_full_and_idle_free_busy_pass_for_500_mailboxes(
    fake: FakeEWS, ews: EWSConnector
) -> None:
    refs = [cal(f"t{n}@school.test") for n in range(500)]
    for ref in refs:
        fake.add_mailbox(ref.calendar)
    span = (START, START + timedelta(days=28))

    before = len(fake.log)
    ews.free_busy(refs, *span)
    full = len(fake.log) - before
    before = len(fake.log)
    ews.free_busy(refs, *span)
    idle = len(fake.log) - before

    minimum = math.ceil(500 / 100)
    assert full == idle == minimum
    print(f"EWS, 500 mailboxes: full pass {full} requests, idle pass {idle} (minimum {minimum})")


def test_the_contract_system_plays_teacher_and_server(tmp_path: Path) -> None:
    with start_system(tmp_path) as system:
        ref_cal = system.calendar("ada")
        system.add_busy(ref_cal, START, START + timedelta(hours=1), tentative=True)
        answer = system.connector.free_busy([ref_cal], START, START + timedelta(hours=2))[ref_cal]
        assert isinstance(answer, FreeBusy)
        (busy,) = answer.busy
        assert busy.tentative
        ref = system.connector.create_event(ref_cal, meeting())
        token = system.connector.changes(ref_cal, None).token
        system.teacher_moves(
            ref_cal, ref, START + timedelta(days=1), START + timedelta(days=1, hours=1)
        )
        assert system.expire_access_tokens()
        (moved,) = system.connector.changes(ref_cal, token).changed
        assert moved.href == ref.href and moved.etag != ref.etag
        system.forget_sync_tokens()
        with pytest.raises(SyncTokenInvalid):
            system.connector.changes(ref_cal, token)
        system.teacher_deletes(ref_cal, ref)
        assert system.connector.changes(ref_cal, None).changed == ()
        assert system.requests() > 0
