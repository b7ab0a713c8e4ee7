"""A database URL the store cannot use is one line naming ``database.url``, its password
masked — never a traceback (issue 7: a newcomer's typo in the port or a MySQL URL)."""

from __future__ import annotations

import pytest

from ptm_sync.adapters.store import Database
from ptm_sync.core.errors import UserError


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://u:pw1SECRET@127.0.0.1:notaport/x", "notaport"),
        ("mysql://u:pw3SECRET@127.0.0.1:1/x", "driver is not installed"),
        ("postgresql+psycopg://u:se@cr#et@127.0.0.1:1/x", "percent-encoded, as %40"),
        ("nosuchdb://u:pw4SECRET@h/x", "cannot use"),
    ],
)
def test_an_unusable_database_url_is_one_line_without_its_password(url: str, said: str) -> None:
    with pytest.raises(UserError) as raised:
        Database(url)
    message = str(raised.value)
    assert message.startswith("database.url: cannot use ") and said in message
    assert "\n" not in message
    for secret in ("pw1SECRET", "pw3SECRET", "cr#et", "pw4SECRET"):
        assert secret not in message
