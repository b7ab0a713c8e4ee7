"""Configuration: one TOML file → frozen, validated objects.

The schema is data: every section is a frozen dataclass whose fields carry their help text,
and one generic loader walks them.  That loader refuses unknown keys, reports missing
required ones and converts values, naming the offending key as a dotted path.  Secrets are
never read at load time: a :class:`Secret` records where the value lives (``password``,
``password_env`` or ``password_file``) and :meth:`Secret.reveal` fetches it when needed.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ptm_sync.errors import ConfigError, ConfigProblem
from ptm_sync.model import MeetingFormat, Window
from ptm_sync.tomllines import key_lines, line_of

SEARCH_PATHS = (Path("ptm-sync.toml"), Path("/etc/ptm-sync/ptm-sync.toml"))
ACCOUNT_TYPES = ("caldav", "graph", "ews", "google", "ics")
VIDEO_PROVIDERS = ("jitsi", "teams", "meet", "zoom", "none", "auto")
VIDEO_FALLBACKS = ("jitsi", "zoom", "none")
EWS_AUTH = ("ntlm", "basic", "oauth")
FREEBUSY_MODES = ("auto", "local", "server")
MEETING_MODES = ("joint", "separate")
AUTOMATE_PROCESSING = ("auto_accept", "none")
STAFF_DIGEST = ("daily", "never")


def opt(help: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A config field with its help text; no default means the key is required."""
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """Where a secret lives.  ``repr`` never shows the value."""

    key: str
    value: str | None = None
    env: str | None = None
    file: Path | None = None
    origin: str | None = None  # the config file that names it, for error messages

    def __repr__(self) -> str:
        return f"Secret({self.key})"

    @property
    def source(self) -> str:
        if self.env:
            return f"${self.env}"
        if self.file:
            return str(self.file)
        return "config file"

    def reveal(self) -> str:
        """Return the secret, or raise ConfigError naming the key when it cannot be read."""
        if self.value is not None:
            return self.value
        if self.env:
            found = os.environ.get(self.env)
            if found is None:
                raise ConfigError(
                    f"environment variable {self.env} is not set", f"{self.key}_env", self.origin
                )
            return found
        if self.file:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {self.file}: {exc.strerror}", f"{self.key}_file", self.origin
                ) from None
        raise ConfigError("no value given", self.key, self.origin)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchoolConfig:
    name: str = opt("The school's name, shown in emails and on the published pages.")
    timezone: ZoneInfo = opt("IANA time zone of the school, e.g. America/New_York.")
    contact: str = opt("Email address parents write to about changes.")


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    url: str = opt(
        "SQLAlchemy URL; sqlite:///file (relative to this file) or postgresql+psycopg://...",
        "sqlite:///ptm-sync.db",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    host: str = opt("SMTP server host name.")
    port: int = opt("SMTP port: 587 with starttls, 465 with ssl, 25 plain.", 587)
    starttls: bool = opt("Upgrade the connection with STARTTLS.", False)
    ssl: bool = opt("Connect with TLS from the start (port 465).", False)
    username: str = opt("Login name; empty for no login.", "")
    password: Secret | None = opt("Login password (password, password_env or password_file).", None)
    timeout: float = opt("Seconds to wait for the server.", 30.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImapConfig:
    host: str = opt("IMAP server host name.")
    port: int = opt("IMAP port: 993 with ssl, 143 otherwise.", 993)
    ssl: bool = opt("Connect with TLS from the start.", True)
    starttls: bool = opt("Upgrade a plain connection with STARTTLS.", False)
    username: str = opt("Login name.")
    password: Secret | None = opt("Login password (password, password_env or password_file).", None)
    folder: str = opt("Folder to read replies from.", "INBOX")
    processed_folder: str = opt("Move processed messages here; empty to flag them \\Seen.", "")
    idle: bool = opt("Wait with IMAP IDLE where the server offers it.", True)
    poll_seconds: int = opt("Seconds between passes when IDLE is not used.", 60)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailConfig:
    organizer: str = opt("The service's address: ORGANIZER of every invitation.")
    plus_addressing: bool = opt("Give each meeting its own local+token@domain organizer.", False)
    booking_address: str = opt(
        "Pattern of teachers' booking addresses, e.g. book+{teacher_key}@school.org.", ""
    )
    trusted_authserv_id: str = opt(
        "authserv-id of the receiving server whose Authentication-Results we trust.", ""
    )
    aliases: dict[str, list[str]] = opt(
        "Extra sender addresses accepted for a guardian: {guardian = [aliases]}.", {}
    )
    smtp: SmtpConfig | None = opt("Outgoing mail ([mail.smtp]).", None)
    imap: ImapConfig | None = opt("Incoming replies ([mail.imap]); optional.", None)
    max_message_bytes: int = opt("Larger inbound mail is quarantined (too-large).", 10_000_000)
    max_calendar_components: int = opt(
        "VEVENTs etc. in one inbound message; more is quarantined (too-many-components).", 500
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class WebConfig:
    listen: str = opt("host:port the daemon serves the published pages on.", "127.0.0.1:8080")
    public_url: str = opt("How parents reach the pages, e.g. https://conferences.school.org.", "")


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoConfig:
    provider: str = opt(
        "jitsi | teams | meet | zoom | none | auto (auto: Teams for Graph teachers, Meet for "
        "Google teachers, the fallback for the others; teams/meet: that system's teachers, "
        "the fallback for the others)",
        "jitsi",
    )
    fallback: str = opt(
        "With auto, teams or meet: the link of teachers whose calendar system makes none "
        "(or another kind): jitsi | zoom | none",
        "jitsi",
    )
    base_url: str = opt("Base URL of the video service (jitsi).", "https://meet.jit.si")
    zoom_account_id: str = opt("Zoom server-to-server OAuth app: account id.", "")
    zoom_client_id: str = opt("Zoom server-to-server OAuth app: client id.", "")
    zoom_client_secret: Secret | None = opt("Zoom: client secret (_env/_file).", None)
    zoom_api_url: str = opt("Zoom API base.", "https://api.zoom.us/v2")
    zoom_token_url: str = opt("Zoom token endpoint.", "https://zoom.us/oauth/token")


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    interval_minutes: int = opt("Minutes between sync passes of the daemon.", 5)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyConfig:
    teachers: bool = opt("Email teachers about changes to their meetings.", False)
    staff_digest: str = opt(
        "daily | never: once a day, quarantined messages and dead-lettered deliveries are "
        "emailed to school.contact (only on days with something to report).",
        "daily",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplatesConfig:
    summary: str = opt(
        "Summary of the event in the teacher's calendar.",
        "Conference: {student_first} ({guardian})",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """One calendar account (DESIGN §5, §8).  ``for`` in a key's metadata names the account
    types it applies to; a key set on an account of another type is refused at load."""

    id: str = opt("Name that teachers.csv refers to in its account column.")
    type: str = opt("caldav | graph | ews | google | ics")
    url: str = opt(
        "CalDAV: server or collection URL; ews: the EWS endpoint "
        "(https://…/EWS/Exchange.asmx); ics: the feed's URL.",
        "",
        **{"for": ("caldav", "ews", "ics")},
    )
    username: str = opt(
        "Login name (CalDAV, EWS: DOMAIN\\user for NTLM; ics: HTTP basic).",
        "",
        **{"for": ("caldav", "ews", "ics")},
    )
    password: Secret | None = opt(
        "Password (password, password_env or password_file).",
        None,
        **{"for": ("caldav", "ews", "ics")},
    )
    freebusy: str = opt(
        "CalDAV: auto: the server's free-busy REPORT only where it is known to be right; "
        "local | server",
        "auto",
        **{"for": ("caldav",)},
    )
    ca_file: Path | None = opt(
        "PEM file of a private certificate authority to trust besides the system's "
        "(TLS verification is always on).",
        None,
    )
    auth: str = opt("EWS: ntlm | basic | oauth", "ntlm", **{"for": ("ews",)})
    tenant_id: str = opt(
        "Graph, EWS oauth: the Entra ID (Azure AD) tenant id.", "", **{"for": ("graph", "ews")}
    )
    client_id: str = opt(
        "Graph, EWS oauth: the application (client) id of the app registration.",
        "",
        **{"for": ("graph", "ews")},
    )
    client_secret: Secret | None = opt(
        "Graph, EWS oauth: the app's client secret (_env/_file).",
        None,
        **{"for": ("graph", "ews")},
    )
    certificate_file: Path | None = opt(
        "Graph: PEM file with the app's certificate and its private key (instead of a "
        "client secret).",
        None,
        **{"for": ("graph",)},
    )
    graph_url: str = opt(
        "Graph: API base; requests go to {graph_url}/users/{mailbox}/…",
        "https://graph.microsoft.com/v1.0",
        **{"for": ("graph",)},
    )
    authority_url: str = opt(
        "Graph: token authority; tokens come from {authority_url}/{tenant_id} (https only).",
        "https://login.microsoftonline.com",
        **{"for": ("graph",)},
    )
    service_account_file: Path | None = opt(
        "Google: service-account JSON key with domain-wide delegation (each teacher is "
        "impersonated).",
        None,
        **{"for": ("google",)},
    )
    oauth_token_file: Path | None = opt(
        "Google: authorized-user JSON (client_id, client_secret, refresh_token) instead of a "
        "service account.",
        None,
        **{"for": ("google",)},
    )
    api_url: str = opt(
        "Google: API root; requests go to {api_url}calendar/v3/…",
        "https://www.googleapis.com/",
        **{"for": ("google",)},
    )
    token_url: str = opt(
        "Google, EWS oauth: where tokens come from; empty: the vendor's "
        "(https://oauth2.googleapis.com/token, "
        "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token).",
        "",
        **{"for": ("google", "ews")},
    )
    blocks: str = opt(
        'ics: "everyone": the feed is the school events calendar and its busy times block '
        'every teacher; "": only teachers whose calendar is this feed.',
        "",
        **{"for": ("ics",)},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingAddressConfig:
    """Requests to teachers' booking addresses, decided like an Exchange room mailbox
    (the keys are named after Set-CalendarProcessing)."""

    automate_processing: str = opt(
        "auto_accept: requests are decided at once; none: they wait in quarantine for staff.",
        "auto_accept",
    )
    booking_window_days: int = opt("How many days ahead a booking address takes requests.", 180)
    maximum_duration_minutes: int = opt(
        "Longest meeting a booking address accepts; 0: the period's slot length.", 0
    )
    process_external_meeting_messages: bool = opt(
        "false: requests from senders who are not guardians in the roster are quarantined "
        "unanswered; true: they are declined.  Strangers never book.",
        False,
    )
    add_additional_response: str = opt("Text appended to every answer we send.", "")
    allow_conflicts: bool = opt("Must be false: a booking address never double-books.", False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodConfig:
    id: str = opt("Short id used on the command line and in URLs.")
    title: str = opt("Title shown to parents.")
    windows: tuple[Window, ...] = opt(
        'Local times, e.g. ["2027-04-10T15:00/19:00"]; the school\'s time zone.'
    )
    slot_minutes: int = opt("Length of one meeting.", 15)
    buffer_minutes: int = opt("Minutes between two slots of the same teacher.", 0)
    gap_minutes: int = opt("Minutes between a family's consecutive meetings.", 5)
    hold_hours: int = opt("Hours a proposed meeting holds its slot.", 48)
    booking_opens: datetime | None = opt(
        "When the daemon sends the invitations by itself (local time); or run `invite`.", None
    )
    booking_closes: datetime | None = opt("Deadline for bookings (local time).", None)
    format: MeetingFormat = opt("video | in_person | either", MeetingFormat.VIDEO)
    location: str = opt("Where in-person meetings happen; {room} is the teacher's room.", "")
    max_reproposals: int = opt(
        "New proposals after a decline before the family is told how else to book.", 2
    )
    max_meetings_per_family: int = opt(
        "Most active meetings one family may have in the period; 0: no cap.", 0
    )
    max_meetings_per_teacher: int = opt(
        "Most active meetings one teacher may have in the period; 0: no cap.", 0
    )
    meeting_mode: str = opt(
        "joint | separate: whether a student's guardians meet the teacher together, for "
        "students without a meeting_mode in the roster.",
        "joint",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    school: SchoolConfig = opt("[school]")
    periods: tuple[PeriodConfig, ...] = opt("[[periods]]")
    database: DatabaseConfig = opt("[database]", DatabaseConfig())
    mail: MailConfig | None = opt("[mail]", None)
    web: WebConfig = opt("[web]", WebConfig())
    video: VideoConfig = opt("[video]", VideoConfig())
    sync: SyncConfig = opt("[sync]", SyncConfig())
    templates: TemplatesConfig = opt("[templates]", TemplatesConfig())
    notify: NotifyConfig = opt("[notify]", NotifyConfig())
    booking_address: BookingAddressConfig = opt("[booking_address]", BookingAddressConfig())
    accounts: tuple[AccountConfig, ...] = opt("[[accounts]]", ())
    path: Path | None = field(default=None, metadata={"internal": True})

    @property
    def tz(self) -> ZoneInfo:
        return self.school.timezone

    def period(self, period_id: str | None) -> PeriodConfig:
        """The period named ``period_id``, or the only/first one when None."""
        if period_id is None:
            return self.periods[0]
        for period in self.periods:
            if period.id == period_id:
                return period
        known = ", ".join(p.id for p in self.periods)
        raise ConfigError(f"no period {period_id!r} (configured: {known})")

    def account(self, account_id: str) -> AccountConfig:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise ConfigError(f"no account {account_id!r}", "accounts")


# --- loading ----------------------------------------------------------------------------

T = TypeVar("T")


class _Failed(Exception):
    """A value could not be loaded; its problems are already recorded."""


class _Loader:
    """Walks the schema over the parsed TOML, recording every problem instead of stopping
    at the first (``problems``): an unknown key (with the nearest known one, "did you
    mean"), a missing required key and each value that cannot be converted.  A section
    with a bad value is not built (:class:`_Failed`); one with an unknown key still is."""

    def __init__(self, base_dir: Path, tz: ZoneInfo | None, origin: str | None = None) -> None:
        self.base_dir = base_dir
        self.tz = tz
        self.origin = origin
        self.problems: list[ConfigProblem] = []

    def record(self, exc: ConfigError) -> None:
        self.problems += exc.problems

    def section(self, cls: type[T], table: Any, key: str) -> T:
        if not isinstance(table, Mapping):
            raise ConfigError(f"must be a table, got {_kind(table)}", key or None)
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
        secrets = {n for n, f in fields.items() if _is_secret(hints[n])}
        allowed = set(fields) - secrets
        for name in secrets:
            allowed |= {name, f"{name}_env", f"{name}_file"}
        for given in table:
            if given not in allowed:
                self.problems.append(ConfigProblem(_unknown(given, allowed), _join(key, given)))
        values: dict[str, Any] = {}
        failed = False
        for name, fld in fields.items():
            dotted = _join(key, name)
            try:
                if name in secrets:
                    values[name] = self.secret(table, name, dotted)
                elif name in table:
                    values[name] = self.value(hints[name], table[name], dotted)
                elif (
                    fld.default is dataclasses.MISSING
                    and fld.default_factory is dataclasses.MISSING
                ):
                    raise ConfigError("missing required key", dotted)
            except ConfigError as exc:
                self.record(exc)
                failed = True
            except _Failed:
                failed = True
        if failed:
            raise _Failed
        try:
            built = cls(**values)
        except (TypeError, ValueError) as exc:  # pragma: no cover - schema bug
            raise ConfigError(str(exc), key or None) from exc
        check = _SECTION_CHECKS.get(cls)
        if check is not None:
            check(built, key, lambda message, at: self.problems.append(ConfigProblem(message, at)))
        return built

    def secret(self, table: Mapping[str, Any], name: str, dotted: str) -> Secret | None:
        given = [k for k in (name, f"{name}_env", f"{name}_file") if k in table]
        if len(given) > 1:
            raise ConfigError(f"give only one of {', '.join(given)}", dotted)
        if not given:
            return None
        raw = table[given[0]]
        if not isinstance(raw, str):
            raise ConfigError(f"must be a string, got {_kind(raw)}", _join(dotted, "")[:-1])
        if given[0].endswith("_env"):
            return Secret(key=dotted, env=raw, origin=self.origin)
        if given[0].endswith("_file"):
            return Secret(key=dotted, file=self.path(raw), origin=self.origin)
        return Secret(key=dotted, value=raw, origin=self.origin)

    def path(self, raw: str) -> Path:
        p = Path(raw).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def value(self, hint: Any, raw: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.value(inner[0], raw, key)
        if dataclasses.is_dataclass(hint):
            return self.section(hint, raw, key)  # type: ignore[arg-type]
        if origin is tuple:
            item = typing.get_args(hint)[0]
            if not isinstance(raw, list):
                raise ConfigError(f"must be a list, got {_kind(raw)}", key)
            read = self.window if item is Window else lambda v, k: self.value(item, v, k)
            items, failed = [], False
            for i, v in enumerate(raw):
                try:
                    items.append(read(v, f"{key}[{i}]"))
                except ConfigError as exc:  # every item's problems, not the first only
                    self.record(exc)
                    failed = True
                except _Failed:
                    failed = True
            if failed:
                raise _Failed
            return tuple(items)
        if origin is dict:
            if not isinstance(raw, Mapping):
                raise ConfigError(f"must be a table, got {_kind(raw)}", key)
            return {str(k): _strings(v, f"{key}.{k}") for k, v in raw.items()}
        if hint is bool:
            if not isinstance(raw, bool):
                raise ConfigError(f"must be true or false, got {raw!r}", key)
            return raw
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ConfigError(f"must be a whole number, got {raw!r}", key)
            return raw
        if hint is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ConfigError(f"must be a number, got {raw!r}", key)
            return float(raw)
        if hint is str:
            if not isinstance(raw, str):
                raise ConfigError(f"must be a string, got {_kind(raw)}", key)
            return raw
        if hint is ZoneInfo:
            return _zone(raw, key)
        if hint is Path:
            if not isinstance(raw, str) or not raw:
                raise ConfigError(f"must be a file path, got {raw!r}", key)
            return self.path(raw)
        if hint is MeetingFormat:
            try:
                return MeetingFormat(raw)
            except ValueError:
                choices = " | ".join(m.value for m in MeetingFormat)
                raise ConfigError(f"must be one of {choices}, got {raw!r}", key) from None
        if hint is datetime:
            return self.local_datetime(raw, key)
        raise ConfigError(f"unsupported value {raw!r}", key)  # pragma: no cover - schema bug

    def local_datetime(self, raw: Any, key: str) -> datetime:
        if isinstance(raw, str):
            try:
                raw = datetime.fromisoformat(raw)
            except ValueError:
                raise ConfigError(f"not a date and time: {raw!r}", key) from None
        if isinstance(raw, date) and not isinstance(raw, datetime):
            raw = datetime.combine(raw, time())
        if not isinstance(raw, datetime):
            raise ConfigError(f"must be a date and time, got {_kind(raw)}", key)
        if raw.tzinfo is not None:
            return raw
        if self.tz is None:
            raise _Failed  # school.timezone is missing or bad: reported there
        return _aware(raw, self.tz, key).astimezone(UTC)

    def window(self, raw: Any, key: str) -> Window:
        if not isinstance(raw, str) or "/" not in raw:
            raise ConfigError(f'must look like "2027-04-10T15:00/19:00", got {raw!r}', key)
        first, _, second = raw.partition("/")
        try:
            start = datetime.fromisoformat(first)
        except ValueError:
            raise ConfigError(f"window start is not a date and time: {first!r}", key) from None
        try:
            if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", second):
                end = datetime.combine(start.date(), time.fromisoformat(second.zfill(5)))
            else:
                end = datetime.fromisoformat(second)
        except ValueError:
            raise ConfigError(f"window end is not a time: {second!r}", key) from None
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ConfigError("window times are local times of the school; drop the offset", key)
        if self.tz is None:
            raise _Failed  # school.timezone is missing or bad: reported there
        # Kept in UTC: arithmetic on two datetimes of one ZoneInfo ignores a clock change.
        window = Window(
            _aware(start, self.tz, key).astimezone(UTC), _aware(end, self.tz, key).astimezone(UTC)
        )
        if window.end <= window.start:
            raise ConfigError(f"window ends before it starts: {raw}", key)
        return window


def _aware(local: datetime, tz: ZoneInfo, key: str) -> datetime:
    aware = local.replace(tzinfo=tz)
    # A wall-clock time that does not exist (clocks jump forward) does not survive a
    # round trip through UTC; refuse it rather than guess.
    round_trip = aware.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if round_trip.replace(tzinfo=None) != local:
        raise ConfigError(f"{local.isoformat()} does not exist in {tz.key} (clocks change)", key)
    return aware


def _zone(raw: Any, key: str) -> ZoneInfo:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"must be an IANA time zone name, got {raw!r}", key)
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {raw!r}", key) from None


def _strings(raw: Any, key: str) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError("must be a list of strings", key)
    return list(raw)


def _is_secret(hint: Any) -> bool:
    return hint is Secret or Secret in typing.get_args(hint)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _kind(raw: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(raw), type(raw).__name__
    )


#: Records one problem: (message, dotted key).
_Bad = Callable[[str, str], None]


def _unknown(given: str, allowed: Iterable[str]) -> str:
    """ "unknown key", with the closest known key of its section when one is close."""
    close = difflib.get_close_matches(given, sorted(allowed), n=1)
    return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"


def _check(config: Config) -> list[ConfigProblem]:
    """Rules across sections (each section's own rules ran as it was read: _SECTION_CHECKS)."""
    problems: list[ConfigProblem] = []

    def bad(message: str, key: str) -> None:
        problems.append(ConfigProblem(message, key))

    if not config.periods:
        bad("at least one [[periods]] is needed", "periods")
    _unique([p.id for p in config.periods], "periods", "id", bad)
    _unique([a.id for a in config.accounts], "accounts", "id", bad)
    booking = config.booking_address
    shortest = min((p.slot_minutes for p in config.periods), default=0)
    if 0 < booking.maximum_duration_minutes < shortest:
        bad(
            f"must be 0 or at least the meetings' length ({shortest} minutes), or every "
            "request would be refused",
            "booking_address.maximum_duration_minutes",
        )
    return problems


def _check_school(school: SchoolConfig, where: str, bad: _Bad) -> None:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", school.contact):
        bad(f"not an email address: {school.contact!r}", f"{where}.contact")


def _check_period(period: PeriodConfig, where: str, bad: _Bad) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", period.id):
        bad("use letters, digits, '.', '_' and '-' only", f"{where}.id")
    if not period.windows:
        bad("at least one window is needed", f"{where}.windows")
    for name in ("slot_minutes", "hold_hours"):
        if getattr(period, name) <= 0:
            bad("must be greater than 0", f"{where}.{name}")
    if period.meeting_mode not in MEETING_MODES:
        bad(f"must be one of {' | '.join(MEETING_MODES)}", f"{where}.meeting_mode")
    for name in (
        "buffer_minutes",
        "gap_minutes",
        "max_reproposals",
        "max_meetings_per_family",
        "max_meetings_per_teacher",
    ):
        if getattr(period, name) < 0:
            bad("must not be negative", f"{where}.{name}")
    ordered = sorted(period.windows, key=lambda w: w.start)
    if any(b.start < a.end for a, b in itertools.pairwise(ordered)):
        bad("windows overlap", f"{where}.windows")
    for w in period.windows:
        if w.end - w.start < timedelta(minutes=max(period.slot_minutes, 0)):
            bad(f"window {w.start:%Y-%m-%dT%H:%M} is shorter than one slot", f"{where}.windows")
    opens, closes = period.booking_opens, period.booking_closes
    if opens and closes and closes <= opens:
        bad("booking closes before it opens", f"{where}.booking_closes")


def _check_booking(booking: BookingAddressConfig, where: str, bad: _Bad) -> None:
    if booking.allow_conflicts:
        bad(
            "must be false: a booking address never accepts a time that is taken",
            f"{where}.allow_conflicts",
        )
    if booking.automate_processing not in AUTOMATE_PROCESSING:
        bad(
            f"must be one of {' | '.join(AUTOMATE_PROCESSING)}",
            f"{where}.automate_processing",
        )
    for name in ("booking_window_days", "maximum_duration_minutes"):
        if getattr(booking, name) < 0:
            bad("must not be negative", f"{where}.{name}")


def _check_mail(mail: MailConfig, where: str, bad: _Bad) -> None:
    for name in ("max_message_bytes", "max_calendar_components"):
        if getattr(mail, name) <= 0:
            bad("must be greater than 0", f"{where}.{name}")
    if mail.smtp and mail.smtp.ssl and mail.smtp.starttls:
        bad("choose ssl or starttls, not both", f"{where}.smtp.starttls")
    if mail.imap and mail.imap.ssl and mail.imap.starttls:
        bad("choose ssl or starttls, not both", f"{where}.imap.starttls")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", mail.organizer):
        bad(f"not an email address: {mail.organizer!r}", f"{where}.organizer")


def _check_notify(notify: NotifyConfig, where: str, bad: _Bad) -> None:
    if notify.staff_digest not in STAFF_DIGEST:
        bad(f"must be one of {' | '.join(STAFF_DIGEST)}", f"{where}.staff_digest")


def _check_account(account: AccountConfig, where: str, bad: _Bad) -> None:
    """The keys an account of its type needs, and none that belong to another type."""
    kind = account.type
    if kind not in ACCOUNT_TYPES:
        bad(f"must be one of {' | '.join(ACCOUNT_TYPES)}", f"{where}.type")
    if account.freebusy not in FREEBUSY_MODES:
        bad(f"must be one of {' | '.join(FREEBUSY_MODES)}", f"{where}.freebusy")
    for f in dataclasses.fields(AccountConfig):
        applies = f.metadata.get("for")
        if applies is None or kind in applies:
            continue
        if getattr(account, f.name) != f.default:
            bad(
                f"is not a key of a {kind} account (it belongs to {' / '.join(applies)})",
                f"{where}.{f.name}",
            )
    if kind in ("caldav", "ews", "ics"):
        if not account.url:
            bad(f"{_article(kind)} {kind} account needs a url", f"{where}.url")
        elif not re.match(r"https?://", account.url):
            bad(f"must be an http(s) URL, got {account.url!r}", f"{where}.url")
    if kind == "graph":
        for name in ("tenant_id", "client_id"):
            if not getattr(account, name):
                bad(f"a graph account needs {name}", f"{where}.{name}")
        if (account.client_secret is None) == (account.certificate_file is None):
            bad(
                "a graph account needs client_secret (or _env/_file) or certificate_file, "
                "one of them",
                f"{where}.client_secret",
            )
        for name in ("graph_url", "authority_url"):
            if not getattr(account, name).startswith("https://"):
                bad("must be an https:// URL", f"{where}.{name}")
    if kind == "ews":
        if account.auth not in EWS_AUTH:
            bad(f"must be one of {' | '.join(EWS_AUTH)}", f"{where}.auth")
        if account.auth == "oauth":
            for name in ("tenant_id", "client_id", "client_secret"):
                if not getattr(account, name):
                    bad(f'auth = "oauth" needs {name}', f"{where}.{name}")
        elif not account.username or account.password is None:
            bad(
                f'auth = "{account.auth}" needs username and password (or _env/_file)',
                f"{where}.username" if not account.username else f"{where}.password",
            )
    if kind == "google":
        if (account.service_account_file is None) == (account.oauth_token_file is None):
            bad(
                "a google account needs service_account_file or oauth_token_file, one of them",
                f"{where}.service_account_file",
            )
        if not re.match(r"https?://.*/$", account.api_url):
            bad("must be an http(s) URL ending in /", f"{where}.api_url")
    for name in ("ca_file", "certificate_file", "service_account_file", "oauth_token_file"):
        path = getattr(account, name)
        if path is not None and not os.access(path, os.R_OK):
            reason = "no such file" if not path.exists() else "not readable by this user"
            bad(f"cannot read {path}: {reason}", f"{where}.{name}")
    if account.token_url and not re.match(r"https?://", account.token_url):
        bad("must be an http(s) URL", f"{where}.token_url")
    if kind == "ics" and account.blocks not in ("", "everyone"):
        bad('must be "everyone" or left out', f"{where}.blocks")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _check_video(video: VideoConfig, where: str, bad: _Bad) -> None:
    if video.provider not in VIDEO_PROVIDERS:
        bad(f"must be one of {' | '.join(VIDEO_PROVIDERS)}", f"{where}.provider")
    if video.fallback not in VIDEO_FALLBACKS:
        bad(f"must be one of {' | '.join(VIDEO_FALLBACKS)}", f"{where}.fallback")
    zoom = video.provider == "zoom" or (
        video.provider in ("auto", "teams", "meet") and video.fallback == "zoom"
    )
    for name in ("zoom_api_url", "zoom_token_url"):
        url = getattr(video, name)
        # https, or plain http to this machine only (a local proxy; the tests' fake).
        if zoom and not re.match(r"https://|http://(127\.0\.0\.1|localhost|\[::1\])[:/]", url):
            bad("must be an https:// URL", f"{where}.{name}")
    if zoom:
        for name in ("zoom_account_id", "zoom_client_id", "zoom_client_secret"):
            if not getattr(video, name):
                bad("zoom links need the Zoom app's keys", f"{where}.{name}")


def _check_web(web: WebConfig, where: str, bad: _Bad) -> None:
    host, sep, port = web.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        bad(f'must be host:port, e.g. "127.0.0.1:8080", got {web.listen!r}', f"{where}.listen")
    if web.public_url and not re.match(r"https?://[^/]", web.public_url):
        bad(f"must be an http(s) URL, got {web.public_url!r}", f"{where}.public_url")


#: Each section's own rules, run on every section that loaded (so that one bad value
#: elsewhere hides none of them); ``where`` is the section's dotted key.
_SECTION_CHECKS: dict[type, Callable[[Any, str, _Bad], None]] = {
    SchoolConfig: _check_school,
    PeriodConfig: _check_period,
    AccountConfig: _check_account,
    BookingAddressConfig: _check_booking,
    MailConfig: _check_mail,
    VideoConfig: _check_video,
    NotifyConfig: _check_notify,
    WebConfig: _check_web,
}


def _unique(values: Sequence[str], section: str, name: str, bad: _Bad) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            bad(f"duplicate {name} {value!r}", f"{section}[{i}].{name}")
        seen.add(value)


def parse(text: str, path: Path | None = None) -> Config:
    """Parse and validate the text of a config file."""
    where = str(path) if path else None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=where) from None
    base_dir = path.parent if path else Path.cwd()
    school = data.get("school")
    tz = None
    if isinstance(school, Mapping) and "timezone" in school:
        with suppress(ConfigError):  # reported where [school] is read
            tz = _zone(school["timezone"], "school.timezone")
    loader = _Loader(base_dir, tz, where)
    config: Config | None = None
    try:
        config = loader.section(Config, data, "")
    except ConfigError as exc:  # pragma: no cover - the top level is always a table
        loader.record(exc)
    except _Failed:
        pass  # recorded
    problems = loader.problems
    if config is not None:
        config = dataclasses.replace(
            config,
            path=path,
            database=DatabaseConfig(url=_resolve_db_url(config.database.url, base_dir)),
        )
        problems += _check(config)
    if problems:
        lines = key_lines(text)
        placed = [dataclasses.replace(p, line=line_of(lines, p.key)) for p in problems]
        placed.sort(key=lambda p: p.line if p.line is not None else 1 << 30)
        raise ConfigError(problems=placed, path=where)
    assert config is not None
    return config


def _resolve_db_url(url: str, base_dir: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("file:"):
            return prefix + str((base_dir / rest).resolve())
    return url


def find(explicit: str | None) -> Path:
    """The config file: --config, then $PTM_SYNC_CONFIG, then ./ptm-sync.toml, then /etc."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PTM_SYNC_CONFIG")
    if env:
        return Path(env)
    for candidate in SEARCH_PATHS:
        try:
            if candidate.exists():
                return candidate
        except PermissionError:
            continue  # a working directory we may not read (runuser from /root): not there
    raise ConfigError(
        "no configuration found: pass --config, set PTM_SYNC_CONFIG, "
        "or run `ptm-sync init` to write ./ptm-sync.toml"
    )


def load(explicit: str | None = None) -> Config:
    path = find(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    return parse(text, path.resolve())


def _toml(value: Any) -> str:
    """A default as it would be written in the TOML file ("" when there is none)."""
    if value is None or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return ""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def schema() -> list[tuple[str, str, str]]:
    """Every config key as (dotted key, default, help): the reference in the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            hint = hints[f.name]
            inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            target = inner[0]
            if typing.get_origin(target) is tuple:
                target = typing.get_args(target)[0]
            key = _join(prefix, f.name)
            if target is Secret:
                for suffix in ("", "_env", "_file"):
                    rows.append((key + suffix, "", f.metadata["help"]))
                continue
            if dataclasses.is_dataclass(target) and target is not Window:
                walk(target, key)  # type: ignore[arg-type]
                continue
            if f.default is not dataclasses.MISSING:
                default = _toml(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                default = _toml(f.default_factory())
            else:
                default = "required"
            rows.append((key, default, f.metadata["help"]))

    walk(Config, "")
    return rows
