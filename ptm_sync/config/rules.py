"""The configuration's rules: what each section must hold beyond its types (DESIGN §8), and
the rules across sections.  :mod:`ptm_sync.config.settings`'s loader runs :data:`SECTION_CHECKS` on
every section that loaded (so one bad value elsewhere hides none) and :func:`check_config` on
the whole; every problem is recorded through a :data:`Bad` callback as (message, dotted key).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import os
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ptm_sync.config.schema import (
    ACCOUNT_TYPES,
    AUTOMATE_PROCESSING,
    EWS_AUTH,
    FREEBUSY_MODES,
    STAFF_DIGEST,
    VIDEO_FALLBACKS,
    VIDEO_PROVIDERS,
    AccountConfig,
    BookingAddressConfig,
    Config,
    MailConfig,
    NotifyConfig,
    PeriodConfig,
    RetentionConfig,
    SchoolConfig,
    VideoConfig,
    WebConfig,
)
from ptm_sync.core.errors import ConfigProblem
from ptm_sync.core.model import MEETING_MODES

#: Records one problem: (message, dotted key).
Bad = Callable[[str, str], None]


def check_config(config: Config) -> list[ConfigProblem]:
    """Rules across sections (each section's own rules ran as it was read: SECTION_CHECKS)."""
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


def _check_school(school: SchoolConfig, where: str, bad: Bad) -> None:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", school.contact):
        bad(f"not an email address: {school.contact!r}", f"{where}.contact")


def _check_period(period: PeriodConfig, where: str, bad: Bad) -> None:
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
        "reminder_hours",
    ):
        if getattr(period, name) < 0:
            bad("must not be negative", f"{where}.{name}")
    if period.feedback_url and not re.fullmatch(r"https?://\S+", period.feedback_url):
        bad("must be an http(s) address, or empty", f"{where}.feedback_url")
    ordered = sorted(period.windows, key=lambda w: w.start)
    if any(b.start < a.end for a, b in itertools.pairwise(ordered)):
        bad("windows overlap", f"{where}.windows")
    for w in period.windows:
        if w.end - w.start < timedelta(minutes=max(period.slot_minutes, 0)):
            bad(f"window {w.start:%Y-%m-%dT%H:%M} is shorter than one slot", f"{where}.windows")
    opens, closes = period.booking_opens, period.booking_closes
    if opens and closes and closes <= opens:
        bad("booking closes before it opens", f"{where}.booking_closes")


def _check_booking(booking: BookingAddressConfig, where: str, bad: Bad) -> None:
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


def _check_mail(mail: MailConfig, where: str, bad: Bad) -> None:
    for name in ("max_message_bytes", "max_calendar_components"):
        if getattr(mail, name) <= 0:
            bad("must be greater than 0", f"{where}.{name}")
    if mail.smtp and mail.smtp.ssl and mail.smtp.starttls:
        bad("choose ssl or starttls, not both", f"{where}.smtp.starttls")
    if mail.imap and mail.imap.ssl and mail.imap.starttls:
        bad("choose ssl or starttls, not both", f"{where}.imap.starttls")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", mail.organizer):
        bad(f"not an email address: {mail.organizer!r}", f"{where}.organizer")


def _check_notify(notify: NotifyConfig, where: str, bad: Bad) -> None:
    if notify.staff_digest not in STAFF_DIGEST:
        bad(f"must be one of {' | '.join(STAFF_DIGEST)}", f"{where}.staff_digest")


def _check_account(account: AccountConfig, where: str, bad: Bad) -> None:
    """The keys an account of its type needs, and none that belong to another type."""
    kind = account.type
    if kind not in ACCOUNT_TYPES:
        # Nothing else can be said of the keys of a type that does not exist: one line.
        bad(f"must be one of {' | '.join(ACCOUNT_TYPES)}", f"{where}.type")
        return
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


def _check_video(video: VideoConfig, where: str, bad: Bad) -> None:
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


def _check_web(web: WebConfig, where: str, bad: Bad) -> None:
    host, sep, port = web.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        bad(f'must be host:port, e.g. "127.0.0.1:8080", got {web.listen!r}', f"{where}.listen")
    if web.public_url and not re.match(r"https?://[^/]", web.public_url):
        bad(f"must be an http(s) URL, got {web.public_url!r}", f"{where}.public_url")
    for network in web.metrics_from:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            bad(f'must be networks like "10.0.0.0/8", got {network!r}', f"{where}.metrics_from")


#: Each section's own rules, run on every section that loaded (so that one bad value
#: elsewhere hides none of them); ``where`` is the section's dotted key.
def _check_retention(retention: RetentionConfig, where: str, bad: Bad) -> None:
    for name in ("meetings_days", "quarantine_days"):
        if getattr(retention, name) < 0:
            bad("must not be negative", f"{where}.{name}")


SECTION_CHECKS: dict[type, Callable[[Any, str, Bad], None]] = {
    RetentionConfig: _check_retention,
    SchoolConfig: _check_school,
    PeriodConfig: _check_period,
    AccountConfig: _check_account,
    BookingAddressConfig: _check_booking,
    MailConfig: _check_mail,
    VideoConfig: _check_video,
    NotifyConfig: _check_notify,
    WebConfig: _check_web,
}


def _unique(values: Sequence[str], section: str, name: str, bad: Bad) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            bad(f"duplicate {name} {value!r}", f"{section}[{i}].{name}")
        seen.add(value)
