"""The content library's pages: the searchable list, an item with its versions, the create
and edit form, and the owner's actions (mark reviewed, archive, count a use)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from documents import section_template
from documents.filenames import safe_filename
from store.library import KINDS, LibraryItem
from store.models import User
from web import uploads
from web.auth import CurrentUser
from web.deps import FormDep, SessionDep, in_session, off_loop
from web.errors import Invalid, TooLarge
from web.paging import ListingDep
from web.params import LAST_DAY, MAX_ID, PathId
from web.render import render
from web.services import library

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=2 * library.MAX_BODY)]


def _owners(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.id.in_(
        select(LibraryItem.owner_id).where(LibraryItem.archived.is_(False)).distinct()))
        .order_by(User.name)))


@router.get("/library")
def library_page(request: Request, user: CurrentUser, session: SessionDep,
                 wanted: ListingDep,
                 tag: Annotated[str | None, Query(max_length=library.MAX_TAG)] = None,
                 kind: Annotated[str | None, Query(max_length=20)] = None,
                 owner: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                 due: bool = False) -> Response:
    if kind and kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}", field="kind")
    f = library.ListFilter(tag=tag or None, kind=kind or None, owner_id=owner, due=due)
    hits = library.search(session, user, wanted.q, limit=50, f=f) if wanted.q else None
    page = None if hits is not None else library.list_items(session, user, wanted, f)
    return render(request, "library.html", {
        "q": wanted.q, "hits": hits, "page": page, "f": f, "kinds": KINDS,
        "tags": library.popular_tags(session), "owners": _owners(session),
        "today": dt.datetime.now(dt.UTC).date(), "may_write": library.may_write(user),
        "keep": {"tag": f.tag, "kind": f.kind, "owner": f.owner_id, "due": "1" if due else ""},
    }, block="list")


def _form(request: Request, item: LibraryItem | None, values: dict[str, object],
          errors: dict[str, str], status_code: int = 200) -> Response:
    return render(request, "library_form.html", {"item": item, "v": values, "errors": errors,
                                                 "kinds": KINDS}, status_code=status_code)


def _values(item: LibraryItem) -> dict[str, object]:
    return {"title": item.title, "body": item.body, "tags": ", ".join(item.tags),
            "kind": item.kind, "review_by": str(item.review_by or ""),
            "base_version": item.version}


def _fields(title: str, body: str, tags: str, kind: str, review_by: str) -> library.ItemFields:
    try:
        when = dt.date.fromisoformat(review_by) if review_by.strip() else None
    except ValueError:
        raise Invalid("review by: give a date as YYYY-MM-DD", field="review_by") from None
    if when is not None and when > LAST_DAY:
        raise Invalid("review by: too far ahead", field="review_by")
    return library.ItemFields(title, body, tuple(t for t in tags.split(",")), kind, when)


@router.get("/library/new")
def new_item_page(request: Request, user: CurrentUser) -> Response:
    library.require_writer(user)
    return _form(request, None, {"kind": "answer"}, {})


@router.post("/library/new")
def create_item(request: Request, user: CurrentUser, session: SessionDep, title: Text,
                body: Text = "", tags: Text = "", kind: Text = "answer",
                review_by: Text = "") -> Response:
    values: dict[str, object] = {"title": title, "body": body, "tags": tags, "kind": kind,
                                 "review_by": review_by}
    try:
        item = library.create_item(session, user,
                                   _fields(title, body, tags, kind, review_by))
    except Invalid as e:
        return _form(request, None, values, {e.field or "title": e.message}, 422)
    return RedirectResponse(f"/library/{item.id}", status_code=303)


@router.get("/library/{item_id}")
def item_page(request: Request, item_id: PathId, user: CurrentUser,
              session: SessionDep, error: str = "", status_code: int = 200) -> Response:
    item = library.get_item(session, user, item_id)
    return render(request, "library_item.html", {
        "item": item, "versions": library.versions(session, item),
        "may_edit": library.may_edit(user, item), "fields": section_template.FIELDS,
        "error": error, "today": dt.datetime.now(dt.UTC).date()}, block="usage",
        status_code=status_code)


limit_upload = uploads.limit_upload(lambda _: library.MAX_DOCX // uploads.MB,
                                    what="a rich section", field="file")


@router.post("/library/{item_id}/docx", dependencies=[Depends(limit_upload)])
async def attach_docx(request: Request, item_id: PathId, user: CurrentUser,
                      session: SessionDep, form: FormDep) -> Response:
    """The item's rich section (the API's PUT …/docx, from the item page's form; read by
    hand, so an oversized upload is refused from its Content-Length first)."""
    await in_session(session, library.editable, user, item_id)
    upload = form.get("file")
    if not isinstance(upload, StarletteUpload) or not upload.filename:
        return await in_session(session, _item_again, request, item_id, user,
                                "choose a .docx file to upload")
    name = safe_filename(upload.filename, "the section")
    data = await upload.read(library.MAX_DOCX + 1)
    try:
        fields = await off_loop(library.check_docx_upload, name, data)
    except (Invalid, TooLarge) as e:
        return await in_session(session, _item_again, request, item_id, user, e.message,
                                e.status)
    digest = await off_loop(request.app.state.blobs.put, data)
    await in_session(session, library.attach_docx, user, item_id, digest, fields)
    return RedirectResponse(f"/library/{item_id}", status_code=303)


def _item_again(session: Session, request: Request, item_id: int, user: User, error: str,
                status_code: int = 422) -> Response:
    return item_page(request, item_id, user, session, error, status_code)


@router.get("/library/{item_id}/edit")
def edit_item_page(request: Request, item_id: PathId, user: CurrentUser,
                   session: SessionDep) -> Response:
    item = library.get_item(session, user, item_id)
    library.require_editor(user, item)
    return _form(request, item, _values(item), {})


@router.post("/library/{item_id}/edit")
def edit_item(request: Request, item_id: PathId, user: CurrentUser, session: SessionDep,
              title: Text, base_version: Annotated[int, Form(ge=1, le=MAX_ID)],
              body: Text = "", tags: Text = "", kind: Text = "answer",
              review_by: Text = "") -> Response:
    item = library.get_item(session, user, item_id)
    values: dict[str, object] = {"title": title, "body": body, "tags": tags, "kind": kind,
                                 "review_by": review_by, "base_version": base_version}
    try:
        library.edit_item(session, user, item_id, _fields(title, body, tags, kind, review_by),
                          base_version=base_version)
    except Invalid as e:
        session.rollback()
        return _form(request, item, values, {e.field or "title": e.message}, 422)
    return RedirectResponse(f"/library/{item_id}", status_code=303)


@router.post("/library/{item_id}/archive")
def archive_item(item_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    library.archive_item(session, user, item_id)
    return RedirectResponse(f"/library/{item_id}", status_code=303)


@router.post("/library/{item_id}/reviewed")
def mark_reviewed(item_id: PathId, user: CurrentUser, session: SessionDep,
                  back: Annotated[str, Form(max_length=20)] = "") -> Response:
    library.mark_reviewed(session, user, item_id)
    return RedirectResponse("/inbox" if back == "inbox" else f"/library/{item_id}",
                            status_code=303)


@router.post("/library/{item_id}/used")
def mark_used(request: Request, item_id: PathId, user: CurrentUser,
              session: SessionDep) -> Response:
    library.mark_used(session, user, item_id)
    return item_page(request, item_id, user, session)
