"""The fault-injecting proxy itself, in front of a small echo server: each fault does what
the tests that use it rely on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress

import pytest

from tests.support.faultproxy import FaultProxy

#: A hang guard only: every read here either answers at once or is meant to wait.
GUARD = 10.0


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, suppress(OSError):  # a reset by the proxy ends the echo
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[:2]
    listener.close()


@pytest.fixture
def proxy(
    echo: tuple[str, int], fault_proxy: Callable[[tuple[str, int]], FaultProxy]
) -> FaultProxy:
    return fault_proxy(echo)


def _client(proxy: FaultProxy, timeout: float = GUARD) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def _roundtrip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return sock.recv(4096)


def test_it_forwards_until_told_otherwise(proxy: FaultProxy) -> None:
    with _client(proxy) as sock:
        assert _roundtrip(sock) == b"ping"
    assert proxy.accepted == 1


def test_reset_cuts_open_connections_and_refuses_new_ones_until_clear(proxy: FaultProxy) -> None:
    with _client(proxy) as open_one:
        assert _roundtrip(open_one) == b"ping"
        proxy.reset()
        with pytest.raises(OSError):
            _roundtrip(open_one)
            _roundtrip(open_one)  # the RST may surface on the second use
    with pytest.raises(OSError), _client(proxy) as new_one:  # reset at connect or first use
        _roundtrip(new_one)
        _roundtrip(new_one)
    proxy.clear()
    with _client(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_half_open_accepts_and_never_answers_even_after_clear(proxy: FaultProxy) -> None:
    proxy.half_open()
    with _client(proxy, timeout=0.5) as hung:
        hung.sendall(b"hello?")
        proxy.wait_stalled(1)
        with pytest.raises(TimeoutError):
            hung.recv(4096)
        proxy.clear()
        with pytest.raises(TimeoutError):
            hung.recv(4096)
        with _client(proxy) as fresh:  # a new connection is served again
            assert _roundtrip(fresh) == b"ping"


def test_freeze_stops_all_traffic_and_clear_lets_it_flow_again(proxy: FaultProxy) -> None:
    with _client(proxy) as old:
        assert _roundtrip(old) == b"ping"
        proxy.freeze()
        with _client(proxy) as new:
            old.sendall(b"held")
            new.sendall(b"also held")
            proxy.wait_stalled(2)
            old.settimeout(0.5)
            with pytest.raises(TimeoutError):
                old.recv(4096)
            proxy.clear()
            old.settimeout(GUARD)
            assert old.recv(4096) == b"held"
            assert new.recv(4096) == b"also held"
    assert proxy.stalled == 0


def test_delay_holds_each_chunk_but_delivers_it(proxy: FaultProxy) -> None:
    proxy.delay(0.2)
    with _client(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_stop_closes_everything(echo: tuple[str, int]) -> None:
    proxy = FaultProxy(echo)
    proxy.freeze()
    sock = _client(proxy)
    proxy.wait_stalled(1)
    proxy.stop()
    with suppress(OSError):
        assert sock.recv(4096) == b""  # closed (or reset) by the proxy
    sock.close()
