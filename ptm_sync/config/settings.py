"""Configuration: one TOML file → frozen, validated objects.

The schema is data (:mod:`ptm_sync.config.schema`): every section is a frozen dataclass whose
fields carry their help text, and one generic loader walks them; each section's own rules
are :mod:`ptm_sync.config.rules`.  That loader refuses unknown keys, reports missing
required ones and converts values, naming the offending key as a dotted path.  Secrets are
never read at load time: a :class:`Secret` records where the value lives (``password``,
``password_env`` or ``password_file``) and :meth:`Secret.reveal` fetches it when needed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from contextlib import suppress
from datetime import UTC, date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ptm_sync.config.lines import key_lines, line_of
from ptm_sync.config.rules import SECTION_CHECKS, check_config
from ptm_sync.config.schema import (
    ACCOUNT_TYPES,
    AUTOMATE_PROCESSING,
    EWS_AUTH,
    FREEBUSY_MODES,
    SEARCH_PATHS,
    STAFF_DIGEST,
    VIDEO_FALLBACKS,
    VIDEO_PROVIDERS,
    AccountConfig,
    BookingAddressConfig,
    Config,
    DatabaseConfig,
    ImapConfig,
    MailConfig,
    NotifyConfig,
    PeriodConfig,
    RetentionConfig,
    SchoolConfig,
    Secret,
    SmtpConfig,
    SyncConfig,
    TemplatesConfig,
    VideoConfig,
    WebConfig,
    opt,
)
from ptm_sync.core.errors import ConfigError, ConfigProblem
from ptm_sync.core.model import MEETING_MODES, MeetingFormat, Window

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
        check = SECTION_CHECKS.get(cls)
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


def _unknown(given: str, allowed: Iterable[str]) -> str:
    """ "unknown key", with the closest known key of its section when one is close."""
    close = difflib.get_close_matches(given, sorted(allowed), n=1)
    return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"


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
        problems += check_config(config)
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
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}): TOML files are UTF-8; save it as UTF-8",
            path=str(path),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark (Windows editors): TOML's UTF-8 has none
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


__all__ = [
    "ACCOUNT_TYPES",
    "AUTOMATE_PROCESSING",
    "EWS_AUTH",
    "FREEBUSY_MODES",
    "MEETING_MODES",
    "SEARCH_PATHS",
    "STAFF_DIGEST",
    "VIDEO_FALLBACKS",
    "VIDEO_PROVIDERS",
    "AccountConfig",
    "BookingAddressConfig",
    "Config",
    "DatabaseConfig",
    "ImapConfig",
    "MailConfig",
    "NotifyConfig",
    "PeriodConfig",
    "RetentionConfig",
    "SchoolConfig",
    "Secret",
    "SmtpConfig",
    "SyncConfig",
    "TemplatesConfig",
    "VideoConfig",
    "WebConfig",
    "find",
    "load",
    "opt",
    "parse",
    "schema",
]
