"""The commands' clock: the system's, or ``PTM_SYNC_NOW`` for tests and the demo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ptm_sync.app.context import NOW_ENV, App
from ptm_sync.core.errors import ConfigError


def test_the_clock_is_the_systems_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOW_ENV, raising=False)
    assert abs(App.now() - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_variable_sets_the_clock_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, "2027-04-10T15:20:00-04:00")
    assert App.now() == datetime(2027, 4, 10, 19, 20, tzinfo=UTC)
    assert App.now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", ["2027-04-10T15:20:00", "tomorrow"])
def test_a_time_without_offset_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(NOW_ENV, bad)
    with pytest.raises(ConfigError, match=NOW_ENV):
        App.now()
