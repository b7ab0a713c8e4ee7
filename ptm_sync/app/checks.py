"""`ptm-sync check`: one line per problem with the config, calendars and mail servers.

Every teacher's calendar is tried (through the account's connector, and on a server
free/busy system with one batched free/busy question over the periods); a calendar that
cannot be read, or for which the system has no free/busy data, is one line naming the
teacher with their own error (``teacher EMAIL: ...``), so the roster row to fix is found by
its email.

Besides problems (which make `check` exit 1) it gives warnings (DESIGN §7: lines starting
``warning:``, exit 0): files holding secrets or families' data that group or others may read
(the config, ``*_file`` secrets, the SQLite database), a mail login that would send its
password without TLS, an empty roster, an SQLite database file that did not exist before
this run (a mistyped ``[database] url`` silently starts an empty database), teachers whose
calendar no sync has read yet (they offer no slots: DESIGN §7 ``not_synced``), and a
teacher whose last sync failed although the calendar answers now.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.base import (
    CalendarConnector,
    CalendarRef,
    Capability,
    FreeBusy,
    Horizon,
    open_connector,
)
from ptm_sync.adapters.files.filemodes import loose_files, sqlite_files
from ptm_sync.adapters.mail import imap, smtp
from ptm_sync.adapters.store import Calendar, Teacher
from ptm_sync.adapters.video.providers import provider_for
from ptm_sync.adapters.video.zoom import ZoomClient
from ptm_sync.app.context import App, sqlite_path
from ptm_sync.app.outbox.dispatch import needs_zoom
from ptm_sync.app.periods import horizon, minutes_in_windows
from ptm_sync.app.video_links import CALENDAR, link_source
from ptm_sync.config.settings import Config, ImapConfig, Secret, SmtpConfig
from ptm_sync.core.errors import PtmError
from ptm_sync.ops.failures import minutes_in_words, names_account, pure_naming


@dataclass(frozen=True, slots=True)
class CheckReport:
    """``problems`` make `check` fail; ``notes`` are worth saying but are not failures
    (a school that only publishes availability needs no [mail])."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Lines starting ``warning:``: worth fixing, not failures (DESIGN §7).
    warnings: list[str] = field(default_factory=list)


def _under(area: str, lines: list[str], name: str = "") -> list[str]:
    """Each line as ``area: what is wrong``.  A connector's naming of the account that says
    nothing else (``account 'x' (url):``, ``Graph account 'x':``) gives way to the area,
    said once; a line whose head says more and names the account (``Graph refused the
    client secret of account 'x' (AADSTS…)``, ``account x (user …) on Exchange at host``)
    is told as it is, as `sync` and /healthz tell it."""
    out = []
    for line in lines:
        rest = pure_naming(line, name) if name else None
        if rest is not None:
            line = rest
        elif name and names_account(line, name):
            out.append(line)
            continue
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
    owners: dict[str, list[tuple[str, str]]] = {}  # account -> (calendar, teacher email)
    failed_sync: dict[str, str] = {}  # teacher email -> the last sync's error
    never_read: set[str] = set()  # teachers whose calendar no sync has read yet
    sources: dict[str, str] = {}  # teacher email -> the roster row it came from
    if app.database_created:
        path = sqlite_path(config.database.url)
        report.warnings.append(
            f"warning: database: the database file {path} did not exist: created empty "
            "(if the school's data is elsewhere, fix [database] url; "
            "a new school runs `ptm-sync init` first)"
        )
    if roster:
        with app.db.read() as session:
            for email, source, account_id, calendar, error, synced_at in session.execute(
                select(
                    Teacher.email,
                    Teacher.source,
                    Teacher.account,
                    Teacher.calendar,
                    Calendar.error,
                    Calendar.synced_at,
                )
                .outerjoin(Calendar, Calendar.teacher_id == Teacher.id)
                .order_by(Teacher.email)
            ):
                used.add(account_id)
                calendars.setdefault(account_id, []).append(CalendarRef(account_id, calendar))
                owners.setdefault(account_id, []).append((calendar, email))
                if source:
                    sources[email] = source
                if synced_at is None:
                    never_read.add(email)
                elif error:
                    failed_sync[email] = error
        if not owners:
            report.warnings.append(
                "warning: roster: no teachers yet; import them with `ptm-sync roster import FILE`"
            )
    broken: set[str] = set()
    answered: set[str] = set()  # accounts whose every problem line names a teacher
    for account in config.accounts:
        area = f"account {account.id}"
        try:
            connector = open_connector(account, config.tz, span)
        except PtmError as exc:
            problems.append(f"{area}: {exc}")
            continue
        try:
            lines = _under(area, connector.check(calendars.get(account.id, [])), account.id)
            named = _by_teacher(lines, owners.get(account.id, []), broken, sources)
            problems += named
            if all(line.startswith("teacher ") for line in named):
                found = _free_busy_lines(
                    config, connector, owners.get(account.id, []), account.id, broken, sources, span
                )
                problems += found
                if all(line.startswith("teacher ") for line in found):
                    answered.add(account.id)  # it answers now (for "run sync" warnings)
        except PtmError as exc:
            problems.append(f"{area}: {exc}")
        finally:
            connector.close()
    known = {a.id for a in config.accounts}
    account_of = {email: account for account, pairs in owners.items() for _, email in pairs}
    for email, error in sorted(failed_sync.items()):
        if email not in broken and account_of.get(email) in answered:
            report.warnings.append(
                f"warning: teacher {email}: the last sync failed ({_first_line(error)}); "
                "the calendar answers now: run `ptm-sync sync`"
            )
    unread = sorted(never_read - broken)
    if unread:
        whose = (
            "1 teacher's calendar was"
            if len(unread) == 1
            else f"{len(unread)} teachers' calendars were"
        )
        report.warnings.append(
            f"warning: roster: {whose} never read ({_some(unread)}): no slots are offered "
            "until `ptm-sync sync` reads them"
        )
    for missing in sorted(used - known):
        users = sorted(email for email, account in account_of.items() if account == missing)
        problems.append(
            f"roster: teachers use account {missing!r}, which is not in [[accounts]] "
            f"({_some(users)})"
        )
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


def _by_teacher(
    lines: list[str],
    owners: Sequence[tuple[str, str]],
    broken: set[str],
    sources: Mapping[str, str] | None = None,
) -> list[str]:
    """Each line about a teacher's calendar prefixed ``teacher EMAIL:``, once per teacher
    whose calendar it names (a calendar two teachers share names both); other lines (about
    the account) as they are.  The teachers named are added to ``broken``."""
    result: list[str] = []
    for line in lines:
        named = [email for calendar, email in owners if _names(line, calendar)]
        if not named:
            result.append(line)
        for email in named:
            broken.add(email)
            row = (sources or {}).get(email)
            result.append(f"teacher {email} ({row}): {line}" if row else f"teacher {email}: {line}")
    return result


def _free_busy_lines(
    config: Config,
    connector: CalendarConnector,
    owners: Sequence[tuple[str, str]],
    account_id: str,
    broken: set[str],
    sources: Mapping[str, str],
    span: Horizon,
) -> list[str]:
    """Ask a server free/busy system (Graph, EWS, Google) for every teacher's free/busy over
    the periods, in the batches the sync makes, and name each teacher with their own
    calendar's error or its spans without data (DESIGN §5).  Teachers already named by the
    account's own check are left out; a failure of the whole account is one line."""
    caps = connector.capabilities
    if Capability.SERVER_FREE_BUSY not in caps or Capability.MIRRORED in caps:
        return []
    asked = [(CalendarRef(account_id, cal), email) for cal, email in owners if email not in broken]
    if not asked:
        return []
    try:
        answer = connector.free_busy(
            list(dict.fromkeys(ref for ref, _ in asked)), span.start, span.end
        )
    except PtmError as exc:
        return [f"account {account_id}: {exc}"]
    lines = []
    for ref, email in asked:
        result = answer.get(ref)
        row = sources.get(email)
        who = f"teacher {email} ({row})" if row else f"teacher {email}"
        if isinstance(result, PtmError):
            broken.add(email)
            lines.append(f"{who}: {_first_line(str(result))}")
        elif isinstance(result, FreeBusy) and (
            minutes := minutes_in_windows(config, result.unknown)
        ):
            broken.add(email)
            lines.append(
                f"{who}: account {account_id}: calendar {ref.calendar!r} has no free/busy data "
                f"for {minutes_in_words(minutes)} of the periods' windows (no slots are offered "
                "then; is its free/busy published to the account?)"
            )
    return lines


def _names(line: str, calendar: str) -> bool:
    """True when ``line`` names ``calendar`` (as a whole word, URL or address)."""
    if not calendar:
        return False
    return re.search(rf"(?<![\w@./-]){re.escape(calendar)}(?![\w@/-])", line) is not None


def _some(emails: Sequence[str], shown: int = 5) -> str:
    """``a@x, b@x`` or ``a@x, b@x, … and 7 more``: which teachers, in a line a person reads."""
    if len(emails) <= shown:
        return ", ".join(emails)
    return f"{', '.join(emails[:shown])} and {len(emails) - shown} more"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


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
    database = sqlite_path(config.database.url)
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
