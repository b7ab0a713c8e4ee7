"""Google Calendar under the contract suite: the real googleapiclient against the fake API.

The account is a service account with domain-wide delegation (a fresh RSA key the fake
trusts); each teacher's calendar id is their address, which the connector impersonates.
"""

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
from tests.support.fake_google import FakeGoogle, make_service_account, running

DOMAIN = "school.test"
_serial = itertools.count(1)


@dataclass
class GoogleSystem:
    """The fake Google and a connector on it (see :class:`tests.contract.harness.System`)."""

    fake: FakeGoogle
    connector: CalendarConnector
    name: str = "google"

    def requests(self) -> int:
        """API requests answered (token requests not counted)."""
        return len(self.fake.api_log())

    def calendar(self, teacher: str) -> CalendarRef:
        return CalendarRef("google", self.fake.add_calendar(f"{teacher}-{next(_serial)}@{DOMAIN}"))

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        # A meeting the teacher answered "maybe": Google's free/busy still counts it busy.
        me = {"email": cal.calendar, "self": True}
        attendees = [{**me, "responseStatus": "tentative"}] if tentative else []
        self.fake.add_event(cal.calendar, start, end, attendees=attendees)

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        self.fake.teacher_moves(cal.calendar, ref.href, start, end)

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        self.fake.teacher_deletes(cal.calendar, ref.href)

    def forget_sync_tokens(self) -> bool:
        self.fake.forget_sync_tokens()
        return True

    def throttle(self, status: int, retry_after: float) -> bool:
        self.fake.fail_next(status, retry_after)
        return True

    def expire_access_tokens(self) -> bool:
        self.fake.revoke_tokens()
        return True

    def page_size(self, n: int) -> bool:
        self.fake.page_size = n or 2500
        return True

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        """UNAVAILABLE: the calendar's entry says ``internalError`` (the FreeBusyCalendar
        Error schema's "the API service has encountered an internal error").  ACCESS_DENIED:
        Google has no such per-calendar answer: a calendar whose free/busy it will not show
        is ``notFound`` (tested as not found), so False."""
        if problem is not CalendarProblem.UNAVAILABLE:
            return False
        self.fake.fail_calendar(cal.calendar, "internalError")
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        """Google's only no-data shape, an entry without ``busy``, covers the whole range
        asked (wider than ``[start, end)``: the contract allows a coarser answer, never a
        narrower one).  The shape in detail: tests/integration/test_google_freebusy.py."""
        self.fake.no_data(cal.calendar)
        return True

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        """None: Google computes free/busy itself (the vendor decides what a declined
        invitation blocks); ptm-sync reads only its freeBusy answer."""
        return None


def account(fake: FakeGoogle, directory: Path, account_id: str = "google") -> AccountConfig:
    """A service-account ``[[accounts]]`` entry pointed at ``fake`` (its key registered)."""
    key = make_service_account(directory, fake.token_url)
    fake.register_key(key)
    return AccountConfig(
        id=account_id,
        type="google",
        service_account_file=key.path,
        api_url=fake.api_url,
        token_url=fake.token_url,
    )


@contextmanager
def start(tmp_path: Path) -> Iterator[GoogleSystem]:
    with running() as fake:
        connector = open_connector(account(fake, tmp_path), ZoneInfo("UTC"), HORIZON)
        try:
            yield GoogleSystem(fake, connector)
        finally:
            connector.close()
