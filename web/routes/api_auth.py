"""API tokens over the JSON API: get one for a password (throttled like the login form),
list and revoke your own."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from store.db import write_lock
from store.models import ApiToken
from web.auth import CurrentUser, attempt
from web.deps import SessionDep
from web.errors import API_ERRORS, ErrorOut
from web.params import PathId
from web.services import api_tokens
from web.services import login as login_service

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=API_ERRORS)
RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "the email and password don't match"},
    429: {"model": ErrorOut,
          "description": "too many failed attempts for this account or address: the detail "
                         "and the Retry-After header say how long to wait"},
}


class TokenIn(BaseModel):
    email: str = Field(min_length=3, max_length=255)
    password: str = Field(min_length=1, max_length=1000)
    name: str = Field("", max_length=100, description="what the token is for, e.g. 'CRM sync'")
    expires_in_days: int = Field(api_tokens.DEFAULT_DAYS, ge=1, le=api_tokens.MAX_DAYS)


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="the token itself: shown this once, never again")
    name: str
    expires_at: dt.datetime


class TokenInfo(BaseModel):
    id: int
    name: str
    prefix: str | None = Field(description="the token's first characters")
    created_at: dt.datetime
    expires_at: dt.datetime
    last_used_at: dt.datetime | None = Field(description="to the minute")
    revoked_at: dt.datetime | None
    status: str = Field(description="active, expired or revoked")

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                   expires_at=row.expires_at, last_used_at=row.last_used_at,
                   revoked_at=row.revoked_at, status=api_tokens.status(row))


@router.post("/token", response_model=TokenOut, responses=RESPONSES)
def create_token(body: TokenIn, request: Request, session: SessionDep) -> TokenOut:
    issued = login_service.token_for_password(
        session, attempt(request, body.email, "api"), body.password, name=body.name,
        days=body.expires_in_days)
    row = issued.row
    return TokenOut(id=row.id, token=issued.token, name=row.name, expires_at=row.expires_at)


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenInfo]:
    """Your API tokens, newest first, revoked and expired ones included."""
    return [TokenInfo.of(row) for row in api_tokens.tokens_of(session, user.id)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: PathId, user: CurrentUser, session: SessionDep) -> Response:
    """Revoke one of your tokens; requests with it get 401 from now on."""
    write_lock(session)
    api_tokens.revoke(session, api_tokens.own_token(session, user, token_id), actor=user.email,
                      via="api")
    session.commit()
    return Response(status_code=204)
