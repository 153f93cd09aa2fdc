"""The JSON API under /api/v1 (Bearer tokens: web/routes/api_auth.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from store import audit
from store.audit import entity as entity_name
from store.db import write_lock
from store.models import (
    Account,
    ApprovalRequest,
    ApprovalTask,
    AuditEvent,
    Policy,
    Quote,
    User,
)
from store.who import Who
from web.auth import CurrentUser, require
from web.deps import (
    ClientDep,
    IdempotencyKey,
    MaybeClientDep,
    SessionDep,
    SettingsDep,
    in_session,
)
from web.errors import API_ERRORS, Invalid, NotFound
from web.params import NoNul, PathId, QueryAmount, QueryId, TaskId, Version
from web.routes.inbox import may_view_task
from web.services import audit_log, delegations
from web.services import policies as policy_service
from web.services import quotes as quote_service
from web.services import tasks as task_service
from web.services.costs import sees_costs
from web.services.quotes import READ_ALL, QuoteFields, visible_quote
from web.services.tasks import InboxFilter
from workflows.messages import TaskResult

router = APIRouter(prefix="/api/v1", tags=["api"], responses=API_ERRORS)


class TaskOut(BaseModel):
    id: str
    state: str
    quote_id: int
    quote_version: int
    account: str
    amount: int = Field(description="net amount, minor units")
    currency: str
    step: str
    queue: str | None
    assignee: str | None
    on_behalf_of: str | None
    claimed_by: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    comment: str | None
    due_at: dt.datetime | None

    @classmethod
    def of(cls, t: ApprovalTask) -> TaskOut:
        return cls(id=t.id, state=t.state, quote_id=t.quote_id, quote_version=t.quote_version,
                   account=t.account.name, amount=t.amount, currency=t.currency,
                   step=t.step_name, queue=t.queue_role,
                   assignee=t.assignee.name if t.assignee else None,
                   on_behalf_of=t.on_behalf_of.name if t.on_behalf_of else None,
                   claimed_by=t.claimed_by.name if t.claimed_by else None,
                   decided_by=t.decided_by.name if t.decided_by else None,
                   decided_at=t.decided_at, comment=t.comment, due_at=t.due_at)


_TASKS = TypeAdapter(list[TaskOut])


class DecisionOut(BaseModel):
    id: str
    state: str
    decided_by: str
    comment: str
    chain_status: str

    @classmethod
    def of(cls, r: TaskResult) -> DecisionOut:
        return cls(id=r.task.id, state=r.task.state, decided_by=r.task.decided_by_name,
                   comment=r.task.comment, chain_status=r.chain_status)


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject", "request_changes"]
    comment: Annotated[str, NoNul] = Field("", max_length=4000)
    quote_version: Version | None = None


class DelegateIn(BaseModel):
    to: str = Field(max_length=255, description="the delegate's email")
    comment: Annotated[str, NoNul] = Field("", max_length=4000)


class QuoteOut(BaseModel):
    id: int
    title: str
    account_id: int
    owner: str
    currency: str
    list_amount: int
    net_amount: int
    cost_amount: int | None = Field(description="minor units; null unless your role sees "
                                    "costs (deal desk, finance, CFO, auditor, admin)")
    discount_pct: float
    margin_pct: float | None = Field(description="null unless your role sees costs")
    term_months: int
    nonstandard_terms: list[str]
    product_families: list[str]
    version: int
    status: str
    deal_id: int | None = Field(description="the deal this quote is for")

    @classmethod
    def of(cls, q: Quote, viewer: User) -> QuoteOut:
        costs = sees_costs(viewer)
        return cls(id=q.id, title=q.title, account_id=q.account_id, owner=q.owner.email,
                   currency=q.currency, list_amount=q.list_amount, net_amount=q.net_amount,
                   cost_amount=q.cost_amount if costs else None, discount_pct=q.discount_pct,
                   margin_pct=q.margin_pct if costs else None, term_months=q.term_months,
                   nonstandard_terms=list(q.nonstandard_terms),
                   product_families=list(q.product_families), version=q.version,
                   status=q.status, deal_id=q.deal_id)


class StepOut(BaseModel):
    key: str
    name: str
    state: str
    reasons: list[str]
    carried_from: dict[str, object] | None
    due_at: dt.datetime | None


class ChainOut(BaseModel):
    workflow_id: str
    quote_version: int
    policy: str
    status: str
    steps: list[StepOut]
    tasks: list[TaskOut]


class PolicyIn(BaseModel):
    source: str = Field(description="the policy as YAML (or JSON)", max_length=200_000)


class PolicyOut(BaseModel):
    name: str
    version: int
    created_at: dt.datetime
    source: str


class AccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    region: str = Field("NA", max_length=40)
    segment: str = Field("mid-market", max_length=40)


class AccountOut(AccountIn):
    id: int


class WhoOut(BaseModel):
    kind: Literal["user", "system", "recipient"]
    user_id: int | None
    email: str
    name: str
    process: str


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str = Field(description="a label; rows before the structured actor: free text")
    who: WhoOut | None = Field(description="the structured actor (null on older rows)")
    action: str
    entity: str = Field(description="kind:id, e.g. quote:12 (older rows: quote-12)")
    data: dict[str, object]
    row_hash: str

    @classmethod
    def of(cls, e: AuditEvent) -> AuditOut:
        who = audit.who_of(e)
        return cls(id=e.id, at=e.at, actor=e.actor, action=e.action, entity=e.entity,
                   data=e.data, row_hash=e.row_hash,
                   who=WhoOut(kind=who.kind, user_id=who.user_id, email=who.email,
                              name=who.name, process=who.process) if who else None)


class VerifyOut(BaseModel):
    ok: bool
    rows: int
    bad_row_id: int | None
    problem: str


class DelegationIn(BaseModel):
    delegate: str = Field(max_length=255, description="delegate's email")
    starts_at: dt.datetime
    ends_at: dt.datetime


class DelegationOut(BaseModel):
    id: int
    delegate: str
    starts_at: dt.datetime
    ends_at: dt.datetime


# ------------------------------------------------------------------ me (tokens: api_auth.py)
@router.get("/me")
def me(user: CurrentUser) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "name": user.name, "roles": sorted(user.roles)}


# ------------------------------------------------------------------ inbox and tasks
@router.get("/inbox", response_model=list[TaskOut])
def inbox(user: CurrentUser, session: SessionDep,
          view: Literal["all", "mine", "queues", "claimed", "delegated"] = "all",
          queue: Annotated[str | None, Query(max_length=40)] = None,
          account: Annotated[str | None, Query(max_length=200)] = None,
          min_amount: QueryAmount = None, max_amount: QueryAmount = None,
          limit: int = Query(100, ge=1, le=500)) -> Response:
    f = InboxFilter(view, queue, account, min_amount, max_amount, limit)
    # Open tasks are undecided: decided_by is None on every row. The rows are validated and
    # written as JSON once, here, as FastAPI would for the response model (it would validate
    # them a second time, on a trip of its own to the thread pool).
    rows = task_service.inbox_rows(session, user, f)
    for row in rows:
        row["decided_by"] = None
    tasks = _TASKS.validate_python(rows)
    return Response(_TASKS.dump_json(tasks, by_alias=True), media_type="application/json")


@router.get("/tasks/{task_id}", response_model=TaskOut)
def get_task(task_id: TaskId, user: CurrentUser, session: SessionDep) -> TaskOut:
    task = task_service.get_task(session, task_id)
    if not may_view_task(task, user):
        raise NotFound(f"no task {task_id!r}")
    return TaskOut.of(task)


@router.post("/tasks/{task_id}/decision", response_model=DecisionOut,
             responses={409: {"description": "already decided: the detail names who"}})
async def decide(task_id: TaskId, body: DecisionIn, user: CurrentUser, session: SessionDep,
                 client: ClientDep) -> DecisionOut:
    return DecisionOut.of(await task_service.decide(
        session, client, task_id, user, body.decision, body.comment, body.quote_version))


@router.post("/tasks/{task_id}/claim", response_model=TaskOut)
async def claim(task_id: TaskId, user: CurrentUser, session: SessionDep,
                client: ClientDep) -> TaskOut:
    await task_service.claim(session, client, task_id, user)
    return await in_session(session, _task_out, task_id)


@router.post("/tasks/{task_id}/unclaim", response_model=TaskOut)
async def unclaim(task_id: TaskId, user: CurrentUser, session: SessionDep,
                  client: ClientDep) -> TaskOut:
    await task_service.claim(session, client, task_id, user, claim=False)
    return await in_session(session, _task_out, task_id)


@router.post("/tasks/{task_id}/delegate", response_model=TaskOut)
async def delegate(task_id: TaskId, body: DelegateIn, user: CurrentUser, session: SessionDep,
                   client: ClientDep) -> TaskOut:
    await task_service.delegate(session, client, task_id, user, body.to, body.comment)
    return await in_session(session, _task_out, task_id)


def _task_out(session: Session, task_id: str) -> TaskOut:
    """The task as the store has it now (the projection follows an Update within
    milliseconds; the caller already has the decisive answer)."""
    session.expire_all()
    return TaskOut.of(task_service.get_task(session, task_id))


# ------------------------------------------------------------------ quotes

@router.get("/quotes", response_model=list[QuoteOut])
def list_quotes(user: CurrentUser, session: SessionDep,
                status: Annotated[str | None, Query(max_length=40)] = None) -> list[QuoteOut]:
    q = select(Quote).order_by(Quote.id.desc()).limit(500)
    if not user.roles.intersection(READ_ALL):
        q = q.where(Quote.owner_id == user.id)
    if status:
        q = q.where(Quote.status == status)
    return [QuoteOut.of(x, user) for x in session.scalars(q).unique()]


@router.post("/quotes", response_model=QuoteOut, status_code=201)
def create_quote(body: QuoteFields, user: CurrentUser, session: SessionDep,
                 idempotency_key: IdempotencyKey = None) -> QuoteOut:
    write_lock(session)
    quote = quote_service.create_quote(session, user, body, idempotency_key)
    session.commit()
    return QuoteOut.of(quote, user)


@router.get("/quotes/{quote_id}", response_model=QuoteOut)
def get_quote(quote_id: PathId, user: CurrentUser, session: SessionDep) -> QuoteOut:
    return QuoteOut.of(visible_quote(session, quote_id, user), user)


@router.put("/quotes/{quote_id}", response_model=QuoteOut)
def update_quote(quote_id: PathId, body: QuoteFields, user: CurrentUser,
                 session: SessionDep) -> QuoteOut:
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    quote_service.edit_quote(session, quote, user, body)
    session.commit()
    return QuoteOut.of(quote, user)


@router.post("/quotes/{quote_id}/submit", response_model=QuoteOut, status_code=202)
async def submit(quote_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> QuoteOut:
    quote = await in_session(session, visible_quote, quote_id, user)
    await quote_service.submit_quote(session, client, quote, user, task_queue=settings.task_queue,
                                     prefix=settings.workflow_prefix)
    return QuoteOut.of(quote, user)


@router.post("/quotes/{quote_id}/recall", response_model=QuoteOut)
async def recall(quote_id: PathId, user: CurrentUser, session: SessionDep, client: ClientDep,
                 settings: SettingsDep) -> QuoteOut:
    quote = await in_session(session, visible_quote, quote_id, user)
    await quote_service.recall_quote(session, client, quote, user, comment="",
                                     prefix=settings.workflow_prefix)
    return await in_session(session, _quote_out, quote_id, user)


def _quote_out(session: Session, quote_id: int, user: User) -> QuoteOut:
    session.expire_all()
    return QuoteOut.of(visible_quote(session, quote_id, user), user)


@router.get("/quotes/{quote_id}/approvals", response_model=list[ChainOut])
def approvals(quote_id: PathId, user: CurrentUser, session: SessionDep) -> list[ChainOut]:
    visible_quote(session, quote_id, user)
    out = []
    for req in session.scalars(select(ApprovalRequest).where(
            ApprovalRequest.quote_id == quote_id).order_by(ApprovalRequest.id)):
        tasks = session.scalars(select(ApprovalTask).where(
            ApprovalTask.request_id == req.id).order_by(ApprovalTask.id)).unique()
        out.append(ChainOut(
            workflow_id=req.workflow_id, quote_version=req.quote_version,
            policy=f"{req.policy_name} v{req.policy_version}", status=req.status,
            steps=[StepOut(key=s.key, name=s.name, state=s.state, reasons=s.reasons,
                           carried_from=s.carried_from, due_at=s.due_at) for s in req.steps],
            tasks=[TaskOut.of(t) for t in tasks]))
    return out


# ------------------------------------------------------------------ policies, accounts
@router.get("/policies", response_model=list[PolicyOut],
            dependencies=[require("admin", "auditor", "deal_desk", "finance", "legal", "cfo",
                                  "sales_manager")])
def list_policies(session: SessionDep) -> list[PolicyOut]:
    rows = session.scalars(select(Policy).order_by(Policy.id.desc()).limit(100))
    return [PolicyOut(name=p.name, version=p.version, created_at=p.created_at, source=p.source)
            for p in rows]


@router.post("/policies", response_model=PolicyOut, status_code=201)
def save_policy(body: PolicyIn, user: CurrentUser, session: SessionDep,
                _: object = require("admin")) -> PolicyOut:
    write_lock(session)
    row = policy_service.save_policy(session, body.source, user)
    session.commit()
    return PolicyOut(name=row.name, version=row.version, created_at=row.created_at,
                     source=row.source)


@router.post("/policies/validate", dependencies=[require("admin")])
def validate_policy(body: PolicyIn, session: SessionDep) -> dict[str, object]:
    spec = policy_service.parse_source(session, body.source)
    return {"valid": True, "name": spec.name, "steps": [s.key for s in spec.steps],
            "rules": [r.id for r in spec.rules]}


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(user: CurrentUser, session: SessionDep) -> list[AccountOut]:
    return [AccountOut(id=a.id, name=a.name, region=a.region, segment=a.segment)
            for a in session.scalars(select(Account).order_by(Account.name).limit(1000))]


@router.post("/accounts", response_model=AccountOut, status_code=201)
def create_account(body: AccountIn, user: CurrentUser, session: SessionDep,
                   _: object = require("rep", "admin")) -> AccountOut:
    write_lock(session)
    # Both: SQLite's lower() folds ASCII only, and the unique index is on the exact name.
    if session.scalar(select(Account).where(or_(Account.name == body.name,
                                                func.lower(Account.name) == body.name.lower()))):
        raise Invalid(f"an account named {body.name!r} exists already", field="name")
    acc = Account(**body.model_dump())
    session.add(acc)
    session.flush()
    audit.append(session, event_key=f"account-{acc.id}-created", actor=Who.user(user),
                 action="account.created", entity=entity_name("account", acc.id),
                 data=body.model_dump())
    session.commit()
    return AccountOut(id=acc.id, **body.model_dump())


# ------------------------------------------------------------------ audit, delegation
@router.get("/audit", response_model=list[AuditOut], dependencies=[require("auditor", "admin")])
def audit_events(session: SessionDep, entity: str | None = Query(
                     None, max_length=200,
                     description="kind:id (quote:12); the old quote-12 works too"),
                 actor: str | None = Query(None, max_length=200,
                                           description="email, name or process"),
                 after: QueryId = 0, limit: int = Query(200, ge=1, le=1000)) -> list[AuditOut]:
    """Oldest first from ``after``: page on with the last row's id."""
    return [AuditOut.of(e) for e in audit_log.events(
        session, entity=entity, actor=actor, after=after, limit=limit)]


@router.get("/audit/verify", response_model=VerifyOut,
            dependencies=[require("auditor", "admin")])
def audit_verify(session: SessionDep) -> VerifyOut:
    r = audit.verify(session)
    return VerifyOut(ok=r.ok, rows=r.rows, bad_row_id=r.bad_row_id, problem=r.problem)


@router.get("/delegations", response_model=list[DelegationOut])
def list_delegations(user: CurrentUser, session: SessionDep) -> list[DelegationOut]:
    return [DelegationOut(id=d.id, delegate=d.delegate.email, starts_at=d.starts_at,
                          ends_at=d.ends_at)
            for d in delegations.windows_of(session, user) if d.user_id == user.id]


@router.post("/delegations", response_model=DelegationOut, status_code=201,
             responses={403: {"description": "you receive no approval tasks (e.g. an auditor "
                                             "or a rep)"},
                        422: {"description": "the delegate could not decide approvals"}})
def create_delegation(body: DelegationIn, user: CurrentUser,
                      session: SessionDep) -> DelegationOut:
    row = delegations.create_window(session, user, body.delegate, body.starts_at,
                                    body.ends_at)
    return DelegationOut(id=row.id, delegate=row.delegate.email, starts_at=row.starts_at,
                         ends_at=row.ends_at)


@router.delete("/delegations/{window_id}", status_code=204)
def delete_delegation(window_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    delegations.delete_window(session, user, window_id)
