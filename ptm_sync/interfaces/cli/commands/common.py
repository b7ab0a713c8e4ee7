"""What several commands print the same way (not a command itself)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ptm_sync.app import outbox
from ptm_sync.app.context import App
from ptm_sync.app.services import send_now


def deliver(app: App) -> None:
    """Send what a command queued at once when SMTP is configured, and say how it went."""
    report = send_now(app.db, app.config, app.now)
    if report is None:
        print("queued: `ptm-sync outbox flush` or the daemon sends it")
        return
    print(delivered_line(report))


def delivered_line(report: outbox.FlushReport) -> str:
    """What a delivery pass did, in one line: delivered, to retry, failed, and (when any)
    dropped as no longer wanted (a reminder of a meeting that has started, say)."""
    line = f"delivered {report.delivered}; {report.retried} will be retried; {report.dead} failed"
    if report.dropped:
        line += f"; {report.dropped} dropped as no longer wanted"
    return line


#: The loggers that report, for the daemon's log, each failure a command prints itself.
REPORTED_BY_COMMANDS = (
    "ptm_sync.app.sync",
    "ptm_sync.app.outbox.queue",
    "ptm_sync.app.outbox.leases",
    "ptm_sync.app.outbox.dispatch",
)


@contextmanager
def reported_here(args: argparse.Namespace) -> Iterator[None]:
    """While a command prints each failure itself (a sync result line, an outbox report),
    the daemon's log lines about the same failures are not printed too: each failure once.
    With ``-v`` they are, for whoever wants to see everything."""
    if getattr(args, "verbose", 0):
        yield
        return
    loggers = [logging.getLogger(name) for name in REPORTED_BY_COMMANDS]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)
