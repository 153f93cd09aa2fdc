"""Proposals over the JSON API: create, set the sections, submit for review, decide a
review, recall, and download a version's DOCX or final PDF (the use cases are
web/services/proposals.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from documents.convert import ConversionFailed
from store.models import User
from store.proposals import Proposal
from web.auth import CurrentUser
from web.deps import (
    ClientDep,
    IdempotencyKey,
    MaybeClientDep,
    SessionDep,
    SettingsDep,
    in_session,
)
from web.downloads import content_disposition
from web.errors import API_ERRORS, Invalid
from web.params import PathId, Version
from web.services import proposals as service

router = APIRouter(prefix="/api/v1/proposals", tags=["proposals"], responses=API_ERRORS)
MEDIA = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "pdf": "application/pdf"}


class SectionOut(BaseModel):
    kind: str
    item_id: int | None = None
    title: str = ""
    body: str = ""


class TaskOut(BaseModel):
    id: str
    step: str
    queue: str | None
    assignee: str
    state: str
    decided_by: str
    decided_at: dt.datetime | None
    comment: str


class StepOut(BaseModel):
    key: str
    name: str
    state: str
    reasons: list[str]
    carried_from: dict[str, object] | None


class VersionOut(BaseModel):
    version: int
    status: str
    docx_sha256: str
    pdf_sha256: str | None
    sections: list[dict[str, object]] = Field(description="each section as reviewed: kind, "
                                              "title, digest (SHA-256), tags, standard")
    steps: list[StepOut]
    submitted_at: dt.datetime


class ProposalOut(BaseModel):
    id: int
    title: str
    account_id: int
    quote_id: int | None
    owner_id: int
    status: str
    version: int
    valid_until: dt.date
    custom_fields: dict[str, str]
    sections: list[SectionOut]
    tasks: list[TaskOut] = Field(description="the review tasks of the current version")
    versions: list[VersionOut] = Field(description="every submitted version, newest first")


def _out(session: Session, p: Proposal) -> ProposalOut:
    versions = service.versions(session, p.id)
    current = versions[0].version if versions else p.version
    return ProposalOut(
        id=p.id, title=p.title, account_id=p.account_id, quote_id=p.quote_id,
        owner_id=p.owner_id, status=p.status, version=p.version, valid_until=p.valid_until,
        custom_fields=p.custom_fields or {},
        sections=[SectionOut.model_validate(s) for s in p.sections],
        tasks=[TaskOut(id=t.id, step=t.step_name, queue=t.queue_role, assignee=t.assignee_name,
                       state=t.state, decided_by=t.decided_by_name, decided_at=t.decided_at,
                       comment=t.comment)
               for t in service.tasks_of(session, p.id, current)],
        versions=[VersionOut(
            version=v.version, status=v.status, docx_sha256=v.docx_sha256,
            pdf_sha256=v.pdf_sha256, sections=v.sections, submitted_at=v.submitted_at,
            steps=[StepOut(key=s.key, name=s.name, state=s.state, reasons=s.reasons,
                           carried_from=s.carried_from) for s in v.steps])
            for v in versions])


def _read(session: Session, user: User, proposal_id: int) -> ProposalOut:
    return _out(session, service.visible(session, user, proposal_id))


@router.post("", response_model=ProposalOut, status_code=201)
def create(body: service.ProposalFields, user: CurrentUser, session: SessionDep,
           idempotency_key: IdempotencyKey = None) -> ProposalOut:
    """A new draft; with a `quote_id`, its pricing and bill of materials are the first
    sections."""
    p = service.create_proposal(session, user, body, idempotency_key)
    session.commit()
    return _out(session, p)


@router.get("", response_model=list[ProposalOut])
def list_all(user: CurrentUser, session: SessionDep,
             q: Annotated[str, Query(max_length=200)] = "") -> list[ProposalOut]:
    return [_out(session, p) for p in service.list_proposals(session, user, q)]


@router.get("/{proposal_id}", response_model=ProposalOut)
def get(proposal_id: PathId, user: CurrentUser, session: SessionDep) -> ProposalOut:
    return _read(session, user, proposal_id)


@router.put("/{proposal_id}/sections", response_model=ProposalOut)
def put_sections(proposal_id: PathId, body: Annotated[list[service.SectionIn], Field(
                 max_length=service.MAX_SECTIONS * 2)], user: CurrentUser,
                 session: SessionDep) -> ProposalOut:
    """The sections in reading order: `{kind: library, item_id}`, `{kind: text, title, body}`
    (written for this proposal: non-standard), `{kind: pricing}`, `{kind: bom}`."""
    p = service.set_sections(session, user, proposal_id, body)
    session.commit()
    return _out(session, p)


class FieldsIn(BaseModel):
    custom_fields: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(
        max_length=1000)]] = Field(max_length=service.MAX_CUSTOM)


@router.put("/{proposal_id}/fields", response_model=ProposalOut)
def put_fields(proposal_id: PathId, body: FieldsIn, user: CurrentUser,
               session: SessionDep) -> ProposalOut:
    """The proposal's custom fields, which rich sections fill in as `{{ custom.NAME }}`."""
    p = service.set_custom_fields(session, user, proposal_id, body.custom_fields)
    session.commit()
    return _out(session, p)


@router.post("/{proposal_id}/submit", response_model=ProposalOut, status_code=202)
async def submit(request: Request, proposal_id: PathId, user: CurrentUser, session: SessionDep,
                 client: MaybeClientDep, settings: SettingsDep) -> ProposalOut:
    """Assemble, store by hash and send the current version for review."""
    await service.submit(session, client, user, proposal_id, blobs=request.app.state.blobs,
                         org_name=settings.org_name, task_queue=settings.task_queue,
                         prefix=settings.workflow_prefix)
    return await in_session(session, _read, user, proposal_id)


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject", "request_changes"]
    comment: str = Field("", max_length=8000)
    version: Version | None = Field(None, description="the version you reviewed: 409 if "
                                    "another is in review now")


@router.post("/{proposal_id}/tasks/{task_id}", response_model=ProposalOut)
async def decide(proposal_id: PathId, task_id: Annotated[str, Path(max_length=200)],
                 body: DecisionIn, user: CurrentUser, session: SessionDep,
                 client: ClientDep) -> ProposalOut:
    await service.decide(session, client, user, proposal_id, task_id, body.decision,
                         body.comment, body.version)
    return await in_session(session, _read, user, proposal_id)


class RecallIn(BaseModel):
    comment: str = Field("", max_length=4000)


@router.post("/{proposal_id}/recall", response_model=ProposalOut)
async def recall(proposal_id: PathId, body: RecallIn, user: CurrentUser, session: SessionDep,
                 client: ClientDep) -> ProposalOut:
    await service.recall(session, client, user, proposal_id, body.comment)
    return await in_session(session, _read, user, proposal_id)


FILES: dict[int | str, dict[str, object]] = {200: {"content": {m: {} for m in MEDIA.values()},
                                                   "description": "the file"}}


@router.get("/{proposal_id}/versions/{version}/document.{kind}", response_class=Response,
            responses=FILES)
def version_document(request: Request, proposal_id: PathId, version: Version,
                     kind: Literal["docx", "pdf"], user: CurrentUser,
                     session: SessionDep) -> Response:
    """A submitted version's DOCX (what was reviewed), or its final PDF once approved."""
    digest, name = service.document(session, user, proposal_id, version, kind)
    return Response(request.app.state.blobs.get(digest), media_type=MEDIA[kind],
                    headers={"Content-Disposition": content_disposition(name)})


@router.get("/{proposal_id}/preview.pdf", response_class=Response,
            responses={200: {"content": {MEDIA["pdf"]: {}}, "description": "the file"}})
async def preview(request: Request, proposal_id: PathId, user: CurrentUser,
                  session: SessionDep, settings: SettingsDep) -> Response:
    """The current draft as a PDF, as the customer would get it (nothing is stored)."""
    try:
        pdf = await service.preview_pdf(session, user, proposal_id,
                                        blobs=request.app.state.blobs,
                                        org_name=settings.org_name,
                                        convert=request.app.state.converter)
    except ConversionFailed as e:
        raise Invalid(f"the proposal could not be converted to PDF: {e.message}",
                      field="sections") from None
    return Response(pdf, media_type=MEDIA["pdf"], headers={
        "Content-Disposition": content_disposition(f"proposal-{proposal_id}-preview.pdf")})
