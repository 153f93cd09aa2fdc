"""Customer health: the measures behind an account's score, the daily scores (its trend), a
manual override with an expiry, the current state per account, and the tasks a drop into a
worse band makes for the customer success manager.

The score itself is pure (``workflows/health_rules.py``); the nightly recompute that writes
these rows is the ``recompute_health`` activity (``activities/health.py``), and the use cases
are ``web/services/health.py``. Every write that could be repeated is keyed, so a re-import, a
retried activity or a second recompute the same day updates a row instead of adding one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from store.models import Account, Base, User, utcnow


class AccountMeasure(Base):
    __tablename__ = "account_measures"
    __table_args__ = (UniqueConstraint("account_id", "measure", "measured_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    measure: Mapped[str] = mapped_column(String(20))
    value: Mapped[float] = mapped_column(Float)
    measured_on: Mapped[dt.date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HealthScore(Base):
    """The computed score of one account on one day: the trend is these rows."""

    __tablename__ = "health_scores"
    __table_args__ = (UniqueConstraint("account_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(10))
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HealthOverride(Base):
    """A score someone set by hand; the recompute leaves it in place until ``expires_at``.
    At most one per account is active (``ended_at`` null)."""

    __tablename__ = "health_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    set_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]
    """When it was cleared or found expired; null while active."""

    set_by: Mapped[User] = relationship(lazy="joined")


class AccountHealth(Base):
    """An account's current health: the override's while one is active, else the latest
    computed score."""

    __tablename__ = "account_health"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(10), index=True)
    overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    previous_band: Mapped[str | None] = mapped_column(String(10))

    account: Mapped[Account] = relationship(lazy="joined")


class HealthTask(Base):
    """A drop into a worse band, for the account's CSM (or the ``csm`` queue): one per
    account, day and new band, however often the recompute runs."""

    __tablename__ = "health_tasks"
    __table_args__ = (UniqueConstraint("account_id", "day", "band"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    band: Mapped[str] = mapped_column(String(10))
    previous_band: Mapped[str] = mapped_column(String(10))
    score: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    queue_role: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    done_at: Mapped[dt.datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    account: Mapped[Account] = relationship(lazy="joined")


def upsert_measure(session: Session, account_id: int, measure: str, value: float,
                   measured_on: dt.date, source: str) -> None:
    """Insert the measure, or update the value of the one already held for that day: a
    re-import never duplicates, and two writers of one key never collide."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(AccountMeasure).values(
        account_id=account_id, measure=measure, value=value, measured_on=measured_on,
        source=source, created_at=utcnow())
    session.execute(stmt.on_conflict_do_update(
        index_elements=["account_id", "measure", "measured_on"],
        set_={"value": stmt.excluded.value, "source": stmt.excluded.source}))


def latest_measures(session: Session, account_id: int,
                    day: dt.date | None = None) -> dict[str, AccountMeasure]:
    """The newest row per measure (on or before ``day``)."""
    q = select(AccountMeasure).where(AccountMeasure.account_id == account_id)
    if day is not None:
        q = q.where(AccountMeasure.measured_on <= day)
    latest: dict[str, AccountMeasure] = {}
    for m in session.scalars(q.order_by(AccountMeasure.measured_on, AccountMeasure.id)):
        latest[m.measure] = m
    return latest


def active_override(session: Session, account_id: int) -> HealthOverride | None:
    return session.scalar(select(HealthOverride).where(
        HealthOverride.account_id == account_id, HealthOverride.ended_at.is_(None))
        .order_by(HealthOverride.id.desc()).limit(1))
