"""Login and logout, the home redirect, out-of-office windows, and the dev mail viewer."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, or_, select

from store import audit
from store.db import write_lock
from store.models import Delegation, OutboxMessage, User
from web.auth import CurrentUser, authenticate, log_in, log_out, optional_user, verify_csrf
from web.deps import SessionDep, SettingsDep
from web.errors import Invalid, NotFound
from web.params import LAST_DAY, PathId
from web.render import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") \
            or urlparse(target).netloc:
        return "/inbox"
    return target


@router.get("/")
async def home(user: Annotated[User | None, Depends(optional_user)]) -> Response:
    return RedirectResponse("/inbox" if user else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "/inbox") -> Response:
    return render(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", dependencies=[Depends(verify_csrf)])
def login(request: Request, session: SessionDep, email: Annotated[str, Form()],
                password: Annotated[str, Form()], next: Annotated[str, Form()] = "/inbox"
                ) -> Response:
    user = authenticate(session, email, password)
    if user is None:
        return render(request, "login.html", {"error": "That email and password don't match.",
                                              "email": email, "next": _safe_next(next)},
                      status_code=401)
    log_in(request, user)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(verify_csrf)])
async def logout(request: Request) -> Response:
    log_out(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/away")
def away_page(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    windows = session.scalars(select(Delegation).where(or_(
        Delegation.user_id == user.id, Delegation.delegate_id == user.id))
        .order_by(Delegation.starts_at.desc())).all()
    return render(request, "away.html", {"windows": windows, "now": dt.datetime.now(dt.UTC)})


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
    write_lock(session)
    delegate = session.scalar(select(User).where(
        func.lower(User.email) == delegate_email.strip().lower(), User.is_active))
    if delegate is None:
        raise Invalid(f"no active user with email {delegate_email!r}", field="delegate_email")
    if delegate.id == user.id:
        raise Invalid("choose someone other than yourself", field="delegate_email")
    window = Delegation(user_id=user.id, delegate_id=delegate.id, starts_at=start, ends_at=end)
    session.add(window)
    session.flush()
    audit.append(session, event_key=f"delegation-{window.id}", actor=user.email,
                 action="delegation.created", entity=f"user-{user.id}",
                 data={"delegate": delegate.email, "starts_at": start.isoformat(),
                       "ends_at": end.isoformat()})
    session.commit()
    return RedirectResponse("/away", status_code=303)


@router.post("/away/{window_id}/delete")
def away_delete(window_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    write_lock(session)
    window = session.get(Delegation, window_id)
    if window is None or window.user_id != user.id:
        raise NotFound("no such out-of-office window of yours")
    session.delete(window)
    audit.append(session, event_key=f"delegation-{window.id}-deleted", actor=user.email,
                 action="delegation.deleted", entity=f"user-{user.id}", data={})
    session.commit()
    return RedirectResponse("/away", status_code=303)


@router.get("/dev/mail")
def mail_page(request: Request, user: CurrentUser, session: SessionDep,
                    settings: SettingsDep) -> Response:
    """The outbox: everyone sees the mail sent to them; an admin sees all. Outside
    development, signing links in other people's mail are masked: they act as their holder."""
    q = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(200)
    if "admin" not in user.roles:
        q = q.where(OutboxMessage.to_addr == user.email)
    mask = settings.environment != "development"
    messages = [MailView(m.subject, m.to_addr, m.created_at, m.sent_at is not None,
                         _SIGN_LINK.sub(r"\1…", m.body) if mask and m.to_addr != user.email
                         else m.body) for m in session.scalars(q)]
    return render(request, "mail.html", {"messages": messages})


_SIGN_LINK = re.compile(r"(/sign/)[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class MailView:
    subject: str
    to_addr: str
    created_at: dt.datetime
    sent: bool
    body: str
