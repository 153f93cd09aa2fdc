"""Engine and session factory. SQLite runs in WAL mode with foreign keys on."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

P = ParamSpec("P")
T = TypeVar("T")

WRITE_OPTION = "dealdesk_write"


class UnstorableText(ValueError):
    """Text with a NUL character: PostgreSQL's text columns can't hold it, so no store does."""


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(v) for v in value.values())
    if isinstance(value, list | tuple):  # rows of an executemany, or a batch's flat values
        return any(_holds_nul(v) for v in value)
    return False


def _refuse_nul(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
    if _holds_nul(parameters):
        raise UnstorableText("text holds a NUL character (\\u0000): remove it")


def make_engine(url: str, *, refuse_nul: bool = False, **kwargs: Any) -> Engine:
    """``refuse_nul``: raise :class:`UnstorableText` for text with a NUL, on every dialect,
    before it reaches the database (the web app's engine: it writes what requests carry)."""
    engine = _make_engine(url, **kwargs)
    if refuse_nul:
        event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool that in practice never makes anyone queue: async routes hold a session
        # across awaits, and must not wait for a pooled connection on the event loop.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               poolclass=QueuePool, pool_size=8, max_overflow=500, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions, so BEGIN IMMEDIATE below works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the lock up front (see write_lock); readers never block anyone.
            immediate = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=50, **kwargs)


def write_lock(session: Session) -> Session:
    """Start a write transaction on ``session``, ending any read transaction it had.

    On SQLite this is ``BEGIN IMMEDIATE``: the writer queues for the lock up front instead of
    failing when its snapshot turns stale. On PostgreSQL it is an ordinary transaction.
    Never hold it across an await on a workflow Update: the workflow writes too.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={WRITE_OPTION: True})
    return session


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _transaction(session: Session, fn: Callable[Concatenate[Session, P], T],
                 *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        result = fn(session, *args, **kwargs)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


async def in_session(session: Session, fn: Callable[Concatenate[Session, P], T], /,
                     *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(session, …)`` on a worker thread, committed there (rolled back if it raises).

    For async code: store access never blocks the event loop, and no transaction (so no
    SQLite write lock) stays open while the caller goes on to await something else. Objects
    it returns stay readable (sessions don't expire on commit); don't lazy-load anything new
    from them on the event loop.
    """
    return await anyio.to_thread.run_sync(
        functools.partial(_transaction, session, fn, *args, **kwargs))


async def in_new_session(sessions: sessionmaker[Session],
                         fn: Callable[Concatenate[Session, P], T], /,
                         *args: P.args, **kwargs: P.kwargs) -> T:
    """Like :func:`in_session`, in a session of its own (closed on the thread too)."""
    def work() -> T:
        with sessions() as session:
            return _transaction(session, fn, *args, **kwargs)

    return await anyio.to_thread.run_sync(work)
