"""Won deals and invoices: mark won, the invoice list (page, JSON, CSV) and each PDF."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from store.commerce import Invoice
from store.models import Quote, User
from web.auth import CurrentUser
from web.deps import MaybeClientDep, SessionDep, SettingsDep, in_session
from web.downloads import CsvResponse, content_disposition
from web.errors import API_ERRORS, JSON_ERRORS, NotFound
from web.params import PathId
from web.render import render
from web.services import invoices as invoice_service
from web.services.quotes import visible_quote
from workflows.billing import billing_workflow_id

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["invoices"], responses=API_ERRORS)


class InvoiceOut(BaseModel):
    id: int
    number: str
    quote_id: int
    quote_version: int
    installment: int
    account: str
    issued: dt.date
    due: dt.date
    currency: str
    subtotal: int
    tax: int
    total: int
    status: str
    pdf_url: str | None

    @classmethod
    def of(cls, i: Invoice) -> InvoiceOut:
        return cls(id=i.id, number=i.number, quote_id=i.quote_id, quote_version=i.quote_version,
                   installment=i.installment, account=i.account.name, issued=i.issued,
                   due=i.due, currency=i.currency, subtotal=i.subtotal, tax=i.tax,
                   total=i.total, status=i.status,
                   pdf_url=f"/invoices/{i.id}.pdf" if i.pdf_sha256 else None)



async def _won(session: SessionDep, client: MaybeClientDep, settings: SettingsDep,
               quote_id: int, user: User) -> Quote:
    quote = await in_session(session, visible_quote, quote_id, user)
    await invoice_service.mark_won(session, client, quote, user, task_queue=settings.task_queue,
                                   org_name=settings.org_name, prefix=settings.workflow_prefix)
    return quote


@pages.post("/quotes/{quote_id}/won")
async def won_form(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                   client: MaybeClientDep, settings: SettingsDep) -> Response:
    await _won(session, client, settings, quote_id, user)
    return RedirectResponse(f"/quotes/{quote_id}", status_code=303)


@api.post("/quotes/{quote_id}/won", status_code=202)
async def won_api(quote_id: PathId, user: CurrentUser, session: SessionDep,
                  client: MaybeClientDep, settings: SettingsDep) -> dict[str, object]:
    quote = await _won(session, client, settings, quote_id, user)
    return {"id": quote.id, "status": quote.status,
            "billing_workflow": billing_workflow_id(settings.workflow_prefix, quote.id)}


@pages.get("/invoices")
def invoices_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(request, "invoices.html",
                  {"invoices": invoice_service.visible_invoices(session, user)})


@pages.get("/invoices.csv")
@api.get("/invoices.csv", response_class=CsvResponse, responses=JSON_ERRORS)
def invoices_csv(user: CurrentUser, session: SessionDep) -> Response:
    return CsvResponse(invoice_service.csv_of(invoice_service.visible_invoices(
        session, user, limit=100_000)), headers={
        "Content-Disposition": content_disposition("invoices.csv")})


@api.get("/invoices", response_model=list[InvoiceOut])
def invoices_api(user: CurrentUser, session: SessionDep) -> list[InvoiceOut]:
    return [InvoiceOut.of(i) for i in invoice_service.visible_invoices(session, user)]


@pages.get("/invoices/{invoice_id}.pdf")
def invoice_pdf(request: Request, invoice_id: PathId, user: CurrentUser,
                      session: SessionDep) -> Response:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.pdf_sha256 is None or not invoice_service.may_view(invoice,
                                                                                    user):
        raise NotFound(f"no invoice {invoice_id}")
    data = request.app.state.blobs.get(invoice.pdf_sha256)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": content_disposition(f"{invoice.number}.pdf", "inline")})


def _invoice(session: SessionDep, invoice_id: int, user: User) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or not invoice_service.may_view(invoice, user):
        raise NotFound(f"no invoice {invoice_id}")
    return invoice


@pages.post("/invoices/{invoice_id}/status")
def status_form(invoice_id: PathId, user: CurrentUser, session: SessionDep,
                      status: Annotated[str, Form(max_length=20)],
                      note: Annotated[str, Form(max_length=500)] = ""
                      ) -> Response:
    invoice_service.set_status(session, _invoice(session, invoice_id, user), user, status, note)
    session.commit()
    return RedirectResponse("/invoices", status_code=303)


class StatusIn(BaseModel):
    status: Literal["paid", "void"]
    note: str = Field("", max_length=500, description="why (required to void)")


@api.post("/invoices/{invoice_id}/status", response_model=InvoiceOut)
def status_api(invoice_id: PathId, body: StatusIn, user: CurrentUser,
               session: SessionDep) -> InvoiceOut:
    invoice = _invoice(session, invoice_id, user)
    invoice_service.set_status(session, invoice, user, body.status, body.note)
    session.commit()
    return InvoiceOut.of(invoice)
