"""DealWorkflow's activities: the deal's stage, and what a lost deal closes in the store.

Both run as local activities (a short store write each, no history events of their own
beyond a marker) and are idempotent: a stage move is keyed by what caused it, and a closed
deal (won or lost) is never moved again, whichever order the moves arrive in.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from store import audit
from store.audit import entity
from store.db import write_lock
from store.deals import CLOSED, STAGES, Deal, forecast_of
from store.models import utcnow
from store.rfps import Rfp
from store.who import Who
from workflows.deal import CLOSE_LOST_DEAL, MOVE_DEAL
from workflows.deal_messages import StageInput

WHO = Who.system("deal")
OPEN_RFPS = ("completed", "recalled")


def move(session: Session, inp: StageInput) -> str:
    """Move the deal to ``inp.stage`` (an empty stage only reads it); its stage after. A
    closed deal stays closed."""
    write_lock(session)
    deal = session.get(Deal, inp.deal_id, populate_existing=True)
    if deal is None:
        return ""
    if not inp.stage or deal.stage in CLOSED or deal.stage == inp.stage \
            or inp.stage not in STAGES:
        return deal.stage
    was = deal.stage
    deal.stage, deal.forecast_category = inp.stage, forecast_of(inp.stage)
    deal.updated_at = utcnow()
    audit.append(session, event_key=f"deal-{deal.id}-stage-{inp.key}", actor=WHO,
                 action="deal.stage_changed", entity=entity("deal", deal.id),
                 data={"from": was, "to": inp.stage})
    return deal.stage


def close_lost(session: Session, deal_id: int) -> list[int]:
    """Recall the lost deal's open RFPs (their expert tasks end with them); the ids."""
    write_lock(session)
    recalled = []
    for rfp in session.scalars(select(Rfp).where(Rfp.deal_id == deal_id,
                                                 Rfp.status.not_in(OPEN_RFPS))):
        previous, rfp.status, rfp.updated_at = rfp.status, "recalled", utcnow()
        audit.append(session, event_key=f"rfp-{rfp.id}-recalled", actor=WHO,
                     action="rfp.recalled", entity=entity("rfp", rfp.id),
                     data={"previous": previous, "reason": "the deal was lost"})
        recalled.append(rfp.id)
    return recalled


class DealActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @activity.defn(name=MOVE_DEAL)
    def move_deal(self, inp: StageInput) -> str:
        with self._sessions() as session:
            stage = move(session, inp)
            session.commit()
            return stage

    @activity.defn(name=CLOSE_LOST_DEAL)
    def close_lost_deal(self, deal_id: int) -> list[int]:
        with self._sessions() as session:
            recalled = close_lost(session, deal_id)
            session.commit()
            return recalled
