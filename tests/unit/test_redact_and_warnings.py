"""What `check` and every error line may show: URL passwords masked, cleartext logins named
(issue 7, items 4 and 7).  Pure functions, no servers."""

from __future__ import annotations

import pytest

from ptm_sync.app.checks import cleartext_logins
from ptm_sync.config.settings import ImapConfig, Secret, SmtpConfig
from ptm_sync.ops.redact import mask_url, mask_urls


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://ptm:s3cret@dav.example.org/cal/", "https://ptm:***@dav.example.org/cal/"),
        (
            "postgresql+psycopg://ptm:p%40ss@db:5432/ptm?sslmode=require",
            "postgresql+psycopg://ptm:***@db:5432/ptm?sslmode=require",
        ),
        (
            "PROPFIND http://a:b@h/x: cannot reach http://a:b@h/x",
            "PROPFIND http://a:***@h/x: cannot reach http://a:***@h/x",
        ),
        ("https://h/feed.ics?token=abc123&x=1", "https://h/feed.ics?token=***&x=1"),
        ("https://h/f?x=1&access_token=abc#top", "https://h/f?x=1&access_token=***#top"),
        (
            "host=db user=ptm password=hunter2 dbname=ptm",
            "host=db user=ptm password=*** dbname=ptm",
        ),
        # A password typed with a raw "@", "#" or "?" (not percent-encoded) is masked whole:
        # HTTP clients take the host after the last "@".
        (
            "https://alice:Top@Secret9@127.0.0.1:9/dav/ failed",
            "https://alice:***@127.0.0.1:9/dav/ failed",
        ),
        ("postgresql://u:se@cr#et@127.0.0.1:1/x", "postgresql://u:***@127.0.0.1:1/x"),
        ("https://me@x.org:pw@host/a", "https://me@x.org:***@host/a"),
        # Nothing to hide: unchanged.
        ("https://host:8080/p@x", "https://host:8080/p@x"),
        ("https://user@dav.example.org/", "https://user@dav.example.org/"),
        ("mail to pat@example.net failed", "mail to pat@example.net failed"),
        ("https://dav.example.org/cal/?depth=1", "https://dav.example.org/cal/?depth=1"),
    ],
)
def test_mask_urls_hides_passwords_and_credential_parameters_only(text: str, masked: str) -> None:
    assert mask_urls(text) == masked
    assert mask_url(text) == masked


SECRET = Secret(key="mail.smtp.password", value="x")


@pytest.mark.parametrize(
    ("smtp", "warned"),
    [
        (SmtpConfig(host="mx", port=25, username="u", password=SECRET), True),
        (SmtpConfig(host="127.0.0.1", port=587, username="u", password=SECRET), True),
        (SmtpConfig(host="mx", port=587, starttls=True, username="u", password=SECRET), False),
        (SmtpConfig(host="mx", port=465, ssl=True, username="u", password=SECRET), False),
        (SmtpConfig(host="mx", port=25), False),  # no login: nothing to leak
        (SmtpConfig(host="mx", port=25, username="u"), False),
    ],
)
def test_an_smtp_login_without_tls_is_a_warning(smtp: SmtpConfig, warned: bool) -> None:
    found = cleartext_logins(smtp, None)
    assert bool(found) is warned, found
    if warned:
        [line] = found
        assert line.startswith("warning: mail.smtp: ") and f"{smtp.host}:{smtp.port}" in line


@pytest.mark.parametrize(
    ("imap", "warned"),
    [
        (ImapConfig(host="mx", port=143, ssl=False, username="u", password=SECRET), True),
        (
            ImapConfig(
                host="mx", port=143, ssl=False, starttls=True, username="u", password=SECRET
            ),
            False,
        ),
        (ImapConfig(host="mx", port=993, ssl=True, username="u", password=SECRET), False),
        (ImapConfig(host="mx", port=143, ssl=False, username="u"), False),
    ],
)
def test_an_imap_login_without_tls_is_a_warning(imap: ImapConfig, warned: bool) -> None:
    found = cleartext_logins(None, imap)
    assert bool(found) is warned, found
    if warned:
        assert found[0].startswith("warning: mail.imap: ") and "without TLS" in found[0]
