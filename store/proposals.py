"""Proposals' tables (the use cases are in web/services/proposals.py; the review is
workflows/proposal.py).

A ``proposals`` row is the proposal being written: its draft ``sections`` (a JSON list of
``{"kind": "library", "item_id": N}``, ``{"kind": "text", "title", "body"}``,
``{"kind": "pricing"}`` or ``{"kind": "bom"}``, in reading order) and its number, which is the
version being edited. Submitting freezes that version: a ``proposal_versions`` row with each
section's title and content digest, the policy facts, and the assembled DOCX in the blob store
by its SHA-256 (and, once approved, the final PDF's). The review's steps and tasks are
projections of the version's ProposalWorkflow, like the quote chain's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models import Account, Base, Quote, User, utcnow

STATUSES = ("draft", "in_review", "changes_requested", "rejected", "approved", "final")
"""``approved``: every review passed and the final PDF is being made; ``final``: it is."""


class Proposal(Base):
    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    customer_signer: Mapped[str] = mapped_column(String(200), default="")
    """Who signs for the customer; empty: the proposal has no signature block."""
    customer_signer_title: Mapped[str] = mapped_column(String(200), default="")
    custom_fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    """Values of the proposal's own that rich sections fill in (``{{ custom.NAME }}``)."""
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(lazy="joined")
    owner: Mapped[User] = relationship(lazy="joined")
    quote: Mapped[Quote | None] = relationship(lazy="joined")


class ProposalVersion(Base):
    """A submitted version, frozen: what was reviewed is exactly these bytes."""

    __tablename__ = "proposal_versions"
    __table_args__ = (UniqueConstraint("proposal_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sections: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """Each section as reviewed: kind, title, digest, tags, standard, review_due."""
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    docx_sha256: Mapped[str] = mapped_column(String(64))
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="in_review")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int] = mapped_column(Integer)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column()

    submitted_by: Mapped[User] = relationship(lazy="joined")
    steps: Mapped[list[ProposalStep]] = relationship(
        order_by="ProposalStep.position", lazy="selectin", cascade="all, delete-orphan")


class ProposalStep(Base):
    __tablename__ = "proposal_steps"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("proposal_versions.id"), index=True)
    key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(30))
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    fingerprint: Mapped[str] = mapped_column(String(64))
    carried_from: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    due_at: Mapped[dt.datetime | None] = mapped_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column()


class ProposalTask(Base):
    """One reviewer's seat of a step (or its escalated sibling)."""

    __tablename__ = "proposal_tasks"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    step_key: Mapped[str] = mapped_column(String(60))
    step_name: Mapped[str] = mapped_column(String(200))
    queue_role: Mapped[str | None] = mapped_column(String(40), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    assignee_name: Mapped[str] = mapped_column(String(200), default="")
    on_behalf_of_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(30), index=True)
    decided_by_name: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[dt.datetime | None] = mapped_column()
    comment: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    proposal: Mapped[Proposal] = relationship(lazy="joined")
