"""`ptm-sync check`: one line per problem with the config, calendars and mail servers.

Besides problems (which make `check` exit 1) it gives warnings (DESIGN §7: lines starting
``warning:``, exit 0): files holding secrets or families' data that group or others may read
(the config, ``*_file`` secrets, the SQLite database), and a mail login that would send its
password without TLS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, select
from sqlalchemy.exc import ArgumentError

from connectors.base import CalendarRef, open_connector
from connectors.zoom import ZoomClient
from ptm_sync.app import App
from ptm_sync.config import Config, ImapConfig, Secret, SmtpConfig
from ptm_sync.dispatch import needs_zoom
from ptm_sync.errors import PtmError
from ptm_sync.filemodes import loose_files, sqlite_files
from ptm_sync.mail import imap, smtp
from ptm_sync.periods import horizon
from ptm_sync.store import Teacher
from ptm_sync.video import CALENDAR, link_source, provider_for


@dataclass(frozen=True, slots=True)
class CheckReport:
    """``problems`` make `check` fail; ``notes`` are worth saying but are not failures
    (a school that only publishes availability needs no [mail])."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Lines starting ``warning:``: worth fixing, not failures (DESIGN §7).
    warnings: list[str] = field(default_factory=list)


def _under(area: str, lines: list[str], name: str = "") -> list[str]:
    """Each line as ``area: what is wrong``: a connector's own naming of the account
    (``account 'x' (url):``, ``Graph account 'x':``) gives way to the area, said once."""
    out = []
    for line in lines:
        head, sep, rest = line.partition(": ")
        if name and sep and f"'{name}'" in head:
            line = rest
        out.append(line if line.startswith(f"{area}:") else f"{area}: {line}")
    return out


def run_checks(app: App, *, roster: bool = True) -> CheckReport:
    """Every problem found, as ``area: what is wrong`` lines, and the notes.

    ``roster=False`` skips what needs the database (the caller found it does not answer).
    """
    config = app.config
    report = CheckReport()
    problems = report.problems
    span = horizon(config)
    used: set[str] = set()
    calendars: dict[str, list[CalendarRef]] = {}
    if roster:
        with app.db.read() as session:
            for account_id, calendar in session.execute(
                select(Teacher.account, Teacher.calendar).order_by(Teacher.email)
            ):
                used.add(account_id)
                calendars.setdefault(account_id, []).append(CalendarRef(account_id, calendar))
    for account in config.accounts:
        area = f"account {account.id}"
        try:
            connector = open_connector(account, config.tz, span)
        except PtmError as exc:
            problems.append(f"{area}: {exc}")
            continue
        try:
            problems += _under(
                area, connector.check(calendars.get(account.id, [])), account.id
            )
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
    if needs_zoom(config):
        try:
            zoom = ZoomClient(config.video)
            problems += _under("video", zoom.check())
            zoom.close()
        except PtmError as exc:
            problems.append(f"video: {exc}")
    if config.video.provider in ("teams", "meet"):
        for account in config.accounts:
            if account.id in used and link_source(config, account.id) != CALENDAR:
                report.warnings.append(
                    f"warning: video.provider = {config.video.provider!r}, but account "
                    f"{account.id!r} ({account.type}) makes no such links: its teachers' "
                    f"meetings get the fallback's ({config.video.fallback})"
                )
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
    report.warnings.extend(warnings(config))
    return report


def warnings(config: Config) -> list[str]:
    """The ``warning:`` lines for ``config``: private files readable by others, cleartext
    mail logins.  Reads file modes only; connects to nothing."""
    found = list(loose_files(private_files(config)))
    mail = config.mail
    if mail is not None:
        found += cleartext_logins(mail.smtp, mail.imap)
    return found


def cleartext_logins(smtp_config: SmtpConfig | None, imap_config: ImapConfig | None) -> list[str]:
    """A warning for each mail login that would send its password without TLS: a password is
    configured while neither ``ssl`` nor ``starttls`` is set (RFC 8314 §3: use TLS for mail
    submission and access).  Loopback servers are no exception: what a password opens must
    not depend on who may read the wire."""
    found = []
    smtp_logs_in = smtp_config is not None and smtp_config.password and smtp_config.username
    if smtp_config is not None and smtp_logs_in and not (smtp_config.ssl or smtp_config.starttls):
        found.append(
            f"warning: mail.smtp: the login to {smtp_config.host}:{smtp_config.port} sends "
            "the password without TLS; set starttls = true (port 587) or ssl = true (465)"
        )
    imap_logs_in = imap_config is not None and imap_config.password
    if imap_config is not None and imap_logs_in and not (imap_config.ssl or imap_config.starttls):
        found.append(
            f"warning: mail.imap: the login to {imap_config.host}:{imap_config.port} sends "
            "the password without TLS; set ssl = true (port 993) or starttls = true (143)"
        )
    return found


def private_files(config: Config) -> Iterator[tuple[str, Path]]:
    """(what, path) of every file that holds secrets or families' data: the config file,
    each ``*_file`` secret and key file it names, the SQLite database and its companions."""
    if config.path is not None:
        yield "config", config.path
    base = config.path.parent if config.path is not None else Path.cwd()
    for key, path in _secret_files(config, ""):
        yield key, path if path.is_absolute() else base / path
    database = _sqlite_path(config.database.url)
    if database is not None:
        for path in sqlite_files(database):
            yield "database", path


#: ``*_file`` keys that name public files (a CA certificate), not secrets.
_PUBLIC_FILES = frozenset({"ca_file"})


def _secret_files(value: Any, key: str) -> Iterator[tuple[str, Path]]:
    if isinstance(value, Secret):
        if value.file is not None:
            yield f"{value.key}_file", value.file
        return
    if isinstance(value, tuple | list):
        for i, item in enumerate(value):
            yield from _secret_files(item, f"{key}[{i}]")
        return
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for f in dataclasses.fields(value):
        if f.metadata.get("internal"):
            continue
        item = getattr(value, f.name)
        dotted = f"{key}.{f.name}" if key else f.name
        if f.name.endswith("_file") and f.name not in _PUBLIC_FILES:
            if isinstance(item, str | Path) and str(item):
                yield dotted, Path(item).expanduser()
            continue
        yield from _secret_files(item, dotted)


def _sqlite_path(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)
