"""The RFP workspace over the JSON API: upload a customer's file, map a spreadsheet, answer,
approve, download (the use cases are web/services/rfps.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from documents.convert import ConversionFailed
from documents.rfp import SheetMapping
from store import starts
from store.rfps import Rfp
from web.auth import CurrentUser
from web.deps import IdempotencyKey, MaybeClientDep, SessionDep, SettingsDep, in_session
from web.downloads import content_disposition
from web.errors import API_ERRORS, Forbidden, Invalid
from web.paging import Listing
from web.params import MAX_ID, PathId, RowId
from web.services import rfp_answers as answers
from web.services import rfp_tasks as tasks
from web.services import rfps as service

router = APIRouter(prefix="/api/v1/rfps", tags=["rfps"], responses=API_ERRORS)
Status = Literal["needs_mapping", "open", "in_review", "approved", "completed", "recalled"]
Column = str | Annotated[int, Field(ge=1, le=16_384)]


class QuestionBrief(BaseModel):
    id: int
    text: str
    location: str


class CandidateOut(BaseModel):
    sheet: str
    header_row: int | None
    question_column: str | int
    answer_column: str | int
    samples: list[str]


class CreatedOut(BaseModel):
    id: int
    status: str
    questions: list[QuestionBrief] = Field(default_factory=list)
    candidates: list[CandidateOut] = Field(
        default_factory=list, description="needs_mapping: the likely mappings, best first")


class MappingIn(BaseModel):
    sheet: str = Field(min_length=1, max_length=200)
    header_row: int | None = Field(None, ge=1, le=1_048_576,
                                   description="1-based header row; null: no header")
    question_column: Column = Field(description='a column letter ("B") or 1-based number')
    answer_column: Column


class SuggestionOut(BaseModel):
    item_id: int
    score: float = Field(ge=0, le=1)
    title: str
    text: str


class QuestionOut(BaseModel):
    id: int
    position: int
    text: str
    context: str
    location: str
    answer: str | None
    status: str
    assignee: str | None
    top_score: float | None
    library_item_id: int | None
    suggestions: list[SuggestionOut]


class RfpOut(BaseModel):
    id: int
    title: str
    status: str
    kind: str
    file_name: str
    owner: str
    created_at: dt.datetime
    updated_at: dt.datetime
    candidates: list[CandidateOut]
    questions: list[QuestionOut]


class RfpSummary(BaseModel):
    id: int
    title: str
    status: str
    kind: str
    owner: str
    answered: int
    total: int
    updated_at: dt.datetime


class AnswerIn(BaseModel):
    text: str = Field(max_length=2 * service.MAX_ANSWER,
                      description=f"plain text, at most {service.MAX_ANSWER:,} characters; "
                                  "empty clears the answer")
    library_item_id: RowId | None = Field(None, description="the library item it came from")


class StatusOut(BaseModel):
    id: int
    status: str


class PromotedOut(BaseModel):
    item_id: int


def _created(rfp: Rfp) -> CreatedOut:
    return CreatedOut(
        id=rfp.id, status=rfp.status,
        questions=[QuestionBrief(id=q.id, text=q.text, location=q.location)
                   for q in rfp.questions],
        candidates=[CandidateOut.model_validate(c) for c in service.candidates(rfp)])


@router.post("", status_code=201, response_model=CreatedOut)
async def create_rfp(request: Request, user: CurrentUser, session: SessionDep,
                     settings: SettingsDep,
                     file: Annotated[UploadFile, File(description="DOCX, XLSX or PDF, at "
                                                      "most DEALDESK_MAX_UPLOAD_MB")],
                     title: Annotated[str, Form(max_length=2000)] = "",
                     deal_id: Annotated[int | None, Form(
                         ge=1, le=MAX_ID, description="the open deal this RFP is for")] = None,
                     idempotency_key: IdempotencyKey = None) -> CreatedOut:
    """Upload a customer's RFP file: its questions, or (a spreadsheet) ``needs_mapping``
    with candidate mappings to choose from (POST …/mapping). A file over the limit is a 413
    naming it, and nothing is stored."""
    if not service.may_write(user):
        raise Forbidden("your roles read RFPs but do not create them")
    max_mb = service.limit_mb(settings)
    data = await file.read(max_mb * 1024 * 1024 + 1)  # one byte over: the service refuses it
    rfp = await in_session(session, service.create_rfp, user, file.filename, data, title,
                           blobs=request.app.state.blobs, max_mb=max_mb,
                           idempotency_key=idempotency_key, deal_id=deal_id)
    return _created(rfp)


@router.post("/{rfp_id}/mapping", response_model=CreatedOut)
def set_mapping(request: Request, rfp_id: PathId, body: MappingIn, user: CurrentUser,
                session: SessionDep) -> CreatedOut:
    """Read a spreadsheet's questions from the sheet and columns given."""
    rfp = service.set_mapping(session, user, rfp_id, SheetMapping(
        body.sheet, body.header_row, body.question_column, body.answer_column),
        blobs=request.app.state.blobs)
    return _created(rfp)


def _out(session: Session, user: CurrentUser, rfp: Rfp) -> RfpOut:
    found = service.suggestions(session, user, rfp)
    return RfpOut(
        id=rfp.id, title=rfp.title, status=rfp.status, kind=rfp.kind,
        file_name=rfp.file_name, owner=rfp.owner.name, created_at=rfp.created_at,
        updated_at=rfp.updated_at,
        candidates=[CandidateOut.model_validate(c) for c in service.candidates(rfp)],
        questions=[QuestionOut(
            id=q.id, position=q.position, text=q.text, context=q.context,
            location=q.location, answer=q.answer, status=q.status,
            assignee=q.assignee.name if q.assignee else None, top_score=q.top_score,
            library_item_id=q.library_item_id,
            suggestions=[SuggestionOut(item_id=s.item.id, score=s.score, title=s.item.title,
                                       text=s.item.body) for s in found.get(q.id, [])])
            for q in rfp.questions])


class AnswerOut(BaseModel):
    rfp_id: int
    rfp_title: str
    question_id: int
    question: str
    answer: str
    library_item_id: int | None = Field(description="the library item it came from or "
                                                    "became, if any")


@router.get("/answers", response_model=list[AnswerOut])
def search_answers(user: CurrentUser, session: SessionDep,
                   q: Annotated[str, Query(max_length=200, description="words to find in the "
                                           "question or the answer")] = "",
                   page: Annotated[int, Query(ge=1, le=MAX_ID)] = 1) -> list[AnswerOut]:
    """The response repository: approved answers of approved or completed RFPs with every
    word of ``q``, newest RFP first, 50 a page."""
    found = answers.search(session, user, Listing(q.strip(), page))
    return [AnswerOut(rfp_id=h.rfp.id, rfp_title=h.rfp.title, question_id=h.question.id,
                      question=h.question.text, answer=h.question.answer or "",
                      library_item_id=h.question.library_item_id) for h in found.items]


@router.get("/{rfp_id}", response_model=RfpOut)
def get_rfp(rfp_id: PathId, user: CurrentUser, session: SessionDep) -> RfpOut:
    """The RFP, its questions, answers and each question's library suggestions."""
    return _out(session, user, service.get_rfp(session, user, rfp_id))


@router.get("", response_model=list[RfpSummary])
def list_rfps(user: CurrentUser, session: SessionDep, status: Status | None = None,
              page: Annotated[int, Query(ge=1, le=MAX_ID)] = 1) -> list[RfpSummary]:
    """RFPs by last change, newest first, 50 a page."""
    found = service.list_rfps(session, user, Listing("", page), status)
    out = []
    for r in found.items:
        p = service.progress(r)
        out.append(RfpSummary(id=r.id, title=r.title, status=r.status, kind=r.kind,
                              owner=r.owner.name, answered=p.answered, total=p.total,
                              updated_at=r.updated_at))
    return out


@router.put("/{rfp_id}/questions/{qid}/answer", response_model=QuestionBrief)
async def answer(rfp_id: PathId, qid: PathId, body: AnswerIn, user: CurrentUser,
                 session: SessionDep, client: MaybeClientDep,
                 settings: SettingsDep) -> QuestionBrief:
    """Save a question's answer (empty clears it); an expert's reminders for it stop."""
    q = await in_session(session, service.answer, user, rfp_id, qid, body.text,
                         body.library_item_id)
    await tasks.signal_answered(client, settings, q)
    return QuestionBrief(id=q.id, text=q.text, location=q.location)


@router.post("/{rfp_id}/approve", response_model=StatusOut)
def approve(rfp_id: PathId, user: CurrentUser, session: SessionDep) -> StatusOut:
    """Approve the answers (the owner, deal desk, legal or an admin)."""
    rfp = service.approve_answers(session, user, rfp_id)
    return StatusOut(id=rfp.id, status=rfp.status)


@router.post("/{rfp_id}/recall", response_model=StatusOut)
async def recall(rfp_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> StatusOut:
    """Withdraw the RFP: nothing changes after, and its experts' reminders stop."""
    rfp = await in_session(session, service.recall, user, rfp_id)
    await tasks.signal_recall(client, settings, rfp.id)
    return StatusOut(id=rfp.id, status=rfp.status)


class AssignIn(BaseModel):
    assignee_id: RowId = Field(description="the subject-matter expert (a user who answers RFPs)")
    due_at: dt.datetime = Field(description="when the answers are due, with its time zone")
    remind_before_hours: float = Field(24, ge=0, le=24 * 60)
    escalate_after_hours: float = Field(24, ge=0, le=24 * 60)


class AssignedOut(BaseModel):
    question_ids: list[int]
    workflow_id: str


@router.post("/{rfp_id}/assign", response_model=AssignedOut)
async def assign(rfp_id: PathId, body: AssignIn, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> AssignedOut:
    """Hand the questions the library could not answer to a subject-matter expert: reminded
    before the due time, the RFP's owner told after it (the owner, deal desk, legal, admin)."""
    chosen = await in_session(
        session, tasks.assign_smes, settings, user, rfp_id, body.assignee_id, body.due_at,
        remind_before=dt.timedelta(hours=body.remind_before_hours),
        escalate_after=dt.timedelta(hours=body.escalate_after_hours))
    wid = tasks.workflow_id(settings, rfp_id)
    await starts.start_now(client, session, wid)
    return AssignedOut(question_ids=[q.id for q in chosen], workflow_id=wid)


def _file(found: tuple[str, bytes, str]) -> Response:
    name, data, media_type = found
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": content_disposition(name)})


FILE_RESPONSES: dict[int | str, dict[str, object]] = {200: {"content": {
    service.MEDIA_TYPES["docx"]: {}, service.MEDIA_TYPES["xlsx"]: {}},
    "description": "the file"}}


@router.get("/{rfp_id}/document", response_class=Response, responses=FILE_RESPONSES)
def download_document(request: Request, rfp_id: PathId, user: CurrentUser,
                      session: SessionDep) -> Response:
    """The customer's own file with every answer in place (a PDF's: the standard response
    document)."""
    return _file(service.document(session, user, rfp_id, blobs=request.app.state.blobs))


@router.get("/{rfp_id}/response.docx", response_class=Response, responses=FILE_RESPONSES)
def download_response(rfp_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    """The standard response document: every question and its answer."""
    return _file(service.response_doc(session, user, rfp_id))


@router.get("/{rfp_id}/response.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the file"}})
def download_response_pdf(request: Request, rfp_id: PathId, user: CurrentUser,
                          session: SessionDep) -> Response:
    """The standard response document as PDF (converted by the warm LibreOffice)."""
    name, data, _ = service.response_doc(session, user, rfp_id)
    try:
        pdf = request.app.state.converter(data, name)
    except ConversionFailed as e:
        raise Invalid(f"the response document could not be converted to PDF: {e.message}",
                      field="document") from None
    return _file((name.removesuffix(".docx") + ".pdf", pdf, "application/pdf"))


@router.post("/{rfp_id}/questions/{qid}/promote", status_code=201, response_model=PromotedOut)
def promote(rfp_id: PathId, qid: PathId, user: CurrentUser,
            session: SessionDep) -> PromotedOut:
    """Add an approved answer to the content library (tag "rfp")."""
    return PromotedOut(item_id=service.promote_answer(session, user, rfp_id, qid).id)
