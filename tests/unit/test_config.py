"""The configuration loader: every bad input is one clear line naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ptm_sync.config import settings as config
from ptm_sync.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "ptm-sync.example.toml"

MINIMAL = """
[school]
name = "Test School"
timezone = "Europe/Berlin"
contact = "office@school.test"

[[periods]]
id = "p1"
title = "Autumn"
windows = ["2026-10-24T15:00/18:00"]
"""


def test_example_config_loads_and_is_documented() -> None:
    cfg = config.parse(EXAMPLE.read_text(), EXAMPLE)
    assert cfg.school.timezone.key == "America/New_York"
    assert cfg.periods[0].windows[0].start.astimezone(cfg.tz).hour == 15
    assert cfg.mail is not None and cfg.mail.smtp is not None
    assert repr(cfg.mail.smtp.password) == "Secret(mail.smtp.password)"


def test_every_key_is_in_the_readme() -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    missing = [key for key, _, _ in config.schema() if f"`{key}`" not in readme]
    assert not missing, f"README lacks the configuration keys {missing}"


def test_minimal_config_gets_defaults() -> None:
    cfg = config.parse(MINIMAL)
    period = cfg.period(None)
    assert (period.slot_minutes, period.buffer_minutes, period.gap_minutes) == (15, 0, 5)
    assert cfg.web.listen == "127.0.0.1:8080"
    assert cfg.mail is None


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = config.parse(MINIMAL + '\n[database]\nurl = "sqlite:///data/x.db"\n', tmp_path / "c.toml")
    assert cfg.database.url == f"sqlite:///{tmp_path}/data/x.db"


def test_window_over_clock_change_keeps_real_hours() -> None:
    text = MINIMAL.replace("2026-10-24T15:00/18:00", "2026-10-25T01:00/04:00")
    window = config.parse(text).period(None).windows[0]
    assert (window.end - window.start).total_seconds() == 4 * 3600  # 03:00 happens twice


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (("[school]", "[school]\ncolour = 1"), "school.colour", "unknown key"),
        (('name = "Test School"\n', ""), "school.name", "missing required key"),
        (("Europe/Berlin", "Europe/Atlantis"), "school.timezone", "unknown time zone"),
        (("15:00/18:00", "15:00/14:00"), "periods[0].windows[0]", "ends before it starts"),
        (("15:00/18:00", "15:00"), "periods[0].windows[0]", "must look like"),
        (
            ('title = "Autumn"', 'title = "Autumn"\nslot_minutes = "15"'),
            "periods[0].slot_minutes",
            "whole number",
        ),
        (
            ('title = "Autumn"', 'title = "Autumn"\nslot_minutes = 0'),
            "periods[0].slot_minutes",
            "greater than 0",
        ),
        (("office@school.test", "office"), "school.contact", "not an email"),
        (
            (
                'title = "Autumn"',
                'title = "Autumn"\nbooking_opens = 2026-10-20T08:00:00\n'
                "booking_closes = 2026-10-19T08:00:00",
            ),
            "periods[0].booking_closes",
            "closes before it opens",
        ),
        (
            ("2026-10-24T15:00/18:00", "2026-03-29T02:30/04:00"),
            "periods[0].windows[0]",
            "does not exist",
        ),
        (
            ("[school]", "[booking_address]\nallow_conflicts = true\n\n[school]"),
            "booking_address.allow_conflicts",
            "never accepts a time that is taken",
        ),
        (
            ("[school]", '[booking_address]\nautomate_processing = "auto"\n\n[school]'),
            "booking_address.automate_processing",
            "auto_accept | none",
        ),
        (
            ("[school]", "[booking_address]\nbooking_window_days = -1\n\n[school]"),
            "booking_address.booking_window_days",
            "must not be negative",
        ),
        (
            ("[school]", "[booking_address]\nmaximum_duration_minutes = 10\n\n[school]"),
            "booking_address.maximum_duration_minutes",
            "every request would be refused",
        ),
        (
            ('title = "Autumn"', 'title = "Autumn"\nmeeting_mode = "apart"'),
            "periods[0].meeting_mode",
            "joint | separate",
        ),
        (
            ('title = "Autumn"', 'title = "Autumn"\nmax_meetings_per_family = -2'),
            "periods[0].max_meetings_per_family",
            "must not be negative",
        ),
    ],
)
def test_bad_config_names_the_key(change: tuple[str, str], key: str, message: str) -> None:
    text = MINIMAL.replace(*change, 1)
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert f"{key}: " in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_secrets_are_read_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    text = MINIMAL + (
        '[mail]\norganizer = "c@school.test"\n[mail.smtp]\nhost = "h"\npassword_file = "pw"\n'
        '[mail.imap]\nhost = "h"\nusername = "u"\npassword_env = "PTM_TEST_IMAP_PW"\n'
    )
    cfg = config.parse(text, tmp_path / "c.toml")
    assert cfg.mail and cfg.mail.smtp and cfg.mail.imap
    assert cfg.mail.smtp.password and cfg.mail.smtp.password.reveal() == "s3cret"
    monkeypatch.delenv("PTM_TEST_IMAP_PW", raising=False)
    assert cfg.mail.imap.password is not None
    with pytest.raises(ConfigError, match=re.escape("mail.imap.password_env: environment")):
        cfg.mail.imap.password.reveal()
    monkeypatch.setenv("PTM_TEST_IMAP_PW", "x")
    assert cfg.mail.imap.password.reveal() == "x"


def test_two_sources_for_one_secret_is_an_error() -> None:
    text = (
        MINIMAL
        + '[mail]\norganizer = "c@s.test"\n[mail.smtp]\nhost="h"\npassword="a"\npassword_env="B"\n'
    )
    with pytest.raises(ConfigError, match=r"mail\.smtp\.password: give only one"):
        config.parse(text)


def test_a_config_that_is_not_utf8_is_one_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ptm-sync.toml"
    path.write_bytes('[school]\nname = "Lincoln"\n'.encode("utf-16"))
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert str(path) in str(caught.value) and "UTF-8" in str(caught.value)


def test_a_byte_order_mark_is_no_syntax_error(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "ptm-sync.example.toml"
    marked = tmp_path / "ptm-sync.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + example.read_bytes())
    assert config.load(str(marked)).school.name == config.load(str(example)).school.name
