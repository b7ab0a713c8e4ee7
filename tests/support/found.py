"""``python -m tests.support.found``: one line saying which real servers the tests found
(``make test`` prints it first).  Radicale, Xandikos and the SMTP sink are embedded and
always there; PostgreSQL and Dovecot come from the machine."""

from __future__ import annotations

from sqlalchemy import make_url

from tests.support.database import found_postgres
from tests.support.mailservers import dovecot_binary


def line() -> str:
    pg = found_postgres()
    postgres = (
        f"PostgreSQL at {make_url(pg).render_as_string(hide_password=True)}"
        if pg
        else "no PostgreSQL (its tests skip; set PTM_TEST_POSTGRES_URL)"
    )
    imap = "Dovecot" if dovecot_binary() else "no Dovecot (the IMAP tests skip)"
    return f"test servers: {postgres}; {imap}; Radicale, Xandikos and aiosmtpd embedded"


if __name__ == "__main__":
    print(line())
