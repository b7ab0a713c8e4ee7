"""A TCP proxy that cuts the connection when the client sends a chosen pattern.

``CutProxy(upstream_host, upstream_port, marker=b"...")`` listens on 127.0.0.1 and relays
bytes both ways; the first time a chunk from the client contains ``marker`` that chunk is
*not* forwarded and both sides of that connection are reset.  The statement carrying the
marker never reaches the server: the client sees its connection die in the middle of a
transaction, at a point the test chose, deterministically (no timing, no second process).
``cuts`` counts the connections cut so far.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from types import TracebackType


class CutProxy:
    def __init__(
        self, upstream_host: str, upstream_port: int, *, marker: bytes, skip: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.marker = marker
        self.skip = skip
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="cut-proxy", daemon=True)

    def __enter__(self) -> CutProxy:
        self._accepter.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._accepter.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _cut_now(self) -> bool:
        with self._lock:
            if self.skip > 0:
                self.skip -= 1
                return False
            self.cuts += 1
            return True

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream, timeout=10)
        peers = {client: server, server: client}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client and self.marker in data and self._cut_now():
                        return
                    peers[source].sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, server):
                # RST rather than FIN: the connection is lost, not closed politely.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
