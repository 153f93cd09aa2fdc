"""Auditor and admin pages: the audit trail with chain verification, and users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from store import audit
from store.db import write_lock
from store.models import ROLES, AuditEvent, User, UserRole
from web.auth import CurrentUser, hash_password, require
from web.deps import SessionDep
from web.errors import Invalid
from web.params import MAX_ID
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/audit", dependencies=[require("auditor", "admin")])
def audit_page(request: Request, session: SessionDep,
               entity: Annotated[str | None, Query(max_length=200)] = None,
               before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(100)
    if entity:
        q = q.where(AuditEvent.entity == entity.strip())
    if before:
        q = q.where(AuditEvent.id < before)
    events = session.scalars(q).all()
    return render(request, "audit.html", {"events": events, "entity": entity or ""})


@router.post("/audit/verify", dependencies=[require("auditor", "admin")])
def audit_verify(request: Request, session: SessionDep) -> Response:
    return render(request, "audit.html", {"result": audit.verify(session)}, block="verify")


@router.get("/users", dependencies=[require("admin")])
def users_page(request: Request, session: SessionDep) -> Response:
    users = session.scalars(select(User).order_by(User.name)).all()
    return render(request, "users.html", {"users": users, "roles": ROLES})


@router.post("/users")
def create_user(request: Request, session: SessionDep, user: CurrentUser,
                      email: Annotated[str, Form()], name: Annotated[str, Form()],
                      password: Annotated[str, Form()], roles: Annotated[list[str], Form()],
                      manager_email: Annotated[str, Form()] = "",
                      _: object = require("admin")) -> Response:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise Invalid(f"unknown role {bad[0]!r}", field="roles")
    if len(password) < 8:
        raise Invalid("the password needs at least 8 characters", field="password")
    if "@" not in email:
        raise Invalid("the email address is not valid", field="email")
    write_lock(session)
    if session.scalar(select(User).where(func.lower(User.email) == email.lower().strip())):
        raise Invalid(f"a user with email {email} exists already", field="email")
    manager = None
    if manager_email.strip():
        manager = session.scalar(select(User).where(
            func.lower(User.email) == manager_email.lower().strip()))
        if manager is None:
            raise Invalid(f"no user with email {manager_email!r}", field="manager_email")
    new = User(email=email.strip(), name=name.strip(), password_hash=hash_password(password),
               manager_id=manager.id if manager else None)
    new.role_rows = [UserRole(role=r) for r in sorted(set(roles))]
    session.add(new)
    session.flush()
    audit.append(session, event_key=f"user-{new.id}-created", actor=user.email,
                 action="user.created", entity=f"user-{new.id}",
                 data={"email": new.email, "roles": sorted(set(roles))})
    session.commit()
    return RedirectResponse("/users", status_code=303)
