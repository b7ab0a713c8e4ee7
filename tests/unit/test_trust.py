"""Who may act on a meeting: signed UIDs, plus-address tokens, senders, Authentication-Results."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.imip import extract
from ptm_sync.core.trust import (
    AuthResults,
    authentication_verdict,
    make_token,
    make_uid,
    normalize_address,
    organizer_address,
    parse_authentication_results,
    sender_may_act,
    token_from_address,
    token_matches,
    uid_is_ours,
)

SECRET = b"ptm-sync-fixture-secret"
OTHER = b"another school's secret"
UID = make_uid(SECRET, "c3a1f0e29b7d4f6a", "lincoln.example.org")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imip"

# --- UIDs ---------------------------------------------------------------------------------


def test_uid_has_the_random_part_a_mac_and_the_domain() -> None:
    assert UID == "c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze@lincoln.example.org"


@pytest.mark.parametrize(
    ("secret", "uid", "ours"),
    [
        (SECRET, UID, True),
        (SECRET, make_uid(SECRET, "3f1e-uuid-with-dashes", "school.org"), True),
        (SECRET, UID.replace("wmbyrxsn7jvzeqze", "WMBYRXSN7JVZEQZE"), True),  # MAC case
        (SECRET, UID.replace("lincoln.example.org", "LINCOLN.example.org"), True),  # domain case
        (OTHER, UID, False),
        (SECRET, UID.replace("c3a1", "c3a2"), False),  # random part changed
        (SECRET, UID.replace("wmbyrxsn7jvzeqze", "wmbyrxsn7jvzeqzf"), False),  # MAC changed
        (SECRET, UID.replace("lincoln.", "evil."), False),  # domain changed
        (SECRET, "c3a1f0e29b7d4f6a@lincoln.example.org", False),  # no MAC
        (SECRET, "c3a1f0e29b7d4f6a-wmbyrxsn7jvzeqze", False),  # no domain
        (SECRET, "-wmbyrxsn7jvzeqze@lincoln.example.org", False),  # no random part
        (SECRET, "040000008200E00074C5B7101A82E00800000000", False),  # an Outlook UID
        (SECRET, "", False),
    ],
)
def test_uid_is_ours(secret: bytes, uid: str, ours: bool) -> None:
    assert uid_is_ours(secret, uid) is ours


@pytest.mark.parametrize(
    ("secret", "random_part", "domain"),
    [
        (b"", "abc", "school.org"),
        (SECRET, "", "school.org"),
        (SECRET, "a@b", "school.org"),
        (SECRET, "a b", "school.org"),
        (SECRET, "abc", ""),
        (SECRET, "abc", "x@school.org"),
    ],
)
def test_make_uid_refuses_what_could_not_be_checked(
    secret: bytes, random_part: str, domain: str
) -> None:
    with pytest.raises(ValueError):
        make_uid(secret, random_part, domain)


# --- plus-addressing tokens ---------------------------------------------------------------


def test_token_is_short_mail_safe_and_bound_to_one_meeting() -> None:
    token = make_token(SECRET, UID)
    assert token == make_token(SECRET, UID)
    assert len(token) == 16 and token.isalnum() and token == token.lower()
    assert token != make_token(SECRET, UID.replace("c3a1", "c3a2"))
    assert token != make_token(OTHER, UID)
    assert token_matches(SECRET, UID, token)
    assert token_matches(SECRET, UID, token.upper())
    assert not token_matches(SECRET, UID, token[:-1] + "x")
    assert not token_matches(OTHER, UID, token)


def test_organizer_address_carries_the_token() -> None:
    assert (
        organizer_address("conferences@lincoln.example.org", "2l4keilcnlkrump6")
        == "conferences+2l4keilcnlkrump6@lincoln.example.org"
    )


@pytest.mark.parametrize(
    ("organizer", "token"),
    [("conferences@x.org", "Bad-Token"), ("conferences@x.org", ""), ("not-an-address", "abc")],
)
def test_organizer_address_refuses_unsafe_parts(organizer: str, token: str) -> None:
    with pytest.raises(ValueError):
        organizer_address(organizer, token)


ORGANIZER = "conferences@lincoln.example.org"


@pytest.mark.parametrize(
    ("addr", "organizer", "token"),
    [
        ("conferences+2l4keilcnlkrump6@lincoln.example.org", ORGANIZER, "2l4keilcnlkrump6"),
        ("Conferences+2L4KEILCNLKRUMP6@Lincoln.Example.org", ORGANIZER, "2l4keilcnlkrump6"),
        ("mailto:conferences+abc@lincoln.example.org", ORGANIZER, "abc"),
        ("<conferences+abc@lincoln.example.org>", ORGANIZER, "abc"),
        ("conferences+ptm+abc@x.org", "conferences+ptm@x.org", "abc"),
        ("conferences@lincoln.example.org", ORGANIZER, None),
        ("conferences+@lincoln.example.org", ORGANIZER, None),
        ("conferences+abc@other.example.org", ORGANIZER, None),
        ("conferencesx+abc@lincoln.example.org", ORGANIZER, None),
        ("book+smith@lincoln.example.org", ORGANIZER, None),
        ("garbage", ORGANIZER, None),
    ],
)
def test_token_from_address(addr: str, organizer: str, token: str | None) -> None:
    assert token_from_address(addr, organizer) == token


@pytest.mark.parametrize(
    ("name", "uid_random"),
    [
        ("outlook_reply_accepted.eml", "c3a1f0e29b7d4f6a"),
        ("gmail_reply_accepted.eml", "e07a3b9c5d2f4816"),
        ("apple_mail_reply_accepted_qp.eml", "7b6d0e4f1a2c4e95"),
        ("thunderbird_reply_tentative.eml", "2f8c6a1e9d3b4c70"),
        ("proton_reply_declined_no_method_param.eml", "a4d9e1c7b2f04863"),
        ("outlook_counter_propose_new_time.eml", "51f2c8e7d0a94b6e"),
        ("gmail_counter_propose_new_time.eml", "b81f4c6a2e9d7035"),
        ("gmail_reply_propose_new_time.eml", "7d3e9a12c4b65f08"),
    ],
)
def test_client_replies_reach_a_token_only_the_invitation_showed(
    name: str, uid_random: str
) -> None:
    inbound = extract((FIXTURES / name).read_bytes(), tz=ZoneInfo("America/New_York"))
    assert inbound.itip is not None and inbound.itip.uid.startswith(uid_random)
    assert uid_is_ours(SECRET, inbound.itip.uid)
    tokens = {token_from_address(r, ORGANIZER) for r in inbound.recipients} - {None}
    assert tokens == {make_token(SECRET, inbound.itip.uid)}


# --- senders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "normal"),
    [
        ("Jane.Doe@Example.org", "jane.doe@example.org"),
        ("mailto:jane@example.org", "jane@example.org"),
        (" <jane@example.org> ", "jane@example.org"),
        ("jane+school@example.org", "jane+school@example.org"),  # other providers: kept
        ("j.a.n.e@example.org", "j.a.n.e@example.org"),
        ("Jane.Doe@gmail.com", "janedoe@gmail.com"),
        ("jane.doe+school@gmail.com", "janedoe@gmail.com"),
        ("Jane.Doe@googlemail.com", "janedoe@gmail.com"),
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_normalize_address(addr: str, normal: str) -> None:
    assert normalize_address(addr) == normal


ALIASES = {"Jane.Doe@gmail.com": ["jane@work.example.com", "JD@family.example.org"]}


@pytest.mark.parametrize(
    ("sender", "attendee", "invited", "may"),
    [
        ("jane.doe@gmail.com", "jane.doe@gmail.com", "jane.doe@gmail.com", True),
        ("JANE.DOE@GMAIL.COM", "mailto:jane.doe@gmail.com", "Jane.Doe@gmail.com", True),
        ("janedoe+cal@googlemail.com", "jane.doe@gmail.com", "jane.doe@gmail.com", True),
        ("jane@work.example.com", "jane.doe@gmail.com", "jane.doe@gmail.com", True),  # alias sends
        ("jd@family.example.org", "jd@family.example.org", "jane.doe@gmail.com", True),
        ("mallory@evil.example", "jane.doe@gmail.com", "jane.doe@gmail.com", False),
        ("jane.doe@gmail.com", "john@example.org", "jane.doe@gmail.com", False),  # other attendee
        ("jane.doe@gmail.com", "jane.doe@gmail.com", "john@example.org", False),  # not invited
        ("jane@work.example.com", "jane@work.example.com", "john@example.org", False),
        ("calendar-notification@google.com", "jane.doe@gmail.com", "jane.doe@gmail.com", False),
        ("", "jane.doe@gmail.com", "jane.doe@gmail.com", False),
        ("peter+x@example.org", "peter@example.org", "peter@example.org", False),  # not Gmail
    ],
)
def test_sender_may_act(sender: str, attendee: str, invited: str, may: bool) -> None:
    assert sender_may_act(sender, attendee, invited, ALIASES) is may


# --- Authentication-Results (RFC 8601) ----------------------------------------------------

MX = "mx.lincoln.example.org"
GMAIL_STYLE = (
    "mx.lincoln.example.org;\r\n"
    '\tdkim=pass (2048-bit key; unprotected) header.d=gmail.com header.b="Zx8;Yw7";\r\n'
    "\tspf=pass (mx.lincoln.example.org: domain of jane@gmail.com designates 209.85.220.73"
    " as permitted sender) smtp.mailfrom=jane@gmail.com;\r\n"
    "\tdmarc=pass (p=NONE sp=QUARANTINE dis=NONE) header.from=gmail.com"
)
MICROSOFT_STYLE = (
    "spf=pass (sender IP is 40.92.91.10) smtp.mailfrom=outlook.com; dkim=pass (signature was"
    " verified) header.d=outlook.com;dmarc=pass action=none header.from=outlook.com;"
    "compauth=pass reason=100"
)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (
            GMAIL_STYLE,
            AuthResults(MX, (("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass"))),
        ),
        (
            "Authentication-Results: mx.example.org 1; dkim/1=fail header.d=x.org",
            AuthResults("mx.example.org", (("dkim", "fail"),)),
        ),
        ('"Mx.Example.org" (comment; with ; semicolons); none', AuthResults("mx.example.org", ())),
        (
            "mx.example.org; spf=softfail (a (nested) comment) smtp.mailfrom=x",
            AuthResults("mx.example.org", (("spf", "softfail"),)),
        ),
        ("", None),
        ("(only a comment)", None),
    ],
)
def test_parse_authentication_results(value: str, parsed: AuthResults | None) -> None:
    assert parse_authentication_results(value) == parsed


@pytest.mark.parametrize(
    ("headers", "trusted", "verdict"),
    [
        ([GMAIL_STYLE], MX, "pass"),
        ([GMAIL_STYLE], "MX.Lincoln.Example.ORG", "pass"),
        ([GMAIL_STYLE], "", "none"),  # no trusted server configured
        ([GMAIL_STYLE], "other.example.org", "none"),  # written by somebody else
        ([f"spoofed.example; {MICROSOFT_STYLE}"], MX, "none"),
        ([f"{MX}; dmarc=fail header.from=gmail.com"], MX, "fail"),
        ([f"{MX}; dkim=pass header.d=x.org; dmarc=fail header.from=x.org"], MX, "fail"),
        ([f"{MX}; dkim=fail header.d=x.org; spf=fail smtp.mailfrom=x.org"], MX, "fail"),
        ([f"{MX}; dkim=fail header.d=x.org; spf=pass smtp.mailfrom=x.org"], MX, "pass"),
        ([f"{MX}; dkim=fail header.d=a.org; dkim=pass header.d=x.org; spf=fail"], MX, "pass"),
        ([f"{MX}; dkim=fail header.d=x.org; spf=softfail smtp.mailfrom=x.org"], MX, "none"),
        ([f"{MX}; dkim=none; spf=none; dmarc=none"], MX, "none"),
        ([f"{MX}; none"], MX, "none"),
        (
            [f"{MX}; spf=pass smtp.mailfrom=x.org", f"{MX}; dmarc=fail header.from=x.org"],
            MX,
            "fail",
        ),
        ([f"{MX}; dmarc=fail", f"{MX}; dmarc=pass"], MX, "fail"),  # a forged pass hides nothing
        ([f"{MX}; {MICROSOFT_STYLE}"], MX, "pass"),
        ([], MX, "none"),
    ],
)
def test_authentication_verdict(headers: list[str], trusted: str, verdict: str) -> None:
    assert authentication_verdict(headers, trusted) == verdict


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("gmail_reply_accepted.eml", "pass"),
        ("outlook_reply_accepted.eml", "pass"),
        ("outlook_reply_declined_comment.eml", "pass"),
        ("thunderbird_reply_tentative.eml", "none"),  # the fixture carries no such header
    ],
)
def test_verdict_on_client_messages(name: str, verdict: str) -> None:
    inbound = extract((FIXTURES / name).read_bytes(), tz=ZoneInfo("America/New_York"))
    assert authentication_verdict(inbound.authentication_results, MX) == verdict
