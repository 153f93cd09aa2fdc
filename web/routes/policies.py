"""Approval policy pages: the active policy and its history; YAML editing for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from store.db import write_lock
from store.models import Policy
from web.auth import CurrentUser, require
from web.deps import SessionDep
from web.errors import Invalid
from web.params import MAX_ID
from web.render import render
from web.services import policies as policy_service

router = APIRouter(include_in_schema=False)
READERS = ("admin", "auditor", "deal_desk", "finance", "legal", "cfo", "sales_manager")


@router.get("/policies", dependencies=[require(*READERS)])
def policies_page(request: Request, session: SessionDep,
                  version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    versions = session.scalars(select(Policy).order_by(Policy.id.desc()).limit(50)).all()
    current = None
    if versions:
        current = next((p for p in versions if p.version == version), versions[0]) \
            if version else versions[0]
    catches = policy_service.rule_catches(session, policy_service.spec_of(current)) \
        if current else []
    return render(request, "policies.html", {"versions": versions, "current": current,
                                             "spec": policy_service.spec_of(current)
                                             if current else None, "catches": catches})


@router.get("/policies/edit", dependencies=[require("admin")])
def edit_page(request: Request, session: SessionDep) -> Response:
    latest = session.scalar(select(Policy).order_by(Policy.id.desc()).limit(1))
    return render(request, "policy_edit.html", {"source": latest.source if latest else "",
                                                "problems": []})


@router.post("/policies/validate", dependencies=[require("admin")])
def validate(request: Request, session: SessionDep,
                   source: Annotated[str, Form()]) -> Response:
    try:
        spec = policy_service.parse_source(session, source)
        return render(request, "policy_edit.html", {"problems": [], "valid": spec},
                      block="problems")
    except Invalid as e:
        return render(request, "policy_edit.html", {"problems": e.message.split("; ")},
                      block="problems")


@router.post("/policies")
def save(request: Request, session: SessionDep, user: CurrentUser,
               source: Annotated[str, Form()], _: object = require("admin")) -> Response:
    write_lock(session)
    try:
        row = policy_service.save_policy(session, source, user)
    except Invalid as e:
        session.rollback()
        return render(request, "policy_edit.html", {"source": source,
                                                    "problems": e.message.split("; ")},
                      status_code=422)
    session.commit()
    return RedirectResponse(f"/policies?version={row.version}", status_code=303)
