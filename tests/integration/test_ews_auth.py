"""What Exchange wants when it answers 401 (issue 14, item 4).

The fake answers 401 with chosen ``WWW-Authenticate`` lines (and takes only those schemes);
the connector reads them from the response exchangelib hands its retry policy and says, in
one sentence that names the account and the server's host but never a teacher's mailbox,
whether the password was wrong or the server wants another way to sign in.  The sentence is
the same from ``free_busy`` (what ``sync`` records and /healthz shows) and ``check``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from exchangelib.protocol import close_connections

from connectors.base import CalendarRef, open_connector
from connectors.ews import EWSConnector
from ptm_sync.config.settings import Secret
from ptm_sync.core.errors import AuthFailed
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, START, no_sleep
from tests.contract.system_ews import ACCOUNT, account_config
from tests.support.fake_ews import FakeEWS, running
from tests.support.mailservers import make_tls_material

ADA = "ada@school.test"
WHERE = "account ews (user LINCOLN\\ptm-sync) on Exchange at 127.0.0.1"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeEWS]:
    with running(tls=make_tls_material(tmp_path)) as server:
        server.add_mailbox(ADA)
        yield server
    close_connections()


def connect(fake: FakeEWS, **keys: object) -> EWSConnector:
    connector = open_connector(account_config(fake, **keys), ZoneInfo("UTC"), HORIZON)
    assert isinstance(connector, EWSConnector)
    connector.retry = RetryPolicy(sleep=no_sleep([]))
    return connector


def refusal(connector: EWSConnector) -> str:
    """The sentence of a free/busy read, checked to be the same in ``check``."""
    ada = CalendarRef(ACCOUNT, ADA)
    with pytest.raises(AuthFailed) as raised:
        connector.free_busy([ada], START, START + timedelta(hours=1))
    sentence = str(raised.value)
    assert connector.check([ada]) == [sentence] == connector.check()
    assert ADA not in sentence  # shown in /healthz: no teacher's address
    return sentence


@pytest.mark.parametrize(
    "challenges",
    [("Negotiate", "NTLM"), ("NTLM",), ("Negotiate",)],
    ids=["negotiate-ntlm", "ntlm", "negotiate"],
)
def test_basic_to_a_windows_sign_in_server_says_so_and_suggests_ntlm(
    fake: FakeEWS, challenges: tuple[str, ...]
) -> None:
    fake.challenge(*challenges)
    words = {
        ("Negotiate", "NTLM"): "Windows sign-in (Negotiate/NTLM)",
        ("NTLM",): "Windows sign-in (NTLM)",
        ("Negotiate",): "Windows sign-in (Negotiate)",
    }[challenges]
    assert refusal(connect(fake, auth="basic")) == (
        f"{WHERE}: the server accepts only {words}, not a user name and password (Basic): "
        'set auth = "ntlm"'
    )
    assert set(fake.auth_headers) == {"Basic"}  # the right password, the wrong scheme


def test_basic_to_an_oauth_only_server_says_it_accepts_only_oauth_tokens(fake: FakeEWS) -> None:
    fake.challenge('Bearer realm="127.0.0.1", error="invalid_token"')
    assert refusal(connect(fake, auth="basic")) == (
        f"{WHERE}: the server accepts only OAuth tokens (Bearer), not a user name and password "
        '(Basic): set auth = "oauth"'
    )


def test_a_wrong_password_stays_a_wrong_password(fake: FakeEWS) -> None:
    wrong = connect(fake, auth="basic", password=Secret(key="password", value="wrong"))
    assert refusal(wrong) == f"{WHERE}: the server refused the user name or password"
    fake.challenge("Basic", "Negotiate")  # Basic offered among others: still the password
    assert refusal(wrong) == f"{WHERE}: the server refused the user name or password"


def test_ntlm_to_a_basic_only_server_suggests_basic(fake: FakeEWS) -> None:
    fake.challenge('Basic realm="127.0.0.1"')
    assert refusal(connect(fake, auth="ntlm")) == (
        f"{WHERE}: the server accepts only a user name and password (Basic), not Windows "
        'sign-in (NTLM): set auth = "basic"'
    )
    assert "NTLM" not in fake.auth_headers  # no handshake was started


def test_oauth_to_a_windows_sign_in_server_suggests_ntlm(fake: FakeEWS) -> None:
    fake.challenge("Negotiate", "NTLM")
    assert refusal(connect(fake)) == (
        "account ews (app ews-app) on Exchange at 127.0.0.1: the server accepts only Windows "
        'sign-in (Negotiate/NTLM), not OAuth tokens (Bearer): set auth = "ntlm"'
    )


def test_ntlm_under_negotiate_signs_in_and_a_wrong_password_is_said_so(
    fake: FakeEWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the advice above leads to: requests_ntlm speaks NTLM under Negotiate.
    monkeypatch.setenv("NTLM_USER_FILE", str(fake.ntlm_user_file(tmp_path)))
    fake.challenge("Negotiate")
    connector = connect(fake, auth="ntlm")
    assert connector.check([CalendarRef(ACCOUNT, ADA)]) == []
    assert "Negotiate" in fake.auth_headers and "NTLM" not in fake.auth_headers
    wrong = connect(fake, auth="ntlm", password=Secret(key="password", value="wrong"))
    assert refusal(wrong) == f"{WHERE}: the server refused the user name or password"
