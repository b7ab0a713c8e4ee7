"""Insert unless present: the unique key decides, in one statement, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Table, func, select

from ptm_sync.adapters.store import Database, Inbound, Period
from ptm_sync.adapters.store.insert import insert_new, insert_new_id
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.app.periods import ensure_periods
from ptm_sync.config.settings import parse
from tests.support.booking import config_text, race

T0 = datetime(2027, 3, 22, 13, 0, tzinfo=UTC)
INBOUND: Table = Inbound.__table__  # type: ignore[assignment]


def _message(digest: str, sender: str = "pat@example.net") -> dict[str, object]:
    return {
        "digest": digest,
        "received_at": T0,
        "message_id": f"<{digest}@example.net>",
        "sender": sender,
        "outcome": "quarantined",
        "reason": "",
        "meeting_id": None,
        "raw": None,
    }


def test_a_new_row_is_inserted_and_its_id_returned(db: Database) -> None:
    with db.write() as s:
        first = insert_new_id(s, INBOUND, _message("a" * 64), key="digest")
        second = insert_new_id(s, INBOUND, _message("b" * 64), key="digest")
    assert first is not None and second is not None and second != first
    with db.read() as s:
        assert s.get(Inbound, first) is not None and s.get(Inbound, second) is not None


def test_a_row_whose_key_exists_is_left_as_it_is(db: Database) -> None:
    with db.write() as s:
        assert insert_new(s, INBOUND, _message("c" * 64), key="digest")
    with db.write() as s:
        assert (
            insert_new_id(s, INBOUND, _message("c" * 64, sender="eve@x.org"), key="digest") is None
        )
        assert not insert_new(s, INBOUND, _message("c" * 64, sender="eve@x.org"), key="digest")
    with db.read() as s:
        rows = s.scalars(select(Inbound)).all()
    assert [(r.digest, r.sender) for r in rows] == [("c" * 64, "pat@example.net")]


def test_the_insert_belongs_to_the_callers_transaction(db: Database) -> None:
    class Abort(Exception):
        pass

    try:
        with db.write() as s:
            assert insert_new_id(s, INBOUND, _message("d" * 64), key="digest") is not None
            raise Abort
    except Abort:
        pass
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Inbound)) == 0


# --- first-use rows, made by several at once (issue 15, item 7) -------------------------


def test_replies_racing_on_a_fresh_database_all_get_the_one_signing_secret(
    db_url: str,
) -> None:
    """Before any `invite`, the signing secret is made by the first reply that needs it;
    eight arriving together (each its own process's database handle) must neither fail on
    the primary key nor sign with different keys."""
    Database(db_url).migrate()
    handles = [Database(db_url) for _ in range(8)]

    def first_use(database: Database) -> bytes:
        with database.write() as session:
            return signing_secret(session)

    try:
        secrets = race([lambda d=d: first_use(d) for d in handles])  # type: ignore[misc]
    finally:
        for handle in handles:
            handle.dispose()
    assert len(set(secrets)) == 1 and len(secrets[0]) == 32


def test_two_starts_on_a_fresh_database_both_make_the_period_rows(db_url: str) -> None:
    config = parse(config_text())
    Database(db_url).migrate()
    handles = [Database(db_url) for _ in range(4)]

    def start(database: Database) -> None:
        with database.write() as session:
            ensure_periods(session, config)

    try:
        race([lambda d=d: start(d) for d in handles])  # type: ignore[misc]
    finally:
        for handle in handles:
            handle.dispose()
    reader = Database(db_url)
    try:
        with reader.read() as session:
            titles = dict(session.execute(select(Period.id, Period.title)).all())
    finally:
        reader.dispose()
    assert titles == {p.id: p.title for p in config.periods}
