"""The configuration's schema: every section a frozen dataclass whose fields carry their
help text (DESIGN §8, a contract), the choices some keys take, and :class:`Secret`.

Loading and checking are :mod:`ptm_sync.config.settings` (the loader) and
:mod:`ptm_sync.config.rules`
(each section's own rules); code reads the sections through :mod:`ptm_sync.config.settings`, which
gives these names too.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ptm_sync.core.errors import ConfigError
from ptm_sync.core.model import MeetingFormat, Window

SEARCH_PATHS = (Path("ptm-sync.toml"), Path("/etc/ptm-sync/ptm-sync.toml"))
ACCOUNT_TYPES = ("caldav", "graph", "ews", "google", "ics")
VIDEO_PROVIDERS = ("jitsi", "teams", "meet", "zoom", "none", "auto")
VIDEO_FALLBACKS = ("jitsi", "zoom", "none")
EWS_AUTH = ("ntlm", "basic", "oauth")
FREEBUSY_MODES = ("auto", "local", "server")
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
    metrics_from: tuple[str, ...] = opt(
        "Networks (CIDR) that may read /metrics; 403 elsewhere.", ("127.0.0.0/8", "::1/128")
    )


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
    reminder_hours: int = opt(
        "Hours before a confirmed meeting its family is emailed a reminder; 0: no reminder.", 24
    )
    feedback_url: str = opt(
        "A survey link sent after each meeting, {token} replaced by a per-meeting token "
        "(or ?t=<token> appended); empty: the families are asked to reply by email.",
        "",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionConfig:
    meetings_days: int = opt(
        "Days after a meeting ends that its personal data is purged (the daily purge job); "
        "0: kept.  The anonymous counts of `report` stay.",
        0,
    )
    quarantine_days: int = opt(
        "Days the bodies of quarantined messages are kept (the daily purge job); 0: kept.", 30
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
    retention: RetentionConfig = opt("[retention]", RetentionConfig())
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
