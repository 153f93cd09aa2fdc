"""Request-scoped dependencies: the store session, the Temporal client, the settings.

Everything hangs off ``app.state`` (set up in the app factory's lifespan), never off
import-time globals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from temporalio.client import Client

from dealdesk.settings import Settings


# These are async on purpose: FastAPI runs a sync dependency on a worker thread, and these
# thread hops were a measurable share of an approval's latency. (Opening a Session does no
# I/O; its connection is taken on first use, in whichever thread the route runs.)
async def get_session(request: Request) -> AsyncIterator[Session]:
    with request.app.state.sessions() as session:
        yield session


async def get_client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
ClientDep = Annotated[Client, Depends(get_client)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
