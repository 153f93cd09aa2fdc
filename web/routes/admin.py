"""Auditor and admin pages: the audit trail with chain verification, and users (create one,
sign one out everywhere)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dealdesk.settings import Settings
from store import audit
from store.audit import entity as entity_name
from store.db import write_lock
from store.models import ROLES, User, UserRole
from store.who import Who
from web.auth import CurrentUser, require
from web.deps import SessionDep, SettingsDep
from web.errors import Invalid, NotFound
from web.params import MAX_ID, PathId
from web.render import render
from web.services import audit_log, user_sessions
from web.services.passwords import MIN_LENGTH, hash_password
from web.services.user_sessions import SessionPolicy

router = APIRouter(include_in_schema=False)


@router.get("/audit", dependencies=[require("auditor", "admin")])
def audit_page(request: Request, session: SessionDep,
               entity: Annotated[str, Query(max_length=200)] = "",
               actor: Annotated[str, Query(max_length=200)] = "",
               before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> Response:
    """The trail, newest first, a hundred rows a page; ``entity`` in either spelling
    (``quote:12`` or ``quote-12``), ``actor`` by email, name or process."""
    found = audit_log.page(session, entity=entity, actor=actor, before=before, after=after)
    filters = {k: v.strip() for k, v in (("entity", entity), ("actor", actor)) if v.strip()}
    return render(request, "audit.html", {"page": found, "entity": entity, "actor": actor,
                                          "filters": filters})


@router.post("/audit/verify", dependencies=[require("auditor", "admin")])
def audit_verify(request: Request, session: SessionDep) -> Response:
    return render(request, "audit.html", {"result": audit.verify(session)}, block="verify")


@router.get("/users", dependencies=[require("admin")])
def users_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    return _users(request, session, settings)


def _users(request: Request, session: Session, settings: Settings,
           **extra: object) -> Response:
    users = session.scalars(select(User).order_by(User.name)).all()
    live = user_sessions.live_counts(session, SessionPolicy.of(settings))
    return render(request, "users.html", {"users": users, "roles": ROLES, "live": live,
                                          **extra})


@router.post("/users/{user_id}/sign-out")
def sign_out_everywhere(request: Request, user_id: PathId, session: SessionDep,
                        settings: SettingsDep, admin: CurrentUser,
                        tokens: Annotated[bool, Form()] = False,
                        _: object = require("admin")) -> Response:
    """Ends every session of a user (say, a lost laptop), and their API tokens if asked."""
    write_lock(session)
    target = session.get(User, user_id)
    if target is None:
        raise NotFound(f"no user number {user_id}")
    ended, revoked = user_sessions.sign_out_everywhere(session, target, tokens=tokens,
                                                       actor=admin.email)
    session.commit()
    done = f"{ended} session{'s' if ended != 1 else ''} ended"
    if tokens:
        done += f", {revoked} API token{'s' if revoked != 1 else ''} revoked"
    return _users(request, session, settings,
                  success=f"Signed {target.name} out everywhere: {done}.")


@router.post("/users")
def create_user(request: Request, session: SessionDep, user: CurrentUser,
                      email: Annotated[str, Form()], name: Annotated[str, Form()],
                      password: Annotated[str, Form()], roles: Annotated[list[str], Form()],
                      manager_email: Annotated[str, Form()] = "",
                      _: object = require("admin")) -> Response:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise Invalid(f"unknown role {bad[0]!r}", field="roles")
    if len(password) < MIN_LENGTH:
        raise Invalid(f"the password needs at least {MIN_LENGTH} characters", field="password")
    if "@" not in email:
        raise Invalid("the email address is not valid", field="email")
    password_hash = hash_password(password)  # before the write lock: it takes a while
    write_lock(session)
    if session.scalar(select(User).where(func.lower(User.email) == email.lower().strip())):
        raise Invalid(f"a user with email {email} exists already", field="email")
    manager = None
    if manager_email.strip():
        manager = session.scalar(select(User).where(
            func.lower(User.email) == manager_email.lower().strip()))
        if manager is None:
            raise Invalid(f"no user with email {manager_email!r}", field="manager_email")
    new = User(email=email.strip(), name=name.strip(), password_hash=password_hash,
               manager_id=manager.id if manager else None)
    new.role_rows = [UserRole(role=r) for r in sorted(set(roles))]
    session.add(new)
    session.flush()
    audit.append(session, event_key=f"user-{new.id}-created", actor=Who.user(user),
                 action="user.created", entity=entity_name("user", new.id),
                 data={"email": new.email, "roles": sorted(set(roles))})
    session.commit()
    return RedirectResponse("/users", status_code=303)
