"""A fault-injecting TCP proxy: a real server behind it, and faults on command.

:class:`FaultProxy` listens on 127.0.0.1 and forwards every connection to a real server
(Radicale, aiosmtpd, Dovecot, PostgreSQL).  On command it:

* ``delay(seconds)``: holds every chunk that passes, in both directions, that long;
* ``reset()``: cuts every open connection with a TCP RST and resets new ones at once;
* ``half_open()``: accepts new connections and never answers them (nor reads what they
  send), as a server whose process hangs; they stay so even after ``clear()``;
* ``freeze()``: stops all traffic on every connection, open or new, until ``clear()``,
  when it flows again as if nothing happened (a stalled network or a paused server);
* ``clear()``: forwards normally again.

``accepted`` counts connections; ``stalled`` is how many connections are now waiting on a
fault (frozen or half-open), which lets a test see that a client is stuck *right now*
without measuring time.  The ``fault_proxy`` fixture makes proxies that stop after the test.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress

import pytest

PASS, DELAY, RESET, HALF_OPEN, FREEZE = "pass", "delay", "reset", "half-open", "freeze"


def _rst(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout).

    The socket is shut for reading first: a pump thread blocked in ``recv()`` on it holds
    the kernel's socket, and a bare ``close()`` would then send nothing at all (the peer, a
    database server holding locks for an open transaction, would wait for ever)."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with suppress(OSError):
        sock.close()


class _Link:
    """One client connection and, once made, its connection to the server."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.server: socket.socket | None = None
        self.cut = False

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.server) if s is not None]


class FaultProxy:
    """A TCP proxy from 127.0.0.1:``port`` to ``target`` (host, port) with faults on command."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._cv = threading.Condition()
        self._mode = PASS
        self._delay = 0.0
        self._links: list[_Link] = []
        self._stalled = 0
        self.accepted = 0
        self._stopped = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    # --- commands -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def stalled(self) -> int:
        with self._cv:
            return self._stalled

    def delay(self, seconds: float) -> None:
        self._set(DELAY, seconds)

    def reset(self) -> None:
        self._set(RESET)
        with self._cv:
            links, self._links = self._links, []
        for link in links:
            link.cut = True
            for sock in link.sockets():
                _rst(sock)

    def half_open(self) -> None:
        self._set(HALF_OPEN)

    def freeze(self) -> None:
        self._set(FREEZE)

    def clear(self) -> None:
        self._set(PASS)

    def wait_stalled(self, count: int = 1, timeout: float = 60.0) -> None:
        """Wait until ``count`` connections are stuck on the fault (``timeout``: a hang
        guard only)."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._stalled >= count, timeout):
                raise AssertionError(f"{self._stalled} connection(s) stalled, {count} expected")

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            links, self._links = self._links, []
            self._cv.notify_all()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
        with suppress(OSError):
            self._listener.close()
        for link in links:
            for sock in link.sockets():
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv()
                with suppress(OSError):
                    sock.close()
        self._thread.join(timeout=5)

    def _set(self, mode: str, delay: float = 0.0) -> None:
        with self._cv:
            self._mode, self._delay = mode, delay
            self._cv.notify_all()

    # --- the forwarding -------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            with self._cv:
                if self._stopped:
                    client.close()
                    return
                self.accepted += 1
                mode = self._mode
                link = _Link(client)
                if mode != RESET:
                    self._links.append(link)
            if mode == RESET:
                _rst(client)
                continue
            threading.Thread(target=self._open, args=(link, mode), daemon=True).start()

    def _hold(self, while_: Callable[[], bool], link: _Link) -> bool:
        """Wait (counted as stalled) while ``while_()``; False when the link was cut."""
        with self._cv:
            if not while_() or link.cut or self._stopped:
                return not (link.cut or self._stopped)
            self._stalled += 1
            self._cv.notify_all()
            try:
                self._cv.wait_for(lambda: not while_() or link.cut or self._stopped)
            finally:
                self._stalled -= 1
            return not (link.cut or self._stopped)

    def _open(self, link: _Link, mode: str) -> None:
        if mode == HALF_OPEN:
            # Never answered, never read: held until the proxy stops.
            self._hold(lambda: True, link)
            return
        if not self._hold(lambda: self._mode == FREEZE, link):
            return
        try:
            server = socket.create_connection(self.target, timeout=10)
        except OSError:
            _rst(link.client)
            return
        server.settimeout(None)
        link.server = server
        for src, dst in ((link.client, server), (server, link.client)):
            threading.Thread(target=self._pump, args=(link, src, dst), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    with suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                if not self._hold(lambda: self._mode == FREEZE, link):
                    return
                if self._mode == DELAY and self._delay:
                    time.sleep(self._delay)
                dst.sendall(data)
        except OSError:
            for sock in link.sockets():
                with suppress(OSError):
                    sock.close()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[tuple[str, int]], FaultProxy]]:
    """Factory: ``fault_proxy((host, port))`` → a :class:`FaultProxy` to that server."""
    proxies: list[FaultProxy] = []

    def make(target: tuple[str, int]) -> FaultProxy:
        proxy = FaultProxy(target)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
