"""A quote's document (generate, download the PDF or DOCX) and its attachments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from documents.convert import ConversionFailed
from store.db import write_lock
from store.models import Quote, User
from web.auth import CurrentUser
from web.deps import SessionDep, SettingsDep
from web.downloads import content_disposition
from web.errors import API_ERRORS, Forbidden, Invalid, NotFound
from web.params import PathId
from web.services import quote_documents as docs
from web.services.quotes import visible_quote

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["quote documents"], responses=API_ERRORS)



def _generate(request: Request, session: SessionDep, settings: SettingsDep,
              quote: Quote, user: User) -> int:
    if quote.owner_id != user.id and not user.roles.intersection(("deal_desk", "admin")):
        raise Forbidden("only the quote's owner or the deal desk can generate its document")
    try:
        row = docs.generate(session, quote, user, request.app.state.blobs, settings.org_name,
                            request.app.state.converter)
    except ConversionFailed as e:
        raise Invalid(f"the quote document could not be converted to PDF: {e.message}",
                      field="document") from None
    return row.id


@router.post("/quotes/{quote_id}/document")
def generate_page(request: Request, quote_id: PathId, user: CurrentUser,
                        session: SessionDep, settings: SettingsDep) -> Response:
    _generate(request, session, settings, visible_quote(session, quote_id, user), user)
    return RedirectResponse(f"/quotes/{quote_id}#documents", status_code=303)


@api.post("/quotes/{quote_id}/document", status_code=201)
def generate_api(request: Request, quote_id: PathId, user: CurrentUser,
                       session: SessionDep, settings: SettingsDep) -> dict[str, object]:
    quote = visible_quote(session, quote_id, user)
    _generate(request, session, settings, quote, user)
    row = docs.latest_document(session, quote)
    assert row is not None
    return {"version": row.version, "pages": row.pages, "pdf_sha256": row.pdf_sha256,
            "docx_sha256": row.docx_sha256, "pdf_url": f"/quotes/{quote_id}/document.pdf",
            "docx_url": f"/quotes/{quote_id}/document.docx"}


@router.get("/quotes/{quote_id}/document.{kind}")
def download(request: Request, quote_id: PathId, kind: str, user: CurrentUser,
                   session: SessionDep) -> Response:
    quote = visible_quote(session, quote_id, user)
    row = docs.latest_document(session, quote)
    if row is None or kind not in ("pdf", "docx"):
        raise NotFound("no quote document yet: generate it first")
    media = ("application/pdf" if kind == "pdf" else
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    data = request.app.state.blobs.get(row.pdf_sha256 if kind == "pdf" else row.docx_sha256)
    return Response(data, media_type=media, headers={
        "Content-Disposition": content_disposition(f"Quote Q-{quote.id} v{row.version}.{kind}",
                                                   "inline")})


@router.post("/quotes/{quote_id}/attachments")
def attach(request: Request, quote_id: PathId, user: CurrentUser, session: SessionDep,
                 file: Annotated[UploadFile, File()]) -> Response:
    quote = visible_quote(session, quote_id, user)
    data = file.file.read(docs.MAX_ATTACHMENT + 1)
    write_lock(session)
    docs.add_attachment(session, request.app.state.blobs, quote, user, file.filename or "",
                        file.content_type or "", data)
    session.commit()
    return RedirectResponse(f"/quotes/{quote_id}#documents", status_code=303)


@router.post("/quotes/{quote_id}/attachments/{attachment_id}/delete")
def detach(quote_id: PathId, attachment_id: PathId, user: CurrentUser,
                 session: SessionDep) -> Response:
    write_lock(session)
    docs.remove_attachment(session, visible_quote(session, quote_id, user), user,
                           attachment_id)
    session.commit()
    return RedirectResponse(f"/quotes/{quote_id}#documents", status_code=303)
