"""Every configuration mistake at once, each with the line it is on and, for a misspelt key,
the key that was probably meant (DESIGN §7: "all config errors reported at once")."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptm_sync.config import settings as config
from ptm_sync.config.lines import key_lines, line_of
from ptm_sync.core.errors import ConfigError, ConfigProblem
from tests.support.booking import config_text as school

# Line numbers matter below: the text starts on line 1 with [school].
MANY_MISTAKES = """\
[school]
name = "Test School"
timezone = "Europe/Berlin"
contact = "office@school.test"
colour = "red"

[mail]
organizer = "conferences@school.test"
[mail.smtp]
host = "smtp.school.test"
port = "five-eight-seven"

[[accounts]]
id = "district"
type = "caldav"
url = "https://dav.school.test/"
username = "ptm"
password_evn = "PTM_DAV"

[[accounts]]
id = "exchange"
type = "ews"
url = "https://mail.school.test/EWS/Exchange.asmx"
auth = "kerberos"

[[periods]]
id = "p1"
title = "Autumn"
windows = [
  "2026-10-24T15:00/18:00",
  "2026-10-25T19:00/15:00",
]

[[periods]]
id = "p2"
title = "Spring"
slot_minutes = 0
windows = ["2027-03-20T15:00/18:00"]
"""


def problems(text: str, path: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config.parse(text, path)
    return info.value


def test_every_mistake_is_reported_at_once_each_on_its_line() -> None:
    error = problems(MANY_MISTAKES)
    found = {(p.key, p.line) for p in error.problems}
    assert found == {
        ("school.colour", 5),
        ("mail.smtp.port", 11),
        ("accounts[0].password_evn", 18),
        ("accounts[1].username", 20),  # ntlm or basic would need it: at the table's header
        ("accounts[1].auth", 24),
        ("periods[0].windows[1]", 29),  # the key of a multi-line array: where it starts
        ("periods[1].slot_minutes", 37),
    }, error.problems
    # In the order of the file, so that the reader can go through it top to bottom.
    lines = [p.line for p in error.problems]
    assert lines == sorted(lines)  # type: ignore[type-var]


def test_a_misspelt_key_gets_the_key_it_resembles() -> None:
    error = problems(MANY_MISTAKES)
    by_key = {p.key: p.message for p in error.problems}
    assert by_key["accounts[0].password_evn"] == "unknown key (did you mean password_env?)"
    assert by_key["school.colour"] == "unknown key"  # nothing in [school] is close to it


def test_a_misspelt_section_gets_the_section_it_resembles() -> None:
    text = MANY_MISTAKES.replace("[mail.smtp]", "[mail.smpt]")
    by_key = {p.key: (p.line, p.message) for p in problems(text).problems}
    assert by_key["mail.smpt"] == (9, "unknown key (did you mean smtp?)")


def test_the_text_is_one_line_per_problem_under_a_count(tmp_path: Path) -> None:
    path = tmp_path / "ptm-sync.toml"
    lines = str(problems(MANY_MISTAKES, path)).splitlines()
    assert lines[0] == f"{path}: 7 problems; nothing was done"
    assert lines[1] == f"{path}:5: school.colour: unknown key"
    assert f"{path}:11: mail.smtp.port: must be a whole number, got 'five-eight-seven'" in lines
    assert len(lines) == 8


def test_one_mistake_stays_one_line_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "ptm-sync.toml"
    text = MANY_MISTAKES.split("[mail]")[0] + MANY_MISTAKES[MANY_MISTAKES.index("[[periods]]") :]
    text = text.replace('colour = "red"\n', "").replace(
        '"2026-10-25T19:00/15:00"', '"2026-10-25T15:00/19:00"'
    )
    text = text.replace("slot_minutes = 0", "slot_minutes = 10")
    text = text.replace('title = "Spring"', 'title = "Spring"\nhold_hours = -1')
    line = text.splitlines().index("hold_hours = -1") + 1
    assert str(problems(text, path)) == (
        f"{path}:{line}: periods[1].hold_hours: must be greater than 0"
    )


def test_a_missing_key_points_at_its_table() -> None:
    text = MANY_MISTAKES.replace('contact = "office@school.test"\n', "")
    by_key = {p.key: p.line for p in problems(text).problems}
    assert by_key["school.contact"] == 1


def test_a_bad_time_zone_is_reported_once_and_does_not_hide_the_other_mistakes() -> None:
    text = MANY_MISTAKES.replace("Europe/Berlin", "Europe/Atlantis")
    error = problems(text)
    keys = [p.key for p in error.problems]
    assert keys.count("school.timezone") == 1
    assert "accounts[0].password_evn" in keys and "mail.smtp.port" in keys


def test_a_problem_of_a_secret_is_found_under_its_env_or_file_spelling() -> None:
    lines = key_lines('[mail.smtp]\nhost = "h"\npassword_file = "pw"\n')
    assert line_of(lines, "mail.smtp.password") == 3


def test_lines_inside_multi_line_strings_and_arrays_are_not_keys() -> None:
    text = (
        "[templates]\n"
        'summary = """\n'
        "port = 1\n"
        '"""\n'
        "[web]\n"
        "listen = [\n"
        '  "a",  # port = 2\n'
        "]\n"
        'public_url = "x"\n'
    )
    lines = key_lines(text)
    assert "templates.port" not in lines and "web.port" not in lines
    assert lines["web.public_url"] == 9


def test_the_problem_text_leaves_out_what_is_not_known() -> None:
    assert ConfigProblem("bad", "a.b", 3).text("f.toml") == "f.toml:3: a.b: bad"
    assert ConfigProblem("bad", "a.b").text("f.toml") == "f.toml: a.b: bad"
    assert ConfigProblem("bad", None, 3).text(None) == "line 3: bad"


def test_a_staff_digest_that_is_neither_daily_nor_never_is_refused() -> None:
    text = MANY_MISTAKES.split("[mail]")[0].replace('colour = "red"\n', "") + (
        '[notify]\nstaff_digest = "weekly"\n\n'
        '[[periods]]\nid = "p1"\ntitle = "A"\nwindows = ["2026-10-24T15:00/18:00"]\n'
    )
    error = problems(text)
    assert [(p.key, p.line) for p in error.problems] == [("notify.staff_digest", 7)]
    assert "daily | never" in str(error)


def test_a_web_listen_that_is_no_host_and_port_is_refused_at_load() -> None:
    text = school().replace("[web]\n", '[web]\nlisten = "127.0.0.1:80800"\n')
    with pytest.raises(ConfigError) as caught:
        config.parse(text)
    assert "web.listen: must be host:port" in str(caught.value)


def test_a_metrics_network_that_is_no_cidr_is_refused_naming_the_key() -> None:
    text = school().replace("[web]\n", '[web]\nmetrics_from = ["10.0.0.0/8", "10.0.0.300/32"]\n')
    with pytest.raises(ConfigError) as caught:
        config.parse(text)
    assert "web.metrics_from: must be networks" in str(caught.value)
    assert "10.0.0.300/32" in str(caught.value)
    good = school().replace("[web]\n", '[web]\nmetrics_from = ["10.0.0.0/8", "fd00::/8"]\n')
    assert config.parse(good).web.metrics_from == ("10.0.0.0/8", "fd00::/8")


def test_an_unknown_account_type_is_one_line_not_one_per_key_of_it() -> None:
    """A typo in ``type`` says so, once: its url, username and password are not each
    reported as keys that "do not belong" to a type that does not exist."""
    text = MANY_MISTAKES.replace('type = "caldav"', 'type = "caldv"')
    by_key = {p.key: (p.line, p.message) for p in problems(text).problems}
    assert by_key["accounts[0].type"][0] == 15
    assert by_key["accounts[0].type"][1].startswith("must be one of caldav")
    # The misspelt key stays reported: it is unknown to every type.
    assert sorted(k for k in by_key if k.startswith("accounts[0].")) == [
        "accounts[0].password_evn",
        "accounts[0].type",
    ]
