"""What the contract suite needs from one calendar system under test.

Each system module ``tests/contract/system_<name>.py`` has a function ``start(tmp_path) ->
ContextManager[System]`` that starts its server (a real CalDAV server, a fake speaking the
vendor's wire format on 127.0.0.1, or memory) and yields a :class:`System`: the connector
built through :func:`connectors.base.open_connector` from an ``[[accounts]]`` entry, plus the
teacher's and the server's hands (what a teacher does in their own calendar client, and what
the server does to us: throttling, expiring tokens and sync tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from connectors.base import CalendarConnector, CalendarRef, Horizon, RemoteRef
from ptm_sync.core.errors import CalendarProblem

START = datetime(2027, 4, 13, 13, 0, tzinfo=UTC)
#: Every system's connector is opened with this horizon (events outside it need not be seen).
HORIZON = Horizon(START - timedelta(days=1), START + timedelta(days=40))


class System(Protocol):
    """One calendar system, running, with a connector open on it."""

    #: Short name used in test ids ("radicale", "graph", …).
    name: str
    connector: CalendarConnector
    #: Requests the server has answered (for paging and batching assertions); systems that
    #: cannot count leave it at 0 and the tests that need counts skip with the reason.
    requests: Callable[[], int]

    def calendar(self, teacher: str) -> CalendarRef:
        """A (new, empty) calendar for ``teacher`` (a short name like "ada")."""
        ...

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        """The teacher's own appointment (not ours), busy or tentative."""
        ...

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        """The teacher drags the event at ``ref`` (one we created) to new times."""
        ...

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        """The teacher deletes the event at ``ref``."""
        ...

    def forget_sync_tokens(self) -> bool:
        """The server no longer accepts the sync tokens / delta links it gave out; False when
        the server cannot be made to (the test then presents a token it never issued)."""
        ...

    def throttle(self, status: int, retry_after: float) -> bool:
        """The next request gets ``status`` (429 or 503) with Retry-After ``retry_after``
        seconds (EWS: ErrorServerBusy with BackOffMilliseconds); False when the system
        cannot be throttled (memory)."""
        ...

    def expire_access_tokens(self) -> bool:
        """Make the access tokens the server issued invalid (as if their hour ran out);
        False when the system has no tokens (then the test skips)."""
        ...

    def page_size(self, n: int) -> bool:
        """Answer lists (change feeds) in pages of ``n`` items where the protocol pages;
        False where it does not."""
        ...

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        """From now on the server answers free/busy for ``cal`` with an error of its own,
        in the shape the vendor documents for one calendar's error inside a batched answer
        (``ACCESS_DENIED``: the calendar shares no free/busy; ``UNAVAILABLE``: its part of
        the server fails, e.g. a mailbox behind a failing proxy, Google ``internalError``),
        the other calendars of the same request answering as usual.  False when the
        system has no such per-calendar answer (the test skips and says why)."""
        ...

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        """The server has no free/busy data for ``cal`` in ``[start, end)`` and answers in
        its documented no-data shape (EWS NoData digits or a ``None`` view, Graph
        ``unknown`` / an availabilityView without scheduleItems, Google without ``busy``).
        False when the system always has its data (busy time computed from the events)."""
        ...

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        """Someone else's invitation in the teacher's calendar, stored the way the
        server's own scheduling stores it (Nextcloud/sabre: the organizer's event with the
        owner as ATTENDEE), the teacher's answer ``partstat`` (DECLINED, NEEDS-ACTION,
        TENTATIVE, ACCEPTED); the teacher's address it names (as the roster would give
        it).  None where free/busy is the server's own computation (the vendor decides what
        a declined invitation blocks)."""
        ...


StartSystem = Callable[[Path], AbstractContextManager[System]]


@dataclass
class Counter:
    """A thread-safe enough request count for a fake server's handler."""

    n: int = 0

    def __call__(self) -> int:
        return self.n


def no_sleep(log: list[float]) -> Callable[[float], None]:
    """A sleep that records the waits instead of waiting (for a RetryPolicy in tests)."""

    def sleep(seconds: float) -> None:
        log.append(seconds)

    return sleep


__all__ = ["HORIZON", "START", "Counter", "Iterator", "StartSystem", "System", "no_sleep"]
