"""`ptm-sync check`: one line per problem with the config, calendars and mail servers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from connectors.base import open_connector
from ptm_sync.app import App
from ptm_sync.errors import PtmError
from ptm_sync.mail import imap, smtp
from ptm_sync.periods import horizon
from ptm_sync.store import Teacher
from ptm_sync.video import provider_for


@dataclass(frozen=True, slots=True)
class CheckReport:
    """``problems`` make `check` fail; ``notes`` are worth saying but are not failures
    (a school that only publishes availability needs no [mail])."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _under(area: str, lines: list[str]) -> list[str]:
    """Prefix each line with its area unless it names the area already."""
    return [line if line.startswith(f"{area}:") else f"{area}: {line}" for line in lines]


def run_checks(app: App, *, roster: bool = True) -> CheckReport:
    """Every problem found, as ``area: what is wrong`` lines, and the notes.

    ``roster=False`` skips what needs the database (the caller found it does not answer).
    """
    config = app.config
    report = CheckReport()
    problems = report.problems
    span = horizon(config)
    used: set[str] = set()
    if roster:
        with app.db.read() as session:
            used = set(session.scalars(select(Teacher.account).distinct()))
    for account in config.accounts:
        area = f"account {account.id}"
        try:
            connector = open_connector(account, config.tz, span)
        except PtmError as exc:
            problems.append(f"{area}: {exc}")
            continue
        try:
            problems += _under(area, connector.check())
        except PtmError as exc:
            problems.append(f"{area}: {exc}")
        finally:
            connector.close()
    known = {a.id for a in config.accounts}
    for missing in sorted(used - known):
        problems.append(f"roster: teachers use account {missing!r}, which is not in [[accounts]]")
    try:
        provider_for(config.video)
    except PtmError as exc:
        problems.append(f"video.provider: {exc}")
    mail = config.mail
    if mail is not None and mail.smtp is not None:
        try:
            problems += _under("mail.smtp", smtp.check(mail.smtp))
        except PtmError as exc:
            problems += _under("mail.smtp", [str(exc)])
    if mail is not None and mail.imap is not None:
        try:
            problems += _under("mail.imap", imap.check(mail.imap))
        except PtmError as exc:
            problems += _under("mail.imap", [str(exc)])
    if mail is None:
        report.notes.append(
            "mail: [mail] is not configured; availability is published, "
            "but invitations cannot be sent"
        )
    elif mail.smtp is None:
        report.notes.append("mail.smtp: [mail.smtp] is not configured; invitations cannot be sent")
    return report
