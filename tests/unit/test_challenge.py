"""What a server that answered 401 wants (connectors/challenge.py): the schemes of its
WWW-Authenticate challenges (RFC 7235 §4.1), and the sentence check, sync and /healthz show."""

from __future__ import annotations

import pytest

from connectors.challenge import AuthScheme, refusal, schemes

#: Google's CalDAV endpoint to a request without a valid OAuth token (RFC 6750 §3).
GOOGLE_CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
GOOGLE_HOST = "apidata.googleusercontent.com"


@pytest.mark.parametrize(
    ("values", "found"),
    [
        (['Basic realm="Radicale - Password Required"'], ["basic"]),
        ([GOOGLE_CHALLENGE], ["bearer"]),
        (["Negotiate", "NTLM"], ["negotiate", "ntlm"]),  # IIS: one header per scheme
        (["Negotiate, NTLM"], ["negotiate", "ntlm"]),  # …joined by the HTTP client
        (['Digest realm="x", qop="auth", nonce="a,b", algorithm=MD5'], ["digest"]),
        (['Basic realm="a, Bearer b"'], ["basic"]),  # a scheme's name inside a quoted value
        (['Basic realm="say \\"Bearer\\""'], ["basic"]),  # escaped quotes stay inside
        (["Negotiate YIIBhgYGKwYBBQUCoIIBejCC=="], ["negotiate"]),  # token68, padding
        (
            ['Newauth realm="apps", type=1, title="Login", Basic realm="simple"'],
            ["newauth", "basic"],
        ),
        (['Bearer error = "invalid_token", Basic realm="x"'], ["bearer", "basic"]),
        (["BASIC realm=x", "basic realm=y"], ["basic"]),  # case-insensitive, each once
        ([None, ""], []),
        ([], []),
    ],
)
def test_the_schemes_of_a_challenge_are_read_in_order(
    values: list[str | None], found: list[str]
) -> None:
    assert schemes(values) == found


def test_a_password_the_server_takes_is_a_wrong_password() -> None:
    for challenge in ('Basic realm="x"', 'Digest realm="x"', "Basic, Bearer", None):
        assert refusal([challenge], sent=AuthScheme.BASIC) == (
            "the server refused the user name or password"
        )
    assert refusal(['Basic realm="x"'], sent=AuthScheme.DIGEST) == (
        "the server refused the user name or password"
    )


def test_only_unknown_schemes_say_nothing_more_than_a_refusal() -> None:
    assert refusal(["Newauth realm=x"], sent=AuthScheme.BASIC) == (
        "the server refused the user name or password"
    )


def test_a_refused_token_is_said_as_such() -> None:
    assert refusal([GOOGLE_CHALLENGE], sent=AuthScheme.BEARER) == (
        "the server refused the access token"
    )


def test_google_caldav_is_sent_to_the_google_account_type() -> None:
    assert refusal([GOOGLE_CHALLENGE], sent=AuthScheme.BASIC, host=GOOGLE_HOST) == (
        "the server accepts only OAuth tokens (Bearer), not a user name and password (Basic): "
        'for Google Calendar use an account of type = "google"'
    )
    assert refusal([GOOGLE_CHALLENGE], sent=AuthScheme.BASIC, host="www.google.com").endswith(
        'use an account of type = "google"'
    )


def test_another_oauth_only_server_is_one_ptm_sync_cannot_use_with_a_password() -> None:
    assert refusal(['Bearer realm="dav"'], sent=AuthScheme.BASIC, host="dav.school.test") == (
        "the server accepts only OAuth tokens (Bearer), not a user name and password (Basic); "
        "ptm-sync cannot sign in that way: ask the server's administrator for an app password"
    )


def test_windows_sign_in_is_named_once() -> None:
    assert refusal(["Negotiate", "NTLM"], sent=AuthScheme.BASIC) == (
        "the server accepts only Windows sign-in (Negotiate/NTLM), not a user name and "
        "password (Basic); ptm-sync cannot sign in that way: "
        "ask the server's administrator for an app password"
    )
    assert refusal(["NTLM"], sent=AuthScheme.BASIC) == (
        "the server accepts only Windows sign-in (NTLM), not a user name and password "
        "(Basic); ptm-sync cannot sign in that way: "
        "ask the server's administrator for an app password"
    )


def test_a_usable_scheme_names_the_setting_that_chooses_it() -> None:
    ews = {AuthScheme.NTLM: "ntlm", AuthScheme.BEARER: "oauth"}
    assert refusal(["NTLM"], sent=AuthScheme.BASIC, usable=ews, option="auth") == (
        "the server accepts only Windows sign-in (NTLM), not a user name and password "
        '(Basic): set auth = "ntlm"'
    )
    assert refusal(['Bearer realm="x"'], sent=AuthScheme.NTLM, usable=ews, option="auth") == (
        "the server accepts only OAuth tokens (Bearer), not Windows sign-in (NTLM): "
        'set auth = "oauth"'
    )
    assert refusal(["NTLM"], sent=AuthScheme.BASIC, usable=ews) == (
        "the server accepts only Windows sign-in (NTLM), not a user name and password (Basic)"
    )


def test_the_sentence_names_no_account_and_no_secret() -> None:
    sentence = refusal(
        [
            'Bearer realm="https://accounts.google.com/", error="invalid_token", '
            'error_description="token s3cret expired"'
        ],
        sent=AuthScheme.BASIC,
        host=GOOGLE_HOST,
    )
    assert "s3cret" not in sentence and "realm" not in sentence and "\n" not in sentence


def test_a_host_that_only_ends_in_the_same_letters_is_not_google() -> None:
    sentence = refusal(['Bearer realm="x"'], sent=AuthScheme.BASIC, host="dav.notgoogle.com")
    assert "Google" not in sentence
