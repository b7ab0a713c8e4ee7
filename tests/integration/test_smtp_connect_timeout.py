"""A mail server that cannot be reached costs the short connect timeout, not the long reply one.

A listening socket whose queue is full (it never accepts) drops new connections' SYNs, as an
overloaded or firewalled server does: the connection never completes.  The sender gives up
after :data:`ptm_sync.adapters.mail.smtp.CONNECT_SECONDS`, however long ``[mail.smtp] timeout``
lets it wait for a reply.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ptm_sync.adapters.mail import smtp
from ptm_sync.adapters.mail.smtp import SmtpSender
from ptm_sync.config.settings import SmtpConfig
from ptm_sync.core.errors import MailUnavailable

#: A hang guard only; the reply timeout below is far longer.
GUARD = 30.0


@pytest.fixture
def unreachable() -> Iterator[tuple[str, int]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address: tuple[str, int] = listener.getsockname()
    fillers: list[socket.socket] = []
    while True:  # fill the queue: from then on, connections never complete
        try:
            fillers.append(socket.create_connection(address, timeout=0.5))
        except TimeoutError:
            break
        assert len(fillers) < 50, "the listen queue never filled"
    yield address
    for sock in fillers:
        sock.close()
    listener.close()


def test_connecting_gives_up_after_the_connect_timeout(
    unreachable: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp, "CONNECT_SECONDS", 0.5)
    host, port = unreachable
    sender = SmtpSender(SmtpConfig(host=host, port=port, timeout=3600.0))
    failures: list[BaseException] = []

    def send() -> None:
        try:
            sender.send(b"Subject: x\r\n\r\nx\r\n", sender="a@b.example", recipients=["c@d.org"])
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(GUARD)
    assert not worker.is_alive(), "still connecting: the reply timeout was used to connect"
    assert len(failures) == 1 and isinstance(failures[0], MailUnavailable)
    assert "timed out" in str(failures[0])
