"""Deals: the unit of work from intake to a signed contract (the use cases are in
web/services/deals.py).

A ``deals`` row is what a salesperson forecasts: an account, an owner, a name, an amount in
minor units, a stage and a forecast category. The quotes, RFPs, proposals and envelopes made
for it point at it through their nullable ``deal_id`` (older rows and stand-alone documents
have none). For now the stage moves only by the store's use cases (created, marked lost);
DealWorkflow will own it later.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Account, Base, User, utcnow

STAGES = ("intake", "rfp", "quote", "approval", "proposal", "contract", "signing", "won",
          "lost")
"""In the order a deal usually moves; steps may be skipped or repeated."""
CLOSED = ("won", "lost")
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")

_FORECAST_OF_STAGE = {"intake": "pipeline", "rfp": "pipeline", "quote": "pipeline",
                      "approval": "best_case", "proposal": "best_case", "contract": "commit",
                      "signing": "commit", "won": "closed", "lost": "omitted"}


def forecast_of(stage: str) -> str:
    """The forecast category a stage implies: early stages are pipeline, a deal in approval
    or with a proposal out is best case, one in contract or signing is commit."""
    return _FORECAST_OF_STAGE[stage]


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    """Minor units of ``currency``: what the deal is forecast at."""
    currency: Mapped[str] = mapped_column(String(3))
    stage: Mapped[str] = mapped_column(String(20), default="intake", index=True)
    forecast_category: Mapped[str] = mapped_column(String(20), default="pipeline")
    expected_close: Mapped[dt.date | None] = mapped_column(Date)
    lost_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")
    owner: Mapped[User] = relationship(lazy="joined")
