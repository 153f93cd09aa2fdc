"""The demo has deals in every stage a deal reaches, each moved there through the real use
cases (and by its own DealWorkflow once a step runs)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.demo import STEPS, seed_records, seed_workflows
from dealdesk.demo.deals import CONTRACT, INTAKE, LOST, LOST_REASON, SIGNING
from dealdesk.settings import Settings
from store.deals import Deal
from tests.support import eventually

EVERY_STAGE = {"intake", "rfp", "quote", "approval", "proposal", "contract", "signing", "won",
               "lost"}


async def test_the_demo_has_deals_in_every_stage(
        sessions: sessionmaker[Session], settings: Settings, client: Client,
        worker: str) -> None:
    assert "deals at intake, signing, contract and lost" in [step.what for step in STEPS]
    assert seed_records(sessions)
    said: list[str] = []
    assert await seed_workflows(sessions, client, settings, said.append) == [], said

    def stages() -> dict[str, str]:
        with sessions() as s:
            return {name: stage for name, stage in s.execute(select(Deal.name, Deal.stage))}

    def settled() -> dict[str, str] | None:
        by_name = stages()
        ours = {by_name.get(n) for n in (INTAKE, SIGNING, CONTRACT, LOST)}
        return by_name if ours == {"intake", "signing", "contract", "lost"} \
            and set(by_name.values()) >= EVERY_STAGE else None

    by_name = await eventually(settled, timeout=60)
    assert (by_name[INTAKE], by_name[SIGNING], by_name[CONTRACT], by_name[LOST]) == (
        "intake", "signing", "contract", "lost")
    with sessions() as s:
        lost = s.scalars(select(Deal).where(Deal.name == LOST)).one()
        assert lost.lost_reason == LOST_REASON
