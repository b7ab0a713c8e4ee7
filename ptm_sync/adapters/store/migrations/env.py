"""Alembic environment: ptm-sync passes its own connection in ``config.attributes``."""

from alembic import context
from sqlalchemy import create_engine

from ptm_sync.adapters.store.tables import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # plain `alembic` command line: -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///ptm-sync.db")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
