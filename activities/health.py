"""The ``recompute_health`` activity: today's health score per account, its current state,
and the task, audit row and mail of a drop into a worse band.

Idempotent, per account in its own write transaction: the day's ``health_scores`` row is
upserted, and a drop is keyed by (account, day, new band) in ``health_tasks``, the audit
(``account:{id}``, ``health.band_dropped``) and the outbox, so a retry, a second run the same
day or a parallel run adds nothing (on SQLite they queue on the write lock; on PostgreSQL a
racing twin fails on the keys and its retry finds the band already moved).

An active override is left in place until it expires: the day's computed score is still
written (the trend), but the account's current score and band stay the override's. Once it
has expired the recompute ends it (``health.override_expired``) and scores normally.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.mail import Mailer
from store import audit
from store.audit import entity
from store.commerce import Invoice
from store.db import write_lock
from store.health import (
    AccountHealth,
    AccountMeasure,
    HealthScore,
    HealthTask,
    active_override,
    latest_measures,
    upsert_measure,
)
from store.models import Account, OutboxMessage, User, UserRole, utcnow
from store.subscriptions import mark_renewal_risk
from store.who import Who
from workflows.health import RECOMPUTE_ACTIVITY, RecomputeInput, RecomputeResult
from workflows.health_rules import score, worse

WHO = Who.system("health-recompute")
LABELS = {"good": "good", "at_risk": "at risk", "critical": "critical"}


class HealthActivities:
    def __init__(self, sessions: sessionmaker[Session], base_url: str,
                 mailer: Mailer | None = None) -> None:
        self._sessions = sessions
        self._base_url = base_url
        self._mailer = mailer

    @activity.defn(name=RECOMPUTE_ACTIVITY)
    def recompute_health(self, inp: RecomputeInput) -> RecomputeResult:
        return recompute(self._sessions, inp, self._base_url, self._mailer)


def recompute(sessions: sessionmaker[Session], inp: RecomputeInput,
              base_url: str = "", mailer: Mailer | None = None) -> RecomputeResult:
    day = dt.date.fromisoformat(inp.day) if inp.day else dt.datetime.now(dt.UTC).date()
    with sessions() as s:
        if inp.account_id is not None:
            ids = [inp.account_id]
        else:
            ids = sorted(set(s.scalars(select(AccountMeasure.account_id).distinct()))
                         | set(s.scalars(select(Invoice.account_id).distinct())))
    scored = drops = 0
    for account_id in ids:
        with sessions() as s:
            write_lock(s)
            outcome = _recompute_one(s, account_id, day, base_url)
            s.commit()
        if mailer is not None:  # the CSM alerts of this account and day, once each
            mailer.deliver_unsent(f"health-{account_id}-{day}-")
        scored += outcome is not None
        drops += bool(outcome)
    return RecomputeResult(scored, drops)


def _payment_from_invoices(s: Session, account_id: int, day: dt.date) -> None:
    """The account's ``payment`` measure for the day from our own invoices: the days its
    oldest unpaid invoice is overdue (0 when all are paid or not yet due)."""
    issued = s.scalar(select(func.count()).select_from(Invoice).where(
        Invoice.account_id == account_id, Invoice.status != "void"))
    if not issued:
        return
    oldest_due = s.scalar(select(func.min(Invoice.due)).where(
        Invoice.account_id == account_id, Invoice.status == "issued", Invoice.due < day))
    overdue = (day - oldest_due).days if oldest_due is not None else 0
    upsert_measure(s, account_id, "payment", float(overdue), day, "invoices")


def _recompute_one(s: Session, account_id: int, day: dt.date, base_url: str) -> bool | None:
    """None: nothing to score; else whether the band dropped."""
    account = s.get(Account, account_id)
    if account is None:
        return None
    _payment_from_invoices(s, account_id, day)
    health = score({m: row.value for m, row in latest_measures(s, account_id, day).items()})
    if health is None:
        return None
    row = s.scalar(select(HealthScore).where(HealthScore.account_id == account_id,
                                             HealthScore.day == day))
    if row is None:
        row = HealthScore(account_id=account_id, day=day)
        s.add(row)
    row.score, row.band, row.components = health.score, health.band, health.components
    current, band, overridden = health.score, health.band, False
    override = active_override(s, account_id)
    if override is not None and override.expires_at > utcnow():
        current, band, overridden = override.score, override.band, True
    elif override is not None:
        override.ended_at = utcnow()
        audit.append(s, event_key=f"health-override-{override.id}-expired", actor=WHO,
                     action="health.override_expired", entity=entity("account", account_id),
                     data={"score": override.score, "band": override.band,
                           "expires_at": override.expires_at.isoformat()})
    state = s.get(AccountHealth, account_id)
    before = state.band if state is not None else None
    if state is None:
        state = AccountHealth(account_id=account_id)
        s.add(state)
    if before != band:
        state.previous_band = before
    state.score, state.band, state.overridden, state.computed_at = (
        current, band, overridden, utcnow())
    dropped = worse(band, before)
    mark_renewal_risk(s, account_id, band, dropped, day)
    if not dropped:
        return False
    assert before is not None
    _raise_task(s, account, day, before, band, current, base_url)
    return True


def _raise_task(s: Session, account: Account, day: dt.date, before: str, band: str,
                current: int, base_url: str) -> None:
    """The CSM's task, audit row and mail for a drop, once per (account, day, band)."""
    key = f"health-{account.id}-{day}-{band}"
    row = audit.append(s, event_key=key, actor=WHO, action="health.band_dropped",
                       entity=entity("account", account.id),
                       data={"from": before, "to": band, "score": current, "day": str(day),
                             "csm_id": account.csm_id})
    if row is None:
        return
    s.add(HealthTask(account_id=account.id, day=day, band=band, previous_band=before,
                     score=current, assignee_id=account.csm_id,
                     queue_role=None if account.csm_id else "csm"))
    if account.csm_id is not None:
        csm = s.get(User, account.csm_id)
        recipients = [csm] if csm is not None and csm.is_active else []
    else:
        recipients = list(s.scalars(select(User).join(UserRole).where(
            UserRole.role == "csm", User.is_active).order_by(User.id)))
    for to in recipients:
        s.add(OutboxMessage(
            message_key=f"{key}-{to.id}", to_addr=to.email,
            subject=f"Health {LABELS[band]}: {account.name} dropped from {LABELS[before]}"[:300],
            body=(f"{account.name}'s health score is {current} ({LABELS[band]}, was "
                  f"{LABELS[before]}).\n\nSee what changed: "
                  f"{base_url}/accounts/{account.id}/health\n")))
