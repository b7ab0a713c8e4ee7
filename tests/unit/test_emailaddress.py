"""One email address value (ptm_sync.core.emailaddress), and the modules that compare with it."""

from __future__ import annotations

import pytest

from ptm_sync.core import trust
from ptm_sync.core.emailaddress import EmailAddress, address_of
from ptm_sync.core.ical import itip


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("jane.doe@example.org", "jane.doe@example.org"),
        ("  Jane.Doe@Example.ORG ", "jane.doe@example.org"),
        ("mailto:Jane@Example.org", "jane@example.org"),  # RFC 5545 §3.3.3 CAL-ADDRESS
        ("MAILTO:jane@example.org", "jane@example.org"),
        ("mailto: jane@example.org", "jane@example.org"),
        ("mailto:<jane@example.org>", "jane@example.org"),
        ("<mailto:jane@example.org>", "jane@example.org"),
        ("mailto:jane%2Bkids@example.org", "jane+kids@example.org"),  # RFC 6068 escapes
        ("mailto:jane@example.org?subject=Hi", "jane@example.org"),
        ("SMTP:Jane@Example.org", "jane@example.org"),  # Exchange's address type
        ("rfc822;Jane@Example.org", "jane@example.org"),  # RFC 3464 §2.3.2
        ("Jane Doe <Jane@Example.org>", "jane@example.org"),
        ("", ""),
    ],
)
def test_parse_gives_one_spelling(text: str, value: str) -> None:
    assert EmailAddress.parse(text) == EmailAddress(value)
    assert str(EmailAddress.parse(text)) == address_of(text) == value


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("jane@example.org", True),
        ("mailto:jane@example.org", True),
        ("jane", False),
        ("@example.org", False),
        ("jane@", False),
        ("jane doe@example.org", False),
        ("urn:uuid:1234", False),
    ],
)
def test_is_valid(text: str, valid: bool) -> None:
    assert EmailAddress.parse(text).is_valid is valid


def test_parts() -> None:
    address = EmailAddress.parse("mailto:Book+Smith@Lincoln.example.org")
    assert (address.local, address.domain) == ("book+smith", "lincoln.example.org")


@pytest.mark.parametrize(
    ("text", "identity"),
    [
        ("Jane.Doe+school@gmail.com", "janedoe@gmail.com"),
        ("j.a.n.e@googlemail.com", "jane@gmail.com"),
        ("jane.doe+school@outlook.com", "jane.doe+school@outlook.com"),  # only Gmail folds
        ("jane.doe@example.org", "jane.doe@example.org"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_identity_folds_only_what_gmail_ignores(text: str, identity: str) -> None:
    assert EmailAddress.parse(text).identity() == EmailAddress(identity)


def test_itip_and_trust_use_the_same_normal_form() -> None:
    text = "MAILTO:<Jane.Doe+School@GoogleMail.com>"
    assert itip.address_of(text) == EmailAddress.parse(text).value
    assert trust.normalize_address(text) == EmailAddress.parse(text).identity().value
