"""The proposal pages: the list, the new-proposal form, and the builder (sections picked from
the library or written, reordered, previewed as PDF; submitted for review; reviews decided;
versions and the final PDF). Downloads are the API's routes (web/routes/api_proposals.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.library import LibraryItem
from store.models import Account, Quote, User
from store.proposals import Proposal
from web.auth import CurrentUser
from web.deps import ClientDep, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import Invalid
from web.params import MAX_ID, PathId
from web.render import is_htmx, render
from web.services import library
from web.services import proposals as service
from web.services.quotes import READ_ALL

router = APIRouter(include_in_schema=False)
Short = Annotated[str, Form(max_length=400)]
Index = Annotated[int, Path(ge=0, le=service.MAX_SECTIONS)]


@router.get("/proposals")
def list_page(request: Request, user: CurrentUser, session: SessionDep,
              q: Annotated[str, Query(max_length=200)] = "") -> Response:
    return render(request, "proposals.html", {
        "proposals": service.list_proposals(session, user, q), "q": q,
        "may_write": service.may_write(user)}, block="list")


def _choices(session: Session, user: User) -> dict[str, Any]:
    quotes = select(Quote).order_by(Quote.updated_at.desc()).limit(200)
    if not user.roles.intersection(READ_ALL):
        quotes = quotes.where(Quote.owner_id == user.id)
    return {"accounts": list(session.scalars(select(Account).order_by(Account.name))),
            "quotes": list(session.scalars(quotes)), "idempotency_key": uuid.uuid4().hex}


@router.get("/proposals/new")
def new_page(request: Request, user: CurrentUser, session: SessionDep,
             quote: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    service.require_writer(user)
    chosen = session.get(Quote, quote) if quote else None
    v = ({"title": chosen.title, "account_id": chosen.account_id, "quote_id": chosen.id}
         if chosen else {})
    return render(request, "proposal_new.html", {**_choices(session, user), "v": v,
                                                 "error": ""})


@router.post("/proposals/new")
def create(request: Request, user: CurrentUser, session: SessionDep, title: Short,
           account_id: Annotated[int, Form(ge=1, le=MAX_ID)],
           quote_id: Annotated[str, Form(max_length=12)] = "",
           valid_until: Annotated[str, Form(max_length=12)] = "",
           customer_signer: Short = "", customer_signer_title: Short = "",
           idempotency_key: Annotated[str | None, Form(max_length=100)] = None) -> Response:
    values = {"title": title, "account_id": account_id, "quote_id": quote_id,
              "valid_until": valid_until, "customer_signer": customer_signer,
              "customer_signer_title": customer_signer_title, "idempotency_key": idempotency_key}
    try:
        fields = service.ProposalFields(
            title=title, account_id=account_id,
            quote_id=int(quote_id) if quote_id.strip().isdigit() else None,
            valid_until=dt.date.fromisoformat(valid_until) if valid_until.strip() else None,
            customer_signer=customer_signer, customer_signer_title=customer_signer_title)
        p = service.create_proposal(session, user, fields, idempotency_key)
    except ValueError:
        session.rollback()
        return _new_again(request, session, user, values, "check the title (up to 200 "
                          "characters) and the date (YYYY-MM-DD)")
    except Invalid as e:
        session.rollback()
        return _new_again(request, session, user, values, e.message)
    session.commit()
    return RedirectResponse(f"/proposals/{p.id}", status_code=303)


def _new_again(request: Request, session: Session, user: User, values: dict[str, Any],
               error: str) -> Response:
    return render(request, "proposal_new.html", {**_choices(session, user), "v": values,
                                                 "error": error}, status_code=422)


def _builder(session: Session, user: User, p: Proposal) -> dict[str, Any]:
    versions = service.versions(session, p.id)
    current = versions[0] if versions else None
    items = {s["item_id"]: session.get(LibraryItem, s["item_id"])
             for s in p.sections if s["kind"] == "library"}
    tasks = service.tasks_of(session, p.id, current.version) if current else []
    return {
        "p": p, "items": items, "versions": versions, "current": current, "tasks": tasks,
        "mine": [t for t in tasks if t.state == "open" and _may_take(user, p, t.assignee_id,
                                                                      t.queue_role)],
        "may_edit": p.owner_id == user.id and p.status in service.EDITABLE,
        "is_owner": p.owner_id == user.id, "today": dt.datetime.now(dt.UTC).date()}


def _may_take(user: User, p: Proposal, assignee_id: int | None, queue: str | None) -> bool:
    return p.owner_id != user.id and (assignee_id == user.id or (
        assignee_id is None and queue is not None and queue in user.roles))


@router.get("/proposals/{proposal_id}")
def builder_page(request: Request, proposal_id: PathId, user: CurrentUser,
                 session: SessionDep) -> Response:
    p = service.visible(session, user, proposal_id)
    return render(request, "proposal.html", _builder(session, user, p))


@router.get("/proposals/{proposal_id}/library")
def library_results(request: Request, proposal_id: PathId, user: CurrentUser,
                    session: SessionDep,
                    q: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Library sections to add, found by the library's full-text search."""
    p = service.visible(session, user, proposal_id)
    hits = [h for h in library.search(session, user, q, limit=30)
            if h.item.kind in service.SECTION_KINDS][:12] if q.strip() else []
    return render(request, "proposal.html", {"p": p, "hits": hits, "q": q},
                  block="library_hits")


def _edited(request: Request, session: Session, user: User, p: Proposal) -> Response:
    session.commit()
    if is_htmx(request):
        return render(request, "proposal.html", _builder(session, user, p), block="sections")
    return RedirectResponse(f"/proposals/{p.id}", status_code=303)


@router.post("/proposals/{proposal_id}/sections/add")
def add_section(request: Request, proposal_id: PathId, user: CurrentUser, session: SessionDep,
                kind: Annotated[Literal["library", "text", "pricing", "bom"], Form()],
                item_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
                title: Short = "",
                body: Annotated[str, Form(max_length=2 * service.MAX_TEXT)] = "") -> Response:
    p = service.visible(session, user, proposal_id)
    sections = [*service.sections_in(p), service.SectionIn(
        kind=kind, item_id=item_id, title=title[:200], body=body[:service.MAX_TEXT])]
    return _edited(request, session, user, service.set_sections(session, user, p.id, sections))


@router.post("/proposals/{proposal_id}/sections/{index}/move")
def move_section(request: Request, proposal_id: PathId, user: CurrentUser, session: SessionDep,
                 index: Index, direction: Annotated[
                     Literal["up", "down"], Form()]) -> Response:
    p = service.visible(session, user, proposal_id)
    sections = service.sections_in(p)
    to = index - 1 if direction == "up" else index + 1
    if not (0 <= index < len(sections) and 0 <= to < len(sections)):
        raise Invalid("that section can't move further", field="direction")
    sections[index], sections[to] = sections[to], sections[index]
    return _edited(request, session, user, service.set_sections(session, user, p.id, sections))


@router.post("/proposals/{proposal_id}/sections/{index}/remove")
def remove_section(request: Request, proposal_id: PathId, user: CurrentUser,
                   session: SessionDep, index: Index) -> Response:
    p = service.visible(session, user, proposal_id)
    sections = service.sections_in(p)
    if not 0 <= index < len(sections):
        raise Invalid("no such section", field="index")
    del sections[index]
    return _edited(request, session, user, service.set_sections(session, user, p.id, sections))


@router.post("/proposals/{proposal_id}/fields")
def set_field(request: Request, proposal_id: PathId, user: CurrentUser, session: SessionDep,
              name: Annotated[str, Form(max_length=40)],
              value: Annotated[str, Form(max_length=1000)] = "") -> Response:
    """Add or change a custom field; an empty value removes it."""
    p = service.visible(session, user, proposal_id)
    fields = dict(p.custom_fields or {})
    if value.strip():
        fields[name.strip()] = value
    else:
        fields.pop(name.strip(), None)
    p = service.set_custom_fields(session, user, p.id, fields)
    session.commit()
    if is_htmx(request):
        return render(request, "proposal.html", _builder(session, user, p), block="fields")
    return RedirectResponse(f"/proposals/{p.id}", status_code=303)


@router.post("/proposals/{proposal_id}/submit")
async def submit(request: Request, proposal_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> Response:
    await service.submit(session, client, user, proposal_id, blobs=request.app.state.blobs,
                         org_name=settings.org_name, task_queue=settings.task_queue,
                         prefix=settings.workflow_prefix)
    return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)


@router.post("/proposals/{proposal_id}/recall")
async def recall(proposal_id: PathId, user: CurrentUser, session: SessionDep,
                 client: ClientDep, comment: Short = "") -> Response:
    await service.recall(session, client, user, proposal_id, comment)
    return RedirectResponse(f"/proposals/{proposal_id}", status_code=303)


@router.post("/proposals/{proposal_id}/tasks/{task_id}")
async def decide(request: Request, proposal_id: PathId,
                 task_id: Annotated[str, Path(max_length=200)],
                 user: CurrentUser, session: SessionDep, client: ClientDep,
                 decision: Annotated[Literal["approve", "reject", "request_changes"], Form()],
                 comment: Annotated[str, Form(max_length=8000)] = "",
                 version: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None) -> Response:
    await service.decide(session, client, user, proposal_id, task_id, decision, comment,
                         version)
    p = await in_session(session, service.visible, user, proposal_id)
    return RedirectResponse(f"/proposals/{p.id}", status_code=303)
