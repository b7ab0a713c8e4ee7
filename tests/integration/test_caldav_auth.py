"""What a CalDAV server that answers 401 wants, in the sentence check, sync and /healthz show
(issue 14, item 4): read from its WWW-Authenticate challenges (RFC 7235 §4.1).

A wrong password is the real Radicale's own refusal; the other challenges come from a small
server that refuses everything with the challenges chosen (tests/support/feed_server.py),
in front of which Google's CalDAV host name is reached as through an HTTP proxy.  The
exception names the account and the host only, never a teacher's calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from caldav.lib.http_sync import requests as http

from connectors.base import CalendarRef, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import AuthFailed
from tests.support.caldav_servers import EmbeddedCalDAV, account_for, make_calendar
from tests.support.calendar_data import SCHOOL_TZ, WINDOW
from tests.support.feed_server import RefusingServer

HORIZON = Horizon(*WINDOW)
GOOGLE_CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
CALENDAR = "ada.lovelace%40school.test/events/"
PASSWORD = "s3cret-password"

#: The sentence each set of challenges gets, for an account with a user name and password.
SENTENCES = [
    pytest.param(
        ['Bearer realm="dav", error="invalid_token"'],
        "the server accepts only OAuth tokens (Bearer), not a user name and password (Basic); "
        "ptm-sync cannot sign in that way: ask the server's administrator for an app password",
        id="bearer-only",
    ),
    pytest.param(
        ["Negotiate", "NTLM"],
        "the server accepts only Windows sign-in (Negotiate/NTLM), not a user name and "
        "password (Basic); ptm-sync cannot sign in that way: "
        "ask the server's administrator for an app password",
        id="negotiate-ntlm",
    ),
    pytest.param(
        ['Basic realm="dav"'], "the server refused the user name or password (user ada)", id="basic"
    ),
]


def refused_connector(url: str, *, password: str | None = PASSWORD) -> CalDAVConnector:
    account = AccountConfig(
        id="school-dav",
        type="caldav",
        url=url,
        username="ada" if password else "",
        password=Secret(key="accounts.password", value=password) if password else None,
    )
    return CalDAVConnector(account, SCHOOL_TZ, HORIZON)


@pytest.fixture
def through_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Send plain-http requests through the proxy given (HTTP_PROXY).  niquests keeps the
    proxy settings it read first (``functools.lru_cache`` on ``getproxies``): cleared before
    and after, so that no other test sees the proxy."""
    caches = [getattr(http.utils, name) for name in ("getproxies", "getproxies_environment")]

    def use(url: str) -> None:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, url)
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        for cache in caches:
            cache.cache_clear()

    yield use
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


def refusal_of(connector: CalDAVConnector, calendar: CalendarRef) -> str:
    with pytest.raises(AuthFailed) as caught:
        connector.changes(calendar, None)
    with pytest.raises(AuthFailed):  # the account's failure, never one calendar's
        connector.free_busy([calendar], *WINDOW)
    return str(caught.value)


@pytest.mark.parametrize(("challenges", "sentence"), SENTENCES)
def test_the_refusal_says_what_the_server_wants(
    refusing_server: RefusingServer, challenges: list[str], sentence: str
) -> None:
    refusing_server.challenges = challenges
    connector = refused_connector(refusing_server.url + "dav/")
    calendar = CalendarRef("school-dav", CALENDAR)
    try:
        message = refusal_of(connector, calendar)
        (line,) = connector.check([calendar])
    finally:
        connector.close()
    assert message == f"account 'school-dav' (127.0.0.1): {sentence}"
    assert "ada.lovelace" not in message  # never a teacher's calendar (/healthz shows it)
    assert line == f"account 'school-dav' ({refusing_server.url}dav/): {sentence}"
    # The password goes as Basic only, never as a bearer token to a server that asked one.
    sent = {authorization.partition(" ")[0] for _, _, authorization in refusing_server.seen}
    assert sent <= {"Basic", ""}
    assert all(PASSWORD not in authorization for _, _, authorization in refusing_server.seen)


def test_googles_caldav_endpoint_is_sent_to_the_google_account_type(
    refusing_server: RefusingServer, through_proxy: Callable[[str], None]
) -> None:
    """Google's CalDAV (https://apidata.googleusercontent.com/caldav/v2/…) takes OAuth
    tokens only; its host is reached here through the refusing server as an HTTP proxy."""
    refusing_server.challenges = [GOOGLE_CHALLENGE]
    through_proxy(refusing_server.url)
    connector = refused_connector("http://apidata.googleusercontent.com/caldav/v2/")
    try:
        message = refusal_of(connector, CalendarRef("school-dav", CALENDAR))
    finally:
        connector.close()
    assert message == (
        "account 'school-dav' (apidata.googleusercontent.com): the server accepts only OAuth "
        "tokens (Bearer), not a user name and password (Basic): for Google Calendar use an "
        'account of type = "google"'
    )
    assert refusing_server.seen and refusing_server.seen[0][1].startswith(
        "http://apidata.googleusercontent"
    )


def test_an_account_without_credentials_is_told_so(refusing_server: RefusingServer) -> None:
    refusing_server.challenges = ['Basic realm="dav"']
    connector = refused_connector(refusing_server.url + "dav/", password=None)
    try:
        message = refusal_of(connector, CalendarRef("school-dav", CALENDAR))
    finally:
        connector.close()
    assert message == (
        "account 'school-dav' (127.0.0.1): the server asks for a user name and password and "
        "the account gives none"
    )


def test_a_wrong_password_on_radicale_stays_a_wrong_password(
    radicale_server: EmbeddedCalDAV,
) -> None:
    account = account_for(radicale_server, password=Secret(key="accounts.password", value="wrong"))
    calendar = CalendarRef(account.id, make_calendar(radicale_server))
    connector = CalDAVConnector(account, SCHOOL_TZ, HORIZON)
    try:
        message = refusal_of(connector, calendar)
    finally:
        connector.close()
    assert message == (
        "account 'dav' (127.0.0.1): the server refused the user name or password "
        f"(user {account.username})"
    )


def test_a_challenge_sent_by_the_real_server_in_front_of_it(
    caldav_server: EmbeddedCalDAV, caldav_account: AccountConfig, caldav_calendar: str
) -> None:
    """A proxy in front of the real server that turned to OAuth (the recording middleware
    answers the next requests with a Bearer challenge)."""
    caldav_server.requests.fail_next(
        "401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="sso"')], times=3
    )
    account = AccountConfig(
        id="dav",
        type="caldav",
        url=caldav_account.url,
        username="teacher",
        password=Secret(key="accounts.password", value="anything"),
    )
    connector = CalDAVConnector(account, SCHOOL_TZ, HORIZON)
    try:
        with pytest.raises(AuthFailed) as caught:
            connector.changes(CalendarRef("dav", caldav_calendar), None)
    finally:
        connector.close()
        caldav_server.requests.clear_faults()
    assert "accepts only OAuth tokens (Bearer)" in str(caught.value)
