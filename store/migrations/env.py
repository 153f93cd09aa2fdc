from __future__ import annotations

from alembic import context

# Modules with tables of their own, imported so that Base.metadata has them all.
import store.auth
import store.commerce
import store.deals
import store.health
import store.history_archive
import store.idempotency
import store.library
import store.liveness
import store.proposals
import store.rfps
import store.starts
import store.subscriptions  # noqa: F401
from store.db import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode adds a foreign key by copying the table and dropping the old one,
            # which other tables' rows point at: SQLite refuses that drop while it enforces
            # foreign keys, and the switch only works outside a transaction (so on the driver's
            # connection, before SQLAlchemy begins one). The references are checked below.
            connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    engine.dispose()


run_migrations()
