"""The public pages as a parent reads them (issue 17, item 2): Jinja2 templates that escape
what they show, one stylesheet at /static/ptm.css (the CSP allows no inline style), how to
book, free times grouped by day, the zone in words.  Served from a SQLite store."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ptm_sync.adapters.store import Calendar, Database
from ptm_sync.config import settings as config_mod
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.security import CSP
from ptm_sync.interfaces.web.server import WebServer
from ptm_sync.ops.metrics import ProcessMetrics
from tests.support.factories import make_period, make_teacher

CONFIG = """
[school]
name = "Lincoln <Middle> School"
timezone = "America/New_York"
contact = "office@s.test"
[mail]
organizer = "conferences@s.test"
[[accounts]]
id = "a"
type = "caldav"
url = "http://127.0.0.1:9/"
[[periods]]
id = "p"
title = "Spring conferences"
slot_minutes = 15
windows = ["2030-03-05T16:00/16:30", "2030-03-06T17:00/17:30"]
"""
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
EVIL = "Ada <script>alert(1)</script> & Co"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    db = Database(f"sqlite:///{tmp_path / 'ptm.db'}")
    db.migrate()
    with db.write() as s:
        make_period(s)
        ada = make_teacher(s, "ada", name=EVIL, room="12")
        make_teacher(s, "grace", name="Grace Hopper", booking_address="grace.h@s.test")
        s.add(Calendar(teacher_id=ada.id, account="a", url="http://x/ada/", synced_at=NOW))
    yield Site(config_mod.parse(CONFIG), db, lambda: NOW, process=ProcessMetrics())
    db.dispose()


def page(site: Site, path: str = "/periods/p") -> str:
    answer = site.handle(path)
    assert answer.status == 200, answer.body
    return answer.body.decode()


def test_a_teacher_name_with_markup_is_shown_escaped_never_run(site: Site) -> None:
    text = page(site)
    assert "<script>" not in text
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in text
    assert "Lincoln &lt;Middle&gt; School" in page(site, "/")


def test_pages_are_english_phone_sized_and_link_the_stylesheet_without_inline_style(
    site: Site,
) -> None:
    for path in ("/", "/periods/p", "/periods/nope"):
        text = site.handle(path).body.decode()
        assert '<html lang="en">' in text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
        assert '<link rel="stylesheet" href="/static/ptm.css">' in text
        assert "<style" not in text and "style=" not in text and "<script" not in text


def test_the_zone_is_given_in_words(site: Site) -> None:
    text = page(site)
    assert "All times are Eastern Time." in text
    assert "America/New_York" not in text


def test_how_to_book_names_the_invitation_the_personal_link_and_the_booking_address(
    site: Site,
) -> None:
    text = page(site)
    how = text[text.index('<h2 id="how">How to book</h2>') : text.index('<h2 id="times">')]
    assert "Answer the invitation in your calendar" in how
    assert "personal link" in how
    assert "booking address" in how
    # Each teacher's address: the roster's, else the default pattern on the organizer's domain.
    assert '<a href="mailto:book+ada@s.test">book+ada@s.test</a>' in text
    assert '<a href="mailto:grace.h@s.test">grace.h@s.test</a>' in text


def test_free_times_are_grouped_by_day_under_each_teacher(site: Site) -> None:
    text = page(site)
    ada = text[text.index("<h3>Ada") : text.index("<h3>Grace")]
    days = re.findall(r'<h4><time datetime="([0-9-]+)">([^<]+)</time></h4>', ada)
    assert days == [("2030-03-05", "Tuesday 05 March"), ("2030-03-06", "Wednesday 06 March")]
    lists = re.findall(r'<ul class="times">(.*?)</ul>', ada, re.S)
    times = [re.findall(r"<li>([^<]+)</li>", block) for block in lists]
    assert times == [["16:00–16:15", "16:15–16:30"], ["17:00–17:15", "17:15–17:30"]]
    grace = text[text.index("<h3>Grace") :]
    assert "Times not published yet." in grace and "<h4>" not in grace


def test_no_booking_addresses_without_mail(site: Site) -> None:
    without = Site(
        config_mod.parse(CONFIG.replace('[mail]\norganizer = "conferences@s.test"\n', "")),
        site.db,
        lambda: NOW,
        process=ProcessMetrics(),
    )
    text = page(without)
    assert "mailto:book+" not in text and "booking address" not in text


@pytest.fixture
def server(site: Site) -> Iterator[WebServer]:
    web = WebServer(site, "127.0.0.1:0")
    web.start()
    yield web
    web.stop()


def get(server: WebServer, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)  # sent as written: no client normalises the dots away
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_the_stylesheet_is_served_as_css_with_the_csp_and_a_cache_lifetime(
    server: WebServer,
) -> None:
    status, headers, body = get(server, "/static/ptm.css")
    assert status == 200
    assert headers["content-type"] == "text/css; charset=utf-8"
    assert headers["content-security-policy"] == CSP
    assert re.fullmatch(r"public, max-age=[1-9][0-9]*", headers["cache-control"])
    assert b"overflow-wrap" in body and b"body" in body


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static/nope.css",
        "/static/../pyproject.toml",
        "/static/..%2fpages.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/../templates/base.html",
        "/static/ptm.css/..",
    ],
)
def test_unknown_static_paths_and_traversal_are_404(server: WebServer, path: str) -> None:
    status, headers, body = get(server, path)
    assert status == 404
    assert headers["content-security-policy"] == CSP
    assert b"{%" not in body and b"import" not in body
