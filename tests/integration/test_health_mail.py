"""The mail servers' state that /healthz and /metrics report comes from the real paths.

A reader that cannot reach its IMAP server marks the process's IMAP state down; one that
logs in to Dovecot marks it up again.  The outbox's workers mark the SMTP server down when
its connections are cut and up when a delivery goes through.  (The state is process-wide:
each test moves it both ways.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ptm_sync.adapters.mail.backoff import Backoff
from ptm_sync.adapters.mail.imap import ImapReader
from ptm_sync.adapters.store import Database
from ptm_sync.core.errors import MailUnavailable
from ptm_sync.ops.metrics import PROCESS
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.faultproxy import FaultProxy
from tests.support.mailservers import Mailbox, SmtpSink
from tests.support.servers import free_port
from tests.support.wired import wire

ONCE = Backoff(first=0.01, cap=0.01, attempts=0)


def test_a_reader_that_cannot_connect_marks_imap_down_and_one_that_logs_in_marks_it_up(
    mailbox: Mailbox,
) -> None:
    PROCESS.imap_connected(True)
    nobody = ImapReader(mailbox.config(port=free_port()), timeout=5, backoff=ONCE)
    with nobody, pytest.raises(MailUnavailable):
        nobody.connect()
    assert PROCESS.imap is False

    with ImapReader(mailbox.config(), timeout=10, backoff=ONCE) as reader:
        reader.connect()
        assert PROCESS.imap is True


@pytest.mark.radicale
def test_a_mail_server_that_cuts_every_connection_is_named_down_until_it_answers(
    db: Database,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
) -> None:
    """The outbox's own deliveries say whether the SMTP server was reached (an outage: a
    refused or cut connection), for /healthz to name it."""
    wired = wire(db, radicale_server, smtp_sink(), fault_proxy)
    smtp_name = f"SMTP server {wired.smtp.host}:{wired.smtp.port}"
    wired.smtp.reset()  # every connection cut
    wired.flush()
    assert PROCESS.destinations[smtp_name] is False
    wired.smtp.clear()
    assert wired.flush().delivered > 0
    assert PROCESS.destinations[smtp_name] is True
