"""`ptm-sync check`: one line per problem with the config, calendars and mail servers."""

from __future__ import annotations

from ptm_sync.app import App


def run_checks(app: App) -> list[str]:
    problems: list[str] = []
    return problems
