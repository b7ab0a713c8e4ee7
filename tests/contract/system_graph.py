"""Microsoft 365 (Graph) for the contract suite: the Graph connector on the TLS fake.

The connector is built through :func:`connectors.base.open_connector` from an
``[[accounts]]`` entry of type graph whose ``graph_url`` and ``authority_url`` point at
:mod:`tests.support.fake_graph`; msal and requests run unchanged.  The connector's
:attr:`~connectors.graph.GraphConnector.retry` records the waits (``waits``) instead of
sleeping.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.base import CalendarConnector, CalendarRef, RemoteRef, open_connector
from ptm_sync.core.errors import CalendarProblem
from ptm_sync.ops.throttle import RetryPolicy
from tests.contract.harness import HORIZON, System, no_sleep
from tests.support.fake_graph import FakeGraph, running


@dataclass
class GraphSystem:
    fake: FakeGraph
    connector: CalendarConnector
    name: str = "graph"
    waits: list[float] = field(default_factory=list)
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def requests(self) -> int:
        """Graph requests answered (token and discovery requests aside)."""
        return len(self.fake.graph_requests())

    def calendar(self, teacher: str) -> CalendarRef:
        """A new mailbox each time (the system lives through the whole suite)."""
        address = f"{teacher}.{next(self._numbers)}@school.test"
        return CalendarRef("m365", self.fake.add_mailbox(address))

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        self.fake.add_event(cal.calendar, start, end, show_as="tentative" if tentative else "busy")

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        self.fake.teacher_moves(cal.calendar, ref.href, start, end)

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        self.fake.teacher_deletes(cal.calendar, ref.href)

    def forget_sync_tokens(self) -> bool:
        self.fake.forget_delta_links()
        return True

    def throttle(self, status: int, retry_after: float) -> bool:
        self.fake.throttle(status, retry_after)
        return True

    def expire_access_tokens(self) -> bool:
        self.fake.expire_access_tokens()
        return True

    def page_size(self, n: int) -> bool:
        """Pages of ``n`` events in delta rounds (0: the fake's default, all at once)."""
        self.fake.max_page = n or None
        return True

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        """A freeBusyError for the schedule (resources/freebusyerror): ErrorNoFreeBusyAccess
        or ErrorProxyRequestProcessingFailed (a mailbox behind a failing proxy)."""
        codes = {
            CalendarProblem.ACCESS_DENIED: "ErrorNoFreeBusyAccess",
            CalendarProblem.UNAVAILABLE: "ErrorProxyRequestProcessingFailed",
        }
        if problem not in codes:
            return False
        self.fake.fail_schedule(cal.calendar, codes[problem])
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        """scheduleItems of status ``unknown`` over the span (resources/scheduleitem)."""
        self.fake.no_data(cal.calendar, start, end)
        return True

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        """None: getSchedule is Exchange's own computation of the teacher's free/busy."""
        return None


@contextmanager
def start(tmp_path: Path) -> Iterator[System]:
    with running(tmp_path) as fake:
        connector = open_connector(fake.account(), ZoneInfo("UTC"), HORIZON)
        system = GraphSystem(fake, connector)
        connector.retry = RetryPolicy(sleep=no_sleep(system.waits))  # type: ignore[attr-defined]
        try:
            yield system
        finally:
            connector.close()
