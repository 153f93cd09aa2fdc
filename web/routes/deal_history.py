"""A deal's history: the merged timeline, the state as of any entry (the replay view), a jump
to a date, diffs of two quote versions or two document versions, and the evidence bundle; the
pages and the JSON API read the same use cases (web/services/deal_history.py, evidence.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from documents import text
from store.blobs import BlobMissing, BlobStore
from store.history_archive import ArchiveCorrupt
from store.models import User
from web.auth import CurrentUser
from web.deps import (
    MaybeClientDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
    in_session,
    off_loop,
)
from web.downloads import content_disposition
from web.errors import API_ERRORS, Conflict, Invalid, NotFound
from web.params import PathId
from web.render import render
from web.services import deal_history as history
from web.services import deals, evidence, histories
from web.services.deal_history import Entry
from web.services.deals import Linked

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["deals"], responses=API_ERRORS)


def _entries(session: Session, user: User, deal_id: int
             ) -> tuple[Any, Linked, list[Entry]]:
    deal = deals.visible(session, user, deal_id)
    links = deals.linked(session, deal)
    rows = history.audit_rows(session, deal.id, links)
    return deal, links, history.with_version_hashes([history.audit_entry(r) for r in rows])


def _at(entries: list[Entry], at: int | None, date: str) -> int:
    if date.strip():
        try:
            day = dt.datetime.fromisoformat(date.strip())
        except ValueError:
            raise Invalid("give the date as YYYY-MM-DD or YYYY-MM-DDTHH:MM", field="date") \
                from None
        if day.tzinfo is None:
            day = day.replace(tzinfo=dt.UTC)
        if len(date.strip()) == 10 and day.date() < dt.date.max:  # a day: all of it
            day += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        return history.position(entries, day)
    if at is None:
        return len(entries) - 1
    return min(at, len(entries) - 1)


async def _view(session: Session, sessions: sessionmaker[Session], user: User,
                client: Client | None, settings: Settings, deal_id: int, at: int | None,
                date: str) -> dict[str, Any]:
    deal, links, audit_entries = await in_session(session, _entries, user, deal_id)
    runs = await history.recorded(client, sessions, settings.workflow_prefix, deal.id)
    entries = await off_loop(history.merged, audit_entries, runs)
    n = _at(entries, at, date)
    state = await in_session(session, history.state_as_of, links, entries, n)
    return {"d": deal, "links": links, "entries": entries, "n": n, "state": state,
            "histories": len(runs),
            "documents": await off_loop(history.document_hashes, entries),
            "cut": len(entries) >= history.MAX_ENTRIES}


@router.get("/deals/{deal_id}/history")
async def history_page(request: Request, deal_id: PathId, user: CurrentUser,
                       session: SessionDep, sessions: SessionsDep, client: MaybeClientDep,
                       settings: SettingsDep,
                       at: Annotated[int | None, Query(ge=0, le=history.MAX_ENTRIES)] = None,
                       date: Annotated[str, Query(max_length=30)] = "") -> Response:
    page = await _view(session, sessions, user, client, settings, deal_id, at, date)
    return render(request, "deal_history.html", page)


@router.get("/deals/{deal_id}/history/diff")
async def diff_page(request: Request, deal_id: PathId, user: CurrentUser,
                    session: SessionDep, settings: SettingsDep,
                    quote: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                    a: Annotated[str, Query(max_length=64)] = "",
                    b: Annotated[str, Query(max_length=64)] = "") -> Response:
    deal, links, entries = await in_session(session, _entries, user, deal_id)
    if quote is not None:
        if not all(v.isascii() and v.isdigit() and len(v) <= 6 for v in (a, b)):
            raise Invalid("name two version numbers, a and b", field="a")
        lines = await in_session(session, history.quote_version_diff, links, quote,
                                 int(a), int(b))
        title = f"Quote {quote}: version {a} against version {b}"
    else:
        known = history.document_hashes(entries)
        for digest in (a, b):
            if digest not in known:
                raise NotFound(f"no document version {digest[:12] or '(none)'} in this deal's "
                               "history")
        blobs = BlobStore(settings.blob_dir)
        try:
            lines = await off_loop(lambda: text.diff(blobs.get(a), blobs.get(b), a[:12], b[:12]))
        except BlobMissing:
            raise NotFound("that document version's bytes are not in the store") from None
        title = f"Document {a[:12]} against {b[:12]}"
    return render(request, "deal_history_diff.html", {"d": deal, "lines": lines,
                                                       "title": title})


@api.get("/deals/{deal_id}/history", summary="A deal's timeline and its state as of an entry")
async def history_api(request: Request, deal_id: PathId, user: CurrentUser,
                      session: SessionDep, sessions: SessionsDep, client: MaybeClientDep,
                      settings: SettingsDep,
                      at: Annotated[int | None, Query(ge=0, le=history.MAX_ENTRIES)] = None,
                      date: Annotated[str, Query(max_length=30)] = "") -> dict[str, Any]:
    page = await _view(session, sessions, user, client, settings, deal_id, at, date)
    return {"deal_id": deal_id, "at": page["n"],
            "timeline": [dataclasses.asdict(e) for e in page["entries"]],
            "state": dataclasses.asdict(page["state"])}


@router.get("/deals/{deal_id}/history/replay")
async def replay_check(request: Request, deal_id: PathId, user: CurrentUser,
                       session: SessionDep, sessions: SessionsDep, client: MaybeClientDep,
                       settings: SettingsDep) -> Response:
    """Every recorded run of the deal replayed on today's workflow code (the button; the CLI
    is ``dealdesk audit replay``)."""
    deal = await in_session(session, deals.visible, user, deal_id)
    try:
        results = await histories.replay_deal(client, sessions, settings.workflow_prefix,
                                              deal.id)
    except ArchiveCorrupt as e:
        raise Conflict(str(e)) from None
    return render(request, "deal_history.html", {"d": deal, "replayed": results},
                  block="replay")


async def _bundle(request: Request, session: Session, sessions: sessionmaker[Session],
                  user: User, client: Client | None, settings: Settings,
                  deal_id: int) -> Response:
    await in_session(session, deals.visible, user, deal_id)  # 404 before any Temporal call
    runs = await history.recorded(client, sessions, settings.workflow_prefix, deal_id)
    state = request.app.state
    with evidence.seal_signer(state.pki, settings.hsm) as seal:
        name, data = await evidence.export(
            session, user, deal_id, blobs=BlobStore(settings.blob_dir), pki=state.pki,
            seal=seal, tsa=state.tsa, histories=runs)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": content_disposition(name)})


@router.get("/deals/{deal_id}/evidence")
async def evidence_download(request: Request, deal_id: PathId, user: CurrentUser,
                            session: SessionDep, sessions: SessionsDep,
                            client: MaybeClientDep, settings: SettingsDep) -> Response:
    return await _bundle(request, session, sessions, user, client, settings, deal_id)


@api.get("/deals/{deal_id}/evidence", summary="The deal's evidence bundle (a zip)",
         response_class=Response,
         responses={200: {"content": {"application/zip": {}},
                          "description": "the bundle; check it with its verify.py"}})
async def evidence_api(request: Request, deal_id: PathId, user: CurrentUser,
                       session: SessionDep, sessions: SessionsDep, client: MaybeClientDep,
                       settings: SettingsDep) -> Response:
    return await _bundle(request, session, sessions, user, client, settings, deal_id)
