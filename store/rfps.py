"""The RFP workspace's tables (the use cases are in web/services/rfps.py).

An ``rfps`` row is one customer file (kept in the blob store by its SHA-256) being answered;
its ``rfp_questions`` are what ``documents.rfp`` found in it, one per answer location
(unique per RFP). A spreadsheet waits in ``needs_mapping`` with its mapping candidates in
``mapping["candidates"]`` until a person picks the sheet and columns (``mapping`` then also
holds the chosen ``sheet``, ``header_row``, ``question_column``, ``answer_column``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Base, User, utcnow

RFP_STATUSES = ("needs_mapping", "open", "in_review", "approved", "completed", "recalled")
QUESTION_STATUSES = ("unanswered", "suggested", "answered", "approved")
KINDS = ("docx", "xlsx", "pdf")


class Rfp(Base):
    """A customer's RFP file being answered."""

    __tablename__ = "rfps"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(200))
    """The upload's name, made safe (documents.filenames.safe_filename)."""
    kind: Mapped[str] = mapped_column(String(8))
    source_sha256: Mapped[str] = mapped_column(String(64))
    """The customer's file, unchanged, in the blob store."""
    status: Mapped[str] = mapped_column(String(20), index=True)
    mapping: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    suggested_at: Mapped[dt.datetime | None] = mapped_column()
    """When its questions' suggestions were ranked: a library change after it ranks again."""
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)

    owner: Mapped[User] = relationship(lazy="joined")
    questions: Mapped[list[RfpQuestion]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="RfpQuestion.position",
        back_populates="rfp")


class RfpQuestion(Base):
    """One question of an RFP and its answer."""

    __tablename__ = "rfp_questions"
    __table_args__ = (UniqueConstraint("rfp_id", "location"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rfp_id: Mapped[int] = mapped_column(ForeignKey("rfps.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(String(200))
    """Where the answer goes (documents.rfp.Question.location)."""
    text: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="unanswered")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    due_at: Mapped[dt.datetime | None] = mapped_column()
    top_score: Mapped[float | None] = mapped_column(Float)
    """The best library suggestion's score when the questions were read (0 … 1)."""
    library_item_id: Mapped[int | None] = mapped_column(ForeignKey("library_items.id"))
    """The library item the answer came from (a suggestion used, or the item it became)."""
    suggested: Mapped[list[list[float]] | None] = mapped_column(JSON)
    """The library's suggestions as ranked at :attr:`Rfp.suggested_at`: ``[item id, score]``,
    best first (reading an RFP doesn't rank its hundreds of questions again)."""

    rfp: Mapped[Rfp] = relationship(back_populates="questions")
    assignee: Mapped[User | None] = relationship(lazy="joined")
