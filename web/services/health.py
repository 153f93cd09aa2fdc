"""Customer health: one place for the health pages, the API and the inbox's health alerts.

Measures arrive by ``PUT /api/v1/accounts/{id}/measures`` (all or nothing) or as a CSV (each
row stored or reported on its own); the score is computed by the ``recompute_health``
activity, nightly and on an admin's demand. An override sets an account's score and band by
hand until it expires or is cleared.

**Who may do what.** Customer success managers, the deal desk, admins, sales managers, the
CFO and auditors read health; CSMs, the deal desk and admins write measures and overrides,
never an auditor, whatever else they hold. A health task is closed by its assignee, anyone
in its queue's role, the deal desk or an admin.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from documents.csv_cells import read_cell
from store import audit
from store.audit import entity
from store.db import write_lock
from store.health import (
    AccountHealth,
    AccountMeasure,
    HealthOverride,
    HealthScore,
    HealthTask,
    active_override,
    latest_measures,
    upsert_measure,
)
from store.models import Account, User, utcnow
from store.who import Who
from web.errors import Forbidden, Invalid, NotFound
from web.params import LAST_DAY, MAX_ID
from workflows.health_rules import BANDS, MEASURES, band_of, check
from workflows.rules import READ_ONLY_ROLES

READERS = frozenset({"csm", "deal_desk", "admin", "sales_manager", "cfo", "auditor"})
WRITERS = frozenset({"csm", "deal_desk", "admin"})
MAX_ROWS = 10_000
"""Rows in one CSV import or one PUT."""
TREND_DAYS = 90
MAX_REASON = 2000
MAX_OVERRIDE_DAYS = 366
CSV_COLUMNS = ("account", "measure", "value", "measured_on")


class MeasureIn(BaseModel):
    measure: str = Field(max_length=40, description="usage, support_tickets, nps, payment or "
                                                    "engagement")
    value: float = Field(description="usage and engagement 0–100, support_tickets a count, "
                                     "nps -100…100, payment days overdue")
    measured_on: dt.date = Field(le=LAST_DAY)


class OverrideIn(BaseModel):
    score: int = Field(ge=0, le=100)
    reason: str = Field(max_length=MAX_REASON)
    expires_at: dt.datetime = Field(description="when the computed score applies again "
                                                "(at most a year ahead)")


def may_read(user: User) -> bool:
    return bool(user.roles & READERS)


def may_write(user: User) -> bool:
    return bool(user.roles & WRITERS) and not user.roles.intersection(READ_ONLY_ROLES)


def require_reader(user: User) -> None:
    if not may_read(user):
        raise Forbidden("customer health is for customer success, the deal desk, sales "
                        "managers, the CFO, auditors and admins")


def require_writer(user: User) -> None:
    if not may_write(user):
        raise Forbidden("only customer success managers, the deal desk and admins change "
                        "customer health")


def account(session: Session, user: User, account_id: int) -> Account:
    require_reader(user)
    acc = session.get(Account, account_id)
    if acc is None:
        raise NotFound(f"no account {account_id}")
    return acc


def put_measures(session: Session, user: User, account_id: int,
                 rows: list[MeasureIn]) -> int:
    """Store every row or none (the first bad row is the 422); committed by the caller."""
    require_writer(user)
    if len(rows) > MAX_ROWS:
        raise Invalid(f"at most {MAX_ROWS} measures at a time", field="body")
    write_lock(session)
    account(session, user, account_id)
    for n, row in enumerate(rows):
        problem = check(row.measure, row.value)
        if problem:
            raise Invalid(f"row {n}: {problem}",
                          field=f"{n}.measure" if row.measure not in MEASURES else f"{n}.value")
    for row in rows:
        upsert_measure(session, account_id, row.measure, row.value, row.measured_on, "api")
    audit.append(session, event_key=f"health-measures-{account_id}-{utcnow().isoformat()}-"
                 f"{user.id}", actor=Who.user(user), action="health.measures_stored",
                 entity=entity("account", account_id),
                 data={"rows": len(rows), "source": "api"})
    return len(rows)


@dataclass(frozen=True)
class Rejected:
    row: int
    """The CSV's line number (the header is line 1)."""
    problem: str


@dataclass(frozen=True)
class ImportResult:
    accepted: int
    rejected: list[Rejected]


def _account_of(session: Session, cell: str, cache: dict[str, int | None]) -> int | None:
    if cell not in cache:
        if cell.isascii() and cell.isdigit():
            found = session.scalar(select(Account.id).where(Account.id == int(cell))) \
                if 1 <= int(cell) <= MAX_ID else None
        else:
            found = session.scalar(select(Account.id).where(
                func.lower(Account.name) == cell.lower()))
        cache[cell] = found
    return cache[cell]


def _parse_row(session: Session, cells: dict[str, str],
               cache: dict[str, int | None]) -> tuple[int, str, float, dt.date] | str:
    """The row's values, or its problem."""
    if any("\x00" in c for c in cells.values()):
        return "the row holds a NUL character"
    name = cells.get("account", "")
    account_id = _account_of(session, name, cache) if name else None
    if account_id is None:
        return f"unknown account {name!r}"
    measure = cells.get("measure", "")
    if measure not in MEASURES:
        return f"unknown measure {measure!r}: use one of {', '.join(MEASURES)}"
    raw = cells.get("value", "")
    try:
        value = float(raw)
    except ValueError:
        return f"bad number {raw[:40]!r}"
    if not math.isfinite(value):
        return f"bad number {raw[:40]!r}"
    problem = check(measure, value)
    if problem:
        return problem
    raw_day = cells.get("measured_on", "")
    try:
        day = dt.date.fromisoformat(raw_day)
    except ValueError:
        return f"bad date {raw_day[:40]!r}: use YYYY-MM-DD"
    return account_id, measure, value, day


def import_csv(session: Session, user: User, text: str) -> ImportResult:
    """Each good row stored (a row is one upsert, so never half applied), each bad one
    reported with its line; committed by the caller."""
    require_writer(user)
    write_lock(session)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as e:
        raise Invalid(f"the CSV can't be read: {e}", field="body") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise Invalid(f"the CSV needs the columns {', '.join(CSV_COLUMNS)} (missing "
                      f"{', '.join(missing)})", field="body")
    try:
        return _import_rows(session, user, reader, header)
    except csv.Error as e:
        raise Invalid(f"the CSV can't be read at line {reader.line_num}: {e}",
                      field="body") from None


def _import_rows(session: Session, user: User, reader: Any, header: list[str]) -> ImportResult:
    accepted, rejected = 0, []
    cache: dict[str, int | None] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if line - 1 > MAX_ROWS:
            raise Invalid(f"at most {MAX_ROWS} rows in one import", field="body")
        row = {h: read_cell(c.strip()) for h, c in zip(header, cells, strict=False)}
        parsed = _parse_row(session, row, cache)
        if isinstance(parsed, str):
            rejected.append(Rejected(line, parsed))
            continue
        upsert_measure(session, *parsed, "csv")
        accepted += 1
    audit.append(session, event_key=f"health-csv-{utcnow().isoformat()}-{user.id}",
                 actor=Who.user(user), action="health.measures_imported",
                 entity=entity("user", user.id),
                 data={"accepted": accepted, "rejected": len(rejected)})
    return ImportResult(accepted, rejected)


@dataclass(frozen=True)
class HealthView:
    account: Account
    state: AccountHealth | None
    override: HealthOverride | None
    trend: list[HealthScore]
    """Oldest first."""
    measures: list[AccountMeasure]
    components: dict[str, Any]


def view(session: Session, user: User, account_id: int) -> HealthView:
    acc = account(session, user, account_id)
    since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=TREND_DAYS)
    trend = list(session.scalars(select(HealthScore).where(
        HealthScore.account_id == account_id, HealthScore.day >= since)
        .order_by(HealthScore.day)))
    latest = latest_measures(session, account_id)
    return HealthView(acc, session.get(AccountHealth, account_id),
                      active_override(session, account_id), trend,
                      [latest[m] for m in MEASURES if m in latest],
                      trend[-1].components if trend else {})


def set_override(session: Session, user: User, account_id: int,
                 fields: OverrideIn) -> HealthOverride:
    """Replace any active override; the account's current health is the override's at once."""
    require_writer(user)
    write_lock(session)
    account(session, user, account_id)
    reason = fields.reason.strip()
    if not reason:
        raise Invalid("say why you override the score", field="reason")
    now = utcnow()
    expires = fields.expires_at if fields.expires_at.tzinfo else \
        fields.expires_at.replace(tzinfo=dt.UTC)
    if not now < expires <= now + dt.timedelta(days=MAX_OVERRIDE_DAYS):
        raise Invalid("the override must expire in the future, within a year",
                      field="expires_at")
    earlier = active_override(session, account_id)
    if earlier is not None:
        earlier.ended_at = now
    override = HealthOverride(account_id=account_id, score=fields.score,
                              band=band_of(fields.score), reason=reason, set_by_id=user.id,
                              expires_at=expires)
    session.add(override)
    session.flush()
    state = session.get(AccountHealth, account_id)
    if state is None:
        state = AccountHealth(account_id=account_id)
        session.add(state)
    if state.band != override.band:
        state.previous_band = state.band
    state.score, state.band, state.overridden, state.computed_at = (
        override.score, override.band, True, now)
    audit.append(session, event_key=f"health-override-{override.id}-set", actor=Who.user(user),
                 action="health.override_set", entity=entity("account", account_id),
                 data={"score": override.score, "band": override.band, "reason": reason,
                       "expires_at": expires.isoformat()})
    return override


def clear_override(session: Session, user: User, account_id: int) -> None:
    """End the active override (404 without one); the latest computed score applies again."""
    require_writer(user)
    write_lock(session)
    account(session, user, account_id)
    override = active_override(session, account_id)
    if override is None:
        raise NotFound(f"account {account_id} has no active override")
    override.ended_at = utcnow()
    state = session.get(AccountHealth, account_id)
    last = session.scalar(select(HealthScore).where(HealthScore.account_id == account_id)
                          .order_by(HealthScore.day.desc()).limit(1))
    if state is not None:
        if last is None:
            session.delete(state)
        else:
            state.score, state.band, state.overridden = last.score, last.band, False
    audit.append(session, event_key=f"health-override-{override.id}-cleared",
                 actor=Who.user(user), action="health.override_cleared",
                 entity=entity("account", account_id), data={"score": override.score})


def by_band(session: Session, user: User) -> list[AccountHealth]:
    """Every scored account, worst band first, then lowest score."""
    require_reader(user)
    worst = case({b: n for n, b in enumerate(reversed(BANDS))}, value=AccountHealth.band)
    return list(session.scalars(select(AccountHealth).order_by(
        worst, AccountHealth.score, AccountHealth.account_id)))


def _waiting_for(user: User) -> ColumnElement[bool] | None:
    """The open health alerts this user's inbox shows: theirs, or their role's queue's."""
    if "csm" not in user.roles and not may_write(user):
        return None
    mine = HealthTask.assignee_id == user.id
    queue = HealthTask.queue_role.in_(sorted(user.roles))
    return and_(HealthTask.done_at.is_(None), or_(mine, queue))


def open_tasks(session: Session, user: User, limit: int = 50) -> list[HealthTask]:
    """The health alerts waiting for this user: theirs, or their role's queue's."""
    waiting = _waiting_for(user)
    if waiting is None:
        return []
    return list(session.scalars(select(HealthTask).where(waiting)
                                .order_by(HealthTask.created_at, HealthTask.id).limit(limit)))


def open_task_count(session: Session, user: User) -> int:
    """How many health alerts wait for this user (the inbox badge counts them too)."""
    waiting = _waiting_for(user)
    if waiting is None:
        return 0
    return session.scalar(select(func.count()).select_from(HealthTask).where(waiting)) or 0


def close_task(session: Session, user: User, task_id: int) -> HealthTask:
    write_lock(session)
    task = session.get(HealthTask, task_id)
    if task is None:
        raise NotFound(f"no health task {task_id}")
    if not (task.assignee_id == user.id or (task.queue_role in user.roles)
            or (may_write(user) and user.roles & {"deal_desk", "admin"})):
        raise Forbidden("this health alert is someone else's")
    if task.done_at is None:
        task.done_at, task.done_by_id = utcnow(), user.id
        audit.append(session, event_key=f"health-task-{task.id}-done", actor=Who.user(user),
                     action="health.task_done", entity=entity("account", task.account_id),
                     data={"task_id": task.id, "band": task.band, "day": str(task.day)})
    session.commit()
    return task
