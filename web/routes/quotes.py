"""Quote pages: list, create, edit, submit for approval, recall, and the chain view."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from cpq.money import MoneyError, to_minor
from store.commerce import Invoice
from store.db import write_lock
from store.models import Account, ApprovalRequest, ApprovalTask, Quote
from web.auth import CurrentUser
from web.deps import ClientDep, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import Forbidden, Invalid
from web.paging import ListingDep
from web.params import PathId
from web.render import render
from web.services import configurator, lists, quote_documents
from web.services import quotes as quote_service
from web.services.quotes import QuoteFields, visible_quote

router = APIRouter(include_in_schema=False)
def _minor(value: str, field: str, currency: str) -> int:
    if not value.strip():
        return 0
    try:
        return to_minor(value, currency)
    except MoneyError as e:
        raise Invalid(f"{field.replace('_', ' ')}: {e}", field=field) from None


def quote_form(
    account_id: Annotated[int, Form()], title: Annotated[str, Form()],
    currency: Annotated[str, Form()], term_months: Annotated[int, Form()],
    list_amount: Annotated[str, Form()] = "", net_amount: Annotated[str, Form()] = "",
    cost_amount: Annotated[str, Form()] = "", billing: Annotated[str, Form()] = "annual",
    nonstandard_terms: Annotated[str, Form()] = "",
    product_families: Annotated[str, Form()] = "",
) -> QuoteFields:
    """The quote form's fields (amounts in major units, empty for a quote built from the
    catalog; lists comma-separated), validated."""
    cur = currency.strip().upper()
    try:
        return QuoteFields(
            account_id=account_id, title=title.strip(), currency=cur,
            list_amount=_minor(list_amount, "list_amount", cur),
            net_amount=_minor(net_amount, "net_amount", cur),
            cost_amount=_minor(cost_amount, "cost_amount", cur), term_months=term_months,
            billing=billing,  # type: ignore[arg-type]
            nonstandard_terms=nonstandard_terms.split(","),
            product_families=product_families.split(","))
    except ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        raise Invalid(f"{(field or 'input').replace('_', ' ')}: {first['msg']}",
                      field=field) from None




@router.get("/quotes")
def quotes_page(request: Request, user: CurrentUser, session: SessionDep,
                      wanted: ListingDep, status: str | None = None) -> Response:
    page = lists.quotes(session, user, wanted, status or None)
    return render(request, "quotes.html", {"page": page, "q": wanted.q, "status": status},
                  block="list")


def _form_context(session: SessionDep, quote: Quote | None) -> dict[str, object]:
    return {"quote": quote, "accounts": session.scalars(select(Account).order_by(
        Account.name)).all(), "idempotency_key": uuid.uuid4().hex}


@router.get("/quotes/new")
def new_quote_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    if "rep" not in user.roles:
        raise Forbidden("only sales reps create quotes")
    return render(request, "quote_form.html", _form_context(session, None))


@router.post("/quotes/new")
def create_quote(
    request: Request, user: CurrentUser, session: SessionDep,
    fields: Annotated[QuoteFields, Depends(quote_form)],
    idempotency_key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    write_lock(session)
    quote = quote_service.create_quote(session, user, fields, idempotency_key or None)
    session.commit()
    if quote.net_amount == 0:  # nothing typed in: build it from the catalog
        return RedirectResponse(f"/quotes/{quote.id}/build", status_code=303)
    return RedirectResponse(f"/quotes/{quote.id}", status_code=303)


def _chain_context(session: SessionDep, quote: Quote) -> dict[str, object]:
    requests = session.scalars(select(ApprovalRequest).where(
        ApprovalRequest.quote_id == quote.id).order_by(ApprovalRequest.id.desc())).all()
    tasks: dict[int, list[ApprovalTask]] = {}
    for req in requests:
        tasks[req.id] = list(session.scalars(select(ApprovalTask).where(
            ApprovalTask.request_id == req.id).order_by(ApprovalTask.created_at,
                                                        ApprovalTask.id)).unique())
    return {"quote": quote, "requests": requests, "tasks": tasks,
            "items": configurator.items_of(session, quote),
            "attachments": quote_documents.attachments_of(session, quote),
            "document": quote_documents.latest_document(session, quote),
            "invoices": session.scalars(select(Invoice).where(Invoice.quote_id == quote.id)
                                        .order_by(Invoice.installment)).unique().all()}


@router.get("/quotes/{quote_id}")
def quote_page(request: Request, quote_id: PathId, user: CurrentUser,
                     session: SessionDep) -> Response:
    quote = visible_quote(session, quote_id, user)
    return render(request, "quote.html", _chain_context(session, quote), block="chain")


@router.get("/quotes/{quote_id}/edit")
def edit_quote_page(request: Request, quote_id: PathId, user: CurrentUser,
                          session: SessionDep) -> Response:
    quote = visible_quote(session, quote_id, user)
    if quote.owner_id != user.id:
        raise Forbidden("only the quote's owner can edit it")
    return render(request, "quote_form.html", _form_context(session, quote))


@router.post("/quotes/{quote_id}/edit")
def edit_quote(
    request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
    fields: Annotated[QuoteFields, Depends(quote_form)],
) -> Response:
    write_lock(session)
    quote = visible_quote(session, quote_id, user)
    quote_service.edit_quote(session, quote, user, fields)
    session.commit()
    return RedirectResponse(f"/quotes/{quote.id}", status_code=303)


@router.post("/quotes/{quote_id}/submit")
async def submit_quote(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                       client: MaybeClientDep, settings: SettingsDep) -> Response:
    quote = await in_session(session, visible_quote, quote_id, user)
    await quote_service.submit_quote(session, client, quote, user,
                                     task_queue=settings.task_queue,
                                     prefix=settings.workflow_prefix)
    return RedirectResponse(f"/quotes/{quote.id}", status_code=303)


@router.post("/quotes/{quote_id}/recall")
async def recall_quote(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                       client: ClientDep, settings: SettingsDep,
                       comment: Annotated[str, Form()] = "") -> Response:
    quote = await in_session(session, visible_quote, quote_id, user)
    await quote_service.recall_quote(session, client, quote, user, comment=comment,
                                     prefix=settings.workflow_prefix)
    return RedirectResponse(f"/quotes/{quote.id}", status_code=303)
