from __future__ import annotations

from alembic import context

# Modules with tables of their own, imported so that Base.metadata has them all.
import store.auth
import store.commerce
import store.idempotency
import store.library
import store.liveness
import store.proposals
import store.rfps
import store.starts  # noqa: F401
from store.db import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
