"""Facts derived from the configured periods: time spans and the store's period rows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from connectors.base import Horizon
from ptm_sync.adapters.store import Period
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.model import Interval, as_utc

_PERIODS = cast(Table, Period.__table__)

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


def minutes_in_windows(config: Config, spans: Iterable[Interval]) -> int:
    """How many minutes of the periods' windows (every period's, each minute once) the
    ``spans`` cover: what a span without free/busy data costs the school's parents (a span
    outside every window costs nothing and is no problem)."""
    windows = sorted({(w.start, w.end) for p in config.periods for w in p.windows})
    covered = 0.0
    for w_start, w_end in _disjoint(windows):
        pieces = sorted(
            (max(as_utc(s.start), w_start), min(as_utc(s.end), w_end))
            for s in spans
            if as_utc(s.start) < w_end and as_utc(s.end) > w_start
        )
        for start, end in _disjoint(pieces):
            covered += (end - start).total_seconds()
    return int(covered // 60)


def _disjoint(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted ``spans`` with overlapping ones joined."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def ensure_periods(session: Session, config: Config) -> None:
    """Make the store's period rows match the config (meetings refer to them).

    Each row is made with ``INSERT … ON CONFLICT DO NOTHING`` (two processes starting on a
    fresh database both make it: neither fails), then its title set where it changed."""
    for period in config.periods:
        values = {"id": period.id, "title": period.title}
        if not insert_new(session, _PERIODS, values, key="id"):
            session.execute(
                update(Period)
                .where(Period.id == period.id, Period.title != period.title)
                .values(title=period.title)
            )
