"""The account page every signed-in user has: change the password, see where you are signed
in (and sign any of it out), create and revoke your API tokens."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from dealdesk.settings import Settings
from store.db import write_lock
from store.models import User
from web.auth import CurrentUser, attempt, client_ip, end_session
from web.deps import SessionDep, SettingsDep
from web.params import PathId
from web.render import is_htmx, render
from web.services import api_tokens, user_sessions
from web.services import login as login_service
from web.services.login import wait_text
from web.services.passwords import MIN_LENGTH
from web.services.user_sessions import SessionPolicy

router = APIRouter(include_in_schema=False)
EXPIRY_CHOICES = (7, 30, 90, 180, 365)


@dataclass(frozen=True)
class SessionView:
    id: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    ip: str
    user_agent: str
    current: bool

    @property
    def browser(self) -> str:
        """"Firefox on Linux" from the User-Agent header, or its start if unrecognised."""
        ua = self.user_agent
        name = next((n for key, n in _BROWSERS if key in ua), None)
        system = next((n for key, n in _SYSTEMS if key in ua), None)
        if name is None:
            return ua[:40] or "unknown"
        return f"{name} on {system}" if system else name


# Order matters: Edge and Chrome say "Chrome"; Chrome says "Safari"; Android says "Linux".
_BROWSERS = (("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "Python (httpx)"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


@dataclass(frozen=True)
class TokenView:
    id: int
    name: str
    prefix: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    status: str


def _page(request: Request, session: Session, user: User, settings: Settings,
          **extra: object) -> Response:
    current = getattr(request.state, "session_row", None)
    sessions = [SessionView(s.id, s.created_at, s.last_seen_at, s.ip, s.user_agent,
                            s.id == current)
                for s in user_sessions.live_sessions(session, user.id,
                                                     SessionPolicy.of(settings))]
    tokens = [TokenView(t.id, t.name, t.prefix, t.created_at, t.expires_at, t.last_used_at,
                        api_tokens.status(t)) for t in api_tokens.tokens_of(session, user.id)]
    return render(request, "account.html", {
        "sessions": sessions, "tokens": tokens, "expiry_choices": EXPIRY_CHOICES,
        "default_days": api_tokens.DEFAULT_DAYS, "min_length": MIN_LENGTH,
        "idle_text": wait_text(settings.session_idle_minutes * 60),
        "lifetime_text": f"{settings.session_max_days} days", **extra}, block="account")


@router.get("/account")
def account_page(request: Request, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep) -> Response:
    return _page(request, session, user, settings)


@router.post("/account/password")
def change_password(request: Request, user: CurrentUser, session: SessionDep,
                    settings: SettingsDep,
                    current_password: Annotated[str, Form(max_length=1000)],
                    new_password: Annotated[str, Form(max_length=1000)],
                    new_password_again: Annotated[str, Form(max_length=1000)]) -> Response:
    ended = login_service.change_password(
        session, user, attempt(request, user.email, "password_change"), current_password,
        new_password, new_password_again, keep_session=getattr(request.state, "session_row",
                                                               None))
    others = f"{ended} other session{'s' if ended != 1 else ''}"
    return _page(request, session, user, settings,
                 success=f"Password changed. {others} signed out." if ended
                 else "Password changed.")


@router.post("/account/sessions/{session_row}/end")
def end_one_session(request: Request, session_row: PathId, user: CurrentUser,
                    session: SessionDep, settings: SettingsDep) -> Response:
    write_lock(session)
    user_sessions.sign_out(session, user, session_row)
    session.commit()
    if session_row == getattr(request.state, "session_row", None):  # this very browser
        end_session(request)
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)
    return _page(request, session, user, settings, success="That session is signed out.")


@router.post("/account/tokens")
def create_token(request: Request, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep, name: Annotated[str, Form(max_length=100)],
                 expires_in_days: Annotated[int, Form()] = api_tokens.DEFAULT_DAYS
                 ) -> Response:
    write_lock(session)
    issued = api_tokens.issue(session, user, name=name, days=expires_in_days,
                              actor=user.email, ip=client_ip(request))
    session.commit()
    return _page(request, session, user, settings, new_token=issued.token,
                 new_token_name=issued.row.name)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: PathId, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep) -> Response:
    write_lock(session)
    row = api_tokens.own_token(session, user, token_id)
    api_tokens.revoke(session, row, actor=user.email, via="account page")
    session.commit()
    return _page(request, session, user, settings,
                 success=f"Token {row.name or row.prefix or row.id} revoked.")
