"""Proposals: one place for the builder page, the API and the demo.

A proposal is written as a draft: a cover (customer, title, validity), sections in reading
order (library items, text written for this proposal, the linked quote's pricing table and
bill of materials) and an optional customer signature block. **Submitting** assembles the
DOCX (``documents.assembly``, in the sandbox), stores it by hash and freezes the version with
each section's content digest; the version's ProposalWorkflow then runs the policy's
proposal rules (workflows/proposal.py) and, approved, makes the final PDF. The rows and the
workflow's start commit together (``store.starts``). Editing after a submission makes the
next version; steps whose rules read only unchanged sections carry over.

**Who may do what.** Reps, deal desk and admins write proposals (never an auditor); a rep
sees their own, approvers, auditors and admins see all. The owner edits, submits and
recalls; reviewers decide through the workflow's validators (nobody reviews their own).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
)

from cpq.money import major
from dealdesk.faults import crash_point
from documents import assembly
from documents.assembly import AssemblyError, Cover, Part, Signer
from store import audit, idempotency, starts
from store.audit import entity
from store.blobs import BlobStore
from store.db import in_session, write_lock
from store.deals import step_parent
from store.library import LibraryItem
from store.models import Account, Quote, User
from store.proposals import Proposal, ProposalStep, ProposalTask, ProposalVersion
from store.who import Who
from web.deps import off_loop
from web.errors import Conflict, Forbidden, Invalid, NotFound
from web.services import quote_documents
from web.services.policies import active_policy, spec_of
from web.services.quotes import READ_ALL, actor_of
from web.services.refusals import execute_update
from workflows.messages import (
    DecisionInput,
    PriorApproval,
    ProposalFacts,
    RecallInput,
    SectionFact,
    TaskResult,
)
from workflows.proposal import ProposalInput, ProposalWorkflow
from workflows.proposal import workflow_id as _workflow_id
from workflows.rules import READ_ONLY_ROLES

WRITERS = frozenset({"rep", "deal_desk", "admin"})
EDITABLE = ("draft", "changes_requested", "rejected")
MAX_SECTIONS = 80
MAX_TEXT = 20_000
SECTION_KINDS = ("section", "case_study", "product", "answer")
"""Library kinds that make a proposal section (images go inside a section's DOCX)."""
VALID_DAYS = 30
MAX_CUSTOM = 30
CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

Convert = Callable[[bytes, str], bytes]


class SectionIn(BaseModel):
    """One section of a draft, in reading order."""

    kind: Literal["library", "text", "pricing", "bom"]
    item_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    title: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=MAX_TEXT)


class ProposalFields(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    account_id: int = Field(ge=1, le=2**31 - 1)
    quote_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    valid_until: dt.date | None = None
    customer_signer: str = Field(default="", max_length=200)
    customer_signer_title: str = Field(default="", max_length=200)
    custom_fields: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_CUSTOM,
        description="values a rich section fills in as {{ custom.NAME }}")


def check_custom(fields: dict[str, str]) -> dict[str, str]:
    """Custom fields as stored: names a template can spell, short values."""
    if len(fields) > MAX_CUSTOM:
        raise Invalid(f"a proposal has at most {MAX_CUSTOM} custom fields",
                      field="custom_fields")
    out = {}
    for name, value in fields.items():
        if not CUSTOM_NAME.fullmatch(name):
            raise Invalid(f"custom field {name[:50]!r}: a name is lower-case letters, digits "
                          "and _, starting with a letter (e.g. project_name)",
                          field="custom_fields")
        if len(value) > 500 or not value.strip():
            raise Invalid(f"custom field {name!r}: give a value of 1 to 500 characters",
                          field="custom_fields")
        out[name] = value.strip()
    return out


def set_custom_fields(session: Session, user: User, proposal_id: int,
                      fields: dict[str, str]) -> Proposal:
    """Replace the draft's custom fields (rich sections fill them in)."""
    write_lock(session)
    p = _editable(session, user, proposal_id)
    p.custom_fields = check_custom(fields)
    audit.append(session, event_key=f"proposal-{p.id}-v{p.version}-fields-"
                 f"{p.updated_at.timestamp()}", actor=Who.user(user),
                 action="proposal.edited", entity=entity("proposal", p.id),
                 data={"version": p.version, "custom_fields": p.custom_fields})
    return p


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def workflow_id(prefix: str, proposal_id: int, version: int) -> str:
    return _workflow_id(prefix, proposal_id, version)


def may_write(user: User) -> bool:
    return bool(user.roles & WRITERS) and not user.roles.intersection(READ_ONLY_ROLES)


def require_writer(user: User) -> None:
    if not may_write(user):
        raise Forbidden("only reps, the deal desk and admins write proposals")


def visible(session: Session, user: User, proposal_id: int) -> Proposal:
    """The proposal if this user may read it; otherwise it doesn't exist for them (404)."""
    p = session.get(Proposal, proposal_id)
    if p is None or not (p.owner_id == user.id or user.roles.intersection(READ_ALL)):
        raise NotFound(f"no proposal {proposal_id}")
    return p


def _owned(session: Session, user: User, proposal_id: int) -> Proposal:
    p = visible(session, user, proposal_id)
    if p.owner_id != user.id:
        raise Forbidden(f"only the proposal's owner ({p.owner.name}) changes or submits it")
    return p


def _editable(session: Session, user: User, proposal_id: int) -> Proposal:
    """The owner's proposal, ready for an edit: a submitted version's edit starts the next."""
    p = _owned(session, user, proposal_id)
    if p.status == "in_review":
        raise Conflict("this proposal is in review: recall it before editing")
    if p.status in ("approved", "final"):
        raise Conflict("this version is approved and final; start a new proposal to change it")
    frozen = session.scalar(select(ProposalVersion.id).where(
        ProposalVersion.proposal_id == p.id, ProposalVersion.version == p.version))
    if frozen is not None:
        p.version += 1
        p.status = "draft"
    p.updated_at = dt.datetime.now(dt.UTC)
    return p


def _check_quote(session: Session, user: User, fields: ProposalFields) -> None:
    if session.get(Account, fields.account_id) is None:
        raise Invalid(f"no account {fields.account_id}", field="account_id")
    if fields.quote_id is None:
        return
    quote = session.get(Quote, fields.quote_id)
    if quote is None or not (quote.owner_id == user.id or user.roles.intersection(READ_ALL)):
        raise Invalid(f"no quote {fields.quote_id}", field="quote_id")
    if quote.account_id != fields.account_id:
        raise Invalid(f"quote {quote.id} is for {quote.account.name}, not this account",
                      field="quote_id")


def create_proposal(session: Session, user: User, fields: ProposalFields,
                    idempotency_key: str | None = None) -> Proposal:
    """A new draft (committed by the caller), with the quote's pricing and bill of
    materials as its first sections when a quote is linked."""
    require_writer(user)
    write_lock(session)
    digest = idempotency.request_hash(fields.model_dump_json())
    try:
        earlier = idempotency.earlier(session, user.id, "proposal", idempotency_key, digest)
    except idempotency.KeyReused as e:
        raise Invalid(str(e), field="Idempotency-Key") from None
    if earlier is not None:
        return visible(session, user, earlier)
    title = fields.title.strip()
    if not title:
        raise Invalid("give the proposal a title", field="title")
    _check_quote(session, user, fields)
    valid_until = fields.valid_until or _today() + dt.timedelta(days=VALID_DAYS)
    if not _today() <= valid_until <= _today() + dt.timedelta(days=366):
        raise Invalid("valid_until must be from today to a year ahead", field="valid_until")
    p = Proposal(title=title, account_id=fields.account_id, quote_id=fields.quote_id,
                 owner_id=user.id, valid_until=valid_until,
                 customer_signer=fields.customer_signer.strip(),
                 customer_signer_title=fields.customer_signer_title.strip(),
                 custom_fields=check_custom(fields.custom_fields),
                 sections=[{"kind": "pricing"}, {"kind": "bom"}] if fields.quote_id else [])
    if fields.quote_id is not None:  # the quote's deal is the proposal's
        p.deal_id = session.scalar(select(Quote.deal_id).where(Quote.id == fields.quote_id))
    session.add(p)
    session.flush()
    idempotency.remember(session, user.id, "proposal", idempotency_key, digest, p.id)
    audit.append(session, event_key=f"proposal-{p.id}-created", actor=Who.user(user),
                 action="proposal.created", entity=entity("proposal", p.id),
                 data=fields.model_dump(mode="json"))
    return p


def set_sections(session: Session, user: User, proposal_id: int,
                 sections: Sequence[SectionIn]) -> Proposal:
    """Replace the draft's sections (the builder's add, move and remove all end here)."""
    write_lock(session)
    p = _editable(session, user, proposal_id)
    if len(sections) > MAX_SECTIONS:
        raise Invalid(f"a proposal has at most {MAX_SECTIONS} sections", field="sections")
    out: list[dict[str, Any]] = []
    for i, s in enumerate(sections):
        where = f"sections[{i}]"
        if s.kind == "library":
            item = session.get(LibraryItem, s.item_id) if s.item_id else None
            if item is None or item.archived:
                raise Invalid(f"{where}: no library item {s.item_id}", field="sections")
            if item.kind not in SECTION_KINDS:
                raise Invalid(f"{where}: {item.title!r} is an {item.kind}; add it inside a "
                              "section, not as one", field="sections")
            out.append({"kind": "library", "item_id": item.id})
        elif s.kind == "text":
            if not s.title.strip() or not s.body.strip():
                raise Invalid(f"{where}: a section of your own needs a title and text",
                              field="sections")
            out.append({"kind": "text", "title": s.title.strip(), "body": s.body.strip()})
        else:
            if p.quote_id is None:
                raise Invalid(f"{where}: {s.kind} comes from a quote; link one first",
                              field="sections")
            if any(o["kind"] == s.kind for o in out):
                raise Invalid(f"{where}: the {s.kind} section is already in", field="sections")
            out.append({"kind": s.kind})
    p.sections = out
    audit.append(session, event_key=f"proposal-{p.id}-v{p.version}-sections-"
                 f"{p.updated_at.timestamp()}", actor=Who.user(user),
                 action="proposal.edited", entity=entity("proposal", p.id),
                 data={"version": p.version, "sections": out})
    return p


def sections_in(p: Proposal) -> list[SectionIn]:
    return [SectionIn.model_validate(s) for s in p.sections]


# --- assembly ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """Everything a version is made of, read from the store in one go (then assembled off
    any transaction)."""

    proposal_id: int
    version: int
    sections: list[dict[str, Any]]
    """The draft's sections as stored (to see that nothing changed before freezing)."""
    frozen: list[dict[str, Any]]
    """Each section as it is reviewed: the draft's entry with its title, digest, tags."""
    cover: Cover
    parts: list[Part]
    signers: list[Signer]
    facts: ProposalFacts


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _paragraphs(body: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for block in (b.strip() for b in body.replace("\r\n", "\n").split("\n\n")):
        for line in block.split("\n") if block.startswith(("- ", "* ")) else [block]:
            if line.strip():
                bullet = line.startswith(("- ", "* "))
                out.append((line[2:].strip() if bullet else line.strip(),
                            "List Bullet" if bullet else None))
    return out


def draft_of(session: Session, p: Proposal, blobs: BlobStore, org_name: str) -> Draft:
    today = _today()
    parts: list[Part] = []
    facts: list[SectionFact] = []
    frozen: list[dict[str, Any]] = []
    quote_doc = None
    quote = p.quote
    variables: dict[str, Any] = {
        "customer": p.account.name, "title": p.title, "number": f"P-{p.id} v{p.version}",
        "seller": org_name, "prepared_by": p.owner.name, "issued": assembly.long_date(today),
        "valid_until": assembly.long_date(p.valid_until),
        "currency": quote.currency if quote else "",
        "total": major(quote.net_amount, quote.currency) if quote else "",
        "discount_pct": assembly.percent(quote.discount_pct) if quote else "",
        "signer": p.customer_signer, "custom": dict(p.custom_fields or {})}
    if p.quote_id is not None and any(s["kind"] in ("pricing", "bom") for s in p.sections):
        assert p.quote is not None
        quote_doc = quote_documents.document_of(session, p.quote, org_name, blobs)
    for s in p.sections:
        if s["kind"] == "library":
            item = session.get(LibraryItem, s["item_id"])
            if item is None or item.archived:
                raise Conflict(f"library item {s['item_id']} was archived; remove it from the "
                               "proposal", field="sections")
            if item.docx_sha256:
                data = blobs.get(item.docx_sha256)
                parts.append(assembly.section(item.title, data, variables))
                # What the reader sees: the fragment and the values it fills in.
                used = {n: variables.get(n) for n in item.docx_fields or []}
                digest = _digest(data + json.dumps(used, sort_keys=True).encode())
            else:
                parts.append(assembly.text_section(item.title, _paragraphs(item.body)))
                digest = _digest(f"{item.title}\n{item.body}".encode())
            facts.append(SectionFact(item.title, digest, item.tags, True,
                                     item.due_for_review(today)))
        elif s["kind"] == "text":
            parts.append(assembly.text_section(s["title"], _paragraphs(s["body"])))
            facts.append(SectionFact(s["title"], _digest(f"{s['title']}\n{s['body']}".encode()),
                                     [], False))
        elif quote_doc is not None:
            if s["kind"] == "pricing":
                part: Part | None = assembly.pricing_table(
                    quote_doc.lines, quote_doc.currency,
                    assembly.Totals(quote_doc.list_total, quote_doc.net_total))
                content: Any = [quote_doc.currency, quote_doc.list_total, quote_doc.net_total,
                                [dataclasses.asdict(ln) for ln in quote_doc.lines]]
            else:  # a quote without catalog lines has no bill of materials
                part = assembly.bill_of_materials(quote_doc.bom)
                content = [dataclasses.asdict(r) for r in quote_doc.bom]
            if part is None:
                continue
            parts.append(part)
            facts.append(SectionFact(part.title, _digest(json.dumps(content).encode()),
                                     ["pricing"], True))
        frozen.append({**s, **dataclasses.asdict(facts[-1])})
    cover = Cover(customer=p.account.name, title=p.title, number=variables["number"],
                  valid_until=p.valid_until, prepared_by=p.owner.name, issued=today,
                  seller=org_name, kind="Proposal")
    signers = []
    if p.customer_signer:
        signers = [Signer("customer", p.customer_signer, p.customer_signer_title,
                          p.account.name),
                   Signer("seller", p.owner.name, "Account executive", org_name)]
    return Draft(p.id, p.version, list(p.sections), frozen, cover, parts, signers, ProposalFacts(
        proposal_id=p.id, version=p.version, title=p.title, account_name=p.account.name,
        owner_id=p.owner_id, sections=facts, currency=quote.currency if quote else "",
        total=quote.net_amount if quote else 0,
        discount_pct=quote.discount_pct if quote else 0.0))


def assemble(draft: Draft) -> bytes:
    """The draft's DOCX (blocking: the sandbox's child process)."""
    if not draft.parts:
        raise Invalid("add at least one section before making the document", field="sections")
    try:
        return assembly.assemble_isolated(draft.cover, draft.parts, draft.signers)
    except AssemblyError as e:
        raise Invalid(f"the proposal can't be put together: {e}", field="sections") from e


# --- review -----------------------------------------------------------------------------


def prior_approvals(session: Session, proposal_id: int, before: int) -> list[PriorApproval]:
    """The approved (or carried) steps of the latest earlier version, for smart re-review."""
    version = session.scalar(select(ProposalVersion).where(
        ProposalVersion.proposal_id == proposal_id, ProposalVersion.version < before)
        .order_by(ProposalVersion.version.desc()).limit(1))
    if version is None:
        return []
    out = []
    for step in version.steps:
        if step.state == "carried_over" and step.carried_from:
            c = step.carried_from
            out.append(PriorApproval(step.key, step.fingerprint, c["decided_by"],
                                     dt.datetime.fromisoformat(c["decided_at"]),
                                     int(c["version"]), c["workflow_id"]))
        elif step.state == "approved" and step.completed_at is not None:
            deciders = sorted({t.decided_by_name for t in session.scalars(
                select(ProposalTask).where(ProposalTask.proposal_id == proposal_id,
                                           ProposalTask.version == version.version,
                                           ProposalTask.step_key == step.key,
                                           ProposalTask.state == "approved"))})
            out.append(PriorApproval(step.key, step.fingerprint, ", ".join(deciders),
                                     step.completed_at, version.version, version.workflow_id))
    return out


def _read_draft(session: Session, user: User, proposal_id: int, blobs: BlobStore,
                org_name: str) -> Draft:
    p = _owned(session, user, proposal_id)
    if p.status not in EDITABLE:
        raise Conflict(f"this proposal is {p.status.replace('_', ' ')}: nothing to submit")
    return draft_of(session, p, blobs, org_name)


def _enqueue(session: Session, user: User, draft: Draft, docx_sha256: str, task_queue: str,
             prefix: str) -> str:
    write_lock(session)
    p = _editable(session, user, draft.proposal_id)
    if p.status not in EDITABLE:
        raise Conflict(f"this proposal is {p.status.replace('_', ' ')}: nothing to submit")
    if p.sections != draft.sections or p.version not in (draft.version, draft.version + 1):
        raise Conflict("the proposal changed while it was being put together; submit again")
    facts = dataclasses.replace(draft.facts, version=p.version)
    policy = active_policy(session)
    spec = spec_of(policy)
    wid = workflow_id(prefix, p.id, p.version)
    session.add(ProposalVersion(
        proposal_id=p.id, version=p.version, workflow_id=wid,
        sections=draft.frozen,
        facts=dataclasses.asdict(facts), docx_sha256=docx_sha256, policy_name=spec.name,
        policy_version=spec.version, submitted_by_id=user.id))
    p.status = "in_review"
    audit.append(session, event_key=f"{wid}#submitted", actor=Who.user(user),
                 action="proposal.submitted", entity=entity("proposal", p.id),
                 data={"version": p.version, "docx_sha256": docx_sha256,
                       "sections": [f.title for f in facts.sections]})
    session.flush()
    starts.enqueue(session, wid, ProposalWorkflow.__name__, ProposalInput(
        facts, spec, actor_of(user), docx_sha256, prior_approvals(session, p.id, p.version)),
        task_queue, parent=step_parent(session, prefix, p.deal_id, p.quote_id))
    return wid


async def submit(session: Session, client: Client | None, user: User, proposal_id: int, *,
                 blobs: BlobStore, org_name: str, task_queue: str, prefix: str = "") -> str:
    """Assemble the draft, store its DOCX by hash, freeze the version and start its review
    (committed together; the workflow starts right after, or from the reconciler)."""
    require_writer(user)
    draft = await in_session(session, _read_draft, user, proposal_id, blobs, org_name)
    docx = await off_loop(assemble, draft)
    digest = await off_loop(blobs.put, docx)
    wid = await in_session(session, _enqueue, user, draft, digest, task_queue, prefix)
    crash_point("submit:after-commit")
    await starts.start_now(client, session, wid)
    return wid


async def preview_pdf(session: Session, user: User, proposal_id: int, *, blobs: BlobStore,
                      org_name: str, convert: Convert) -> bytes:
    """The draft as the customer would see it, as a PDF (nothing stored)."""
    draft = await in_session(session, _preview_draft, user, proposal_id, blobs, org_name)
    docx = await off_loop(assemble, draft)
    return bytes(await off_loop(convert, docx, f"proposal-{proposal_id}.docx"))


def _preview_draft(session: Session, user: User, proposal_id: int, blobs: BlobStore,
                   org_name: str) -> Draft:
    return draft_of(session, visible(session, user, proposal_id), blobs, org_name)


@dataclass(frozen=True)
class TaskRef:
    id: str
    workflow_id: str
    proposal_id: int


def _task_ref(session: Session, user: User, proposal_id: int, task_id: str) -> TaskRef:
    visible(session, user, proposal_id)
    task = session.get(ProposalTask, task_id)
    if task is None or task.proposal_id != proposal_id:
        raise NotFound(f"no review task {task_id!r} on proposal {proposal_id}")
    wid = session.scalar(select(ProposalVersion.workflow_id).where(
        ProposalVersion.proposal_id == proposal_id, ProposalVersion.version == task.version))
    assert wid is not None
    return TaskRef(task.id, wid, proposal_id)


async def decide(session: Session, client: Client, user: User, proposal_id: int, task_id: str,
                 decision: str, comment: str = "", version: int | None = None) -> TaskResult:
    if decision not in ("approve", "reject", "request_changes"):
        raise Invalid("decision must be approve, reject or request_changes", field="decision")
    if decision != "approve" and not comment.strip():
        raise Invalid(f"a comment is required to {decision.replace('_', ' ')}", field="comment")
    if len(comment) > 4000:
        raise Invalid("the comment is longer than 4,000 characters", field="comment")
    ref = await in_session(session, _task_ref, user, proposal_id, task_id)
    result: TaskResult = await _update(client, ref.workflow_id, ProposalWorkflow.decide,
                                       DecisionInput(ref.id, actor_of(user), decision,  # type: ignore[arg-type]
                                                     comment, version))
    return result


async def recall(session: Session, client: Client, user: User, proposal_id: int,
                 comment: str = "") -> str:
    wid = await in_session(session, _under_review, user, proposal_id)
    status: str = await _update(client, wid, ProposalWorkflow.recall,
                                RecallInput(actor_of(user), comment[:4000]))
    return status


def _under_review(session: Session, user: User, proposal_id: int) -> str:
    """The workflow id of the owner's proposal's version in review."""
    p = _owned(session, user, proposal_id)
    wid = session.scalar(select(ProposalVersion.workflow_id).where(
        ProposalVersion.proposal_id == p.id, ProposalVersion.version == p.version))
    if p.status != "in_review" or wid is None:
        raise Conflict(f"this proposal is {p.status.replace('_', ' ')}, not in review")
    return wid


async def _update(client: Client, wid: str, update: object, arg: object) -> Any:
    return await execute_update(client, wid, update, arg, ended="this proposal's review has "
                                "ended", service="review service")


# --- reading ----------------------------------------------------------------------------


def list_proposals(session: Session, user: User, q: str = "", limit: int = 100
                   ) -> list[Proposal]:
    query = select(Proposal).order_by(Proposal.updated_at.desc(), Proposal.id.desc())
    if not user.roles.intersection(READ_ALL):
        query = query.where(Proposal.owner_id == user.id)
    if q.strip():
        query = query.where(func.lower(Proposal.title).contains(q.strip().lower()))
    return list(session.scalars(query.limit(limit)))


def versions(session: Session, proposal_id: int) -> list[ProposalVersion]:
    return list(session.scalars(select(ProposalVersion).where(
        ProposalVersion.proposal_id == proposal_id).order_by(ProposalVersion.version.desc())))


def tasks_of(session: Session, proposal_id: int, version: int) -> list[ProposalTask]:
    return list(session.scalars(select(ProposalTask).where(
        ProposalTask.proposal_id == proposal_id, ProposalTask.version == version)
        .order_by(ProposalTask.created_at, ProposalTask.id)))


def steps_of(session: Session, proposal_id: int, version: int) -> list[ProposalStep]:
    v = session.scalar(select(ProposalVersion).where(
        ProposalVersion.proposal_id == proposal_id, ProposalVersion.version == version))
    return list(v.steps) if v else []


def waiting_for(session: Session, user: User, limit: int = 50) -> list[ProposalTask]:
    """Open review tasks this user could take: assigned to them, or in one of their queues
    (never on a proposal they own)."""
    if user.roles.intersection(READ_ONLY_ROLES):
        return []
    return list(session.scalars(
        select(ProposalTask).join(Proposal, Proposal.id == ProposalTask.proposal_id)
        .where(ProposalTask.state == "open", Proposal.owner_id != user.id,
               or_(ProposalTask.assignee_id == user.id,
                   (ProposalTask.assignee_id.is_(None)
                    & ProposalTask.queue_role.in_(sorted(user.roles)))))
        .order_by(ProposalTask.due_at, ProposalTask.created_at).limit(limit)))


def document(session: Session, user: User, proposal_id: int, version: int,
             kind: Literal["docx", "pdf"]) -> tuple[str, str]:
    """(SHA-256, file name) of a version's DOCX or final PDF."""
    p = visible(session, user, proposal_id)
    v = session.scalar(select(ProposalVersion).where(
        ProposalVersion.proposal_id == p.id, ProposalVersion.version == version))
    if v is None:
        raise NotFound(f"proposal {p.id} has no version {version}")
    digest = v.docx_sha256 if kind == "docx" else v.pdf_sha256
    if digest is None:
        raise NotFound(f"version {version} has no final PDF yet: it is "
                       f"{v.status.replace('_', ' ')}")
    return digest, f"proposal-{p.id}-v{version}.{kind}"
