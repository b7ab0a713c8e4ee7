"""The service's signing secret: made once, kept in the database, read once per process.

It signs meeting UIDs and plus-address tokens (:mod:`ptm_sync.trust`); every replica of one
database shares it.
"""

from __future__ import annotations

import secrets
import weakref
from typing import Any

from sqlalchemy.orm import Session

from ptm_sync.store.tables import Setting

SECRET_KEY = "uid_secret"

#: Signing secrets already read, by connection pool (one per database; a disposed engine
#: gets a new pool).  The secret never changes once stored, so it is read once per process.
_SECRETS: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def signing_secret(session: Session) -> bytes:
    """The key that signs meeting UIDs and reply tokens; made on first use (32 random bytes)."""
    pool = session.get_bind().engine.pool
    known = _SECRETS.get(pool)
    if known is not None:
        return known
    row = session.get(Setting, SECRET_KEY)
    if row is None:
        # Not remembered: this transaction may still roll back.
        row = Setting(key=SECRET_KEY, value=secrets.token_hex(32))
        session.add(row)
        session.flush()
        return bytes.fromhex(row.value)
    secret = _SECRETS[pool] = bytes.fromhex(row.value)
    return secret
