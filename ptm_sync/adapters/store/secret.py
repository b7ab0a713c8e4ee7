"""The service's signing secret: made once, kept in the database, read once per process.

It signs meeting UIDs and plus-address tokens (:mod:`ptm_sync.core.trust`); every replica of one
database shares it.
"""

from __future__ import annotations

import secrets
import weakref
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.adapters.store.tables import Setting
from ptm_sync.core.errors import StoreError

SECRET_KEY = "uid_secret"
_SETTINGS = cast(Table, Setting.__table__)

#: Signing secrets already read, by connection pool (one per database; a disposed engine
#: gets a new pool).  The secret never changes once stored, so it is read once per process.
_SECRETS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def signing_secret(session: Session) -> bytes:
    """The key that signs meeting UIDs and reply tokens; made on first use (32 random bytes).

    First use is an ``INSERT … ON CONFLICT DO NOTHING`` and a read back, never a look-up
    then an insert: replies that reach a fresh database together (before any ``invite``)
    all get the one secret, none a primary-key violation.
    """
    pool = session.get_bind().engine.pool
    known = _SECRETS.get(pool)
    if known is not None:
        return known
    stored = session.scalar(select(Setting.value).where(Setting.key == SECRET_KEY))
    if stored is not None:
        secret = _SECRETS[pool] = bytes.fromhex(stored)
        return secret
    values = {"key": SECRET_KEY, "value": secrets.token_hex(32)}
    made = insert_new(session, _SETTINGS, values, key="key")
    value = session.scalar(select(Setting.value).where(Setting.key == SECRET_KEY))
    if value is None:  # pragma: no cover - the insert or the other writer's row is there
        raise StoreError("the signing secret could not be stored")
    if not made:  # another writer's, committed: it stays
        _SECRETS[pool] = bytes.fromhex(value)
    # Made here: not remembered yet, this transaction may still roll back.
    return bytes.fromhex(value)
