"""ICS feeds (read only) on a local web server that publishes them with validators.

One feed's own failure is the web server answering 403 (the link no longer shares it) or
500 for that feed alone; invitations are published as a calendar app exports them (the
teacher an ATTENDEE with her answer)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.base import CalendarConnector, CalendarRef, RemoteRef, open_connector
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import CalendarProblem
from tests.contract.harness import HORIZON
from tests.support.calendar_data import sabre_invitation, vevents_of
from tests.support.feed_server import Feed, FeedServer, vevent

#: What the web server answers for a feed failing alone.
_FAILURES = {CalendarProblem.ACCESS_DENIED: 403, CalendarProblem.UNAVAILABLE: 500}

_serial = itertools.count(1)


@dataclass
class IcsSystem:
    name: str
    server: FeedServer
    connector: CalendarConnector

    def requests(self) -> int:
        return len(self.server.log)

    def calendar(self, teacher: str) -> CalendarRef:
        path = f"{teacher}-{next(_serial)}.ics"
        with self.server.lock:
            self.server.feeds.setdefault(path, Feed())
        return CalendarRef("feed", path)

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        self.server.add(
            cal.calendar, vevent(start, end, status="TENTATIVE" if tentative else "CONFIRMED")
        )

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        raise AssertionError("a feed has no events of ours")

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        raise AssertionError("a feed has no events of ours")

    def forget_sync_tokens(self) -> bool:
        return False

    def throttle(self, status: int, retry_after: float) -> bool:
        self.server.fail_next(status, {"Retry-After": f"{retry_after:g}"})
        return True

    def expire_access_tokens(self) -> bool:
        return False

    def page_size(self, n: int) -> bool:
        return False

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        if problem not in _FAILURES:
            return False
        self.server.fail_path(cal.calendar, _FAILURES[problem])
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        return False  # busy time is computed from the events: always known

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        teacher = f"{cal.calendar.removesuffix('.ics')}@school.test"
        uid = f"invitation-{next(_serial)}@cloud.school.test"
        invitation = sabre_invitation(uid, start, end, partstat=partstat, teacher=teacher.title())
        self.server.add(cal.calendar, vevents_of(invitation))
        return teacher


@contextmanager
def start(tmp_path: Path) -> Iterator[IcsSystem]:
    server = FeedServer().start()
    account = AccountConfig(id="feed", type="ics", url=server.url)
    connector = open_connector(account, ZoneInfo("UTC"), HORIZON)
    try:
        yield IcsSystem("ics", server, connector)
    finally:
        connector.close()
        server.stop()
