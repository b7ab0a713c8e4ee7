"""The systemd notification protocol (``man 3 sd_notify``), in the standard library.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``: a ``AF_UNIX`` datagram socket, a
file-system path, or an abstract-namespace name when it starts with ``@`` (the ``@``
stands for the leading NUL byte).  A service sends newline-separated ``KEY=VALUE``
assignments to it, one datagram per message:

* ``READY=1`` — start-up is finished (systemd waits for it before it calls the unit
  started);
* ``STATUS=…`` — one free-form line that ``systemctl status`` shows;
* ``WATCHDOG=1`` — the service is alive; with ``WatchdogSec=`` systemd passes
  ``$WATCHDOG_USEC`` (microseconds) and kills a service that stays silent that long.  The
  watchdog is meant for us only when ``$WATCHDOG_PID`` is unset or is our process id
  (``man 3 sd_watchdog_enabled``);
* ``STOPPING=1`` — shutdown has begun.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.  A notification that
cannot be sent is logged once and never stops the daemon: it is advice to the service
manager, not part of the work.  No dependency: the protocol is one ``sendto`` per message
(the pure-Python ``sdnotify`` package on PyPI is unmaintained since 2017; ``systemd-python``
needs libsystemd's headers to build).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to the service manager named by the environment (``os.environ`` by default).

    ``enabled`` is False outside systemd; ``watchdog_seconds`` is the interval between
    :meth:`watchdog` pings that are actually sent (half of ``$WATCHDOG_USEC``, as
    ``man 3 sd_watchdog_enabled`` advises), or None when no watchdog is asked of us.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_interval(env)
        self._last_ping = float("-inf")
        self._last_status = ""
        self._warned = False
        self._socket: socket.socket | None = None
        if self.address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)  # a full queue drops advice, never blocks a job

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def ready(self, status: str = "") -> None:
        """``READY=1`` (with a ``STATUS=`` line): the database, the config and the web
        listener are up."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """``STATUS=text`` (one line; sent only when it changed)."""
        if _one_line(text) != self._last_status:
            self._send("", text)

    def watchdog(self) -> None:
        """``WATCHDOG=1`` when half of the watchdog interval has passed since the last one;
        call it from the main loop as often as you like."""
        if self.watchdog_seconds is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_seconds:
            self._last_ping = now
            self._send("WATCHDOG=1", "")

    def stopping(self, status: str = "stopping") -> None:
        """``STOPPING=1``: shutdown has begun."""
        self._send("STOPPING=1", status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, assignment: str, status: str) -> None:
        if self._socket is None or self.address is None:
            return
        lines = [assignment] if assignment else []
        if status:
            status = _one_line(status)
            lines.append(f"STATUS={status}")
            self._last_status = status
        try:
            self._socket.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as exc:
            if not self._warned:  # a lost manager is worth one line, not one per ping
                self._warned = True
                log.warning("systemd notification socket: %s", exc.strerror or exc)


def _one_line(text: str) -> str:
    """``text`` on one line: a newline would start another assignment (man 3 sd_notify)."""
    return " ".join(text.split())


def _address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address; None when unset or of an unknown kind
    (``vsock:`` addresses are for virtual machines and are not ours to serve)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")  # the abstract namespace (man 7 unix)
    if value.startswith("/"):
        return value
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
