"""Tables. Money is integer minor units; times are timezone-aware UTC.

The approval tables are a *projection* of ApprovalChainWorkflow state, written only by
activities; the workflow is the source of truth for what waits for whom.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from workflows import rules

ROLES = (
    "rep",
    "sales_manager",
    "deal_desk",
    "finance",
    "legal",
    "cfo",
    "auditor",
    "admin",
    "csm",
)
"""``csm``: a customer success manager, who keeps an account's health (never an approver)."""
# Who decides approvals is the workflows' rule (workflows/rules.py); re-exported here.
APPROVER_ROLES = rules.APPROVER_ROLES
POLICY_ROLES = tuple(r for r in ROLES if r != "csm")
"""The roles an approval policy may name: a customer success manager decides no approvals,
so a ``csm`` queue would hold tasks nobody can decide."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes; SQLite hands back naive ones, so re-attach UTC on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    role_rows: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    manager: Mapped[User | None] = relationship(remote_side=[id])

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)


class Delegation(Base):
    """An out-of-office window: new tasks for ``user`` go to ``delegate`` meanwhile."""

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    delegate: Mapped[User] = relationship(foreign_keys=[delegate_id])


class ApiToken(Base):
    """A bearer token of the JSON API (see web/services/api_tokens.py); only its SHA-256 is
    kept, and its first characters (``prefix``) to tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str | None] = mapped_column(String(16), index=True)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str] = mapped_column(String(40), default="NA")
    segment: Mapped[str] = mapped_column(String(40), default="mid-market")
    csm_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    """The customer success manager, who gets the account's health alerts (else the role's
    queue)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Quote(Base):
    """A quote's current, editable state. Each submission freezes a QuoteVersion."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    list_amount: Mapped[int] = mapped_column(BigInteger)
    net_amount: Mapped[int] = mapped_column(BigInteger)
    cost_amount: Mapped[int] = mapped_column(BigInteger)
    term_months: Mapped[int] = mapped_column(Integer)
    nonstandard_terms: Mapped[list[Any]] = mapped_column(default=list)
    product_families: Mapped[list[Any]] = mapped_column(default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(30), default="draft")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Configured quotes (store/commerce.py QuoteItem): the deal's pricing context and what
    # the engine computed. A quote without items keeps the amounts typed in.
    channel: Mapped[str] = mapped_column(String(20), default="direct")
    partner_tier: Mapped[str | None] = mapped_column(String(40))
    header_discount_pct: Mapped[str] = mapped_column(String(12), default="0")
    price_book: Mapped[str | None] = mapped_column(String(200))
    catalog_version: Mapped[int | None] = mapped_column(Integer)
    max_discount_pct: Mapped[float | None] = mapped_column()
    channel_conflicts: Mapped[list[Any]] = mapped_column(default=list)
    billing: Mapped[str] = mapped_column(String(20), default="annual")
    won_at: Mapped[dt.datetime | None] = mapped_column()
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    """The deal (store/deals.py) this quote is for."""

    account: Mapped[Account] = relationship(lazy="joined")
    owner: Mapped[User] = relationship(lazy="joined")

    @property
    def discount_pct(self) -> float:
        """The largest line discount of a configured quote, else the overall discount."""
        if self.max_discount_pct is not None:
            return round(self.max_discount_pct, 2)
        if self.list_amount <= 0:
            return 0.0
        return round(100.0 * (self.list_amount - self.net_amount) / self.list_amount, 2)

    @property
    def margin_pct(self) -> float:
        if self.net_amount <= 0:
            return 0.0
        return round(100.0 * (self.net_amount - self.cost_amount) / self.net_amount, 2)


class QuoteVersion(Base):
    """The approval-relevant facts of a submitted quote version, frozen, with their hash."""

    __tablename__ = "quote_versions"
    __table_args__ = (UniqueConstraint("quote_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    facts: Mapped[dict[str, Any]] = mapped_column()
    facts_hash: Mapped[str] = mapped_column(String(64))
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class Policy(Base):
    """Approval policy, versioned: every save is a new row; the newest version is active."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    document: Mapped[dict[str, Any]] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"), index=True)
    quote_version: Mapped[int] = mapped_column(Integer)
    policy_name: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int] = mapped_column(Integer)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(30), default="running")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]

    steps: Mapped[list[ApprovalStep]] = relationship(
        order_by="ApprovalStep.position", lazy="selectin", cascade="all, delete-orphan"
    )


class ApprovalStep(Base):
    __tablename__ = "approval_steps"
    __table_args__ = (UniqueConstraint("request_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    rule_ids: Mapped[list[Any]] = mapped_column()
    reasons: Mapped[list[Any]] = mapped_column()
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    carried_from: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    due_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]


class ApprovalTask(Base):
    """One seat of a step's group, as a unit of work in someone's inbox."""

    __tablename__ = "approval_tasks"
    __table_args__ = (
        # The inbox reads one lane at a time (web/services/tasks.py): equality on the
        # leading columns, then due_at, id in page order, so SQLite and PostgreSQL read the
        # page straight off the index without a sort, and the counts never touch the table.
        # assignee_id IS NULL is filtered inside the index: PostgreSQL would not keep the
        # due_at order after an IS NULL index condition.
        Index("ix_tasks_queue_lane", "state", "queue_role", "due_at", "id", "assignee_id"),
        Index("ix_tasks_assignee_lane", "state", "assignee_id", "due_at", "id"),
        Index("ix_tasks_open_claimed", "state", "claimed_by_id"),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    workflow_id: Mapped[str] = mapped_column(String(100))
    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    quote_version: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    step_key: Mapped[str] = mapped_column(String(100))
    step_name: Mapped[str] = mapped_column(String(200))
    group_index: Mapped[int] = mapped_column(Integer)
    seat: Mapped[int] = mapped_column(Integer)
    queue_role: Mapped[str | None] = mapped_column(String(40))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    escalated_from: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(30))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime | None]
    reminded_at: Mapped[dt.datetime | None]

    quote: Mapped[Quote] = relationship(lazy="joined")
    account: Mapped[Account] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    on_behalf_of: Mapped[User | None] = relationship(
        foreign_keys=[on_behalf_of_id], lazy="joined"
    )
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id], lazy="joined")
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id], lazy="joined")


class AuditEvent(Base):
    """Append-only, hash-chained legal record (see store/audit.py)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(255))
    """A label computed from the structured actor below (rows before 0007: free text)."""
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity: Mapped[str] = mapped_column(String(100), index=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    # The structured actor (store/who.py); NULL kind on rows written before it existed.
    actor_kind: Mapped[str | None] = mapped_column(String(20))
    actor_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor_email: Mapped[str | None] = mapped_column(String(255))
    actor_name: Mapped[str | None] = mapped_column(String(200))
    actor_process: Mapped[str | None] = mapped_column(String(100))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """The row's place in the transparency log (store/transparency.py): 0, 1, 2… in id order.
    NULL only between migration 0019 adding the column and its backfill."""


class AuditHead(Base):
    """One row; locked while appending so the chain stays linear on PostgreSQL too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    tree_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Leaves in the transparency log: the next row's ``leaf_index``."""


class MerkleNode(Base):
    """A complete subtree of the transparency log (store/merkle.py): leaves
    ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Written as
    rows append, in their transaction, never changed."""

    __tablename__ = "merkle_nodes"
    __table_args__ = {"sqlite_with_rowid": False}  # the key is the row: one B-tree, not two

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column("idx", BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class TreeHead(Base):
    """A signed tree head: the log's size and root at a moment, sealed by the organisation and
    timestamped (web/services/transparency.py)."""

    __tablename__ = "tree_heads"

    id: Mapped[int] = mapped_column(primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime]
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    """DER CMS SignedData, detached, over the head's canonical JSON, with an RFC 3161
    signature timestamp token (documents/tree_heads.py)."""


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_key: Mapped[str] = mapped_column(String(200), unique=True)
    to_addr: Mapped[str] = mapped_column(String(255), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # [{"sha256", "filename", "content_type"}]: files from the blob store to attach.
    attachments: Mapped[list[Any]] = mapped_column(default=list)


class Envelope(Base):
    """A document sent for signature. Projection of EnvelopeWorkflow (status, times,
    current document) plus what only the store holds (the files' hashes)."""

    __tablename__ = "envelopes"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"))
    status: Mapped[str] = mapped_column(String(30), default="sent", index=True)
    document_name: Mapped[str] = mapped_column(String(255))
    page_count: Mapped[int] = mapped_column(Integer)
    original_sha256: Mapped[str] = mapped_column(String(64))
    current_sha256: Mapped[str] = mapped_column(String(64))
    final_sha256: Mapped[str | None] = mapped_column(String(64))
    certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(Text)
    # The file as uploaded (a PDF, or a DOCX its workflow converts) and, while the workflow
    # prepares it (status "preparing"), what it is doing.
    upload_sha256: Mapped[str | None] = mapped_column(String(64))
    upload_name: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[str | None] = mapped_column(String(200))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    contract_template: Mapped[str | None] = mapped_column(String(40))
    """The contract template (``documents.contract.TEMPLATES``) the document was rendered
    from; the contract its signing records names it."""

    sender: Mapped[User] = relationship(lazy="joined")
    recipients: Mapped[list[EnvelopeRecipient]] = relationship(
        order_by="(EnvelopeRecipient.routing_order, EnvelopeRecipient.id)", lazy="selectin",
        cascade="all, delete-orphan", back_populates="envelope")


class EnvelopeRecipient(Base):
    """One signer, approver or cc of an envelope, with their signing link (hash only)."""

    __tablename__ = "envelope_recipients"
    __table_args__ = (Index("ix_recipients_waiting", "status", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))  # signer | approver | cc
    routing_order: Mapped[int] = mapped_column(Integer)
    auth_method: Mapped[str] = mapped_column(String(20), default="none")
    access_code_hash: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    anchor: Mapped[str | None] = mapped_column(String(60))
    """The ``[[sign:LABEL]]`` label where this signer's field goes (placed when prepared)."""
    field_name: Mapped[str | None] = mapped_column(String(100))
    field_page: Mapped[int | None] = mapped_column(Integer)
    field_box: Mapped[list[Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="created")
    sent_at: Mapped[dt.datetime | None]
    viewed_at: Mapped[dt.datetime | None]
    signed_at: Mapped[dt.datetime | None]
    declined_at: Mapped[dt.datetime | None]
    decline_reason: Mapped[str | None] = mapped_column(Text)
    typed_name: Mapped[str | None] = mapped_column(String(200))
    link_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_expires_at: Mapped[dt.datetime | None]
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    otp_hash: Mapped[str | None] = mapped_column(String(64))
    otp_expires_at: Mapped[dt.datetime | None]
    verified_at: Mapped[dt.datetime | None]

    envelope: Mapped[Envelope] = relationship(back_populates="recipients")


class EnvelopeEvent(Base):
    """Everything that happened to an envelope, for its status page and its certificate of
    completion (the audit chain has the same facts, tamper-evident)."""

    __tablename__ = "envelope_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(200), unique=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("envelope_recipients.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    auth_method: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SignatureApplication(Base):
    """Idempotency record of one applied signature: a retried signing activity finds its
    earlier output here instead of signing again."""

    __tablename__ = "signature_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(200), unique=True)
    envelope_id: Mapped[int] = mapped_column(ForeignKey("envelopes.id"), index=True)
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("envelope_recipients.id"))
    input_sha256: Mapped[str] = mapped_column(String(64))
    output_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Quotes and envelopes point at deals: whoever imports only this module gets that table too.
import store.deals  # noqa: E402, F401
