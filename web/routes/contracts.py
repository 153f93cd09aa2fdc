"""Sending a deal's contract for signature: ``POST /api/v1/deals/{id}/contract`` and the deal
page's "Send contract" form (the use case is web/services/contracts.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from documents.contract import DEFAULT_TEMPLATE
from store.blobs import BlobStore
from store.models import User
from web.auth import CurrentUser
from web.deps import IdempotencyKey, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.errors import API_ERRORS, AppError
from web.params import PathId
from web.render import render
from web.routes.deals import _page
from web.services import contracts as service
from web.services import deals

api = APIRouter(prefix="/api/v1/deals", tags=["deals"], responses=API_ERRORS)
pages = APIRouter(include_in_schema=False)


class ContractOut(BaseModel):
    envelope_id: int


@api.post("/{deal_id}/contract", response_model=ContractOut, status_code=201)
async def send_contract(request: Request, deal_id: PathId, body: service.ContractIn,
                        user: CurrentUser, session: SessionDep, client: MaybeClientDep,
                        settings: SettingsDep,
                        idempotency_key: IdempotencyKey = None) -> ContractOut:
    """Make the deal's contract from an approved quote (``order_form`` by default, or
    ``mutual_nda``) and send it for signature: ``signers`` are the customer's signer, then
    ours. Signing it wins the quote. A retry with the same ``Idempotency-Key`` returns the
    same envelope."""
    env = await service.send_contract(
        session, client, settings, BlobStore(settings.blob_dir), user, deal_id, body,
        convert=request.app.state.converter, idempotency_key=idempotency_key)
    return ContractOut(envelope_id=env.id)


Text = Annotated[str, Form(max_length=255)]


@pages.post("/deals/{deal_id}/contract")
async def send_contract_form(
        request: Request, deal_id: PathId, user: CurrentUser, session: SessionDep,
        client: MaybeClientDep, settings: SettingsDep, template: Text = "",
        quote_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
        customer_name: Text = "", customer_email: Text = "", customer_title: Text = "",
        our_name: Text = "", our_email: Text = "", our_title: Text = "",
        idempotency_key: Annotated[str, Form(max_length=200)] = "") -> Response:
    body = service.ContractIn(
        template=template or DEFAULT_TEMPLATE, quote_id=quote_id,
        signers=[service.SignerIn(name=customer_name, email=customer_email,
                                  title=customer_title),
                 service.SignerIn(name=our_name, email=our_email, title=our_title)])
    try:
        env = await service.send_contract(
            session, client, settings, BlobStore(settings.blob_dir), user, deal_id, body,
            convert=request.app.state.converter, idempotency_key=idempotency_key or None)
    except AppError as e:
        if e.status not in (403, 409, 422):
            raise
        return await in_session(session, _again, request, user, deal_id, e)
    return RedirectResponse(f"/envelopes/{env.id}", status_code=303)


def _again(session: Session, request: Request, user: User, deal_id: int,
           e: AppError) -> Response:
    deal = deals.visible(session, user, deal_id)
    return render(request, "deal.html", _page(session, user, deal, e.message),
                  status_code=e.status)
