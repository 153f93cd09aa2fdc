"""A deal's history for auditors: one timeline, and the deal's state as of any entry in it.

The timeline merges two records. The **audit rows** of the deal and of everything hanging off
it (its RFPs, quotes, proposals, envelopes, subscriptions and invoices) say who decided what,
with the quote version and the document hashes each act applied to. The **Temporal event
histories** of its workflows (the DealWorkflow and its children, billing, renewals; live or
archived) say what the processes did: steps started and ended, signals and Updates received,
timers fired (reminders, escalations), activities run. They are merged by time; rows at the
same instant keep their own order (the audit log's chain order, a history's event order).

The **state as of entry n** is folded from the audit entries up to n: the deal's stage, each
quote's version, prices, hash and status, each approval chain's steps and decisions, each
envelope's signers (from the store, in signing order) and who of them had signed, and which
document (by hash) was current. Only audit rows move it: they are the legal record, and the
processes' own events are shown beside them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from store import audit
from store.audit import entity
from store.commerce import Invoice
from store.history_archive import ArchiveCorrupt
from store.models import AuditEvent, EnvelopeRecipient, QuoteVersion
from store.rfps import Rfp
from store.subscriptions import Subscription
from web.errors import Conflict, NotFound
from web.services import histories
from web.services.deals import Linked

MAX_ENTRIES = 20_000
"""A deal's timeline beyond this is cut (the page says so): years of renewals stay far below."""


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    source: str
    """``audit`` (a row of the log) or ``workflow`` (an event of a workflow's history)."""
    who: str
    action: str
    subject: str
    """The audit row's entity (``quote:12``), or the workflow's id."""
    what: str
    """One line for people."""
    ref: str
    """``audit:42`` or ``<workflow id>#<event id>``: where the entry can be checked."""
    data: dict[str, Any] = field(default_factory=dict)


# --- the audit side -------------------------------------------------------------------------

def entities(session: Session, deal_id: int, links: Linked) -> list[str]:
    """Every entity name whose audit rows belong to the deal's history."""
    names = links.entities(deal_id)
    quote_ids = [q.id for q in links.quotes]
    names += [entity("rfp", r) for r in session.scalars(
        select(Rfp.id).where(Rfp.deal_id == deal_id))]
    if quote_ids:
        names += [entity("subscription", s) for s in session.scalars(
            select(Subscription.id).where(Subscription.quote_id.in_(quote_ids)))]
        names += [entity("invoice", n) for n in session.scalars(
            select(Invoice.number).where(Invoice.quote_id.in_(quote_ids)))]
    return names


def audit_rows(session: Session, deal_id: int, links: Linked) -> list[AuditEvent]:
    spellings = [s for name in entities(session, deal_id, links)
                 for s in audit.entity_spellings(name)]
    return list(session.scalars(select(AuditEvent).where(AuditEvent.entity.in_(spellings))
                                .order_by(AuditEvent.id).limit(MAX_ENTRIES)))


def with_version_hashes(entries: list[Entry]) -> list[Entry]:
    """Each approval decision also names the hash of the quote version it applied to (the
    version's ``quote.submitted`` row has it)."""
    hashes: dict[tuple[str, object], str] = {}
    out = []
    for e in entries:
        if e.action == "quote.submitted" and e.data.get("hash"):
            hashes[(e.subject, e.data.get("version"))] = str(e.data["hash"])
        digest = hashes.get((e.subject, e.data.get("quote_version")))
        if e.action.startswith("task.") and digest:
            e = dataclasses.replace(e, what=f"{e.what} (hash {_short(digest)})",
                                    data=e.data | {"quote_hash": digest})
        out.append(e)
    return out


def audit_entry(ev: AuditEvent) -> Entry:
    return Entry(at=ev.at, source="audit", who=ev.actor, action=ev.action,
                 subject=ev.entity, what=describe(ev.action, ev.data), ref=f"audit:{ev.id}",
                 data=dict(ev.data) | {"actor_email": ev.actor_email})


def _short(digest: object) -> str:
    return str(digest)[:12] if digest else "?"


def describe(action: str, data: dict[str, Any]) -> str:
    """A line for an audit row, naming the version and hash it applied to where it has one."""
    match action:
        case "quote.submitted":
            return f"version {data.get('version')} submitted (hash {_short(data.get('hash'))})"
        case "task.approved" | "task.rejected" | "task.changes_requested":
            return (f"{data.get('step')} step {action.split('.')[1].replace('_', ' ')} "
                    f"on quote version {data.get('quote_version')}")
        case "envelope.signed":
            return (f"signed (certificate {_short(data.get('certificate_serial'))}, "
                    f"document now {_short(data.get('document_after'))})")
        case "envelope.created":
            return (f"{data.get('document')} sent for signature "
                    f"(sha256 {_short(data.get('sha256'))})")
        case "envelope.sealed":
            return f"sealed (sha256 {_short(data.get('document_after'))})"
        case "envelope.sent":
            return f"invitation to {data.get('recipient') or data.get('to')}"
        case "proposal.submitted":
            return (f"proposal version {data.get('version')} submitted "
                    f"(DOCX {_short(data.get('docx_sha256'))})")
        case "proposal.finalized":
            return f"final PDF {_short(data.get('pdf_sha256'))}"
        case "deal.stage_changed":
            return f"stage {data.get('from')} → {data.get('to')}"
        case "quote.won":
            if data.get("signed"):
                return f"won with the signed document {_short(data.get('signed'))}"
            return "won (marked won by hand)" if data.get("via") == "manual" else "won"
        case "invoice.issued":
            return f"invoice {data.get('number')}"
    return action.replace(".", " ").replace("_", " ")


# --- the workflow side ----------------------------------------------------------------------

_CLOSED = {"COMPLETED": "completed", "FAILED": "failed", "CANCELED": "cancelled",
           "TERMINATED": "terminated", "TIMED_OUT": "timed out",
           "CONTINUED_AS_NEW": "continued as new"}


def _time(text: str) -> dt.datetime:
    # Temporal writes nanoseconds: Python keeps microseconds.
    head, _, rest = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{(rest + '000000')[:6]}").replace(tzinfo=dt.UTC)


def _local_activity(attrs: dict[str, Any]) -> str:
    """A local activity's type, from its marker's ``data`` payload (JSON in base64)."""
    for payload in attrs.get("details", {}).get("data", {}).get("payloads", []):
        try:
            return str(json.loads(base64.b64decode(payload.get("data", ""))).get(
                "activity_type", "local activity"))
        except (ValueError, binascii.Error, AttributeError):
            pass
    return "local activity"


def workflow_entries(workflow_id: str, history: dict[str, Any]) -> list[Entry]:
    """The events of one workflow run worth an auditor's line (no workflow-task bookkeeping)."""
    out: list[Entry] = []
    kind = "workflow"
    scheduled: dict[str, str] = {}
    timers: dict[str, str] = {}
    for ev in history.get("events", []):
        etype = ev.get("eventType", "").removeprefix("EVENT_TYPE_")
        attrs: dict[str, Any] = next(
            (v for k, v in ev.items() if k.endswith("EventAttributes")), {})
        what = ""
        if etype == "WORKFLOW_EXECUTION_STARTED":
            kind = attrs.get("workflowType", {}).get("name", kind)
            what = f"{kind} started"
        elif etype.startswith("WORKFLOW_EXECUTION_") and etype[19:] in _CLOSED:
            what = f"{kind} {_CLOSED[etype[19:]]}"
        elif etype == "WORKFLOW_EXECUTION_SIGNALED":
            what = f"signal {attrs.get('signalName')}"
        elif etype == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            name = attrs.get("acceptedRequest", {}).get("input", {}).get("name", "?")
            what = f"Update {name} accepted"
        elif etype == "TIMER_STARTED":
            timers[ev.get("eventId", "")] = attrs.get("startToFireTimeout", "?")
        elif etype == "TIMER_FIRED":
            what = f"timer fired (set for {timers.get(attrs.get('startedEventId', ''), '?')})"
        elif etype == "ACTIVITY_TASK_SCHEDULED":
            scheduled[ev.get("eventId", "")] = attrs.get("activityType", {}).get("name", "?")
        elif etype in ("ACTIVITY_TASK_COMPLETED", "ACTIVITY_TASK_FAILED",
                       "ACTIVITY_TASK_TIMED_OUT"):
            outcome = etype.removeprefix("ACTIVITY_TASK_").lower().replace("_", " ")
            what = f"activity {scheduled.get(attrs.get('scheduledEventId', ''), '?')} {outcome}"
        elif etype == "MARKER_RECORDED" and attrs.get("markerName") == "core_local_activity":
            what = f"local activity {_local_activity(attrs)} done"  # (not patch markers)
        elif etype.startswith("CHILD_WORKFLOW_EXECUTION_"):
            child = attrs.get("workflowExecution", {}).get("workflowId", "?")
            ctype = attrs.get("workflowType", {}).get("name", "child")
            what = f"child {ctype} {child} {etype[25:].lower().replace('_', ' ')}"
        if what:
            out.append(Entry(at=_time(ev["eventTime"]), source="workflow",
                             who=f"workflow {kind}", action=etype.lower(),
                             subject=workflow_id, what=what,
                             ref=f"{workflow_id}#{ev.get('eventId')}"))
    return out


@dataclass(frozen=True)
class History:
    """One run of the deal's workflows, its history as Temporal's JSON."""

    workflow_id: str
    run_id: str
    source: str
    """``temporal`` or ``archive``."""
    events: dict[str, Any]


async def recorded(client: Client | None, sessions: sessionmaker[Session], prefix: str,
                   deal_id: int) -> list[History]:
    """Every run of the deal's workflows (web/services/histories.py): from the archive once
    archived, else from Temporal; the archive alone when Temporal can't be asked."""
    try:
        runs = await histories.deal_histories(client, sessions, prefix, deal_id)
    except RPCError:
        runs = await histories.deal_histories(None, sessions, prefix, deal_id)
    except ArchiveCorrupt as e:
        raise Conflict(str(e)) from None

    def as_json() -> list[History]:
        return [History(r.workflow_id, r.run_id, r.source, json.loads(r.history.to_json()))
                for r in runs]

    return await asyncio.to_thread(as_json)


def merged(audit_entries: list[Entry], runs: Iterable[History]) -> list[Entry]:
    """Audit entries and workflow events in one list by time. The sort is stable, so entries
    at the same instant keep the chain's order and each history's event order."""
    entries = list(audit_entries)
    for run in runs:
        entries += workflow_entries(run.workflow_id, run.events)
    return sorted(entries, key=lambda e: e.at)[:MAX_ENTRIES]


# --- the state as of an entry ---------------------------------------------------------------

@dataclass
class QuoteState:
    id: int
    version: int | None = None
    hash: str | None = None
    list_amount: int | None = None
    net_amount: int | None = None
    currency: str = ""
    status: str = "draft"


@dataclass
class StepState:
    name: str
    status: str = "waiting"
    decided_by: str = ""


@dataclass
class ChainState:
    quote_id: int
    quote_version: int | None
    status: str = "running"
    steps: list[StepState] = field(default_factory=list)


@dataclass
class SignerState:
    name: str
    email: str
    role: str
    status: str = "not yet invited"


@dataclass
class EnvelopeState:
    id: int
    title: str
    document: str | None = None
    status: str = "preparing"
    signers: list[SignerState] = field(default_factory=list)


@dataclass
class State:
    at: dt.datetime | None = None
    stage: str = "intake"
    quotes: dict[int, QuoteState] = field(default_factory=dict)
    chains: list[ChainState] = field(default_factory=list)
    envelopes: dict[int, EnvelopeState] = field(default_factory=dict)
    proposal_documents: dict[int, str] = field(default_factory=dict)
    """Proposal id → its current document's hash (the DOCX, then the final PDF)."""


def _id(subject: str) -> int | None:
    key = subject.replace("-", ":", 1).partition(":")[2]
    return int(key) if key.isdigit() else None


def _recipients(session: Session, links: Linked) -> dict[int, list[EnvelopeRecipient]]:
    ids = [e.id for e in links.envelopes]
    found: dict[int, list[EnvelopeRecipient]] = {i: [] for i in ids}
    if ids:
        for r in session.scalars(select(EnvelopeRecipient).where(
                EnvelopeRecipient.envelope_id.in_(ids), EnvelopeRecipient.role != "cc")
                .order_by(EnvelopeRecipient.routing_order, EnvelopeRecipient.id)):
            found[r.envelope_id].append(r)
    return found


def state_as_of(session: Session, links: Linked, entries: list[Entry], upto: int) -> State:
    """The deal as the audit entries ``entries[:upto + 1]`` leave it."""
    state = State()
    titles = {e.id: e.title for e in links.envelopes}
    recipients = _recipients(session, links)
    for e in entries[:upto + 1]:
        state.at = e.at
        if e.source != "audit":
            continue
        apply_entry(state, e, titles, recipients)
    return state


def apply_entry(state: State, e: Entry, titles: dict[int, str],
                recipients: dict[int, list[EnvelopeRecipient]]) -> None:
    """Move ``state`` by one audit entry (``titles`` and ``recipients``: the envelopes' titles
    and signers, from the store)."""
    d, key = e.data, _id(e.subject)
    kind = e.subject.split(":")[0].split("-")[0]
    if e.action == "deal.stage_changed":
        state.stage = str(d.get("to", state.stage))
    elif e.action == "deal.lost":
        state.stage = "lost"
    elif kind == "quote" and key is not None:
        apply_quote_entry(state, e, key)
    elif kind == "envelope" and key is not None:
        env = state.envelopes.get(key)
        if env is None:
            env = state.envelopes[key] = EnvelopeState(
                key, titles.get(key, f"envelope {key}"),
                signers=[SignerState(r.name, r.email, r.role) for r in recipients.get(key, [])])
        document = d.get("document_after") or (d.get("sha256") if e.action ==
                                                "envelope.created" else None)
        if document:
            env.document = str(document)
        action = e.action.removeprefix("envelope.")
        if action in ("sent", "signed", "declined"):
            email = str(d.get("recipient") or d.get("to") or d.get("actor_email") or "")
            for s in env.signers:
                if s.email.lower() == email.lower() and s.status != "signed":
                    s.status = {"sent": "pending", "signed": "signed",
                                "declined": "declined"}[action]
        if action in ("sent", "sealed", "completed", "voided", "declined", "expired"):
            env.status = {"sent": "sent", "sealed": "sealed"}.get(action, action)
    elif kind == "proposal" and key is not None:
        document = d.get("pdf_sha256") or d.get("docx_sha256")
        if document and e.action in ("proposal.submitted", "proposal.finalized"):
            state.proposal_documents[key] = str(document)


def apply_quote_entry(state: State, e: Entry, key: int) -> None:
    d = e.data
    q = state.quotes.setdefault(key, QuoteState(key))
    if "list_amount" in d or "net_amount" in d:
        q.list_amount = d.get("list_amount", q.list_amount)
        q.net_amount = d.get("net_amount", q.net_amount)
        q.currency = str(d.get("currency", q.currency))
    match e.action:
        case "quote.submitted":
            q.version, q.hash, q.status = d.get("version"), d.get("hash"), "pending approval"
        case "chain.started":
            state.chains.append(ChainState(key, d.get("quote_version"), steps=[
                StepState(str(s)) for s in d.get("steps", [])]))
        case "step.opened" | "task.approved" | "task.rejected" | "task.changes_requested":
            chain = next((c for c in reversed(state.chains) if c.quote_id == key), None)
            step = chain and next((s for s in chain.steps if s.name == d.get("step")), None)
            if step:
                step.status = "open" if e.action == "step.opened" else \
                    e.action.removeprefix("task.").replace("_", " ")
                step.decided_by = "" if e.action == "step.opened" else e.who
        case "chain.approved" | "chain.rejected" | "chain.recalled" | "chain.cancelled":
            outcome = e.action.removeprefix("chain.")
            for chain in state.chains:
                if chain.quote_id == key and chain.status == "running":
                    chain.status = outcome
            q.status = {"approved": "approved", "rejected": "rejected"}.get(outcome, "draft")
        case "quote.won":
            q.status = state.stage = "won"


def position(entries: list[Entry], when: dt.datetime) -> int:
    """The last entry at or before ``when`` (-1: before the first)."""
    found = -1
    for n, e in enumerate(entries):
        if e.at <= when:
            found = n
    return found


# --- diffs ----------------------------------------------------------------------------------

def quote_version_diff(session: Session, links: Linked, quote_id: int, a: int, b: int
                       ) -> list[str]:
    """A unified diff of two submitted versions' frozen facts (what the approvers saw)."""
    if quote_id not in {q.id for q in links.quotes}:
        raise NotFound(f"no quote {quote_id} in this deal")
    facts = {v.version: v for v in session.scalars(select(QuoteVersion).where(
        QuoteVersion.quote_id == quote_id, QuoteVersion.version.in_([a, b])))}
    for n in (a, b):
        if n not in facts:
            raise NotFound(f"quote {quote_id} has no submitted version {n}")

    def lines(n: int) -> list[str]:
        return json.dumps(facts[n].facts, indent=2, sort_keys=True, default=str).splitlines()

    return list(difflib.unified_diff(
        lines(a), lines(b), f"version {a} ({facts[a].facts_hash[:12]})",
        f"version {b} ({facts[b].facts_hash[:12]})", lineterm=""))


def document_hashes(entries: list[Entry]) -> list[str]:
    """Every document version the deal's audit rows name, in order of appearance."""
    seen: list[str] = []
    for e in entries:
        for k in ("sha256", "document_before", "document_after", "docx_sha256", "pdf_sha256",
                  "signed"):
            v = e.data.get(k)
            if isinstance(v, str) and len(v) == 64 and v not in seen:
                seen.append(v)
    return seen

