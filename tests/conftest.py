"""Test-wide fixtures, gathered from tests/support/ (one module per server or concern)."""

pytest_plugins = [
    "tests.support.database",
    "tests.support.caldav_servers",
    "tests.support.mailservers",
    "tests.support.imap_relay",
    "tests.support.faultproxy",
    "tests.support.feed_server",
    "tests.support.fake_zoom",
]
