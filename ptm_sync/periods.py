"""Facts derived from the configured periods: time spans and the store's period rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connectors.base import Horizon
from ptm_sync.config import Config, PeriodConfig
from ptm_sync.store import Period

#: Busy times are kept for the periods' days plus this margin on each side, so all-day
#: events and late-evening windows are never cut at the edge.
MARGIN = timedelta(days=1)


def period_span(period: PeriodConfig) -> tuple[datetime, datetime]:
    """First window start and last window end of a period (UTC)."""
    return min(w.start for w in period.windows), max(w.end for w in period.windows)


def horizon(config: Config) -> Horizon:
    """The span of time every calendar is read for: all periods, padded by a day."""
    spans = [period_span(p) for p in config.periods]
    return Horizon(min(s for s, _ in spans) - MARGIN, max(e for _, e in spans) + MARGIN)


def ensure_periods(session: Session, config: Config) -> None:
    """Make the store's period rows match the config (meetings refer to them)."""
    for period in config.periods:
        row = session.get(Period, period.id)
        if row is None:
            session.add(Period(id=period.id, title=period.title))
        elif row.title != period.title:
            row.title = period.title
