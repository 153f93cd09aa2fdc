"""The demo's customer health: Umbrella Health was good all week and dropped to critical
today, so its CSM (``csm@demo.test``) finds the alert in the inbox, with its audit row and
mail; Acme stays good. Made by the recompute itself (``activities.health.recompute``, a day at
a time), so the trend, the task and the mail are what the nightly schedule would have made;
seeding again adds nothing."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.health import recompute
from dealdesk.settings import Settings
from store.db import write_lock
from store.health import HealthTask, upsert_measure
from store.models import Account, User
from workflows.health import RecomputeInput

WEEK = 7
HEALTHY = {"usage": 86, "support_tickets": 1, "nps": 40, "engagement": 75}
SLIPPING = {"usage": 21, "support_tickets": 8, "nps": -60, "engagement": 15}
DROPS = "Umbrella Health"
STAYS = "Acme Corporation"


def seed_health_records(sessions: sessionmaker[Session], settings: Settings) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with sessions() as s:
        if s.scalar(select(HealthTask.id).limit(1)) is not None:
            return
        write_lock(s)
        csm = s.scalars(select(User).where(User.email == "csm@demo.test")).one()
        accounts = {a.name: a for a in s.scalars(select(Account).where(
            Account.name.in_((DROPS, STAYS))))}
        for a in accounts.values():
            a.csm_id = csm.id
        for n in range(WEEK, -1, -1):
            day = today - dt.timedelta(days=n)
            for name, a in accounts.items():
                values = SLIPPING if name == DROPS and n == 0 else HEALTHY
                for measure, value in values.items():
                    upsert_measure(s, a.id, measure, value - (n % 3 if measure == "usage" else 0),
                                   day, "csv")
        s.commit()
    for n in range(WEEK, -1, -1):
        recompute(sessions, RecomputeInput(day=str(today - dt.timedelta(days=n))),
                  settings.base_url)


async def seed_health(sessions: sessionmaker[Session], client: Client,
                      settings: Settings) -> None:
    """:func:`seed_health_records` as a demo step, on a worker thread (``client`` unused:
    the recompute is the activity's own code, run directly)."""
    await asyncio.to_thread(seed_health_records, sessions, settings)
