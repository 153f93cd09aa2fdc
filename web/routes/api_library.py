"""The content library over the JSON API: items, their versions, search and suggestions
(the use cases are web/services/library.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from documents.filenames import safe_filename
from store.library import LibraryItem
from web.auth import CurrentUser
from web.deps import SessionDep, in_session, off_loop
from web.downloads import content_disposition
from web.errors import API_ERRORS, NotFound
from web.params import LAST_DAY, PathId, Version
from web.services import library

router = APIRouter(prefix="/api/v1/library", tags=["library"], responses=API_ERRORS)
Kind = Literal["answer", "section", "case_study", "image", "product"]
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SearchText = Annotated[str, Query(min_length=1, max_length=1000,
                                  description="the words to look for")]


class ItemIn(BaseModel):
    title: str = Field(max_length=2000, description="1 … 200 characters")
    body: str = Field("", max_length=library.MAX_BODY * 2,
                      description=f"plain text, at most {library.MAX_BODY:,} characters")
    tags: list[Annotated[str, Field(max_length=400)]] = Field(
        default_factory=list, max_length=100,
        description=f"at most {library.MAX_TAGS} tags of at most {library.MAX_TAG} "
                    "characters (letters, digits, '-', '_', '.')")
    kind: Kind = "answer"
    review_by: dt.date | None = Field(None, le=LAST_DAY, description="when its owner should "
                                      "check it again (default: in 180 days)")

    def fields(self) -> library.ItemFields:
        return library.ItemFields(self.title, self.body, tuple(self.tags), self.kind,
                                  self.review_by)


class ItemEdit(ItemIn):
    base_version: Version | None = Field(None, description="the version you edited: 409 if "
                                         "someone saved another since")


class Created(BaseModel):
    id: int
    version: int


class VersionOut(BaseModel):
    version: int
    title: str
    body: str
    tags: list[str]
    edited_by: str
    edited_at: dt.datetime


class ItemOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    tags: list[str]
    owner_id: int
    owner: str
    version: int
    usage_count: int
    review_by: dt.date | None
    due_for_review: bool
    archived: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    versions: list[VersionOut] = Field(description="every saved version, newest first")
    docx_sha256: str | None = Field(description="the rich section (DOCX) proposals use "
                                    "instead of the text, by SHA-256")
    docx_fields: list[str] = Field(description="the template names the DOCX fills in")


class Segment(BaseModel):
    text: str
    match: bool = Field(description="a word the search matched (show it marked)")


class SearchOut(BaseModel):
    id: int
    title: str
    score: float = Field(ge=0, le=1, description="relative to the best hit (1)")
    snippet: list[Segment] = Field(description="a passage of the body, as plain-text pieces")


class SuggestionOut(BaseModel):
    item_id: int
    score: float = Field(ge=0, le=1)
    title: str
    text: str


class UsedOut(BaseModel):
    usage_count: int


def _out(session: SessionDep, item: LibraryItem) -> ItemOut:
    today = dt.datetime.now(dt.UTC).date()
    return ItemOut(
        id=item.id, kind=item.kind, title=item.title, body=item.body, tags=item.tags,
        owner_id=item.owner_id, owner=item.owner.name, version=item.version,
        usage_count=item.usage_count, review_by=item.review_by,
        due_for_review=item.due_for_review(today), archived=item.archived,
        created_at=item.created_at, updated_at=item.updated_at,
        docx_sha256=item.docx_sha256, docx_fields=item.docx_fields or [],
        versions=[VersionOut(version=v.version, title=v.title, body=v.body,
                             tags=v.tags_text.split(), edited_by=v.edited_by.name,
                             edited_at=v.edited_at)
                  for v in library.versions(session, item)])


@router.post("/items", status_code=201, response_model=Created)
def create_item(body: ItemIn, user: CurrentUser, session: SessionDep) -> Created:
    """A new item, owned by you (reps, deal desk, legal, admins)."""
    item = library.create_item(session, user, body.fields())
    return Created(id=item.id, version=item.version)


@router.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: PathId, user: CurrentUser, session: SessionDep) -> ItemOut:
    return _out(session, library.get_item(session, user, item_id))


@router.put("/items/{item_id}", response_model=ItemOut)
def edit_item(item_id: PathId, body: ItemEdit, user: CurrentUser,
              session: SessionDep) -> ItemOut:
    """Save a new version (its owner, legal, deal desk or an admin); the previous versions
    stay listed."""
    item = library.edit_item(session, user, item_id, body.fields(),
                             base_version=body.base_version)
    return _out(session, item)


@router.put("/items/{item_id}/docx", response_model=ItemOut)
async def attach_docx(request: Request, item_id: PathId, user: CurrentUser,
                      session: SessionDep,
                      file: Annotated[UploadFile, File(description="a .docx section, at most "
                                                       "20 MB; it may use template tags "
                                                       "such as {{ customer }}")]) -> ItemOut:
    """Give the item a rich section (a new version): proposals use the DOCX instead of the
    text, its tags filled in. It is checked first (opened, its names known, rendered with
    sample data) and refused with the reason."""
    await in_session(session, library.editable, user, item_id)
    name = safe_filename(file.filename, "the section")
    data = await file.read(library.MAX_DOCX + 1)
    fields = await off_loop(library.check_docx_upload, name, data)
    digest = await off_loop(request.app.state.blobs.put, data)
    item = await in_session(session, library.attach_docx, user, item_id, digest, fields)
    return await in_session(session, _out, item)


@router.get("/items/{item_id}/docx", response_class=Response, responses={200: {"content": {
    DOCX: {}}, "description": "the file"}})
def download_docx(request: Request, item_id: PathId, user: CurrentUser,
                  session: SessionDep) -> Response:
    item = library.get_item(session, user, item_id)
    if item.docx_sha256 is None:
        raise NotFound(f"library item {item.id} has no rich section (DOCX)")
    return Response(request.app.state.blobs.get(item.docx_sha256), media_type=DOCX, headers={
        "Content-Disposition": content_disposition(f"library-item-{item.id}.docx")})


@router.delete("/items/{item_id}", status_code=204)
def archive_item(item_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    """Archive the item: out of search, suggestions and lists, still readable by id."""
    library.archive_item(session, user, item_id)
    return Response(status_code=204)


@router.post("/items/{item_id}/used", response_model=UsedOut)
def mark_used(item_id: PathId, user: CurrentUser, session: SessionDep) -> UsedOut:
    """Count one use of the item (e.g. pasted into an RFP answer)."""
    return UsedOut(usage_count=library.mark_used(session, user, item_id))


@router.get("/search", response_model=list[SearchOut])
def search(q: SearchText, user: CurrentUser, session: SessionDep,
           limit: Annotated[int, Query(ge=1, le=100)] = 20,
           kind: Kind | None = None,
           tag: Annotated[str | None, Query(max_length=library.MAX_TAG)] = None,
           ) -> list[SearchOut]:
    """Items with every word of ``q`` (the last may be the start of a word), best first."""
    hits = library.search(session, user, q, limit=limit,
                          f=library.ListFilter(tag=tag, kind=kind))
    return [SearchOut(id=h.item.id, title=h.item.title, score=h.score,
                      snippet=[Segment(text=t, match=m) for t, m in h.snippet]) for h in hits]


@router.get("/suggest", response_model=list[SuggestionOut])
def suggest(q: SearchText, user: CurrentUser, session: SessionDep,
            limit: Annotated[int, Query(ge=1, le=20)] = 5) -> list[SuggestionOut]:
    """Items that answer the question ``q``, best first, whatever words it uses."""
    return [SuggestionOut(item_id=s.item.id, score=s.score, title=s.item.title,
                          text=s.item.body)
            for s in library.suggest(session, user, q, limit)]
