"""`ptm-sync check`: one line per problem with the config, calendars and mail servers."""

from __future__ import annotations

from sqlalchemy import select

from connectors.base import open_connector
from ptm_sync.app import App
from ptm_sync.errors import PtmError
from ptm_sync.periods import horizon
from ptm_sync.store import Teacher


def run_checks(app: App) -> list[str]:
    """Every problem found, as ``area: what is wrong`` lines; an empty list means all is well."""
    config = app.config
    problems: list[str] = []
    span = horizon(config)
    with app.db.read() as session:
        used = {account for account in session.scalars(select(Teacher.account).distinct())}
    for account in config.accounts:
        try:
            connector = open_connector(account, config.tz, span)
        except PtmError as exc:
            problems.append(f"account {account.id}: {exc}")
            continue
        try:
            problems += [f"account {account.id}: {p}" for p in connector.check()]
        except PtmError as exc:
            problems.append(f"account {account.id}: {exc}")
        finally:
            connector.close()
    known = {a.id for a in config.accounts}
    for missing in sorted(used - known):
        problems.append(f"roster: teachers use account {missing!r}, which is not in [[accounts]]")
    mail = config.mail
    if mail is not None and mail.smtp is not None:
        from ptm_sync.mail import smtp

        try:
            problems += [f"mail.smtp: {p}" for p in smtp.check(mail.smtp)]
        except PtmError as exc:
            problems.append(f"mail.smtp: {exc}")
    if mail is not None and mail.imap is not None:
        from ptm_sync.mail import imap

        try:
            problems += [f"mail.imap: {p}" for p in imap.check(mail.imap)]
        except PtmError as exc:
            problems.append(f"mail.imap: {exc}")
    if mail is None:
        problems.append("mail: [mail] is not configured; invitations cannot be sent")
    return problems
