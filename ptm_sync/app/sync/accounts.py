"""The connectors a sync pass (or the daemon, or a command) opens: one per account, kept
open for the pass's life and closed together at its end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from connectors.base import CalendarConnector, Horizon, open_connector
from ptm_sync.app.periods import horizon
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import PtmError


class Connectors:
    """Opened connectors by account id, kept for the life of a pass (or of the daemon)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.horizon: Horizon = horizon(config)
        self._open: dict[str, CalendarConnector] = {}

    def get(self, account_id: str) -> CalendarConnector:
        if account_id not in self._open:
            account = self.config.account(account_id)
            self._open[account_id] = open_connector(account, self.config.tz, self.horizon)
        return self._open[account_id]

    def provide(self, account_id: str, connector: CalendarConnector) -> None:
        """Use ``connector``, opened by the caller, for ``account_id`` (an in-memory one in
        pure tests; a caller that opened the account itself).  It is closed with the rest."""
        self._open[account_id] = connector

    def close(self) -> None:
        for connector in self._open.values():
            with suppress(PtmError):  # closing is best effort
                connector.close()
        self._open.clear()


@contextmanager
def opened(config: Config) -> Iterator[Connectors]:
    """Connectors for ``config``, every one opened in the block closed when it ends."""
    connectors = Connectors(config)
    try:
        yield connectors
    finally:
        connectors.close()
