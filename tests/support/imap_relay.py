"""A TCP relay in front of the test Dovecot that counts IMAP commands and can cut connections.

:class:`ImapRelay` listens on 127.0.0.1 and forwards each connection to a target port.  It
notes every command line the client sends (without its tag: ``UID FETCH 1,2 (BODY.PEEK[])``,
``IDLE``, ``DONE``) before passing it on, so by the time the client has the answer the command
is counted: tests count round trips by reading :meth:`~ImapRelay.count`, never by timing.
:meth:`~ImapRelay.cut` closes every relayed connection at once, without a BYE, as a crashed
server process or a broken network would.  Over TLS the relay still relays and cuts, but sees
no commands.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress

import pytest


class ImapRelay:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.commands: list[str] = []
        self.connections = 0
        self._changed = threading.Condition()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="imap-relay", daemon=True).start()

    def count(self, command: str) -> int:
        """How many commands the clients sent that start with ``command`` (e.g. ``UID FETCH``)."""
        with self._changed:
            return self._count(command)

    def wait_for(self, command: str, times: int = 1, timeout: float = 30.0) -> bool:
        """Block until ``command`` was sent ``times`` times; False if ``timeout`` s passed."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count(command) >= times, timeout)

    def _count(self, command: str) -> int:
        return sum(1 for c in self.commands if c.upper().startswith(command.upper()))

    def cut(self) -> None:
        """Close every connection relayed so far, both ways, at once."""
        with self._changed:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        with suppress(OSError):  # wakes the thread in accept(); close() alone would not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._changed:
                self.connections += 1
                self._changed.notify_all()
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()  # nobody listens behind the relay: the client sees EOF
                continue
            upstream.settimeout(None)
            with self._changed:
                self._sockets += [client, upstream]
            for source, sink, note in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, note), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, note: bool) -> None:
        pending = b""
        try:
            while data := source.recv(65536):
                if note:
                    pending = self._note(pending + data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _note(self, data: bytes) -> bytes:
        *lines, rest = data.split(b"\r\n")
        with self._changed:
            for line in lines:
                text = line.decode("utf-8", "replace")
                if text.upper() == "DONE":
                    self.commands.append("DONE")
                elif " " in text:
                    command = text.split(" ", 1)[1]
                    # Never keep a password, not even a test one.
                    self.commands.append(
                        "LOGIN" if command.upper().startswith("LOGIN") else command
                    )
            self._changed.notify_all()
        return rest


@pytest.fixture
def imap_relay() -> Iterator[Callable[[int], ImapRelay]]:
    """Factory: ``imap_relay(port)`` relays to ``port``; every relay is closed after the test."""
    relays: list[ImapRelay] = []

    def start(target_port: int) -> ImapRelay:
        relays.append(ImapRelay(target_port))
        return relays[-1]

    yield start
    for relay in relays:
        relay.close()
