"""What several commands print the same way (not a command itself)."""

from __future__ import annotations

from ptm_sync.app import App
from ptm_sync.services import send_now


def deliver(app: App) -> None:
    """Send what a command queued at once when SMTP is configured, and say how it went."""
    report = send_now(app.db, app.config, app.now)
    if report is None:
        print("queued: `ptm-sync outbox flush` or the daemon sends it")
        return
    print(f"delivered {report.delivered}; {report.retried} will be retried; {report.dead} failed")
