"""The RFP workspace's pages: the list with progress, the upload form, a spreadsheet's
mapping preview, and the workspace where questions are answered (htmx saves), approved,
downloaded, recalled and added to the library. Downloads are the API's routes
(``/api/v1/rfps/{id}/document``, ``…/response.docx``), which take the cookie session too.
The use cases are web/services/rfps.py."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from dealdesk.settings import Settings
from documents.rfp import SheetMapping
from store import starts
from store.deals import Deal
from store.models import User
from store.rfps import RFP_STATUSES, Rfp
from web import uploads
from web.auth import CurrentUser
from web.deps import FormDep, MaybeClientDep, SessionDep, SettingsDep, in_session, off_loop
from web.errors import AppError, Invalid, TooLarge
from web.paging import ListingDep
from web.params import MAX_ID, PathId
from web.render import render
from web.services import deals as deal_service
from web.services import rfp_answers as answers
from web.services import rfp_tasks as tasks
from web.services import rfps as service

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=2 * service.MAX_ANSWER)]
NOTICES = {"approved": "Answers approved.", "recalled": "The RFP was recalled.",
           "promoted": "The answer was added to the library (tag “rfp”).",
           "assigned": "The open questions were handed to the expert: reminded a day before "
                       "they are due, you are told a day after if still unanswered."}


@router.get("/rfps")
def rfps_page(request: Request, user: CurrentUser, session: SessionDep, wanted: ListingDep,
              status: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    if status and status not in RFP_STATUSES:
        raise Invalid(f"status must be one of {', '.join(RFP_STATUSES)}", field="status")
    page = service.list_rfps(session, user, wanted, status or None)
    return render(request, "rfps.html", {
        "page": page, "q": wanted.q, "status": status or "", "statuses": RFP_STATUSES,
        "progress": {r.id: service.progress(r) for r in page.items},
        "may_write": service.may_write(user), "keep": {"status": status or ""}},
        block="list")


@router.get("/rfps/answers")
def answers_page(request: Request, user: CurrentUser, session: SessionDep,
                 wanted: ListingDep) -> Response:
    """The response repository: approved answers of finished RFPs, searchable."""
    return render(request, "rfp_answers.html", {
        "page": answers.search(session, user, wanted), "q": wanted.q,
        "may_write": service.may_write(user)}, block="list")


def _upload_form(request: Request, settings: Settings, deals: list[Deal],
                 values: dict[str, str], error: str = "", field: str = "",
                 status_code: int = 200) -> Response:
    return render(request, "rfp_new.html", {"v": values, "error": error, "field": field,
                                            "deals": deals,
                                            "max_mb": service.limit_mb(settings)},
                  status_code=status_code)


@router.get("/rfps/new")
def new_rfp_page(request: Request, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep,
                 deal_id: Annotated[str, Query(max_length=20)] = "") -> Response:
    service.require_writer(user)
    return _upload_form(request, settings, deal_service.open_deals(session, user),
                        {"deal_id": deal_id})


def _deal_id(sent: object) -> int | None:
    """The form's deal (empty: none); anything else than a row id is refused by name."""
    if not isinstance(sent, str) or not sent.strip():
        return None
    if not sent.strip().isascii() or not sent.strip().isdigit() \
            or not 1 <= int(sent) <= MAX_ID:
        raise Invalid("choose one of your open deals, or none", field="deal_id")
    return int(sent)


limit_upload = uploads.limit_upload(service.limit_mb, what="RFP files", field="file")


@router.post("/rfps/new", dependencies=[Depends(limit_upload)])
async def create_rfp(request: Request, user: CurrentUser, session: SessionDep,
                     settings: SettingsDep, form: FormDep) -> Response:
    """The form is read by hand (not ``File()`` parameters, which FastAPI parses before any
    dependency), so an oversized upload is refused from its Content-Length first."""
    service.require_writer(user)
    upload, sent, sent_deal = form.get("file"), form.get("title"), form.get("deal_id")
    title = sent if isinstance(sent, str) else ""
    max_mb = service.limit_mb(settings)
    try:
        deal_id = _deal_id(sent_deal)
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise Invalid("choose the customer's file", field="file")
        data = await upload.read(max_mb * 1024 * 1024 + 1)  # one byte over: refused
        rfp = await in_session(session, service.create_rfp, user, upload.filename, data,
                               title, blobs=request.app.state.blobs, max_mb=max_mb,
                               deal_id=deal_id)
    except (Invalid, TooLarge) as e:
        deals = await in_session(session, deal_service.open_deals, user)
        return _upload_form(request, settings, deals, {
            "title": title, "deal_id": sent_deal if isinstance(sent_deal, str) else ""},
            e.message, e.field or "", e.status)
    target = f"/rfps/{rfp.id}/mapping" if rfp.status == "needs_mapping" else f"/rfps/{rfp.id}"
    return RedirectResponse(target, status_code=303)


@router.get("/rfps/{rfp_id}/mapping")
def mapping_page(request: Request, rfp_id: PathId, user: CurrentUser,
                 session: SessionDep) -> Response:
    rfp = service.get_rfp(session, user, rfp_id)
    if rfp.status != "needs_mapping":
        return RedirectResponse(f"/rfps/{rfp.id}", status_code=303)
    return render(request, "rfp_mapping.html", {
        "rfp": rfp, "candidates": service.candidates(rfp), "error": ""})


@router.post("/rfps/{rfp_id}/mapping")
def set_mapping(request: Request, rfp_id: PathId, user: CurrentUser, session: SessionDep,
                choice: Annotated[int, Form(ge=0, le=1000)]) -> Response:
    rfp = service.get_rfp(session, user, rfp_id)
    found = service.candidates(rfp)
    if choice >= len(found):
        raise Invalid("choose one of the mappings listed", field="choice")
    c = found[choice]
    try:
        service.set_mapping(session, user, rfp_id, SheetMapping(
            c["sheet"], c["header_row"], c["question_column"], c["answer_column"]),
            blobs=request.app.state.blobs)
    except Invalid as e:
        session.rollback()
        return render(request, "rfp_mapping.html", {"rfp": rfp, "candidates": found,
                                                    "error": e.message}, status_code=422)
    return RedirectResponse(f"/rfps/{rfp_id}", status_code=303)


def _workspace(session: Session, user: User, rfp: Rfp) -> dict[str, Any]:
    may_assign = (service.may_approve(user, rfp) and rfp.status in service.EDITABLE
                  and not any(q.assignee_id for q in rfp.questions))
    return {"rfp": rfp, "progress": service.progress(rfp),
            "experts": tasks.experts(session) if may_assign else [],
            "suggestions": service.suggestions(session, user, rfp),
            "may_write": service.may_write(user) and rfp.status in service.EDITABLE,
            "may_approve": service.may_approve(user, rfp) and rfp.status in service.EDITABLE,
            "may_recall": service.may_approve(user, rfp)
            and rfp.status not in ("completed", "recalled"),
            "may_promote": service.may_write(user)}


@router.get("/rfps/{rfp_id}")
def workspace_page(request: Request, rfp_id: PathId, user: CurrentUser, session: SessionDep,
                   notice: Annotated[str, Query(max_length=20)] = "") -> Response:
    rfp = service.get_rfp(session, user, rfp_id)
    if rfp.status == "needs_mapping":
        return RedirectResponse(f"/rfps/{rfp.id}/mapping", status_code=303)
    return render(request, "rfp.html", {**_workspace(session, user, rfp),
                                        "notice": NOTICES.get(notice, "")})


@router.post("/rfps/{rfp_id}/questions/{qid}/answer")
async def save_answer(request: Request, rfp_id: PathId, qid: PathId, user: CurrentUser,
                      session: SessionDep, client: MaybeClientDep, settings: SettingsDep,
                      text: Text = "",
                      library_item_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
                      ) -> Response:
    error = ""
    try:
        q = await in_session(session, service.answer, user, rfp_id, qid, text,
                             library_item_id)
    except AppError as e:
        error = e.message
    else:
        await tasks.signal_answered(client, settings, q)
    return await off_loop(_question_view, request, session, user, rfp_id, qid, error)


def _question_view(request: Request, session: Session, user: User, rfp_id: int, qid: int,
                   error: str) -> Response:
    """The saved question's row (on a worker thread: it reads the store)."""
    rfp = service.get_rfp(session, user, rfp_id)
    session.refresh(rfp)
    q = next(q for q in rfp.questions if q.id == qid)
    return render(request, "rfp.html", {**_workspace(session, user, rfp), "q": q,
                                        "error": error, "saved": not error},
                  block="question", status_code=422 if error else 200)


@router.post("/rfps/{rfp_id}/approve")
def approve(rfp_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    service.approve_answers(session, user, rfp_id)
    return RedirectResponse(f"/rfps/{rfp_id}?notice=approved", status_code=303)


@router.post("/rfps/{rfp_id}/recall")
async def recall(rfp_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> Response:
    await in_session(session, service.recall, user, rfp_id)
    await tasks.signal_recall(client, settings, rfp_id)
    return RedirectResponse(f"/rfps/{rfp_id}?notice=recalled", status_code=303)


@router.post("/rfps/{rfp_id}/questions/{qid}/promote")
def promote(rfp_id: PathId, qid: PathId, user: CurrentUser, session: SessionDep) -> Response:
    service.promote_answer(session, user, rfp_id, qid)
    return RedirectResponse(f"/rfps/{rfp_id}?notice=promoted#q-{qid}", status_code=303)


@router.post("/rfps/{rfp_id}/assign")
async def assign(rfp_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep,
                 assignee_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                 due: Annotated[str, Form(max_length=40)]) -> Response:
    try:
        due_at = dt.datetime.fromisoformat(due).replace(tzinfo=dt.UTC)
    except ValueError:
        raise Invalid("due: give a date and time", field="due_at") from None
    await in_session(session, tasks.assign_smes, settings, user, rfp_id, assignee_id, due_at)
    await starts.start_now(client, session, tasks.workflow_id(settings, rfp_id))
    return RedirectResponse(f"/rfps/{rfp_id}?notice=assigned", status_code=303)
