"""Login and logout, the home redirect, the favicon, out-of-office windows, and the dev mail
viewer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from store.models import User
from web.auth import (
    CurrentUser,
    attempt,
    client_ip,
    end_session,
    optional_user,
    session_id,
    start_session,
    verify_csrf,
)
from web.deps import SessionDep, SettingsDep
from web.errors import Invalid, TooManyTries, Unauthenticated
from web.paging import ListingDep
from web.params import LAST_DAY, PathId
from web.render import render
from web.services import delegations, lists, user_sessions
from web.services import login as login_service
from web.services.user_sessions import SessionPolicy

router = APIRouter(include_in_schema=False)
FAVICON = Path(__file__).resolve().parents[1] / "static" / "favicon.ico"


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") \
            or urlparse(target).netloc:
        return "/inbox"
    return target


@router.get("/")
async def home(user: Annotated[User | None, Depends(optional_user)]) -> Response:
    return RedirectResponse("/inbox" if user else "/login", status_code=303)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Pages link the SVG icon; browsers ask for this one anyway (and log a 404 without it)."""
    return FileResponse(FAVICON, media_type="image/x-icon",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/login")
async def login_page(request: Request, next: str = "/inbox") -> Response:
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Depends(verify_csrf)])
def login(request: Request, session: SessionDep, settings: SettingsDep,
          email: Annotated[str, Form(max_length=255)],
          password: Annotated[str, Form(max_length=1000)],
          next: Annotated[str, Form()] = "/inbox") -> Response:
    again = {"email": email, "next": _safe_next(next)}
    try:
        sid = login_service.log_in(session, attempt(request, email, "form"), password,
                                   SessionPolicy.of(settings))
    except Unauthenticated:
        return render(request, "login.html", {**again, "error": "That email and password "
                                              "don't match."}, status_code=401)
    except TooManyTries as e:  # the page says how long to wait
        response = render(request, "login.html", {**again, "error": e.message},
                          status_code=429)
        response.headers["Retry-After"] = str(e.retry_after)
        return response
    start_session(request, sid)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(request: Request, session: SessionDep) -> Response:
    """Ends the server-side session: the cookie, even replayed, signs nobody in again."""
    sid = session_id(request)
    if sid is not None:
        user_sessions.log_out(session, sid, ip=client_ip(request))
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/away")
def away_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    cannot = delegations.why_cannot_be_away(user)
    return render(request, "away.html", {
        "windows": delegations.windows_of(session, user), "now": dt.datetime.now(dt.UTC),
        "cannot": cannot,
        "delegates": [] if cannot else delegations.eligible_people(session, exclude=[user.id])})


@router.post("/away")
def away_create(request: Request, user: CurrentUser, session: SessionDep,
                      delegate_email: Annotated[str, Form()],
                      starts: Annotated[dt.date, Form(le=LAST_DAY)],
                      ends: Annotated[dt.date, Form(le=LAST_DAY)]
                      ) -> Response:
    start = dt.datetime.combine(starts, dt.time.min, dt.UTC)
    end = dt.datetime.combine(ends, dt.time.min, dt.UTC) + dt.timedelta(days=1)
    if end <= start:
        raise Invalid("the last day must not be before the first day", field="ends")
    delegations.create_window(session, user, delegate_email, start, end,
                              field="delegate_email")
    return RedirectResponse("/away", status_code=303)


@router.post("/away/{window_id}/delete")
def away_delete(window_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    delegations.delete_window(session, user, window_id)
    return RedirectResponse("/away", status_code=303)


@router.get("/dev/mail")
def mail_page(request: Request, user: CurrentUser, session: SessionDep,
                    settings: SettingsDep, wanted: ListingDep) -> Response:
    """The outbox: everyone sees the mail sent to them; an admin sees all. Outside
    development, signing links in other people's mail are masked: they act as their holder."""
    page = lists.mail(session, user, wanted, mask_others=settings.environment != "development")
    return render(request, "mail.html", {"page": page, "q": wanted.q}, block="list")
