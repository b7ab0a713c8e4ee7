"""The running daemon tells staff about mail it could not use (issue 9, item 8).

A message that can never be used lands in quarantine before the daemon starts; the daemon,
with ``[notify] staff_digest = "daily"`` (the default), queues and sends that day's digest to
``school.contact`` by itself, once, naming the message's reason.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.mailservers import SmtpSink
from tests.support.school import CONTACT, School, parse, plain_body, to_address
from tests.support.servers import free_port

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

#: Only stops a hung test; nothing here measures time.
PATIENCE = 60.0


def test_the_daemon_sends_staff_the_digest_of_quarantined_mail(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    school = School(
        tmp_path,
        radicale_server,
        sink.port,
        extra_config=f'\n[web]\nlisten = "127.0.0.1:{free_port()}"\n',
    )
    school.setup()
    junk = (
        b"From: someone@example.net\r\nTo: conferences@lincoln.example.org\r\n"
        b"Subject: hello\r\nMessage-ID: <junk-1@example.net>\r\n\r\nNo calendar here.\r\n"
    )
    school.run("mail", "deliver", stdin=junk)
    assert school.run("quarantine", "--format", "json").json(), "nothing was quarantined"

    daemon = subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(school.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + PATIENCE
        digests: list[bytes] = []
        while time.monotonic() < deadline and not digests:
            digests = [m.raw for m in sink.received if to_address(m.raw) == CONTACT]
            time.sleep(0.2)
        assert digests, "the daemon never sent the digest"
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=PATIENCE)
    assert daemon.returncode == 0 and "Traceback" not in err, err
    [digest] = digests
    assert "needs attention" in str(parse(digest)["Subject"])
    body = plain_body(digest)
    assert "someone@example.net" in body and "No calendar here" not in body
