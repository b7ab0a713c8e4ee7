"""Exchange on premises (EWS) under the contract suite: exchangelib, unchanged, against the
fake EWS server of :mod:`tests.support.fake_ews`, with OAuth client credentials from the
fake's token endpoint (``token_url``) so that token expiry can be played."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from exchangelib.protocol import close_connections

from connectors.base import CalendarConnector, CalendarRef, RemoteRef, open_connector
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import CalendarProblem
from tests.contract.harness import HORIZON
from tests.support.fake_ews import FakeEWS, running
from tests.support.mailservers import make_tls_material

ACCOUNT = "ews"
#: The per-mailbox ResponseCode Exchange gives for each problem ("ResponseCode"): a mailbox
#: that shares no free/busy, and one behind a failing availability proxy (retryable).
FAILURES = {
    CalendarProblem.ACCESS_DENIED: "ErrorNoFreeBusyAccess",
    CalendarProblem.UNAVAILABLE: "ErrorProxyRequestProcessingFailed",
}


def account_config(fake: FakeEWS, **keys: object) -> AccountConfig:
    """An ``[[accounts]]`` entry of type ews pointed at ``fake`` (OAuth unless ``auth`` says
    otherwise)."""
    values: dict[str, object] = {
        "id": ACCOUNT,
        "type": "ews",
        "url": fake.url,
        "auth": "oauth",
        "tenant_id": "tenant-1",
        "client_id": fake.client_id,
        "client_secret": Secret(key="client_secret", value=fake.client_secret),
        "token_url": fake.token_url,
        "ca_file": fake.ca_file,
    }
    if keys.get("auth") in ("basic", "ntlm"):
        values.update(
            client_id="",
            client_secret=None,
            tenant_id="",
            token_url="",
            username=fake.username,
            password=Secret(key="password", value=fake.password),
        )
    values.update(keys)
    return AccountConfig(**values)  # type: ignore[arg-type]


_serial = itertools.count(1)


@dataclass
class EWSSystem:
    fake: FakeEWS
    connector: CalendarConnector
    name: str = "ews"

    def requests(self) -> int:
        return len(self.fake.log)

    def calendar(self, teacher: str) -> CalendarRef:
        address = f"{teacher}.{next(_serial)}@school.test"
        self.fake.add_mailbox(address)
        return CalendarRef(ACCOUNT, address)

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        self.fake.add_appointment(cal.calendar, start, end, "Tentative" if tentative else "Busy")

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        self.fake.move(cal.calendar, ref.href, start, end)

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        self.fake.delete(cal.calendar, ref.href)

    def forget_sync_tokens(self) -> bool:
        self.fake.forget_sync_states()
        return True

    def throttle(self, status: int, retry_after: float) -> bool:
        # EWS says "busy" in a SOAP fault, not in the HTTP status (EWS throttling in Exchange).
        self.fake.server_busy(int(retry_after * 1000))
        return True

    def expire_access_tokens(self) -> bool:
        self.fake.expire_tokens()
        return True

    def page_size(self, n: int) -> bool:
        self.fake.page_size = n or 512  # the most SyncFolderItems returns in one answer
        return True

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        # GetUserAvailability answers each mailbox with its own ResponseMessage.
        code = FAILURES.get(problem)
        if code is None:
            return False
        self.fake.fail_mailbox(cal.calendar, code)
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        self.fake.no_data(cal.calendar, start, end)  # BusyType NoData, merged digits 4
        return True

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        return None  # Exchange computes free/busy: it decides what an invitation blocks


@contextmanager
def start(tmp_path: Path) -> Iterator[EWSSystem]:
    # OAuth wants TLS (oauthlib refuses an http token endpoint): the fake runs on https
    # with a private CA given as ca_file.
    with running(tls=make_tls_material(tmp_path)) as fake:
        connector = open_connector(account_config(fake), ZoneInfo("UTC"), HORIZON)
        try:
            yield EWSSystem(fake, connector)
        finally:
            connector.close()
            close_connections()  # exchangelib keeps a Protocol per endpoint: drop this one
